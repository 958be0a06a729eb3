// Global atom table: sharded open-addressing hash tables with lock-free lookup of existing
// atoms (the ETF decoder interns every atom it decodes) and a mutex per shard for inserts.
// Entries are immortal, as in BEAM; the table size is bounded by set_atom_table_limit.
#include "term_internal.hpp"

#include <cstring>
#include <mutex>
#include <stdexcept>

namespace erl::detail {

std::size_t hash_bytes(const void* data, std::size_t n) noexcept {
    // FNV-1a over the bytes followed by a murmur3 finalizer for good high bits (used for
    // sharding). Atoms are short, so a byte loop is fine.
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return static_cast<std::size_t>(h);
}

bool utf8_decode(std::string_view s, std::size_t& i, std::uint32_t& cp) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t n = s.size();
    unsigned char c = p[i];
    if (c < 0x80) {
        cp = c;
        ++i;
        return true;
    }
    std::size_t len;
    std::uint32_t min;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
        unsigned char d = p[i + k];
        if ((d & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
    return true;
}

bool utf8_validate(std::string_view s, std::size_t& chars) noexcept {
    std::size_t i = 0, c = 0;
    while (i < s.size()) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
        } else {
            std::uint32_t cp;
            if (!utf8_decode(s, i, cp)) return false;
        }
        ++c;
    }
    chars = c;
    return true;
}

