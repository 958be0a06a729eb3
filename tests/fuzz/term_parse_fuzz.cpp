// Fuzz target for erl::parse: any input must parse or fail cleanly; whatever parses must print
// and parse back to an equal term (with and without print_options::strings), and ordering and
// hashing of the result must be consistent.
#include <erl/parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    erl::parse_error err;
    erl::parse_options opts;
    opts.max_integer_digits = 2000;   // keep quadratic bignum parsing cheap
    opts.max_binary_bits = 1u << 20;  // and literals small
    auto r = erl::parse(text, err, opts);
    if (!r) {
        if (err.offset > size || err.message.empty()) std::abort();
        return 0;
    }
    const erl::term& t = *r;
    for (bool strings : {false, true}) {
        erl::print_options po;
        po.strings = strings;
        std::string printed = erl::to_string(t, po);
        auto again = erl::parse(printed);
        if (!again) std::abort();
        if (!(*again == t)) std::abort();
        if (again->hash() != t.hash()) std::abort();
        if ((*again <=> t) != 0) std::abort();
    }
    return 0;
}
