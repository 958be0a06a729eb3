// Global atom table: sharded open-addressing hash tables with lock-free lookup of existing
// atoms (the ETF decoder interns every atom it decodes) and a mutex per shard for inserts and
// removals. Permanent entries (atoms named by C++ code) are immortal, as in BEAM; network
// entries (atoms first seen in peer data) are counted by the atom values holding them and leave
// the table with the last one. The number of live entries is bounded by set_atom_table_limit.
//
// Removal and lock-free lookup: a lookup runs inside a read section that announces the global
// epoch it saw. A removed entry (its slot becomes a tombstone) and a replaced slot array are
// retired with the epoch current after the removal, and freed only once the epoch has
// advanced twice. The epoch advances only when every thread inside a read section has
// announced the current one, so no thread can still hold a pointer read before the removal.
#include "term_internal.hpp"

#include <cstring>
#include <deque>
#include <mutex>
#include <new>
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

// One shard's slot array. Replaced (never resized in place) when it fills with entries and
// tombstones; the old array is retired, as lock-free readers may still be probing it.
struct slot_table {
    std::size_t mask;
    std::atomic<const atom_entry*>* slots;
};

struct shard {
    std::mutex mu;
    std::atomic<slot_table*> table{nullptr};
    std::size_t live = 0;  // entries in the table; guarded by mu
    std::size_t used = 0;  // live entries plus tombstones; guarded by mu
};

constinit shard g_shards[kShards];
constinit std::atomic<std::size_t> g_count{1};  // live entries; '' is always present
constinit std::atomic<std::size_t> g_network{0};
constinit std::atomic<std::size_t> g_freed{0};
constinit std::atomic<std::size_t> g_limit{1048576};

// A slot whose entry has left the table. Probes go on past it; its length matches no text.
constinit atom_entry g_tomb{0, 0xffffffffu, 0, ""};

thread_local std::size_t t_created = 0;     // atoms_created_by_this_thread()
thread_local std::size_t t_cap = SIZE_MAX;  // set_thread_atom_creation_cap()

inline std::uintptr_t bits_of(const atom_entry* e, bool counted) noexcept {
    return reinterpret_cast<std::uintptr_t>(e) | (counted ? 1u : 0u);
}

// --- Deferred reclamation ------------------------------------------------------------------

struct reader {
    std::atomic<std::uint64_t> epoch{0};  // 0: not in a read section
    std::atomic<bool> taken{true};
    reader* next = nullptr;
    unsigned depth = 0;  // owner thread only
};
constinit std::atomic<reader*> g_readers{nullptr};  // never shrinks; records are reused
constinit std::atomic<std::uint64_t> g_epoch{1};

struct reader_handle {
    reader* r = nullptr;
    ~reader_handle() {
        if (!r) return;
        r->epoch.store(0, std::memory_order_release);
        r->taken.store(false, std::memory_order_release);
        r = nullptr;
    }
};
thread_local reader_handle t_reader;

reader* this_reader() noexcept {
    if (reader* r = t_reader.r) return r;
    for (reader* r = g_readers.load(std::memory_order_acquire); r; r = r->next) {
        bool free = false;
        if (!r->taken.load(std::memory_order_relaxed) &&
            r->taken.compare_exchange_strong(free, true, std::memory_order_acq_rel))
            return t_reader.r = r;
    }
    auto* r = new (std::nothrow) reader;
    if (!r) return nullptr;
    r->next = g_readers.load(std::memory_order_relaxed);
    while (!g_readers.compare_exchange_weak(r->next, r, std::memory_order_release,
                                            std::memory_order_relaxed)) {
    }
    return t_reader.r = r;
}

// Without a reader record (out of memory) a lookup takes the shard's lock instead.
class read_section {
  public:
    read_section() noexcept : r_(this_reader()) {
        if (r_ && r_->depth++ == 0) {
            r_->epoch.store(g_epoch.load(std::memory_order_acquire), std::memory_order_release);
            std::atomic_thread_fence(std::memory_order_seq_cst);
        }
    }
    ~read_section() {
        if (r_ && --r_->depth == 0) r_->epoch.store(0, std::memory_order_release);
    }
    read_section(const read_section&) = delete;
    read_section& operator=(const read_section&) = delete;
    explicit operator bool() const noexcept { return r_ != nullptr; }

  private:
    reader* r_;
};

struct retired {
    const void* p;
    bool table;  // a slot_table, else an atom_entry
    std::uint64_t epoch;
};
constinit std::mutex g_retire_mu;
std::deque<retired>* g_retired = nullptr;  // guarded by g_retire_mu; never destroyed

void free_retired(const retired& r) noexcept {
    if (r.table) {
        auto* t = static_cast<slot_table*>(const_cast<void*>(r.p));
        delete[] t->slots;
        delete t;
    } else {
        auto* e = static_cast<atom_entry*>(const_cast<void*>(r.p));
        e->~atom_entry();
        ::operator delete(static_cast<void*>(e));
    }
}