void utf8_append(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

namespace {

constexpr std::size_t kShardBits = 6;
constexpr std::size_t kShards = std::size_t{1} << kShardBits;

// One shard's slot array. Replaced (never mutated in size) when it grows; the old array is
// kept reachable through `prev` because lock-free readers may still be probing it.
struct slot_table {
    std::size_t mask;
    slot_table* prev;
    std::atomic<const atom_entry*>* slots;
};

struct shard {
    std::mutex mu;
    std::atomic<slot_table*> table{nullptr};
    std::size_t count = 0;  // guarded by mu
};

constinit shard g_shards[kShards];
constinit std::atomic<std::size_t> g_count{1};  // '' is always present
constinit std::atomic<std::size_t> g_limit{1048576};

constinit atom_entry g_empty{0, 0, 0, ""};
thread_local std::size_t t_created = 0;     // atoms_created_by_this_thread()
thread_local std::size_t t_cap = SIZE_MAX;  // set_thread_atom_creation_cap()

inline std::size_t slot_of(std::size_t h) noexcept {
    return h >> kShardBits;
}

const atom_entry* probe(const slot_table* t, std::size_t h, const char* s, std::size_t n) noexcept {
    std::size_t i = slot_of(h) & t->mask;
    for (;;) {
        const atom_entry* e = t->slots[i].load(std::memory_order_acquire);
        if (!e) return nullptr;
        if (e->hash == h && e->bytes == n && std::memcmp(e->text, s, n) == 0) return e;
        i = (i + 1) & t->mask;
    }
}

slot_table* new_table(std::size_t cap, slot_table* prev) {
    auto* t = new slot_table{cap - 1, prev, new std::atomic<const atom_entry*>[cap]};
    for (std::size_t i = 0; i < cap; ++i)
        t->slots[i].store(nullptr, std::memory_order_relaxed);
    return t;
}

void insert_slot(slot_table* t, const atom_entry* e) noexcept {
    std::size_t i = slot_of(e->hash) & t->mask;
    while (t->slots[i].load(std::memory_order_relaxed))
        i = (i + 1) & t->mask;
    t->slots[i].store(e, std::memory_order_release);
}

}  // namespace

result<const atom_entry*> intern(std::string_view s, bool create) noexcept {
    if (s.empty()) return &g_empty;
    std::size_t h = hash_bytes(s.data(), s.size());
    shard& sh = g_shards[h & (kShards - 1)];
    if (const slot_table* t = sh.table.load(std::memory_order_acquire)) {
        if (const atom_entry* e = probe(t, h, s.data(), s.size())) return e;
    }
    if (s.size() > 255 * 4) return make_error_code(errc::atom_too_long);
    std::size_t chars;
    if (!utf8_validate(s, chars)) return make_error_code(errc::invalid_utf8);
    if (chars > 255) return make_error_code(errc::atom_too_long);
    if (!create) return make_error_code(errc::type_mismatch);

    std::lock_guard lock(sh.mu);
    slot_table* t = sh.table.load(std::memory_order_relaxed);
    if (t) {
        if (const atom_entry* e = probe(t, h, s.data(), s.size())) return e;
    }
    if (t_created >= t_cap) return make_error_code(errc::atom_table_full);
    // Reserve a place under the global limit.
    std::size_t cur = g_count.load(std::memory_order_relaxed);
    do {
        if (cur >= g_limit.load(std::memory_order_relaxed))
            return make_error_code(errc::atom_table_full);
    } while (!g_count.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
    try {
        // Entry and text in one immortal allocation.
        char* mem = new char[sizeof(atom_entry) + s.size() + 1];
        char* text = mem + sizeof(atom_entry);
        std::memcpy(text, s.data(), s.size());
        text[s.size()] = '\0';
        auto* e = ::new (mem) atom_entry{h, static_cast<std::uint32_t>(s.size()),
                                         static_cast<std::uint32_t>(chars), text};
        if (!t || (sh.count + 1) * 2 > t->mask + 1) {
            std::size_t cap = t ? (t->mask + 1) * 2 : 64;
            slot_table* nt = new_table(cap, t);
            if (t) {
                for (std::size_t i = 0; i <= t->mask; ++i)
                    if (const atom_entry* o = t->slots[i].load(std::memory_order_relaxed))
                        insert_slot(nt, o);
            }
            insert_slot(nt, e);
            sh.table.store(nt, std::memory_order_release);
        } else {
            insert_slot(t, e);
        }
        ++sh.count;
        ++t_created;
        return e;
    } catch (...) {
        g_count.fetch_sub(1, std::memory_order_relaxed);
        return make_error_code(errc::limit_exceeded);
    }
}

}  // namespace erl::detail

namespace erl {

atom::atom() noexcept : e_(&detail::g_empty) {}

atom::atom(std::string_view utf8) {
    auto r = detail::intern(utf8, true);
    if (!r) {
        if (r.error() == errc::atom_table_full)
            throw std::length_error("erl::atom: atom table full");
        throw std::invalid_argument(std::string("erl::atom: ") + (r.error() == errc::invalid_utf8
                                                                      ? "invalid UTF-8"
                                                                      : "atom too long"));
    }
    e_ = *r;
}

result<atom> atom::make(std::string_view utf8) noexcept {
    auto r = detail::intern(utf8, true);
    if (!r) return r.error();
    return from_entry(*r);
}

result<atom> atom::existing(std::string_view utf8) noexcept {
    auto r = detail::intern(utf8, false);
    if (!r) return r.error();
    return from_entry(*r);
}

std::strong_ordering operator<=>(atom a, atom b) noexcept {
    if (a.e_ == b.e_) return std::strong_ordering::equal;
    return a.str() <=> b.str();  // bytewise on UTF-8, as char_traits<char> compares unsigned
}

std::size_t atom_table_size() noexcept {
    return detail::g_count.load(std::memory_order_relaxed);
}
std::size_t atom_table_limit() noexcept {
    return detail::g_limit.load(std::memory_order_relaxed);
}
void set_atom_table_limit(std::size_t n) noexcept {
    detail::g_limit.store(n, std::memory_order_relaxed);
}
std::size_t atoms_created_by_this_thread() noexcept {
    return detail::t_created;
}
void set_thread_atom_creation_cap(std::size_t cap) noexcept {
    detail::t_cap = cap;
}

namespace atoms {
atom ok() noexcept {
    static const atom a("ok");
    return a;
}
atom error() noexcept {
    static const atom a("error");
    return a;
}
atom true_() noexcept {
    static const atom a("true");
    return a;
}
atom false_() noexcept {
    static const atom a("false");
    return a;
}
atom undefined() noexcept {
    static const atom a("undefined");
    return a;
}
atom nonode_nohost() noexcept {
    static const atom a("nonode@nohost");
    return a;
}
atom normal() noexcept {
    static const atom a("normal");
    return a;
}
}  // namespace atoms

}  // namespace erl
