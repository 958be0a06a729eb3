// erl::term — a regular value type for every Erlang term.
//
// Representation: 16 bytes. Immediates (small integers, floats, atoms, []) are stored inline;
// every other term points to an immutable, reference-counted heap block. Copying a term is
// O(1) (one atomic increment at most); terms are immutable, so a term may be shared freely
// between threads (copies on different threads are safe, as with std::shared_ptr).
//
// Equality (operator==) is exact, like =:= (1 =/= 1.0). Ordering (operator<=>, compare) is
// Erlang's standard term order:
//   number < atom < reference < fun < port < pid < tuple < map < [] < list < bitstring
// with integers and floats compared by value; where they are equal by value the integer sorts
// first, so the order is total and consistent with ==.
#pragma once

#include <erl/error.hpp>

#include <array>
#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace erl {

namespace detail {
struct atom_entry;
struct heap_header;
// Reference counting of network atoms (atom_table.cpp; inline parts in term_heap.hpp). `bits`
// is an atom's tagged pointer with bit 0 set.
inline void atom_ref(std::uintptr_t bits) noexcept;
inline void atom_unref(std::uintptr_t bits) noexcept;
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// atom: interned UTF-8 text. == is pointer equality; <=> compares text. The atom table is
// global, thread-safe and bounded (set_atom_table_limit).
//
// Two kinds of table entries. Atoms named by C++ code (this constructor, make(), parse, the
// runtime's own names) are permanent, as in BEAM. Atoms that first arrive in peer data
// (make_network(), used by the ETF decoder and the distribution reader) are network atoms: each
// atom value holding one counts as a reference, and when the last one goes the entry leaves
// the table (its memory is reclaimed once no lock-free lookup can still see it). Naming a
// network atom from C++ code makes it permanent. A value refers to a network entry through a
// tagged pointer (bit 0), so copying or dropping a permanent atom tests one bit and touches no
// shared memory; copying a network atom is one atomic increment.
class atom {
  public:
    atom() noexcept;  // the empty atom ''
    // Interns utf8 as a permanent atom. Throws std::invalid_argument for invalid UTF-8 or more
    // than 255 characters, std::length_error when the atom table is full. Use make() for a
    // non-throwing version.
    explicit atom(std::string_view utf8);
    static result<atom> make(std::string_view utf8) noexcept;
    // Interns utf8 for data received from a peer: an atom not yet in the table is created as a
    // network atom (freed with its last holder); an existing one is returned as it is.
    static result<atom> make_network(std::string_view utf8) noexcept;
    // Looks up an existing atom without creating it.
    static result<atom> existing(std::string_view utf8) noexcept;

    atom(const atom& o) noexcept : b_(o.b_) {
        if (b_ & 1) detail::atom_ref(b_);
    }
    atom(atom&& o) noexcept : b_(o.b_) { o.b_ = empty_bits(); }
    atom& operator=(const atom& o) noexcept {
        atom t(o);
        std::swap(b_, t.b_);
        return *this;
    }
    atom& operator=(atom&& o) noexcept {
        std::swap(b_, o.b_);
        return *this;
    }
    ~atom() {
        if (b_ & 1) detail::atom_unref(b_);
    }

    std::string_view str() const noexcept;
    std::size_t hash() const noexcept;
    bool empty() const noexcept { return str().empty(); }
    // True while the entry is a network atom (not named by C++ code).
    bool is_network() const noexcept;

    friend bool operator==(const atom& a, const atom& b) noexcept {
        return ((a.b_ ^ b.b_) >> 1) == 0;
    }
    friend std::strong_ordering operator<=>(const atom& a, const atom& b) noexcept;

    const detail::atom_entry* entry() const noexcept {
        return reinterpret_cast<const detail::atom_entry*>(b_ & ~std::uintptr_t{1});
    }
    // A value for a permanent entry (or nullptr, an "unset" marker that only entry() may be
    // asked about). Never for a network entry: the value would not hold it.
    static atom from_entry(const detail::atom_entry* e) noexcept {
        atom a(raw{}, reinterpret_cast<std::uintptr_t>(e));
        return a;
    }
    // Low-level: the tagged pointer, and taking over / giving up the reference it stands for.
    std::uintptr_t bits() const noexcept { return b_; }
    static atom adopt(std::uintptr_t bits) noexcept { return atom(raw{}, bits); }
    std::uintptr_t release_bits() noexcept {
        std::uintptr_t b = b_;
        b_ = empty_bits();
        return b;
    }

