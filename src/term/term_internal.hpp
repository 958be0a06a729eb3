// Internals shared by the src/term/*.cpp files. Not installed.
#pragma once

#include <erl/term.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace erl::detail {

// --- UTF-8 (atom_table.cpp)
// Validates strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF); counts code points.
bool utf8_validate(std::string_view s, std::size_t& chars) noexcept;
// Decodes one code point at s[i]; advances i. Returns false on invalid input.
bool utf8_decode(std::string_view s, std::size_t& i, std::uint32_t& cp) noexcept;
void utf8_append(std::string& out, std::uint32_t cp);
std::size_t hash_bytes(const void* p, std::size_t n) noexcept;

// --- memory accounting (term.cpp)
// Bytes of the binaries too large for the per-thread free lists (above 512 bytes), which are
// allocated each on its own (erlang:memory(binary)). No cost for smaller terms.
std::size_t large_binary_bytes() noexcept;
// Takes over a buffer the runtime filled (its data pointer stays the same) so that decoded
// binaries may refer to it (etf::sharing); its capacity counts in large_binary_bytes() until
// the last reference is gone.
std::shared_ptr<const std::vector<std::uint8_t>> adopt_buffer(std::vector<std::uint8_t>&& v);
// Bytes of the heap block `h` heads (its header and trailing array).
std::size_t block_bytes(const heap_header* h) noexcept;

// --- order (order.cpp)
// -1, 0, 1. exact = OTP's "map key order" (every integer before every float).
int compare_terms(const term& a, const term& b, bool exact) noexcept;
inline int compare_exact(const term& a, const term& b) noexcept {
    return compare_terms(a, b, true);
}
std::size_t hash_term(const term& t) noexcept;

// --- bignums (bigint.cpp)
struct bigint {
    bool neg = false;
    std::vector<std::uint32_t> mag;  // least significant first, no leading zero limb
    bool zero() const noexcept { return mag.empty(); }
};
bigint to_bigint(const term& t);  // integer terms only
term from_bigint(const bigint& b);
// mag = mag * mul + add (magnitude arithmetic helper for parsers).
void mag_mul_add(std::vector<std::uint32_t>& mag, std::uint32_t mul, std::uint32_t add);
// Compares magnitudes.
int cmp_mag(std::span<const std::uint32_t> a, std::span<const std::uint32_t> b) noexcept;
// Compares a (normalized) integer term with a finite double by exact value: -1, 0, 1.
int cmp_int_double(const term& i, double d) noexcept;

// --- printing (print.cpp)
std::string format_double(double d);
bool atom_needs_quotes(std::string_view s) noexcept;
void append_atom(std::string& out, std::string_view s);

// Walks a list across chunks (a list block's tail may itself be a list block when built by
// raw builders): yields elements in order, then exposes the final non-list tail.
struct list_cursor {
    const term* p = nullptr;
    const term* end = nullptr;
    const term* tail = nullptr;  // tail of the current chunk
    list_cursor() = default;
    explicit list_cursor(const term& l) noexcept { enter(l); }
    void enter(const term& l) noexcept {
        if (l.type() == kind::list) {
            auto* b = reinterpret_cast<list_block*>(l.heap());
            p = b->elems();
            end = p + b->h.size;
            tail = &b->tail;
        } else {
            p = end = nullptr;
            tail = &l;
        }
    }
    // Next element or nullptr when the elements are exhausted (then final_tail() is valid).
    const term* next() noexcept {
        while (p == end) {
            if (tail->type() != kind::list) return nullptr;
            enter(*tail);
        }
        return p++;
    }
    const term& final_tail() const noexcept { return *tail; }
    // No elements left (final_tail() is valid without another next()).
    bool at_end() const noexcept { return p == end && tail->type() != kind::list; }
};

}  // namespace erl::detail
