// ETF decoder (erl_ext_dist "External Term Format").
//
// Design: one non-recursive loop with an explicit stack of container frames. A container's
// block is allocated as soon as its header is read (the length is checked against the
// remaining input first: every element needs at least one byte), placed into its parent's
// slot, and its elements are then decoded directly into the block's slots. Leaves never touch
// the stack. On any error the root term is dropped, which frees everything built so far.
#include "etf/etf_internal.hpp"
#include "term/term_internal.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <string>

namespace erl::etf {
namespace {

using namespace erl::etf::detail;
using erl::detail::atom_entry;

// Internal result of the decoder's steps: an erl::errc in one register (boost's error_code is
// three words and is built and tested at every step otherwise). Every decoder error is in the
// erl::errc category; decode_guarded turns the final status into an error_code.
struct status {
    errc e = errc::ok;
    status() = default;
    status(errc v) noexcept : e(v) {}
    explicit operator bool() const noexcept { return e != errc::ok; }
};

inline errc to_errc(const error_code& ec) noexcept {
    if (!ec) return errc::ok;
    if (ec.category() == error_category()) return static_cast<errc>(ec.value());
    return errc::invalid_utf8;
}

// ---------------------------------------------------------------------------------------------
// Atom lookup cache. Interning goes through the global atom table; decoded messages repeat the
// same few atoms over and over, so a per-thread direct-mapped cache of entry pointers keyed by
// the UTF-8 bytes avoids most table lookups. Only permanent entries are cached: they are
// immortal, so a cached entry never dangles, and their values need no reference count. Atoms
// the table does not have yet are made as network atoms (atom::make_network).
//
// The decoder's atoms are atom bits (atom::bits): a tagged value owns one reference.
struct atom_cache {
    static constexpr std::size_t slots = 1024;
    const atom_entry* e[slots] = {};
};
thread_local atom_cache tl_atoms;

inline std::uint64_t load_u64(const void* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline std::uint32_t load_u32(const void* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Cache slot hash: a few (possibly overlapping) word loads instead of a byte loop. Lengths up
// to 16 bytes are hashed in full; for longer atoms a collision only costs a table lookup.
inline std::size_t atom_hash(const std::uint8_t* p, std::size_t n) noexcept {
    std::uint64_t h = (n + 1) * 0x9E3779B97F4A7C15ull;
    if (n >= 8) {
        h ^= load_u64(p) * 0xff51afd7ed558ccdull;
        h ^= (load_u64(p + n - 8) + (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
    } else if (n >= 4) {
        std::uint64_t v = (std::uint64_t{load_u32(p)} << 32) | load_u32(p + n - 4);
        h ^= v * 0xff51afd7ed558ccdull;
    } else if (n > 0) {
        std::uint64_t v = p[0] | (std::uint32_t{p[n >> 1]} << 8) | (std::uint32_t{p[n - 1]} << 16);
        h ^= v * 0xff51afd7ed558ccdull;
    }
    h ^= h >> 32;
    h ^= h >> 17;
    return static_cast<std::size_t>(h);
}

// a[0..n) == b[0..n) for atom text; short lengths compare whole (overlapping) words.
inline bool same_text(const char* a, const std::uint8_t* b, std::size_t n) noexcept {
    if (n >= 8) {
        if (n > 16) return std::memcmp(a, b, n) == 0;
        return load_u64(a) == load_u64(b) && load_u64(a + n - 8) == load_u64(b + n - 8);
    }
    if (n >= 4) return load_u32(a) == load_u32(b) && load_u32(a + n - 4) == load_u32(b + n - 4);
    for (std::size_t i = 0; i < n; ++i)
        if (static_cast<std::uint8_t>(a[i]) != b[i]) return false;
    return true;
}

// Cache miss: interns through the global table and fills the cache slot.
[[gnu::noinline]] status intern_slow(const std::uint8_t* p, std::size_t n, const atom_entry*& slot,
                                     std::uintptr_t& out) {
    // 255 characters of at most 4 bytes each.
    if (n > 255 * 4) return errc::atom_too_long;
    auto r = atom::make_network({reinterpret_cast<const char*>(p), n});
    if (!r) return to_errc(r.error());
    out = r->release_bits();
    if (!(out & 1)) slot = reinterpret_cast<const atom_entry*>(out);
    return {};
}

// Interns UTF-8 atom text.
[[gnu::always_inline]] inline status intern_utf8(const std::uint8_t* p, std::size_t n,
                                                 std::uintptr_t& out) {
    auto& slot = tl_atoms.e[atom_hash(p, n) & (atom_cache::slots - 1)];
    const atom_entry* e = slot;
    if (e && e->bytes == n && same_text(e->text, p, n)) [[likely]] {
        out = reinterpret_cast<std::uintptr_t>(e);
        return {};
    }
    return intern_slow(p, n, slot, out);
}

// Latin-1 (ATOM_EXT, SMALL_ATOM_EXT) to UTF-8; pure ASCII is passed through unchanged.
status intern_latin1(const std::uint8_t* p, std::size_t n, std::uintptr_t& out) {
    if (n > 255) return errc::atom_too_long;
    bool ascii = true;
    for (std::size_t i = 0; i < n; ++i)
        ascii &= p[i] < 0x80;
    if (ascii) return intern_utf8(p, n, out);
    std::uint8_t buf[512];
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] < 0x80) {
            buf[k++] = p[i];
        } else {
            buf[k++] = static_cast<std::uint8_t>(0xC0 | (p[i] >> 6));
            buf[k++] = static_cast<std::uint8_t>(0x80 | (p[i] & 0x3F));
        }
    }
    return intern_utf8(buf, k, out);
}

// Stores a value into a slot the decoder has not written yet. Every slot starts as [] (an
// immediate, nothing to release) and is written exactly once, so the value is constructed in
// place instead of going through move-assignment's release of the old value.
template <class V>
inline void put(term* slot, V&& v) noexcept {
    ::new (static_cast<void*>(slot)) term(std::forward<V>(v));
}

// ---------------------------------------------------------------------------------------------
enum class fk : std::uint8_t { tuple, list, list_tail, map, fun };

struct frame {
    term* next = nullptr;  // next slot of the current run
    term* end = nullptr;   // end of the run
    term* tail = nullptr;  // list: the tail slot; fun: unused
    term* dest = nullptr;  // slot that holds this container (maps, list continuation, funs)
    std::pair<term, term>* pairs = nullptr;  // map
    std::size_t i = 0;      // map: next half-slot index; fun: offset of the Size field
    std::size_t n = 0;      // map: 2 * arity; list: element count; fun: Size value
    std::int32_t aux = -1;  // index into the continuation / closure pools, -1 = none
    fk kind;
};

class decoder {
  public:
    decoder(const std::uint8_t* begin, const std::uint8_t* end, const limits& lim, atom_refs refs,
            const sharing* share = nullptr)
        : base_(begin), p_(begin), end_(end), lim_(lim), refs_(refs), share_(share) {
        if (share_)
            share_min_ = std::max<std::size_t>(
                {share_->min_binary, static_cast<std::size_t>(end - begin) / 4, 1});
    }

    status run(term& root);
    const std::uint8_t* position() const noexcept { return p_; }

  private:
    std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    status need(std::size_t n) const noexcept {
        return left() < n ? status(errc::truncated) : status{};
    }
    // A variable length (element count or byte count): must fit the limits and the input.
    // `min_bytes_each` is the least number of input bytes each unit occupies.
    status check_len(std::size_t n, std::size_t min_bytes_each) const noexcept {
        if (n > lim_.max_size) return errc::too_large;
        if (n > left() / min_bytes_each) return errc::too_large;
        return {};
    }
    status push(const frame& f) {
        if (stack_.size() >= lim_.max_depth) return errc::too_deep;
        stack_.push_back(f);
        return {};
    }

    // SMALL_ATOM_UTF8_EXT (what OTP 25+ sends for nearly every atom) inline; the rest out of
    // line.
    [[gnu::always_inline]] status read_atom_tagged(std::uint8_t tg, std::uintptr_t& out) {
        if (tg == tag::small_atom_utf8) [[likely]] {
            if (p_ == end_) return errc::truncated;
            std::size_t n = *p_++;
            if (n > left()) return errc::too_large;
            const std::uint8_t* s = p_;
            p_ += n;
            return intern_utf8(s, n, out);
        }
        return read_atom_other(tg, out);
    }
    status read_atom_other(std::uint8_t tg, std::uintptr_t& out);
    status read_atom(atom& out) {
        if (auto ec = need(1)) return ec;
        std::uintptr_t e;
        if (auto ec = read_atom_tagged(*p_++, e)) return ec;
        out = atom::adopt(e);
        return {};
    }
    status read_pid_tagged(std::uint8_t tg, term* slot);
    status read_small_int(std::int64_t& out);
    status read_big(std::uint8_t tg, term& out);
    status enter_list_continuation(frame& f);
    status finish_frame(frame& f);
    status begin_fun(term* slot);

    const std::uint8_t* base_;
    const std::uint8_t* p_;
    const std::uint8_t* end_;
    const limits& lim_;
    atom_refs refs_;
    const sharing* share_;
    std::size_t share_min_ = SIZE_MAX;  // binaries this long or longer refer to the input
    small_stack<frame, 16> stack_;
    std::vector<std::unique_ptr<std::vector<term>>> conts_;  // flattened list continuations
    std::vector<std::unique_ptr<closure>> funs_;             // closures being filled
};

status decoder::read_atom_other(std::uint8_t tg, std::uintptr_t& out) {
    switch (tg) {
        case tag::small_atom_utf8:
        case tag::small_atom: {
            if (auto ec = need(1)) return ec;
            std::size_t n = *p_++;
            if (n > left()) return errc::too_large;
            const std::uint8_t* s = p_;
            p_ += n;
            return tg == tag::small_atom_utf8 ? intern_utf8(s, n, out) : intern_latin1(s, n, out);
        }
        case tag::atom_utf8:
        case tag::atom: {
            if (auto ec = need(2)) return ec;
            std::size_t n = load_be16(p_);
            p_ += 2;
            if (n > left()) return errc::too_large;
            const std::uint8_t* s = p_;
            p_ += n;
            return tg == tag::atom_utf8 ? intern_utf8(s, n, out) : intern_latin1(s, n, out);
        }
        case tag::atom_cache_ref: {
            if (auto ec = need(1)) return ec;
            std::size_t i = *p_++;
            if (i >= refs_.size() || refs_[i].entry() == nullptr) return errc::bad_atom_cache_ref;
            atom held = refs_[i];
            out = held.release_bits();
            return {};
        }
        default:
            return errc::bad_tag;
    }
}

// `slot` is a fresh slot (see put).
status decoder::read_pid_tagged(std::uint8_t tg, term* slot) {
    if (tg != tag::new_pid && tg != tag::pid) return errc::bad_tag;
    if (auto ec = need(1)) return ec;
    std::uintptr_t bits;
    if (auto ec = read_atom_tagged(*p_++, bits)) return ec;
    atom node = atom::adopt(bits);
    // PID_EXT: ID:32 Serial:32 Creation:8; NEW_PID_EXT: Creation:32.
    std::size_t n = tg == tag::new_pid ? 12 : 9;
    if (auto ec = need(n)) return ec;
    // Aggregate initialization: no default-constructed atom to overwrite.
    put(slot, pid{std::move(node), load_be32(p_), load_be32(p_ + 4),
                  tg == tag::new_pid ? load_be32(p_ + 8) : p_[8]});
    p_ += n;
    return {};
}

// OldIndex / OldUniq of NEW_FUN_EXT: an integer term that fits in int64.
status decoder::read_small_int(std::int64_t& out) {
    if (auto ec = need(1)) return ec;
    std::uint8_t t = *p_++;
    if (t == tag::small_integer) {
        if (auto ec = need(1)) return ec;
        out = *p_++;
        return {};
    }
    if (t == tag::integer) {
        if (auto ec = need(4)) return ec;
        out = static_cast<std::int32_t>(load_be32(p_));
        p_ += 4;
        return {};
    }
    if (t == tag::small_big || t == tag::large_big) {
        term v;
        if (auto ec = read_big(t, v)) return ec;
        if (!v.is_small()) return errc::invalid_term;
        out = v.as_int64();
        return {};
    }
    return errc::bad_tag;
}

// SMALL_BIG_EXT n:8 Sign:8 d(0)..d(n-1), LARGE_BIG_EXT n:32 ...; digits little-endian base 256.
status decoder::read_big(std::uint8_t tg, term& out) {
    std::size_t n;
    if (tg == tag::small_big) {
        if (auto ec = need(2)) return ec;
        n = *p_++;
    } else {
        if (auto ec = need(5)) return ec;
        n = load_be32(p_);
        p_ += 4;
        if (n > lim_.max_bignum_bytes) return errc::bignum_too_large;
        if (n > lim_.max_size) return errc::too_large;
    }
    if (n + 1 > left()) return errc::too_large;
    bool neg = *p_++ != 0;
    const std::uint8_t* d = p_;
    p_ += n;
    if (n <= 8) {
        std::uint64_t mag = 0;
        for (std::size_t i = n; i-- > 0;)
            mag = (mag << 8) | d[i];
        if (!neg && mag <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            out = term(static_cast<std::int64_t>(mag));
            return {};
        }
        if (neg && mag <= (1ull << 63)) {
            out = term(static_cast<std::int64_t>(0 - mag));
            return {};
        }
    }
    if (n > lim_.max_bignum_bytes) return errc::bignum_too_large;
    std::size_t limbs = (n + 3) / 4;
    std::uint32_t* l;
    term t = erl::detail::new_bignum(neg, limbs, l);
    for (std::size_t i = 0; i < limbs; ++i)
        l[i] = 0;
    for (std::size_t i = 0; i < n; ++i)
        l[i / 4] |= static_cast<std::uint32_t>(d[i]) << (8 * (i % 4));
    out = erl::detail::normalize_integer(std::move(t));
    return {};
}

// NEW_FUN_EXT: Size:32 Arity:8 Uniq:16 Index:32 NumFree:32 Module OldIndex OldUniq Pid
// FreeVars... where Size counts every byte from the Size field to the end of the free vars.
status decoder::begin_fun(term* slot) {
    std::size_t size_pos = static_cast<std::size_t>(p_ - base_);
    if (auto ec = need(29)) return ec;
    std::size_t size = load_be32(p_);
    auto c = std::make_unique<closure>();
    c->arity = p_[4];
    std::memcpy(c->uniq.data(), p_ + 5, 16);
    c->index = load_be32(p_ + 21);
    std::size_t nfree = load_be32(p_ + 25);
    p_ += 29;
    if (size > left() + 29) return errc::too_large;
    if (auto ec = read_atom(c->module)) return ec;
    if (auto ec = read_small_int(c->old_index)) return ec;
    if (auto ec = read_small_int(c->old_uniq)) return ec;
    if (auto ec = need(1)) return ec;
    if (auto ec = read_pid_tagged(*p_++, &c->pid)) return ec;
    if (auto ec = check_len(nfree, 1)) return ec;
    if (nfree == 0) {
        if (static_cast<std::size_t>(p_ - base_) - size_pos != size) return errc::invalid_term;
        *slot = term(*c);
        return {};
    }
    c->free_vars.resize(nfree);
    term* first = c->free_vars.data();
    frame f{.next = first,
            .end = first + nfree,
            .dest = slot,
            .i = size_pos,
            .n = size,
            .aux = static_cast<std::int32_t>(funs_.size()),
            .kind = fk::fun};
    funs_.push_back(std::move(c));
    return push(f);
}

// The tail slot of a list frame is about to receive another LIST_EXT / STRING_EXT: Erlang
// has no such term ([a|[b]] is [a,b]), so the elements move to a growable continuation.
status decoder::enter_list_continuation(frame& f) {
    if (f.aux >= 0) return {};
    auto v = std::make_unique<std::vector<term>>();
    v->reserve(f.n + 8);
    term* base = f.end - f.n;
    for (std::size_t i = 0; i < f.n; ++i)
        v->push_back(std::move(base[i]));
    v->push_back(term{});  // the tail slot
    f.aux = static_cast<std::int32_t>(conts_.size());
    conts_.push_back(std::move(v));
    f.tail = &conts_.back()->back();
    return {};
}

status decoder::finish_frame(frame& f) {
    switch (f.kind) {
        case fk::map:
            return to_errc(erl::detail::finish_map(*f.dest));
        case fk::list_tail:
            if (f.aux >= 0) {
                auto& v = *conts_[static_cast<std::size_t>(f.aux)];
                std::size_t n = v.size() - 1;
                term* e;
                term* tl;
                term t = erl::detail::new_list(n, e, tl);
                for (std::size_t i = 0; i < n; ++i)
                    e[i] = std::move(v[i]);
                *tl = std::move(v[n]);
                *f.dest = std::move(t);
                v.clear();
                v.shrink_to_fit();
            }
            return {};
        case fk::fun: {
            if (static_cast<std::size_t>(p_ - base_) - f.i != f.n) return errc::invalid_term;
            auto& c = funs_[static_cast<std::size_t>(f.aux)];
            *f.dest = term(*c);
            c.reset();
            return {};
        }
        default:
            return {};
    }
}

status decoder::run(term& root) {
    term* slot = &root;
    for (;;) {
        // ---- decode one term header into *slot
        if (p_ == end_) return errc::truncated;
        std::uint8_t t = *p_++;
        switch (t) {
            case tag::small_integer:
                if (p_ == end_) return errc::truncated;
                put(slot, term(static_cast<int>(*p_++)));
                break;
            case tag::integer:
                if (auto ec = need(4)) return ec;
                put(slot, term(static_cast<int>(static_cast<std::int32_t>(load_be32(p_)))));
                p_ += 4;
                break;
            case tag::small_atom_utf8:
            case tag::atom_utf8:
            case tag::atom:
            case tag::small_atom:
            case tag::atom_cache_ref: {
                std::uintptr_t a;
                if (auto ec = read_atom_tagged(t, a)) return ec;
                put(slot, term::from_atom_bits(a));
                break;
            }
            case tag::small_tuple:
            case tag::large_tuple: {
                std::size_t n;
                if (t == tag::small_tuple) {
                    if (p_ == end_) return errc::truncated;
                    n = *p_++;
                } else {
                    if (auto ec = need(4)) return ec;
                    n = load_be32(p_);
                    p_ += 4;
                }
                if (auto ec = check_len(n, 1)) return ec;
                term* e;
                put(slot, erl::detail::new_tuple(n, e));
                if (n) {
                    if (auto ec = push({.next = e, .end = e + n, .kind = fk::tuple})) return ec;
                }
                break;
            }
            case tag::nil:
                put(slot, term{});
                break;
            case tag::string: {
                if (auto ec = need(2)) return ec;
                std::size_t n = load_be16(p_);
                p_ += 2;
                if (auto ec = check_len(n, 1)) return ec;
                const std::uint8_t* s = p_;
                p_ += n;
                if (n == 0) {
                    put(slot, term{});
                    break;
                }
                if (!stack_.empty() && stack_.back().kind == fk::list_tail) {
                    frame& f = stack_.back();
                    if (auto ec = enter_list_continuation(f)) return ec;
                    auto& v = *conts_[static_cast<std::size_t>(f.aux)];
                    v.pop_back();
                    for (std::size_t i = 0; i < n; ++i)
                        v.emplace_back(static_cast<int>(s[i]));
                    v.emplace_back();
                    f.tail = &v.back();
                    break;
                }
                term* e;
                term* tl;
                // Raw elements: all n are constructed right here, before anything can fail.
                put(slot, erl::detail::new_list_raw(n, e, tl));
                for (std::size_t i = 0; i < n; ++i)
                    put(e + i, static_cast<int>(s[i]));
                break;
            }
            case tag::list: {
                if (auto ec = need(4)) return ec;
                std::size_t n = load_be32(p_);
                p_ += 4;
                // n elements and a tail, one byte each at least.
                if (auto ec = check_len(n, 1)) return ec;
                if (n >= left()) return errc::too_large;
                if (n == 0) continue;  // LIST_EXT of length 0 is just its tail (as OTP).
                if (!stack_.empty() && stack_.back().kind == fk::list_tail) {
                    frame& f = stack_.back();
                    if (auto ec = enter_list_continuation(f)) return ec;
                    auto& v = *conts_[static_cast<std::size_t>(f.aux)];
                    v.pop_back();
                    std::size_t old = v.size();
                    v.resize(old + n + 1);
                    f.next = v.data() + old;
                    f.end = f.next + n;
                    f.tail = f.end;
                    f.kind = fk::list;
                    break;
                }
                term* e;
                term* tl;
                put(slot, erl::detail::new_list(n, e, tl));
                frame f{
                    .next = e, .end = e + n, .tail = tl, .dest = slot, .n = n, .kind = fk::list};
                if (auto ec = push(f)) return ec;
                break;
            }
            case tag::map: {
                if (auto ec = need(4)) return ec;
                std::size_t n = load_be32(p_);
                p_ += 4;
                if (auto ec = check_len(n, 2)) return ec;
                std::pair<term, term>* pr;
                put(slot, erl::detail::new_map(n, pr));
                if (n) {
                    frame f{.dest = slot, .pairs = pr, .n = 2 * n, .kind = fk::map};
                    if (auto ec = push(f)) return ec;
                }
                break;
            }
            case tag::binary: {
                if (auto ec = need(4)) return ec;
                std::size_t n = load_be32(p_);
                p_ += 4;
                if (auto ec = check_len(n, 1)) return ec;
                if (n >= share_min_) [[unlikely]] {
                    put(slot, erl::detail::new_shared_binary({p_, n}, share_->owner));
                } else {
                    std::uint8_t* d;
                    put(slot, erl::detail::new_binary(n, d));
                    if (n) std::memcpy(d, p_, n);
                }
                p_ += n;
                break;
            }
            case tag::bit_binary: {
                // Len:32 Bits:8 Data. OTP accepts Bits 1..8 with Len > 0 and Bits 0 with
                // Len 0 (the empty binary). Padding bits are cleared, OTP ignores them.
                if (auto ec = need(5)) return ec;
                std::size_t n = load_be32(p_);
                unsigned bits = p_[4];
                p_ += 5;
                if (auto ec = check_len(n, 1)) return ec;
                if (n == 0 ? bits != 0 : (bits < 1 || bits > 8)) return errc::invalid_term;
                std::uint8_t* d;
                put(slot, erl::detail::new_binary(n, d, n == 0 ? 8 : bits));
                if (n) {
                    std::memcpy(d, p_, n);
                    d[n - 1] &= static_cast<std::uint8_t>(0xFF00u >> bits);
                }
                p_ += n;
                break;
            }
            case tag::new_float: {
                if (auto ec = need(8)) return ec;
                double d = std::bit_cast<double>(load_be64(p_));
                p_ += 8;
                if (!std::isfinite(d)) return errc::non_finite_float;
                put(slot, term(d));
                break;
            }
            case tag::float_: {
                // 31 bytes of "%.20e" text, NUL padded (legacy, minor_version 0).
                if (auto ec = need(31)) return ec;
                const char* s = reinterpret_cast<const char*>(p_);
                std::size_t len = 0;
                while (len < 31 && s[len] != '\0')
                    ++len;
                p_ += 31;
                std::size_t b = 0;
                while (b < len && s[b] == ' ')
                    ++b;
                double d = 0;
                auto r = std::from_chars(s + b, s + len, d);
                if (r.ec == std::errc::result_out_of_range) return errc::non_finite_float;
                if (r.ec != std::errc{} || r.ptr != s + len) return errc::invalid_term;
                if (!std::isfinite(d)) return errc::non_finite_float;
                put(slot, term(d));
                break;
            }
            case tag::small_big:
            case tag::large_big:
                if (auto ec = read_big(t, *slot)) return ec;
                break;
            case tag::new_pid:
            case tag::pid: {
                if (auto ec = read_pid_tagged(t, slot)) return ec;
                break;
            }
            case tag::new_port:
            case tag::port:
            case tag::v4_port: {
                port pt;
                if (auto ec = read_atom(pt.node)) return ec;
                // PORT_EXT ID:32 Creation:8; NEW_PORT_EXT ID:32 Creation:32;
                // V4_PORT_EXT ID:64 Creation:32.
                std::size_t n = t == tag::port ? 5 : t == tag::new_port ? 8 : 12;
                if (auto ec = need(n)) return ec;
                if (t == tag::v4_port) {
                    pt.id = load_be64(p_);
                    pt.creation = load_be32(p_ + 8);
                } else {
                    pt.id = load_be32(p_);
                    pt.creation = t == tag::port ? p_[4] : load_be32(p_ + 4);
                }
                p_ += n;
                put(slot, term(pt));
                break;
            }
            case tag::reference: {
                // REFERENCE_EXT: Node ID:32 Creation:8 (legacy, one word).
                reference r;
                if (auto ec = read_atom(r.node)) return ec;
                if (auto ec = need(5)) return ec;
                r.len = 1;
                r.ids[0] = load_be32(p_);
                r.creation = p_[4];
                p_ += 5;
                put(slot, term(r));
                break;
            }
            case tag::new_reference:
            case tag::newer_reference: {
                // Len:16 Node Creation:8|32 ID:32*Len, Len 1..5.
                if (auto ec = need(2)) return ec;
                std::size_t n = load_be16(p_);
                p_ += 2;
                if (n < 1 || n > 5) return errc::invalid_term;
                reference r;
                if (auto ec = read_atom(r.node)) return ec;
                std::size_t cr = t == tag::newer_reference ? 4 : 1;
                if (auto ec = need(cr + 4 * n)) return ec;
                r.creation = cr == 4 ? load_be32(p_) : p_[0];
                p_ += cr;
                r.len = static_cast<std::uint8_t>(n);
                for (std::size_t i = 0; i < n; ++i)
                    r.ids[i] = load_be32(p_ + 4 * i);
                p_ += 4 * n;
                put(slot, term(r));
                break;
            }
            case tag::export_: {
                export_fun f;
                if (auto ec = read_atom(f.module)) return ec;
                if (auto ec = read_atom(f.function)) return ec;
                if (auto ec = need(2)) return ec;
                if (p_[0] != tag::small_integer) return errc::invalid_term;
                f.arity = p_[1];
                p_ += 2;
                put(slot, term(f));
                break;
            }
            case tag::new_fun:
                if (auto ec = begin_fun(slot)) return ec;
                break;
            // FUN_EXT (117) was removed in OTP 23; LOCAL_EXT (121) is node-local; a
            // compressed term (80) is only valid at the top level.
            default:
                return errc::bad_tag;
        }

        // ---- find the next slot to fill, completing finished containers
        for (;;) {
            if (stack_.empty()) return {};
            frame& f = stack_.back();
            if (f.kind == fk::map) {
                if (f.i < f.n) {
                    slot = next_pair_half(f.pairs, f.i);
                    break;
                }
            } else if (f.next != f.end) {
                // Small integers (the bulk of many lists and tuples) are stored here directly,
                // without a round trip through the main dispatch.
                while (end_ - p_ >= 5) {
                    if (*p_ == tag::small_integer) {
                        put(f.next, static_cast<int>(p_[1]));
                        p_ += 2;
                    } else if (*p_ == tag::integer) {
                        put(f.next, static_cast<int>(static_cast<std::int32_t>(load_be32(p_ + 1))));
                        p_ += 5;
                    } else {
                        break;
                    }
                    if (++f.next == f.end) break;
                }
                if (f.next != f.end) {
                    slot = f.next++;
                    break;
                }
                continue;
            } else if (f.kind == fk::list) {
                f.kind = fk::list_tail;
                slot = f.tail;
                break;
            }
            if (auto ec = finish_frame(f)) return ec;
            stack_.pop_back();
        }
    }
}

// Bytes of inflated data a decode holds, counted against the shared node-wide bound
// (limits::inflating / max_inflating) if there is one; given back when the decode returns.
class inflate_lease {
  public:
    explicit inflate_lease(const limits& lim) noexcept : lim_(lim) {}
    inflate_lease(const inflate_lease&) = delete;
    inflate_lease& operator=(const inflate_lease&) = delete;
    ~inflate_lease() {
        if (lim_.inflating && held_) lim_.inflating->fetch_sub(held_, std::memory_order_relaxed);
    }
    bool take(std::size_t n) noexcept {
        if (!lim_.inflating) return true;
        std::size_t cur = lim_.inflating->load(std::memory_order_relaxed);
        do {
            if (cur > lim_.max_inflating || n > lim_.max_inflating - cur) return false;
        } while (!lim_.inflating->compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
        held_ += n;
        return true;
    }

  private:
    const limits& lim_;
    std::size_t held_ = 0;
};

// Inflates a COMPRESSED term: UncompressedSize:32 followed by a zlib stream. `p` points after
// the tag. The declared size is checked against the limits and against deflate's best ratio
// (~1032:1) first; then the output buffer grows with what the stream really produces (doubling,
// from a few times the compressed size), so a frame that claims a huge size costs only what it
// inflates to, and every step is checked against the node-wide bound before it is allocated.
// A stream that produces more or less than declared is bad_compressed.
status inflate_term(const std::uint8_t*& p, const std::uint8_t* end, const limits& lim,
                    inflate_lease& lease, std::vector<std::uint8_t>& out) {
    if (end - p < 4) return errc::truncated;
    std::size_t usize = load_be32(p);
    p += 4;
    std::size_t avail = static_cast<std::size_t>(end - p);
    if (usize > lim.max_uncompressed || usize > lim.max_size) return errc::too_large;
    if (usize > avail * 1040 + 64) return errc::bad_compressed;
    std::size_t cap = std::min(usize, std::max<std::size_t>(avail * 4, 64 * 1024));
    if (!lease.take(cap)) return errc::too_large;
    out.resize(cap);
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) return errc::bad_compressed;
    struct ender {
        z_stream& z;
        ~ender() { inflateEnd(&z); }
    } zend{zs};
    zs.next_in = const_cast<Bytef*>(p);
    zs.avail_in = static_cast<uInt>(std::min<std::size_t>(avail, 0xFFFFFFFFu));
    std::size_t produced = 0;
    for (;;) {
        zs.next_out = out.data() + produced;
        zs.avail_out = static_cast<uInt>(cap - produced);
        int rc = inflate(&zs, Z_NO_FLUSH);
        produced = cap - zs.avail_out;
        if (rc == Z_STREAM_END) break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) return errc::bad_compressed;
        if (zs.avail_out != 0) return errc::bad_compressed;  // input ended inside the stream
        if (produced == usize) {
            // One extra output byte would reveal a stream longer than declared.
            std::uint8_t extra;
            zs.next_out = &extra;
            zs.avail_out = 1;
            rc = inflate(&zs, Z_NO_FLUSH);
            if (rc != Z_STREAM_END || zs.avail_out == 0) return errc::bad_compressed;
            break;
        }
        std::size_t grown = std::min(usize, cap * 2);
        if (!lease.take(grown - cap)) return errc::too_large;
        out.resize(grown);
        cap = grown;
    }
    if (produced != usize) return errc::bad_compressed;
    p += avail - zs.avail_in;
    return {};
}

status decode_at(const std::uint8_t* begin, const std::uint8_t* end, const limits& lim,
                 atom_refs refs, term& out, std::size_t& consumed, const sharing* share) {
    if (static_cast<std::size_t>(end - begin) > lim.max_size) return errc::too_large;
    if (begin == end) return errc::truncated;
    if (*begin == tag::compressed) {
        const std::uint8_t* p = begin + 1;
        inflate_lease lease(lim);  // declared first: given back after `raw` is freed
        std::vector<std::uint8_t> raw;
        if (auto ec = inflate_term(p, end, lim, lease, raw)) return ec;
        // Binaries may refer to the inflated bytes, which then live as long as they do (and
        // count as binary memory); the shared inflate bound covers only the decode itself.
        sharing inflated;
        std::shared_ptr<const std::vector<std::uint8_t>> adopted;
        if (share && raw.size() >= share->min_binary) {
            adopted = erl::detail::adopt_buffer(std::move(raw));
            inflated = {adopted, share->min_binary};
        }
        const std::vector<std::uint8_t>& bytes = adopted ? *adopted : raw;
        decoder d(bytes.data(), bytes.data() + bytes.size(), lim, refs,
                  adopted ? &inflated : nullptr);
        if (auto ec = d.run(out)) return ec;
        if (d.position() != bytes.data() + bytes.size()) return errc::bad_compressed;
        consumed = static_cast<std::size_t>(p - begin);
        return {};
    }
    if (share && !share->owner) share = nullptr;
    decoder d(begin, end, lim, refs, share);
    if (auto ec = d.run(out)) return ec;
    consumed = static_cast<std::size_t>(d.position() - begin);
    return {};
}

// Never throws: allocation failures (or a term block the allocator refuses) become too_large.
error_code decode_guarded(const std::uint8_t* begin, const std::uint8_t* end, const limits& lim,
                          atom_refs refs, term& out, std::size_t& consumed,
                          const sharing* share = nullptr) noexcept {
    try {
        if (auto st = decode_at(begin, end, lim, refs, out, consumed, share))
            return make_error_code(st.e);
        return {};
    } catch (const std::bad_alloc&) {
        return errc::too_large;
    } catch (const std::length_error&) {
        return errc::too_large;
    } catch (...) {
        return errc::invalid_term;
    }
}

}  // namespace

namespace {
// decode() and decode_body(), with or without sharing.
erl::result<erl::term> decode_whole(std::span<const std::uint8_t> in, const limits& lim,
                                    const sharing* share) {
    if (in.empty()) return make_error_code(errc::truncated);
    if (in[0] != tag::version) return make_error_code(errc::bad_version);
    term t;
    std::size_t used = 0;
    if (auto ec = decode_guarded(in.data() + 1, in.data() + in.size(), lim, {}, t, used, share))
        return ec;
    if (used + 1 != in.size()) return make_error_code(errc::trailing_bytes);
    return t;
}

erl::result<erl::term> decode_prefix(std::span<const std::uint8_t> in, std::size_t& consumed,
                                     const limits& lim, atom_refs refs, const sharing* share) {
    term t;
    std::size_t used = 0;
    if (auto ec = decode_guarded(in.data(), in.data() + in.size(), lim, refs, t, used, share))
        return ec;
    consumed = used;
    return t;
}
}  // namespace

erl::result<erl::term> decode(std::span<const std::uint8_t> in, const limits& lim) {
    return decode_whole(in, lim, nullptr);
}

erl::result<erl::term> decode(std::span<const std::uint8_t> in, const sharing& share,
                              const limits& lim) {
    return decode_whole(in, lim, &share);
}

erl::result<erl::term> decode_body(std::span<const std::uint8_t> in, std::size_t& consumed,
                                   const limits& lim, atom_refs refs) {
    return decode_prefix(in, consumed, lim, refs, nullptr);
}

erl::result<erl::term> decode_body(std::span<const std::uint8_t> in, std::size_t& consumed,
                                   const sharing& share, const limits& lim, atom_refs refs) {
    return decode_prefix(in, consumed, lim, refs, &share);
}

}  // namespace erl::etf