  private:
    struct raw {};
    atom(raw, std::uintptr_t b) noexcept : b_(b) {}
    static std::uintptr_t empty_bits() noexcept;
    std::uintptr_t b_;
};

// Live atoms in the table (permanent plus network); the limit applies to this count.
std::size_t atom_table_size() noexcept;
// Live network atoms (part of atom_table_size()).
std::size_t network_atom_count() noexcept;
// Network entries freed so far (left the table when their last holder went).
std::size_t network_atoms_freed() noexcept;
std::size_t atom_table_limit() noexcept;
void set_atom_table_limit(std::size_t n) noexcept;  // default 1,048,576 (BEAM's default)
// Atoms the calling thread has added to the table so far (a per-thread counter). A connection
// reads it before and after decoding to bound the atoms one peer creates.
std::size_t atoms_created_by_this_thread() noexcept;
// Caps atoms_created_by_this_thread(): creating a new atom beyond `cap` fails with
// errc::atom_table_full (existing atoms still resolve). SIZE_MAX (the default) = no cap. The
// distribution reader sets it while decoding a peer's data (max_new_atoms_per_connection).
void set_thread_atom_creation_cap(std::size_t cap) noexcept;

namespace atoms {
// Frequently used atoms, interned once.
atom ok() noexcept;
atom error() noexcept;
atom true_() noexcept;
atom false_() noexcept;
atom undefined() noexcept;
atom nonode_nohost() noexcept;
atom normal() noexcept;
}  // namespace atoms

// ---------------------------------------------------------------------------------------------
// Identifier types. Plain values; a term holding one stores it in a heap block.
struct pid {
    atom node;
    std::uint32_t id = 0;      // 15 bits significant on old peers; 32 with V4_NC
    std::uint32_t serial = 0;  // 13 bits significant on old peers; 32 with V4_NC
    std::uint32_t creation = 0;
    friend bool operator==(const pid&, const pid&) = default;
};

struct port {
    atom node;
    std::uint64_t id = 0;  // V4_PORT_EXT carries 64 bits
    std::uint32_t creation = 0;
    friend bool operator==(const port&, const port&) = default;
};

struct reference {
    atom node;
    std::uint32_t creation = 0;
    std::uint8_t len = 3;  // number of 32-bit words used, 1..5
    std::array<std::uint32_t, 5> ids{};
    std::span<const std::uint32_t> words() const noexcept { return {ids.data(), len}; }
    friend bool operator==(const reference& a, const reference& b) noexcept;
};

// fun M:F/A (EXPORT_EXT).
struct export_fun {
    atom module;
    atom function;
    std::uint8_t arity = 0;
    friend bool operator==(const export_fun&, const export_fun&) = default;
};

class term;

// A closure (NEW_FUN_EXT), kept as OTP sent it so it round-trips exactly. Defined below term.
struct closure;

enum class kind : std::uint8_t {
    integer,  // fits in int64 (always normalized: a bignum is never in int64 range)
    bignum,   // outside int64 range
    float_,   // finite double
    atom,
    reference,
    fun,  // closure or export
    port,
    pid,
    tuple,
    map,
    nil,        // []
    list,       // non-empty list, proper or improper
    binary,     // whole bytes
    bitstring,  // bit count not a multiple of 8
};

// Thrown by term::as_*() when the term is of another kind (like std::bad_variant_access).
class bad_term_access : public std::logic_error {
  public:
    using std::logic_error::logic_error;
};

// View of a bignum: sign and magnitude in 32-bit limbs, least significant first, no leading
// zero limb.
struct big_view {
    bool negative = false;
    std::span<const std::uint32_t> limbs;
};

// View of a list (or []): the elements and the tail ([] for a proper list).
struct list_view;

// ---------------------------------------------------------------------------------------------
class term {
  public:
    // Construction -----------------------------------------------------------------------
    term() noexcept : kind_(kind::nil), i_(0) {}  // []
    term(int v) noexcept : kind_(kind::integer), i_(v) {}
    term(long v) noexcept : kind_(kind::integer), i_(v) {}
    term(long long v) noexcept : kind_(kind::integer), i_(v) {}
    term(unsigned v) noexcept : kind_(kind::integer), i_(v) {}
    term(unsigned long v);       // becomes a bignum above INT64_MAX
    term(unsigned long long v);  // becomes a bignum above INT64_MAX
    // Throws std::domain_error for NaN or infinity (Erlang has neither).
    term(double v);
    term(bool v) noexcept;  // atoms true / false
    term(atom a) noexcept : kind_(kind::atom), a_(a.release_bits()) {}
    term(const pid& p);
    term(const port& p);
    term(const reference& r);
    term(const export_fun& f);
    term(const closure& f);
    // Strings are ambiguous in Erlang: say which you mean with erl::binary(),
    // erl::charlist() or erl::atom(...).
    term(const char*) = delete;
    term(const std::string&) = delete;
    term(std::string_view) = delete;

