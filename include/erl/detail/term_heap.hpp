// Heap layout of erl::term and raw builders used by the codec and runtime.
// Included by <erl/term.hpp>; not a public API for users.
#pragma once

#include <erl/term.hpp>

#include <new>

namespace erl::detail {

struct atom_entry {
    std::size_t hash;
    std::uint32_t bytes;  // UTF-8 length in bytes
    std::uint32_t chars;  // length in code points (<= 255)
    const char* text;     // NUL-terminated; lives as long as the entry
    // Network atoms: the atom values holding the entry, or atom_dead once it has left the
    // table. Values made before a promotion keep counting; the count means nothing then.
    mutable std::atomic<std::uint32_t> refs{0};
    // 1 while a network atom, 0 once permanent (never goes back).
    mutable std::atomic<std::uint32_t> network{0};
};
inline constexpr std::uint32_t atom_dead = 0x80000000u;

// The last value holding a network entry went (atom_table.cpp): the entry leaves the table
// unless it was promoted or looked up again meanwhile. `hash` is read while still holding it.
void atom_unreferenced(const atom_entry* e, std::size_t hash) noexcept;

inline void atom_ref(std::uintptr_t bits) noexcept {
    reinterpret_cast<atom_entry*>(bits & ~std::uintptr_t{1})
        ->refs.fetch_add(1, std::memory_order_relaxed);
}
inline void atom_unref(std::uintptr_t bits) noexcept {
    auto* e = reinterpret_cast<atom_entry*>(bits & ~std::uintptr_t{1});
    const std::size_t h = e->hash;
    if (e->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) atom_unreferenced(e, h);
}
extern constinit atom_entry empty_atom_entry;
// Frees what removals have retired if no lookup can still see it (normally done as entries
// leave; for tests and shutdown). atoms_awaiting_reclaim: entries and slot arrays retired and
// not yet freed.
void atom_collect() noexcept;
std::size_t atoms_awaiting_reclaim() noexcept;

// Every heap block starts with this header. Blocks are immutable once published; the only
// mutation is the reference count.
struct heap_header {
    std::atomic<std::uint32_t> refs{1};
    erl::kind kind;
    std::uint8_t flags = 0;  // bignum: 1 = negative; binary/bitstring: bits used in last byte;
                             // list: elems_immediate (see new_list_raw) or 0
    std::size_t size = 0;    // tuple/list/map elements, binary bytes, bignum limbs
};

struct tuple_block {
    heap_header h;
    term* elems() noexcept { return reinterpret_cast<term*>(this + 1); }
};
struct list_block {
    heap_header h;
    term tail;
    term* elems() noexcept { return reinterpret_cast<term*>(this + 1); }
};
struct map_block {
    heap_header h;
    std::pair<term, term>* pairs() noexcept {
        return reinterpret_cast<std::pair<term, term>*>(this + 1);
    }
};
// A binary's bytes follow its header, or (flags == binary_shared, kind::binary only) live in
// memory someone else owns: a receive buffer, or a caller's buffer (erl::shared_binary). The
// block then holds the pointer and the owner that keeps the bytes alive.
inline constexpr std::uint8_t binary_shared = 0x80;
struct shared_bytes {
    const std::uint8_t* data;
    std::shared_ptr<const void> owner;
};
struct binary_block {
    heap_header h;
    bool shared() const noexcept { return h.flags == binary_shared; }
    shared_bytes* shared_part() noexcept { return reinterpret_cast<shared_bytes*>(this + 1); }
    // Written only by the builder of an unshared block (new_binary); shared bytes are const.
    std::uint8_t* data() noexcept {
        if (shared()) [[unlikely]]
            return const_cast<std::uint8_t*>(shared_part()->data);
        return reinterpret_cast<std::uint8_t*>(this + 1);
    }
};
struct bignum_block {
    heap_header h;
    std::uint32_t* limbs() noexcept { return reinterpret_cast<std::uint32_t*>(this + 1); }
};
template <class T>
struct value_block {
    heap_header h;
    T value;
};

static_assert(sizeof(heap_header) % alignof(term) == 0);
static_assert(sizeof(tuple_block) % alignof(term) == 0);
static_assert(sizeof(list_block) % alignof(term) == 0);

// Raw builders: each returns a fresh term owning a new block whose elements are
// default-initialized ([] for terms, 0 for limbs; binary bytes are left to the caller); the caller
// fills them through the out-pointer before the term is shared. Throw std::bad_alloc like any
// allocation.
term new_tuple(std::size_t n, term*& elems);
term new_list(std::size_t n, term*& elems, term*& tail);  // n >= 1
term new_map(std::size_t n, std::pair<term, term>*& pairs);
// Like new_list, but the n elements are raw storage: the caller must construct every one of
// them as an immediate (integer, float, permanent atom or [], placed with placement new, nothing
// that can throw in between) before the term is used or released; the tail may be anything. The
// block is marked (heap_header::flags = elems_immediate) so destroy skips the elements. For
// decoders that fill a list from bytes at once (STRING_EXT).
inline constexpr std::uint8_t elems_immediate = 2;
term new_list_raw(std::size_t n, term*& elems, term*& tail);
// Sorts the pairs of a freshly built (unshared) map by key if they are not already sorted;
// errc::duplicate_map_key if two keys are equal.
error_code finish_map(term& m) noexcept;
// trailing_bits: bits used in the last byte, 1..8 (8 = binary). With 0 bytes it must be 8.
// The bytes are NOT initialized: the caller writes all of them (and clears unused bits).
term new_binary(std::size_t bytes, std::uint8_t*& data, unsigned trailing_bits = 8);
// A binary (whole bytes) whose bytes stay where they are; `owner` keeps them alive.
term new_shared_binary(std::span<const std::uint8_t> bytes, std::shared_ptr<const void> owner);
// Limbs are filled by the caller; call normalize_integer afterwards.
term new_bignum(bool negative, std::size_t limbs, std::uint32_t*& data);
// Strips leading zero limbs and turns an int64-range bignum into a small integer.
term normalize_integer(term t);

void destroy(heap_header* h) noexcept;

}  // namespace erl::detail

