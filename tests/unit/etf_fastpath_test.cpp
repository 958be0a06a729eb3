// Tests for the ETF decoder's fast paths (atom cache words compare, STRING_EXT raw lists,
// map key ordering without compare_exact, destroy of wide and deep terms). Each compares
// against the general path's result, so a fast path cannot change what a term means.
#include <erl/etf.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using erl::atom;
using erl::errc;
using erl::term;

void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 24));
    b.push_back(static_cast<std::uint8_t>(v >> 16));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

void put_small_atom(std::vector<std::uint8_t>& b, const std::string& s) {
    b.push_back(119);  // SMALL_ATOM_UTF8_EXT
    b.push_back(static_cast<std::uint8_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
}

// Encodes a term without its version byte.
std::vector<std::uint8_t> body(const term& t) {
    auto e = erl::etf::encode(t);
    return {e.begin() + 1, e.end()};
}

TEST(EtfFastPath, AtomsDifferingInOneByteAtEveryLengthAndPosition) {
    // The cache compares atom text in (overlapping) words; every length from 0 to 20 and a
    // difference at every position must still give distinct, correct atoms, also when the
    // two spellings alternate (so the cache slot holds the other one).
    for (std::size_t n = 0; n <= 20; ++n) {
        std::string base(n, 'q');
        for (std::size_t i = 0; i < std::max<std::size_t>(n, 1); ++i) {
            std::string other = base;
            if (n) other[i] = 'r';
            std::vector<std::uint8_t> b = {131, 108};
            put_be32(b, 4);
            for (int k = 0; k < 2; ++k) {
                put_small_atom(b, base);
                put_small_atom(b, other);
            }
            b.push_back(106);
            auto r = erl::etf::decode(b);
            ASSERT_TRUE(r) << n << " " << i;
            auto l = r->as_list();
            ASSERT_EQ(l.elements.size(), 4u);
            EXPECT_EQ(l.elements[0].as_atom().str(), base);
            EXPECT_EQ(l.elements[1].as_atom().str(), other);
            EXPECT_EQ(l.elements[2].as_atom(), l.elements[0].as_atom());
            EXPECT_EQ(l.elements[3].as_atom(), l.elements[1].as_atom());
            EXPECT_EQ(l.elements[0].as_atom() == l.elements[1].as_atom(), n == 0);
        }
    }
}

TEST(EtfFastPath, SmallAtomUtf8ErrorsStillReported) {
    // Length byte missing, text truncated, invalid UTF-8: errors, never a read past the end.
    std::vector<std::uint8_t> no_len = {131, 119};
    EXPECT_EQ(erl::etf::decode(no_len).error(), errc::truncated);
    std::vector<std::uint8_t> short_text = {131, 119, 5, 'a', 'b'};
    EXPECT_EQ(erl::etf::decode(short_text).error(), errc::too_large);
    std::vector<std::uint8_t> bad_utf8 = {131, 119, 2, 0xC3, 0x28};
    EXPECT_EQ(erl::etf::decode(bad_utf8).error(), errc::invalid_utf8);
    std::vector<std::uint8_t> in_pid = {131, 88, 119, 3, 'a', '@'};
    EXPECT_FALSE(erl::etf::decode(in_pid));
}

TEST(EtfFastPath, StringExtBecomesListOfBytes) {
    std::vector<std::uint8_t> b = {131, 107, 0, 4, 0, 'a', 200, 255};
    auto r = erl::etf::decode(b);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::make_list({term(0), term(97), term(200), term(255)}));
    // Inside a tuple, and as an improper list's tail, it stays the same list.
    std::vector<std::uint8_t> t = {131, 104, 2, 107, 0, 2, 'h', 'i', 97, 7};
    auto rt = erl::etf::decode(t);
    ASSERT_TRUE(rt);
    EXPECT_EQ(*rt, erl::tuple(erl::make_list({term(104), term(105)}), 7));
    std::vector<std::uint8_t> tail = {131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 'x', 'y'};
    auto rl = erl::etf::decode(tail);
    ASSERT_TRUE(rl);
    EXPECT_EQ(*rl, erl::make_list({term(1), term(120), term(121)}));
}

// A MAP_EXT of the given pairs in exactly this order (as OTP sends maps of > 32 keys).
std::vector<std::uint8_t> map_in_order(const std::vector<std::pair<term, term>>& kv) {
    std::vector<std::uint8_t> b = {131, 116};
    put_be32(b, static_cast<std::uint32_t>(kv.size()));
    for (auto& [k, v] : kv) {
        auto x = body(k);
        b.insert(b.end(), x.begin(), x.end());
        auto y = body(v);
        b.insert(b.end(), y.begin(), y.end());
    }
    return b;
}