// Advances the epoch if every reader in a read section is at the current one, then frees what
// was retired two epochs ago or earlier. Caller holds g_retire_mu.
void advance_and_free() noexcept {
    const std::uint64_t e = g_epoch.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool quiet = true;
    for (reader* r = g_readers.load(std::memory_order_acquire); r && quiet; r = r->next) {
        // Acquire: what the reader did before it left (or re-entered) happens before a free.
        const std::uint64_t re = r->epoch.load(std::memory_order_acquire);
        quiet = re == 0 || re == e;
    }
    if (quiet) g_epoch.store(e + 1, std::memory_order_release);
    const std::uint64_t now = g_epoch.load(std::memory_order_relaxed);
    while (g_retired && !g_retired->empty() && g_retired->front().epoch + 2 <= now) {
        free_retired(g_retired->front());
        g_retired->pop_front();
    }
}

// p has left the table (or is a replaced slot array). Called after the removal is published.
void retire(const void* p, bool table) noexcept {
    std::lock_guard lock(g_retire_mu);
    try {
        if (!g_retired) g_retired = new std::deque<retired>;
        g_retired->push_back({p, table, g_epoch.load(std::memory_order_relaxed)});
    } catch (...) {
        // Out of memory for the list: keep p (a leak beats freeing what a reader may hold).
    }
    advance_and_free();
}

// --- Probing -------------------------------------------------------------------------------

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

slot_table* new_table(std::size_t cap) {
    auto* slots = new std::atomic<const atom_entry*>[cap];
    auto* t = new (std::nothrow) slot_table{cap - 1, slots};
    if (!t) {
        delete[] slots;
        throw std::bad_alloc();
    }
    for (std::size_t i = 0; i < cap; ++i)
        t->slots[i].store(nullptr, std::memory_order_relaxed);
    return t;
}

// Into the first free or tombstone slot of e's probe sequence (e is known to be absent).
void place(slot_table* t, const atom_entry* e, std::size_t& used) noexcept {
    std::size_t i = slot_of(e->hash) & t->mask;
    for (;;) {
        const atom_entry* o = t->slots[i].load(std::memory_order_relaxed);
        if (!o) break;
        if (o == &g_tomb) {
            t->slots[i].store(e, std::memory_order_release);
            return;
        }
        i = (i + 1) & t->mask;
    }
    t->slots[i].store(e, std::memory_order_release);
    ++used;
}

// A network entry's count goes up unless it has left the table (lock-free lookups).
bool try_acquire(const atom_entry* e) noexcept {
    std::uint32_t v = e->refs.load(std::memory_order_relaxed);
    do {
        if (v & atom_dead) return false;
    } while (!e->refs.compare_exchange_weak(v, v + 1, std::memory_order_relaxed));
    return true;
}

enum class want { existing, permanent, network };

// Returns the bits of an atom value (tagged when it holds a network entry).
result<std::uintptr_t> intern(std::string_view s, want w) noexcept {
    if (s.empty()) return bits_of(&empty_atom_entry, false);
    std::size_t h = hash_bytes(s.data(), s.size());
    shard& sh = g_shards[h & (kShards - 1)];
    {
        read_section rs;
        if (rs) {
            if (const slot_table* t = sh.table.load(std::memory_order_acquire)) {
                if (const atom_entry* e = probe(t, h, s.data(), s.size())) {
                    if (!e->network.load(std::memory_order_acquire)) return bits_of(e, false);
                    if (w != want::permanent && try_acquire(e)) return bits_of(e, true);
                }
            }
        }
    }
    if (s.size() > 255 * 4) return make_error_code(errc::atom_too_long);
    std::size_t chars;
    if (!utf8_validate(s, chars)) return make_error_code(errc::invalid_utf8);
    if (chars > 255) return make_error_code(errc::atom_too_long);

    std::lock_guard lock(sh.mu);
    slot_table* t = sh.table.load(std::memory_order_relaxed);
    if (t) {
        // Entries in the table are live while the lock is held (removal takes it).
        if (const atom_entry* e = probe(t, h, s.data(), s.size())) {
            if (!e->network.load(std::memory_order_relaxed)) return bits_of(e, false);
            if (w == want::permanent) {
                e->network.store(0, std::memory_order_release);
                g_network.fetch_sub(1, std::memory_order_relaxed);
                return bits_of(e, false);
            }
            e->refs.fetch_add(1, std::memory_order_relaxed);
            return bits_of(e, true);
        }
    }
    if (w == want::existing) return make_error_code(errc::type_mismatch);
    if (t_created >= t_cap) return make_error_code(errc::atom_table_full);
    // Reserve a place under the global limit.
    std::size_t cur = g_count.load(std::memory_order_relaxed);
    do {
        if (cur >= g_limit.load(std::memory_order_relaxed))
            return make_error_code(errc::atom_table_full);
    } while (!g_count.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
    void* mem = ::operator new(sizeof(atom_entry) + s.size() + 1, std::nothrow);
    if (!mem) {
        g_count.fetch_sub(1, std::memory_order_relaxed);
        return make_error_code(errc::limit_exceeded);
    }
    char* text = static_cast<char*>(mem) + sizeof(atom_entry);
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    const bool net = w == want::network;
    auto* e = ::new (mem) atom_entry{h, static_cast<std::uint32_t>(s.size()),
                                     static_cast<std::uint32_t>(chars), text};
    e->refs.store(net ? 1 : 0, std::memory_order_relaxed);
    e->network.store(net ? 1 : 0, std::memory_order_relaxed);
    try {
        if (!t || (sh.used + 1) * 2 > t->mask + 1) {
            // Rebuild without tombstones, sized for the live entries (it may shrink).
            std::size_t cap = 64;
            while (cap < (sh.live + 1) * 4)
                cap *= 2;
            slot_table* nt = new_table(cap);
            std::size_t used = 0;
            if (t) {
                for (std::size_t i = 0; i <= t->mask; ++i) {
                    const atom_entry* o = t->slots[i].load(std::memory_order_relaxed);
                    if (o && o != &g_tomb) place(nt, o, used);
                }
            }
            place(nt, e, used);
            sh.table.store(nt, std::memory_order_release);
            sh.used = used;
            if (t) retire(t, true);
        } else {
            place(t, e, sh.used);
        }
    } catch (...) {
        ::operator delete(mem);
        g_count.fetch_sub(1, std::memory_order_relaxed);
        return make_error_code(errc::limit_exceeded);
    }
    ++sh.live;
    ++t_created;
    if (net) g_network.fetch_add(1, std::memory_order_relaxed);
    return bits_of(e, net);
}

}  // namespace

