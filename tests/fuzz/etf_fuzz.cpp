// libFuzzer target for the ETF codec: decode (whole term and body with a small atom cache
// table); whatever decodes must re-encode (plain and compressed) and decode to an equal term.
#include <erl/etf.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

void check_roundtrip(const erl::term& t) {
    auto enc = erl::etf::encode(t);
    if (enc.size() != erl::etf::encoded_size(t)) __builtin_trap();
    auto again = erl::etf::decode(enc);
    if (!again || !(*again == t)) __builtin_trap();
    if (enc.size() < 4096) {
        auto z = erl::etf::decode(erl::etf::encode(t, {.compression_level = 1}));
        if (!z || !(*z == t)) __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    erl::etf::limits lim;
    lim.max_depth = 2000;
    lim.max_size = 1 << 20;
    lim.max_bignum_bytes = 4096;
    lim.max_uncompressed = 1 << 20;
    std::span<const std::uint8_t> in(data, size);
    if (auto r = erl::etf::decode(in, lim)) check_roundtrip(*r);

    static const std::vector<erl::atom> refs{erl::atom("a"), erl::atom("\xc3\xa9t\xc3\xa9"),
                                             erl::atom::from_entry(nullptr), erl::atom("")};
    std::size_t used = 0;
    if (auto r = erl::etf::decode_body(in, used, lim, refs)) {
        if (used == 0 || used > size) __builtin_trap();
        check_roundtrip(*r);
    }
    return 0;
}
