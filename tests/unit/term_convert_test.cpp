// erl::convert: C++ values <-> terms, with mismatches reported as errc::type_mismatch.
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

using namespace erl;

namespace {
template <class T>
bool mismatch(const term& t) {
    auto r = from_term<T>(t);
    return !r && r.error() == errc::type_mismatch;
}
term a(std::string_view s) {
    return term(atom(s));
}
}  // namespace

TEST(TermConvert, Identity) {
    term t = tuple(1, 2);
    EXPECT_EQ(*from_term<term>(t), t);
    EXPECT_EQ(to_term(t), t);
}

TEST(TermConvert, AtomsBoolsIds) {
    EXPECT_EQ(*from_term<atom>(a("x")), atom("x"));
    EXPECT_TRUE(mismatch<atom>(term(1)));
    EXPECT_EQ(to_term(true), term(atoms::true_()));
    EXPECT_EQ(*from_term<bool>(term(false)), false);
    EXPECT_EQ(*from_term<bool>(term(true)), true);
    EXPECT_TRUE(mismatch<bool>(a("yes")));
    EXPECT_TRUE(mismatch<bool>(term(1)));
    pid p{atom("n@h"), 1, 2, 3};
    EXPECT_EQ(*from_term<pid>(to_term(p)), p);
    EXPECT_TRUE(mismatch<pid>(term(1)));
    port po{atom("n@h"), 7, 3};
    EXPECT_EQ(*from_term<port>(to_term(po)), po);
    EXPECT_TRUE(mismatch<port>(to_term(p)));
    reference r{atom("n@h"), 3, 3, {1, 2, 3}};
    EXPECT_EQ(*from_term<reference>(to_term(r)), r);
    EXPECT_TRUE(mismatch<reference>(to_term(p)));
    export_fun f{atom("m"), atom("f"), 2};
    EXPECT_EQ(*from_term<export_fun>(to_term(f)), f);
    EXPECT_TRUE(mismatch<closure>(to_term(f)));
}

TEST(TermConvert, IntegersRangeChecked) {
    EXPECT_EQ(*from_term<int>(term(-5)), -5);
    EXPECT_EQ(*from_term<std::int8_t>(term(-128)), -128);
    EXPECT_TRUE(mismatch<std::int8_t>(term(128)));
    EXPECT_TRUE(mismatch<std::int8_t>(term(-129)));
    EXPECT_EQ(*from_term<std::uint8_t>(term(255)), 255);
    EXPECT_TRUE(mismatch<std::uint8_t>(term(256)));
    EXPECT_TRUE(mismatch<std::uint8_t>(term(-1)));
    EXPECT_TRUE(mismatch<unsigned>(term(-1)));
    EXPECT_EQ(*from_term<std::int16_t>(term(-32768)), -32768);
    EXPECT_TRUE(mismatch<std::int16_t>(term(32768)));
    EXPECT_EQ(*from_term<std::uint32_t>(term(4294967295LL)), 4294967295u);
    EXPECT_TRUE(mismatch<std::uint32_t>(term(4294967296LL)));
    EXPECT_EQ(*from_term<std::int64_t>(term(INT64_MIN)), INT64_MIN);
    EXPECT_EQ(*from_term<std::int64_t>(term(INT64_MAX)), INT64_MAX);
    // Unsigned 64-bit values above INT64_MAX travel as bignums.
    std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
    term tb = to_term(big);
    EXPECT_TRUE(tb.is_bignum());
    EXPECT_EQ(*from_term<std::uint64_t>(tb), big);
    EXPECT_EQ(*from_term<unsigned long long>(to_term(1ull << 63)), 1ull << 63);
    EXPECT_TRUE(mismatch<std::int64_t>(tb));
    EXPECT_TRUE(mismatch<std::uint64_t>(*integer_from_string("18446744073709551616")));
    EXPECT_TRUE(mismatch<std::uint64_t>(*integer_from_string("-18446744073709551615")));
    EXPECT_TRUE(mismatch<int>(term(1.0)));
    EXPECT_TRUE(mismatch<int>(a("one")));
    EXPECT_EQ(to_term(static_cast<short>(-3)), term(-3));
    EXPECT_EQ(to_term(static_cast<unsigned char>(200)), term(200));
    EXPECT_EQ(to_term('a'), term(97));
}