TEST(EtfFastPath, UnsortedMapKeysOfMixedKindsSortLikeCompare) {
    std::mt19937 rng(7);
    std::vector<term> keys;
    for (int i = -20; i < 20; ++i)
        keys.push_back(term(i * 1000003));
    for (int i = 0; i < 20; ++i)
        keys.push_back(term((static_cast<double>(i) + 0.5) / 3.0));
    keys.push_back(term(1.0));  // 1.0 and 1 are distinct map keys
    keys.push_back(term(1));
    keys.push_back(term(9223372036854775807ull + 10ull));  // bignum
    for (std::string s :
         {"", "a", "ab", "abc", "abcd", "b", "key_1", "key_10", "key_2", "zzzzzzzzzz"})
        keys.push_back(term(atom(s)));
    for (std::string s : {"", "a", "ab", "abc", "b", "k1", "k10", "k2"})
        keys.push_back(erl::binary(std::string_view(s)));
    keys.push_back(erl::bitstring(std::vector<std::uint8_t>{0xF0}, 4));
    keys.push_back(erl::tuple(1, 2));
    keys.push_back(erl::tuple(atom("a")));
    keys.push_back(erl::make_list({term(1)}));
    keys.push_back(term{});
    keys.push_back(erl::map({{term(1), term(2)}}));
    keys.push_back(term(erl::pid{atom("n@h"), 1, 2, 3}));
    keys.push_back(term(erl::reference{atom("n@h"), 1, 3, {1, 2, 3}}));
    std::vector<term> want = keys;
    std::sort(want.begin(), want.end(), [](const term& a, const term& b) {
        // Map key order: the standard order except that integers sort before floats.
        bool ai = a.is_integer(), bi = b.is_integer();
        if (a.is_number() && b.is_number() && ai != bi) return ai;
        return a < b;
    });
    for (int round = 0; round < 20; ++round) {
        std::shuffle(keys.begin(), keys.end(), rng);
        std::vector<std::pair<term, term>> kv;
        for (std::size_t i = 0; i < keys.size(); ++i)
            kv.emplace_back(keys[i], term(static_cast<int>(i)));
        auto r = erl::etf::decode(map_in_order(kv));
        ASSERT_TRUE(r) << r.error().message();
        auto m = r->as_map();
        ASSERT_EQ(m.size(), want.size());
        for (std::size_t i = 0; i < want.size(); ++i)
            EXPECT_EQ(m[i].first, want[i]) << i;
        // Every key still finds its value.
        for (auto& [k, v] : kv) {
            const term* got = r->find(k);
            ASSERT_NE(got, nullptr);
            EXPECT_EQ(*got, v);
        }
    }
}

TEST(EtfFastPath, DuplicateMapKeysOfEachFastKindRefused) {
    for (const term& k : {term(atom("dup")), term(42), erl::binary(std::string_view("dup"))}) {
        auto b = map_in_order({{k, term(1)}, {term(atom("other")), term(2)}, {k, term(3)}});
        EXPECT_EQ(erl::etf::decode(b).error(), errc::duplicate_map_key) << k.to_string();
        auto s = map_in_order({{k, term(1)}, {k, term(3)}});
        EXPECT_EQ(erl::etf::decode(s).error(), errc::duplicate_map_key) << k.to_string();
    }
}

TEST(EtfFastPath, WideAndDeepTermsDecodeAndFree) {
    // A map of 5,000 {Int, <<"v">>} values and binary keys (wide: frees many small blocks
    // from one parent), then a 100,000-deep nest of 1-tuples holding lists (deep: the
    // destroy work list). Both round-trip and are released without recursion.
    std::vector<std::pair<term, term>> kv;
    for (int i = 0; i < 5000; ++i)
        kv.emplace_back(erl::binary(std::string_view("k" + std::to_string(i))),
                        erl::tuple(i, erl::binary(std::string_view("v"))));
    term wide = erl::make_map(kv);
    auto w = erl::etf::decode(erl::etf::encode(wide));
    ASSERT_TRUE(w);
    EXPECT_EQ(*w, wide);

    term deep = erl::make_list({term(1)});
    for (int i = 0; i < 100000; ++i)
        deep = erl::tuple(erl::make_list({deep, erl::binary(std::string_view("x"))}));
    erl::etf::limits lim;
    lim.max_depth = 1000000;
    auto d = erl::etf::decode(erl::etf::encode(deep), lim);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, deep);
    deep = term{};
    d = erl::etf::decode(std::vector<std::uint8_t>{131, 106});
    ASSERT_TRUE(d);
}

}  // namespace