constinit atom_entry empty_atom_entry{0, 0, 0, ""};

void atom_unreferenced(const atom_entry* e, std::size_t h) noexcept {
    shard& sh = g_shards[h & (kShards - 1)];
    std::lock_guard lock(sh.mu);
    slot_table* t = sh.table.load(std::memory_order_relaxed);
    if (!t) return;
    // Find e by address along its probe sequence, without reading it: it may already be gone
    // (looked up again, dropped again and removed by that holder).
    std::size_t i = slot_of(h) & t->mask;
    for (;;) {
        const atom_entry* o = t->slots[i].load(std::memory_order_relaxed);
        if (!o) return;
        if (o == e) break;
        i = (i + 1) & t->mask;
    }
    // In the table, so alive. Promoted or held again meanwhile: it stays.
    if (!e->network.load(std::memory_order_relaxed)) return;
    std::uint32_t zero = 0;
    if (!e->refs.compare_exchange_strong(zero, atom_dead, std::memory_order_acq_rel)) return;
    t->slots[i].store(&g_tomb, std::memory_order_release);
    --sh.live;
    g_count.fetch_sub(1, std::memory_order_relaxed);
    g_network.fetch_sub(1, std::memory_order_relaxed);
    g_freed.fetch_add(1, std::memory_order_relaxed);
    retire(e, false);
}

void atom_collect() noexcept {
    std::lock_guard lock(g_retire_mu);
    for (int i = 0; i < 3; ++i)
        advance_and_free();
}

std::size_t atoms_awaiting_reclaim() noexcept {
    std::lock_guard lock(g_retire_mu);
    return g_retired ? g_retired->size() : 0;
}

}  // namespace erl::detail

namespace erl {

namespace {
atom adopt_or_throw(result<std::uintptr_t> r) {
    if (!r) {
        if (r.error() == errc::atom_table_full)
            throw std::length_error("erl::atom: atom table full");
        throw std::invalid_argument(std::string("erl::atom: ") + (r.error() == errc::invalid_utf8
                                                                      ? "invalid UTF-8"
                                                                      : "atom too long"));
    }
    return atom::adopt(*r);
}
result<atom> adopt_result(result<std::uintptr_t> r) noexcept {
    if (!r) return r.error();
    return atom::adopt(*r);
}
}  // namespace

atom::atom(std::string_view utf8)
    : b_(adopt_or_throw(detail::intern(utf8, detail::want::permanent)).release_bits()) {}

result<atom> atom::make(std::string_view utf8) noexcept {
    return adopt_result(detail::intern(utf8, detail::want::permanent));
}

result<atom> atom::make_network(std::string_view utf8) noexcept {
    return adopt_result(detail::intern(utf8, detail::want::network));
}

result<atom> atom::existing(std::string_view utf8) noexcept {
    return adopt_result(detail::intern(utf8, detail::want::existing));
}

std::strong_ordering operator<=>(const atom& a, const atom& b) noexcept {
    if (a == b) return std::strong_ordering::equal;
    return a.str() <=> b.str();  // bytewise on UTF-8, as char_traits<char> compares unsigned
}

std::size_t atom_table_size() noexcept {
    return detail::g_count.load(std::memory_order_relaxed);
}
std::size_t network_atom_count() noexcept {
    return detail::g_network.load(std::memory_order_relaxed);
}
std::size_t network_atoms_freed() noexcept {
    return detail::g_freed.load(std::memory_order_relaxed);
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