TEST(TermConvert, Floats) {
    EXPECT_EQ(*from_term<double>(term(2.5)), 2.5);
    EXPECT_EQ(*from_term<double>(term(3)), 3.0);  // integers accepted for double
    EXPECT_EQ(*from_term<double>(*integer_from_string("18446744073709551616")),
              18446744073709551616.0);
    EXPECT_TRUE(mismatch<double>(*integer_from_string("1" + std::string(400, '0'))));
    EXPECT_TRUE(mismatch<double>(a("x")));
    EXPECT_EQ(*from_term<float>(term(0.5)), 0.5f);
    EXPECT_TRUE(mismatch<float>(term(1)));  // float: float terms only
    EXPECT_TRUE(mismatch<float>(term(1e300)));
    EXPECT_EQ(to_term(1.5f), term(1.5));
    EXPECT_EQ(to_term(0.25), term(0.25));
}

TEST(TermConvert, BignumToDoubleRoundsToNearest) {
    // 2^64 + 1 rounds to 2^64; 2^53+1 scaled tests tie-breaking via sticky bits.
    EXPECT_EQ(*from_term<double>(*integer_from_string("18446744073709551617")),
              18446744073709551616.0);
    // 2^64 + 2^11 + 1 must round up (above the halfway point between doubles).
    EXPECT_EQ(*from_term<double>(*integer_from_string("18446744073709553665")),
              18446744073709555712.0);
    // Exactly halfway (2^64 + 2^11) rounds to even (2^64).
    EXPECT_EQ(*from_term<double>(*integer_from_string("18446744073709553664")),
              18446744073709551616.0);
    EXPECT_EQ(*from_term<double>(*integer_from_string("-123456789012345678901234567890")),
              -123456789012345678901234567890.0);
}

TEST(TermConvert, Strings) {
    EXPECT_EQ(to_term(std::string("abc")), binary(std::string_view("abc")));
    EXPECT_EQ(*from_term<std::string>(binary(std::string_view("abc"))), "abc");
    EXPECT_EQ(*from_term<std::string>(charlist("h\xC3\xA9")), "h\xC3\xA9");
    EXPECT_EQ(*from_term<std::string>(a("atom")), "atom");
    EXPECT_EQ(*from_term<std::string>(term()), "");
    EXPECT_TRUE(mismatch<std::string>(list(1, -1)));
    EXPECT_TRUE(mismatch<std::string>(list(0x110000)));
    EXPECT_TRUE(mismatch<std::string>(list(0xD800)));
    EXPECT_TRUE(mismatch<std::string>(make_list({term(97)}, term(98))));
    EXPECT_TRUE(mismatch<std::string>(list(a("x"))));
    std::uint8_t b[] = {0xFF};
    EXPECT_TRUE(mismatch<std::string>(bitstring(b, 7)));
    EXPECT_TRUE(mismatch<std::string>(term(1)));
}

TEST(TermConvert, Vectors) {
    std::vector<int> v{1, 2, 3};
    term t = to_term(v);
    EXPECT_EQ(t, list(1, 2, 3));
    EXPECT_EQ(*from_term<std::vector<int>>(t), v);
    EXPECT_EQ(to_term(std::vector<int>{}), term());
    EXPECT_TRUE(from_term<std::vector<int>>(term())->empty());
    EXPECT_TRUE(mismatch<std::vector<int>>(list(1, a("x"))));
    EXPECT_TRUE(mismatch<std::vector<int>>(make_list({term(1)}, term(2))));
    EXPECT_TRUE(mismatch<std::vector<int>>(tuple(1)));
    std::vector<std::vector<std::string>> nested{{"a"}, {}, {"b", "c"}};
    EXPECT_EQ(*from_term<decltype(nested)>(to_term(nested)), nested);
}

