// Decodes the ETF vectors produced by a real OTP node (tests/golden/generate.escript) and
// checks them: every vector decodes, all encodings of one term (default, compressed,
// minor_version 0/1/2) decode to the same term, the term prints as OTP's ~w printed it, and
// re-encoding an uncompressed minor_version 2 vector reproduces OTP's bytes exactly.
#include <erl/etf.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct vector_rec {
    std::string name, opts, text;
    std::vector<std::uint8_t> bytes;
};

std::vector<std::uint8_t> from_hex(const std::string& h) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
    return out;
}

std::vector<vector_rec> load_vectors() {
    std::ifstream in(std::string(ERLCPP_SOURCE_DIR) + "/tests/golden/etf_vectors.txt");
    std::vector<vector_rec> out;
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::size_t a = 0;
        for (int i = 0; i < 3; ++i) {
            auto b = line.find('\t', a);
            if (b == std::string::npos) break;
            f.push_back(line.substr(a, b - a));
            a = b + 1;
        }
        if (f.size() != 3) continue;
        out.push_back({f[0], f[1], line.substr(a), from_hex(f[2])});
    }
    return out;
}

// Terms whose ~tw text we do not compare: funs and identifiers print with runtime-specific
// details, OTP's
// float text is its own shortest-round-trip format, and OTP prints maps above 32 keys in hash
// order.
bool text_comparable(const vector_rec& v) {
    if (v.text == "-" || v.name == "map_33" || v.name == "map_100") return false;
    // Identifiers print with node-local numbering in OTP (<0.9.0>, #Port<0.0>).
    for (const char* id : {"#Fun<", "#Port<", "#Ref<"})
        if (v.text.find(id) != std::string::npos) return false;
    for (std::size_t i = 0; i + 1 < v.text.size(); ++i)
        if (v.text[i] == '<' && v.text[i + 1] >= '0' && v.text[i + 1] <= '9') return false;
    if (v.name.rfind("float", 0) == 0 || v.name == "mixed" || v.name == "mixed_list" ||
        v.name == "map_mixed")
        return false;
    return true;
}

TEST(EtfGolden, EveryVectorDecodesAndMatches) {
    auto vecs = load_vectors();
    ASSERT_GT(vecs.size(), 100u) << "tests/golden/etf_vectors.txt missing or short";
    std::map<std::string, erl::term> first;
    std::size_t texts = 0;
    std::map<std::string, bool> exact_by_name;
    for (auto& v : vecs) {
        SCOPED_TRACE(v.name + " " + v.opts);
        auto r = erl::etf::decode(v.bytes);
        ASSERT_TRUE(r) << r.error().message();
        auto [it, fresh] = first.emplace(v.name, *r);
        if (!fresh) EXPECT_EQ(it->second, *r) << "encodings of one term decode differently";
        if (text_comparable(v)) {
            EXPECT_EQ(erl::to_string(*r), v.text);
            ++texts;
        }
        // Our encoder writes what minor_version 2 writes, so one of the uncompressed vectors of
        // each term (minor2, or default/minor1 when they were identical and deduplicated)
        // must be reproduced byte for byte. OTP orders maps above 32 keys by hash.
        if (v.opts.find("compressed") == std::string::npos && v.name != "map_33" &&
            v.name != "map_100") {
            bool same = erl::etf::encode(*r) == v.bytes;
            exact_by_name[v.name] = exact_by_name[v.name] || same;
        }
        // Round trip through our encoder, plain and compressed.
        auto again = erl::etf::decode(erl::etf::encode(*r));
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, *r);
        auto z = erl::etf::decode(erl::etf::encode(*r, {.compression_level = 6}));
        ASSERT_TRUE(z);
        EXPECT_EQ(*z, *r);
    }
    EXPECT_GT(exact_by_name.size(), 60u);
    for (auto& [name, same] : exact_by_name)
        EXPECT_TRUE(same) << name << ": no vector re-encodes to OTP's bytes";
    EXPECT_GT(texts, 40u);
}

}  // namespace
