// Byte vectors built by hand for the wire-format tests: big-endian integers (the codecs' own
// byte_order helpers) and raw runs.
#pragma once

#include "common/byte_order.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace erl::test {

using bytes = std::vector<std::uint8_t>;

using erl::detail::append_be16;
using erl::detail::append_be32;
using erl::detail::append_be64;
inline void append(bytes& v, std::string_view s) {
    v.insert(v.end(), s.begin(), s.end());
}
inline void append(bytes& v, const bytes& s) {
    v.insert(v.end(), s.begin(), s.end());
}

}  // namespace erl::test