    term(const term& o) noexcept : kind_(o.kind_), i_(o.i_) { retain(); }
    term(term&& o) noexcept : kind_(o.kind_), i_(o.i_) {
        o.kind_ = kind::nil;
        o.i_ = 0;
    }
    term& operator=(const term& o) noexcept {
        term tmp(o);
        swap(tmp);
        return *this;
    }
    term& operator=(term&& o) noexcept {
        term tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    ~term() { release(); }
    void swap(term& o) noexcept {
        std::swap(kind_, o.kind_);
        std::swap(i_, o.i_);
    }

    // Inspection -------------------------------------------------------------------------
    erl::kind type() const noexcept { return kind_; }
    bool is_integer() const noexcept { return kind_ == kind::integer || kind_ == kind::bignum; }
    bool is_small() const noexcept { return kind_ == kind::integer; }
    bool is_bignum() const noexcept { return kind_ == kind::bignum; }
    bool is_float() const noexcept { return kind_ == kind::float_; }
    bool is_number() const noexcept { return is_integer() || is_float(); }
    bool is_atom() const noexcept { return kind_ == kind::atom; }
    bool is_atom(const atom& a) const noexcept {
        return kind_ == kind::atom && ((a_ ^ a.bits()) >> 1) == 0;
    }
    bool is_bool() const noexcept;
    bool is_reference() const noexcept { return kind_ == kind::reference; }
    bool is_fun() const noexcept { return kind_ == kind::fun; }
    bool is_export() const noexcept;
    bool is_closure() const noexcept;
    bool is_port() const noexcept { return kind_ == kind::port; }
    bool is_pid() const noexcept { return kind_ == kind::pid; }
    bool is_tuple() const noexcept { return kind_ == kind::tuple; }
    bool is_tuple(std::size_t arity) const noexcept;
    bool is_map() const noexcept { return kind_ == kind::map; }
    bool is_nil() const noexcept { return kind_ == kind::nil; }
    bool is_list() const noexcept { return kind_ == kind::list || kind_ == kind::nil; }
    bool is_proper_list() const noexcept;
    bool is_binary() const noexcept { return kind_ == kind::binary; }
    bool is_bitstring() const noexcept { return kind_ == kind::binary || kind_ == kind::bitstring; }

    // Access: each throws bad_term_access if the term is of another kind ---------------------
    std::int64_t as_int64() const;  // small integers only
    big_view as_big() const;        // bignums only
    double as_double() const;       // floats only
    atom as_atom() const;
    // Atoms only: the tagged pointer (see atom::bits) and the table entry, without copying.
    std::uintptr_t atom_bits() const noexcept { return a_; }
    const detail::atom_entry* atom_ptr() const noexcept {
        return reinterpret_cast<const detail::atom_entry*>(a_ & ~std::uintptr_t{1});
    }
    bool as_bool() const;
    const pid& as_pid() const;
    const port& as_port() const;
    const reference& as_reference() const;
    const export_fun& as_export() const;
    const closure& as_closure() const;
    std::span<const term> as_tuple() const;
    list_view as_list() const;  // [] or a list
    // Sorted by key in OTP's map-key order: the standard term order, except that every
    // integer sorts before every float (so 1 and 1.0 are distinct keys).
    std::span<const std::pair<term, term>> as_map() const;
    std::span<const std::uint8_t> as_bytes() const;  // binary or bitstring bytes
    std::string_view as_string_view() const;         // binary bytes as chars
    std::size_t bit_size() const;                    // binary or bitstring
    // Bits used in the last byte of a bitstring (1..8); 8 for a binary.
    unsigned trailing_bits() const;

    // Convenience -------------------------------------------------------------------------
    std::size_t size() const noexcept;  // tuple arity, map size, list length, bytes; else 0
    // Tuple element i (0-based). Throws bad_term_access if not a tuple or out of range.
    const term& operator[](std::size_t i) const;
    // Map lookup; nullptr if absent or not a map.
    const term* find(const term& key) const noexcept;

    // Erlang syntax (like ~w): {ok,[1,2]}, <<"ab">>, #{a => 1}. See also erl::print_options.
    std::string to_string() const;

    // Comparison --------------------------------------------------------------------------
    friend bool operator==(const term& a, const term& b) noexcept;
    friend std::strong_ordering operator<=>(const term& a, const term& b) noexcept;
    std::size_t hash() const noexcept;

    // Low-level access for the codec and runtime (stable, but not for casual use).
    detail::heap_header* heap() const noexcept { return is_heap() ? h_ : nullptr; }
    static term from_heap(erl::kind k, detail::heap_header* h) noexcept {  // adopts one ref
        term t;
        t.kind_ = k;
        t.h_ = h;
        return t;
    }
    static term from_atom_bits(std::uintptr_t bits) noexcept {  // adopts an atom's bits
        term t;
        t.kind_ = kind::atom;
        t.a_ = bits;
        return t;
    }
    bool is_heap() const noexcept {
        return kind_ != kind::integer && kind_ != kind::float_ && kind_ != kind::atom &&
               kind_ != kind::nil;
    }

  private:
    void retain() const noexcept;
    void release() noexcept;

    erl::kind kind_;
    union {
        std::int64_t i_;
        double f_;
        std::uintptr_t a_;  // atom: tagged entry pointer (see atom)
        detail::heap_header* h_;
    };
};

static_assert(sizeof(term) == 16);

struct list_view {
    std::span<const term> elements;
    term tail;  // [] for a proper list
    bool proper() const noexcept { return tail.is_nil(); }
};

struct closure {
    atom module;
    std::uint8_t arity = 0;
    std::array<std::uint8_t, 16> uniq{};
    std::uint32_t index = 0;
    std::int64_t old_index = 0;  // OldIndex (integer term)
    std::int64_t old_uniq = 0;   // OldUniq (integer term)
    term pid;                    // creator pid
    std::vector<term> free_vars;
    friend bool operator==(const closure&, const closure&) = default;
};

// ---------------------------------------------------------------------------------------------
// Builders.
term make_tuple(std::vector<term> elements);
term make_list(std::vector<term> elements, term tail = term{});  // [] if empty and tail is []
// Duplicate keys: the last one wins (as in #{k => 1, k => 2}).
term make_map(std::vector<std::pair<term, term>> pairs);
term binary(std::string_view bytes);
term binary(std::span<const std::uint8_t> bytes);
// A binary that refers to `bytes` instead of copying them: `owner` (anything that keeps the
// bytes alive and unchanged, e.g. the std::shared_ptr of the buffer) is held until the last
// term referring to them is gone, on whatever thread that happens. Equal to, and encoded
// exactly like, erl::binary(bytes). For large payloads: sending one copies nothing into the
// term (docs/terms.md "Large binaries").
term shared_binary(std::shared_ptr<const void> owner, std::span<const std::uint8_t> bytes);
// bits: total bit count; bytes must hold ceil(bits/8) bytes. Gives a binary if bits % 8 == 0.
term bitstring(std::span<const std::uint8_t> bytes, std::size_t bits);
// A list of Unicode code points from UTF-8 text (Erlang's "string"). Throws
// std::invalid_argument for invalid UTF-8.
term charlist(std::string_view utf8);
// Bignum from sign and magnitude (32-bit limbs, least significant first); normalized to a
// small integer when it fits in int64.
term make_integer(bool negative, std::span<const std::uint32_t> limbs);
// Integer from decimal text ("-123456789012345678901234567890"); error on bad syntax.
result<term> integer_from_string(std::string_view decimal);
// Decimal text of any integer term.
std::string integer_to_string(const term& t);

// Arbitrary-precision integer arithmetic on integer terms (error type_mismatch otherwise).
result<term> add(const term& a, const term& b);
result<term> subtract(const term& a, const term& b);
result<term> multiply(const term& a, const term& b);

// ---------------------------------------------------------------------------------------------
// Conversions between C++ values and terms (ADL-style hooks, as nlohmann::adl_serializer).
// Specialize erl::convert<T> with
//     static term to(const T&);
//     static result<T> from(const term&);   // errc::type_mismatch on a mismatch, never UB
// Built in: term, atom, pid, port, reference, bool, all integer types (range-checked),
// float/double, std::string (to: binary; from: binary, charlist or atom),
// std::vector<T>, std::optional<T> (undefined <-> nullopt), std::pair, std::tuple,
// std::map and std::unordered_map (maps).
template <class T, class Enable = void>
struct convert;

template <class T>
term to_term(const T& v) {
    if constexpr (std::is_convertible_v<const T&, term> && !std::is_same_v<T, std::string>)
        return term(v);
    else
        return convert<T>::to(v);
}

template <class T>
result<T> from_term(const term& t) {
    return convert<T>::from(t);
}

// Variadic builders converting each argument with to_term.
template <class... Ts>
term tuple(const Ts&... xs) {
    return make_tuple(std::vector<term>{to_term(xs)...});
}
template <class... Ts>
term list(const Ts&... xs) {
    return make_list(std::vector<term>{to_term(xs)...});
}
term map(std::initializer_list<std::pair<term, term>> pairs);

// ---------------------------------------------------------------------------------------------
// Printing. Erlang syntax as io_lib's ~w prints it in OTP 25 ({ok,[1,2]}, 'quoted atom',
// <<1,2:3>>, #{a => 1,b => 2}, [1|2], floats in shortest round-trip form such as 0.1 or
// 1.0e100), so a printed term pastes into erl. Forms erl cannot read (erl::parse can; they
// name the node so the value is not ambiguous):
//   pid        <'node@host'.Id.Serial.Creation>
//   port       #Port<'node@host'.Id.Creation>
//   reference  #Ref<'node@host'.W(n-1).....W0.Creation>   (words most significant first)
//   closure    #Fun<Module.OldIndex.OldUniq.Arity.Index.UNIQHEX.Pid.[FreeVars]>
//   export     fun m:f/1   (valid Erlang)
// parse(to_string(t)) == t for every term. Map pairs print in the order as_map() returns.
struct print_options {
    bool strings = false;  // print printable charlists as "text" and binaries as <<"text">> (~p)
    std::size_t max_depth = 0;  // 0 = unlimited; deeper terms print as ...
};
std::string to_string(const term& t, const print_options& opts = {});
std::ostream& operator<<(std::ostream& os, const term& t);
std::ostream& operator<<(std::ostream& os, const atom& a);

// Total order as in the header comment; compare(a,b) == (a <=> b).
std::strong_ordering compare(const term& a, const term& b) noexcept;

}  // namespace erl

template <>
struct std::hash<erl::term> {
    std::size_t operator()(const erl::term& t) const noexcept { return t.hash(); }
};
template <>
struct std::hash<erl::atom> {
    std::size_t operator()(const erl::atom& a) const noexcept { return a.hash(); }
};

#include <erl/detail/term_convert.hpp>
#include <erl/detail/term_heap.hpp>
