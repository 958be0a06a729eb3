// Byte vectors built by hand for the wire-format tests: big-endian integers and raw runs.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace erl::test {

using bytes = std::vector<std::uint8_t>;

inline void put16(bytes& v, std::uint16_t x) {
    v.push_back(static_cast<std::uint8_t>(x >> 8));
    v.push_back(static_cast<std::uint8_t>(x & 0xff));
}
inline void put32(bytes& v, std::uint32_t x) {
    for (int s = 24; s >= 0; s -= 8)
        v.push_back(static_cast<std::uint8_t>((x >> s) & 0xff));
}
inline void put64(bytes& v, std::uint64_t x) {
    put32(v, static_cast<std::uint32_t>(x >> 32));
    put32(v, static_cast<std::uint32_t>(x & 0xffffffff));
}
inline void append(bytes& v, std::string_view s) {
    v.insert(v.end(), s.begin(), s.end());
}
inline void append(bytes& v, const bytes& s) {
    v.insert(v.end(), s.begin(), s.end());
}

}  // namespace erl::test
