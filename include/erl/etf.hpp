// erl::etf — the External Term Format codec (erts/doc/src/erl_ext_dist.xml).
//
// decode() / encode() handle whole terms as produced by term_to_binary/1 (version byte 131);
// decode_body() / encode_body() handle the bare term bodies found inside distribution frames,
// with ATOM_CACHE_REF resolution.
//
// The decoder never recurses (explicit stack), never throws, never reads out of bounds and
// checks every length field against the bytes that remain and against `limits` before it
// allocates. Decoded terms are canonical: a list whose tail is encoded as another list (or as a
// STRING_EXT) is flattened, bitstring padding bits are cleared, bignums in int64 range become
// small integers.
//
// The encoder writes what OTP 25/26 sends over the wire (UTF-8 atoms, NEW_FLOAT, NEW_PID,
// NEW_PORT / V4_PORT, NEWER_REFERENCE, STRING_EXT for short byte lists, NEW_FUN, EXPORT).
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace erl::etf {

// Resource limits for decoding untrusted input. Defaults are generous but finite, except the
// nesting depth: every algorithm on terms is iterative, so any depth BEAM accepts is decoded.
struct limits {
    std::size_t max_depth = SIZE_MAX;        // nesting; deeper -> errc::too_deep
    std::size_t max_size = 1ull << 30;       // any length field / total bytes -> too_large
    std::size_t max_bignum_bytes = 1 << 20;  // -> errc::bignum_too_large
    // Declared size of a compressed term (tag 80); more -> errc::too_large before inflating.
    // The buffer grows only with what the stream really inflates to.
    std::size_t max_uncompressed = std::size_t{256} << 20;
    // Optional bound shared by many decodes (e.g. all connections of a node): bytes of
    // inflated data they may hold at once. A decode adds what it inflates to *inflating as it
    // goes, before allocating, and subtracts it when it returns; a step that would take the
    // sum beyond max_inflating fails the decode with errc::too_large. Null: no shared bound.
    std::atomic<std::size_t>* inflating = nullptr;
    std::size_t max_inflating = SIZE_MAX;
};

struct encode_options {
    // 0 = no compression, 1..9 zlib level, -1 = zlib's default. As OTP does, the compressed
    // form (tag 80) is kept only when it is smaller than the plain encoding.
    int compression_level = 0;
};

// Atom table for ATOM_CACHE_REF (tag 82) in distribution messages: index -> atom.
// A slot holding atom::from_entry(nullptr) is empty (ATOM_CACHE_REF to it is an error).
using atom_refs = std::span<const erl::atom>;

// Whole term with the 131 version byte. Trailing bytes -> errc::trailing_bytes.
// Length fields larger than the remaining input or a limit -> errc::too_large; input that ends
// inside a fixed-size field -> errc::truncated.
erl::result<erl::term> decode(std::span<const std::uint8_t> in, const limits& = {});

// Decoding without copying large binaries: a BINARY_EXT of at least `min_binary` bytes and at
// least a quarter of the input becomes a binary that refers to the input's bytes
// (erl::shared_binary), and holds `owner`, which must keep them alive and unchanged. The
// quarter bounds what a binary can keep alive to four times its own size. A compressed term
// shares its inflated bytes instead (owner not needed then). Bitstrings are always copied.
struct sharing {
    std::shared_ptr<const void> owner;
    std::size_t min_binary = 64 * 1024;
};
erl::result<erl::term> decode(std::span<const std::uint8_t> in, const sharing& share,
                              const limits& = {});

std::vector<std::uint8_t> encode(const erl::term& t, const encode_options& = {});
void encode_append(std::vector<std::uint8_t>& out, const erl::term& t, const encode_options& = {});

// Body only (no 131), as used inside distribution frames: decodes one term at the start of
// `in`, sets `consumed`. `refs` resolves ATOM_CACHE_REF (missing/empty slot ->
// bad_atom_cache_ref).
erl::result<erl::term> decode_body(std::span<const std::uint8_t> in, std::size_t& consumed,
                                   const limits& = {}, atom_refs refs = {});
// The same, sharing large binaries with `in` as decode(in, share, limits) does.
erl::result<erl::term> decode_body(std::span<const std::uint8_t> in, std::size_t& consumed,
                                   const sharing& share, const limits& = {}, atom_refs refs = {});

// Appends the body of t (no 131). If `cache` is non-null, atoms are offered to it and written
// as ATOM_CACHE_REF when it returns an index (used by the distribution writer).
struct atom_cache_writer {
    virtual ~atom_cache_writer() = default;
    virtual int index_of(erl::atom a) = 0;  // 0..255, or -1 = write the atom inline
};
void encode_body(std::vector<std::uint8_t>& out, const erl::term& t,
                 atom_cache_writer* cache = nullptr);

// Exact size of encode() output without compression (including the 131 byte).
std::size_t encoded_size(const erl::term& t);

// ETF tags (erl_ext_dist "Data types").
namespace tag {
inline constexpr std::uint8_t version = 131;
inline constexpr std::uint8_t new_float = 70;
inline constexpr std::uint8_t bit_binary = 77;
inline constexpr std::uint8_t compressed = 80;
inline constexpr std::uint8_t atom_cache_ref = 82;
inline constexpr std::uint8_t new_pid = 88;
inline constexpr std::uint8_t new_port = 89;
inline constexpr std::uint8_t newer_reference = 90;
inline constexpr std::uint8_t small_integer = 97;
inline constexpr std::uint8_t integer = 98;
inline constexpr std::uint8_t float_ = 99;
inline constexpr std::uint8_t atom = 100;
inline constexpr std::uint8_t reference = 101;
inline constexpr std::uint8_t port = 102;
inline constexpr std::uint8_t pid = 103;
inline constexpr std::uint8_t small_tuple = 104;
inline constexpr std::uint8_t large_tuple = 105;
inline constexpr std::uint8_t nil = 106;
inline constexpr std::uint8_t string = 107;
inline constexpr std::uint8_t list = 108;
inline constexpr std::uint8_t binary = 109;
inline constexpr std::uint8_t small_big = 110;
inline constexpr std::uint8_t large_big = 111;
inline constexpr std::uint8_t new_fun = 112;
inline constexpr std::uint8_t export_ = 113;
inline constexpr std::uint8_t new_reference = 114;
inline constexpr std::uint8_t small_atom = 115;
inline constexpr std::uint8_t map = 116;
inline constexpr std::uint8_t fun = 117;
inline constexpr std::uint8_t atom_utf8 = 118;
inline constexpr std::uint8_t small_atom_utf8 = 119;
inline constexpr std::uint8_t v4_port = 120;
inline constexpr std::uint8_t local = 121;
}  // namespace tag

}  // namespace erl::etf
