// Big-endian (network order) loads and stores, used by every wire format of the project (ETF,
// the distribution handshake and frames, EPMD). Loads and stores go through memcpy and a byte
// swap so they compile to one (unaligned) load or store and a bswap.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace erl::detail {

// Inline: the helpers are erl::detail::load_be32 and so on; a file that uses many of them can
// name them all with `using namespace erl::detail::byte_order;`.
inline namespace byte_order {

inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
    return v;
}
inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    return v;
}
inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
}
inline void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
    std::memcpy(p, &v, 2);
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}
inline void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    std::memcpy(p, &v, 8);
}

// Appending forms for message builders that grow a byte vector.
inline void append_be16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    std::size_t at = out.size();
    out.resize(at + 2);
    store_be16(out.data() + at, v);
}
inline void append_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    std::size_t at = out.size();
    out.resize(at + 4);
    store_be32(out.data() + at, v);
}
inline void append_be64(std::vector<std::uint8_t>& out, std::uint64_t v) {
    std::size_t at = out.size();
    out.resize(at + 8);
    store_be64(out.data() + at, v);
}

}  // namespace byte_order

}  // namespace erl::detail