namespace erl {

inline void term::retain() const noexcept {
    if (is_heap())
        h_->refs.fetch_add(1, std::memory_order_relaxed);
    else if (kind_ == kind::atom && (a_ & 1))
        detail::atom_ref(a_);
}
inline void term::release() noexcept {
    if (is_heap()) {
        if (h_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) detail::destroy(h_);
    } else if (kind_ == kind::atom && (a_ & 1)) {
        detail::atom_unref(a_);
    }
}

inline atom::atom() noexcept : b_(reinterpret_cast<std::uintptr_t>(&detail::empty_atom_entry)) {}
inline std::uintptr_t atom::empty_bits() noexcept {
    return reinterpret_cast<std::uintptr_t>(&detail::empty_atom_entry);
}
inline std::string_view atom::str() const noexcept {
    return {entry()->text, entry()->bytes};
}
inline std::size_t atom::hash() const noexcept {
    return entry()->hash;
}
inline bool atom::is_network() const noexcept {
    return entry()->network.load(std::memory_order_acquire) != 0;
}

inline bool term::is_tuple(std::size_t arity) const noexcept {
    return kind_ == kind::tuple && h_->size == arity;
}

[[noreturn]] void throw_bad_term_access(const char* wanted, const term& got);

inline std::int64_t term::as_int64() const {
    if (kind_ != kind::integer) throw_bad_term_access("integer", *this);
    return i_;
}
inline double term::as_double() const {
    if (kind_ != kind::float_) throw_bad_term_access("float", *this);
    return f_;
}
inline atom term::as_atom() const {
    if (kind_ != kind::atom) throw_bad_term_access("atom", *this);
    if (a_ & 1) detail::atom_ref(a_);
    return atom::adopt(a_);
}
inline std::span<const term> term::as_tuple() const {
    if (kind_ != kind::tuple) throw_bad_term_access("tuple", *this);
    auto* b = reinterpret_cast<detail::tuple_block*>(h_);
    return {b->elems(), b->h.size};
}
inline list_view term::as_list() const {
    if (kind_ == kind::nil) return {};
    if (kind_ != kind::list) throw_bad_term_access("list", *this);
    auto* b = reinterpret_cast<detail::list_block*>(h_);
    return {{b->elems(), b->h.size}, b->tail};
}
inline std::span<const std::pair<term, term>> term::as_map() const {
    if (kind_ != kind::map) throw_bad_term_access("map", *this);
    auto* b = reinterpret_cast<detail::map_block*>(h_);
    return {b->pairs(), b->h.size};
}
inline std::span<const std::uint8_t> term::as_bytes() const {
    if (kind_ != kind::binary && kind_ != kind::bitstring) throw_bad_term_access("binary", *this);
    auto* b = reinterpret_cast<detail::binary_block*>(h_);
    return {b->data(), b->h.size};
}
inline std::string_view term::as_string_view() const {
    auto b = as_bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline const pid& term::as_pid() const {
    if (kind_ != kind::pid) throw_bad_term_access("pid", *this);
    return reinterpret_cast<detail::value_block<pid>*>(h_)->value;
}
inline const port& term::as_port() const {
    if (kind_ != kind::port) throw_bad_term_access("port", *this);
    return reinterpret_cast<detail::value_block<port>*>(h_)->value;
}
inline const reference& term::as_reference() const {
    if (kind_ != kind::reference) throw_bad_term_access("reference", *this);
    return reinterpret_cast<detail::value_block<reference>*>(h_)->value;
}
inline bool term::is_export() const noexcept {
    return kind_ == kind::fun && h_->flags == 1;
}
inline bool term::is_closure() const noexcept {
    return kind_ == kind::fun && h_->flags == 0;
}
inline const export_fun& term::as_export() const {
    if (!is_export()) throw_bad_term_access("export fun", *this);
    return reinterpret_cast<detail::value_block<export_fun>*>(h_)->value;
}
inline const closure& term::as_closure() const {
    if (!is_closure()) throw_bad_term_access("closure", *this);
    return reinterpret_cast<detail::value_block<closure>*>(h_)->value;
}
inline big_view term::as_big() const {
    if (kind_ != kind::bignum) throw_bad_term_access("bignum", *this);
    auto* b = reinterpret_cast<detail::bignum_block*>(h_);
    return {b->h.flags != 0, {b->limbs(), b->h.size}};
}

}  // namespace erl