TEST(TermConvert, Optional) {
    EXPECT_EQ(to_term(std::optional<int>{}), term(atoms::undefined()));
    EXPECT_EQ(to_term(std::optional<int>{4}), term(4));
    EXPECT_FALSE(from_term<std::optional<int>>(term(atoms::undefined()))->has_value());
    EXPECT_EQ(**from_term<std::optional<int>>(term(4)), 4);
    EXPECT_TRUE(mismatch<std::optional<int>>(a("other")));
    EXPECT_FALSE(from_term<std::optional<bool>>(term(atoms::undefined()))->has_value());
    EXPECT_EQ(**from_term<std::optional<bool>>(term(true)), true);
}

TEST(TermConvert, PairsAndTuples) {
    auto pr = std::make_pair(1, std::string("x"));
    term t = to_term(pr);
    EXPECT_EQ(t, tuple(1, binary(std::string_view("x"))));
    EXPECT_EQ((*from_term<std::pair<int, std::string>>(t)), pr);
    EXPECT_TRUE((mismatch<std::pair<int, int>>(tuple(1, 2, 3))));
    EXPECT_TRUE((mismatch<std::pair<int, int>>(tuple(1, a("x")))));
    EXPECT_TRUE((mismatch<std::pair<int, int>>(list(1, 2))));
    auto tp = std::make_tuple(atom("ok"), 2.5, std::vector<int>{1});
    term tt = to_term(tp);
    EXPECT_EQ(tt, tuple(atom("ok"), 2.5, list(1)));
    EXPECT_EQ((*from_term<std::tuple<atom, double, std::vector<int>>>(tt)), tp);
    EXPECT_TRUE((mismatch<std::tuple<atom, double>>(tt)));
    EXPECT_TRUE((mismatch<std::tuple<atom, int, std::vector<int>>>(tt)));
    EXPECT_EQ(to_term(std::tuple<>{}), make_tuple({}));
    EXPECT_TRUE(from_term<std::tuple<>>(make_tuple({})));
}

TEST(TermConvert, Maps) {
    std::map<std::string, int> m{{"a", 1}, {"b", 2}};
    term t = to_term(m);
    EXPECT_TRUE(t.is_map());
    EXPECT_EQ(*t.find(binary(std::string_view("a"))), term(1));
    EXPECT_EQ((*from_term<std::map<std::string, int>>(t)), m);
    std::unordered_map<int, bool> u{{1, true}, {2, false}};
    term tu = to_term(u);
    EXPECT_EQ(tu, map({{term(1), term(true)}, {term(2), term(false)}}));
    EXPECT_EQ((*from_term<std::unordered_map<int, bool>>(tu)), u);
    EXPECT_TRUE((mismatch<std::map<int, int>>(t)));
    EXPECT_TRUE((mismatch<std::map<int, int>>(list(1))));
    // <<"a">> and 'a' are different terms but the same std::string: a mismatch, not a
    // silent overwrite.
    term amb = map({{binary(std::string_view("a")), term(1)}, {a("a"), term(2)}});
    EXPECT_TRUE((mismatch<std::map<std::string, int>>(amb)));
}

TEST(TermConvert, VariadicBuilders) {
    term t = tuple(atom("ok"), 1, 2.0, true, std::string("bin"), std::vector<int>{1, 2});
    EXPECT_EQ(t.to_string(), "{ok,1,2.0,true,<<98,105,110>>,[1,2]}");
    EXPECT_EQ(list(1, atom("a")).to_string(), "[1,a]");
}

namespace {
struct point {
    int x, y;
    bool operator==(const point&) const = default;
};
}  // namespace

template <>
struct erl::convert<point> {
    static term to(const point& p) { return tuple(atom("point"), p.x, p.y); }
    static result<point> from(const term& t) {
        if (!t.is_tuple(3) || !t[0].is_atom(atom("point"))) return detail::fail<point>();
        auto x = from_term<int>(t[1]);
        auto y = from_term<int>(t[2]);
        if (!x || !y) return detail::fail<point>();
        return point{*x, *y};
    }
};

TEST(TermConvert, UserSpecialization) {
    std::vector<point> pts{{1, 2}, {3, 4}};
    term t = to_term(pts);
    EXPECT_EQ(t.to_string(), "[{point,1,2},{point,3,4}]");
    EXPECT_EQ(*from_term<std::vector<point>>(t), pts);
    EXPECT_TRUE(mismatch<point>(tuple(atom("pt"), 1, 2)));
}
