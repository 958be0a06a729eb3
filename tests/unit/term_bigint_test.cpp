// Arbitrary-precision integers: parsing, printing, arithmetic, normalization.
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <random>

using namespace erl;

namespace {
term big(std::string_view s) {
    auto r = integer_from_string(s);
    EXPECT_TRUE(r) << s;
    return r ? *r : term();
}
std::string str(const term& t) {
    return integer_to_string(t);
}
}  // namespace

TEST(TermBigint, FromAndToString) {
    EXPECT_EQ(big("0"), term(0));
    EXPECT_EQ(big("-0"), term(0));
    EXPECT_EQ(big("+17"), term(17));
    EXPECT_EQ(big("000123"), term(123));
    EXPECT_EQ(big("9223372036854775807"), term(INT64_MAX));
    EXPECT_EQ(big("-9223372036854775808"), term(INT64_MIN));
    EXPECT_TRUE(big("9223372036854775808").is_bignum());
    EXPECT_TRUE(big("-9223372036854775809").is_bignum());
    EXPECT_EQ(big("-9223372036854775809").as_big().negative, true);
    for (std::string s : {"18446744073709551616", "-18446744073709551616",
                          "123456789012345678901234567890", "-99999999999999999999999999999999999",
                          "1000000000000000000000000000000000000000000000000000000000000001",
                          "9223372036854775808", "-9223372036854775809"})
        EXPECT_EQ(str(big(s)), s);
    EXPECT_EQ(str(term(0)), "0");
    EXPECT_EQ(str(term(INT64_MIN)), "-9223372036854775808");
    EXPECT_EQ(str(big("00000000000000000000000000000042")), "42");
    for (std::string_view bad : {"", "-", "+", "1a", " 1", "1 ", "--1", "1.0", "0x10"})
        EXPECT_FALSE(integer_from_string(bad)) << bad;
    EXPECT_THROW(integer_to_string(term(1.0)), bad_term_access);
}

TEST(TermBigint, TwoToThe64) {
    term t = big("18446744073709551616");
    auto v = t.as_big();
    ASSERT_EQ(v.limbs.size(), 3u);
    EXPECT_EQ(v.limbs[0], 0u);
    EXPECT_EQ(v.limbs[1], 0u);
    EXPECT_EQ(v.limbs[2], 1u);
    EXPECT_FALSE(v.negative);
}

TEST(TermBigint, AddSubtractNormalize) {
    EXPECT_EQ(*add(term(1), term(2)), term(3));
    term over = *add(term(INT64_MAX), term(1));
    EXPECT_TRUE(over.is_bignum());
    EXPECT_EQ(str(over), "9223372036854775808");
    EXPECT_EQ(*subtract(over, term(1)), term(INT64_MAX));  // normalized back
    EXPECT_TRUE((*subtract(over, term(1))).is_small());
    term under = *subtract(term(INT64_MIN), term(1));
    EXPECT_EQ(str(under), "-9223372036854775809");
    EXPECT_EQ(*add(under, term(1)), term(INT64_MIN));
    EXPECT_EQ(*add(big("18446744073709551616"), big("-18446744073709551616")), term(0));
    EXPECT_EQ(str(*add(big("-18446744073709551616"), term(1))), "-18446744073709551615");
    EXPECT_EQ(str(*subtract(term(1), big("18446744073709551616"))), "-18446744073709551615");
    EXPECT_EQ(str(*subtract(big("-5000000000000000000000"), big("-7000000000000000000000"))),
              "2000000000000000000000");
    EXPECT_EQ(str(*add(big("99999999999999999999"), big("1"))), "100000000000000000000");
    EXPECT_EQ(*subtract(term(INT64_MIN), term(INT64_MIN)), term(0));
    EXPECT_EQ(str(*subtract(term(0), term(INT64_MIN))), "9223372036854775808");
}

TEST(TermBigint, Multiply) {
    EXPECT_EQ(*multiply(term(-3), term(4)), term(-12));
    EXPECT_EQ(str(*multiply(term(INT64_MAX), term(INT64_MAX))),
              "85070591730234615847396907784232501249");
    EXPECT_EQ(str(*multiply(term(INT64_MIN), term(-1))), "9223372036854775808");
    EXPECT_EQ(*multiply(big("123456789012345678901234567890"), term(0)), term(0));
    EXPECT_EQ(str(*multiply(big("123456789012345678901234567890"),
                            big("-987654321098765432109876543210"))),
              "-121932631137021795226185032733622923332237463801111263526900");
    // (2^64)^2 = 2^128
    term sq = *multiply(big("18446744073709551616"), big("18446744073709551616"));
    EXPECT_EQ(str(sq), "340282366920938463463374607431768211456");
    EXPECT_EQ(sq.as_big().limbs.size(), 5u);
}

TEST(TermBigint, TypeMismatch) {
    EXPECT_EQ(add(term(1), term(1.0)).error(), errc::type_mismatch);
    EXPECT_EQ(subtract(term(atom("a")), term(1)).error(), errc::type_mismatch);
    EXPECT_EQ(multiply(term(), term(1)).error(), errc::type_mismatch);
}

TEST(TermBigint, RandomArithmeticAgreesWithInt128) {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 2000; ++i) {
        auto x = static_cast<std::int64_t>(rng()), y = static_cast<std::int64_t>(rng());
        if (i % 4 == 0) x >>= 20;
        __int128 s = static_cast<__int128>(x) + y, d = static_cast<__int128>(x) - y,
                 p = static_cast<__int128>(x) * y;
        auto to_s = [](__int128 v) {
            bool neg = v < 0;
            unsigned __int128 u = neg ? 0 - static_cast<unsigned __int128>(v) : v;
            std::string r;
            do {
                r.insert(r.begin(), char('0' + int(u % 10)));
                u /= 10;
            } while (u);
            return neg ? "-" + r : r;
        };
        EXPECT_EQ(str(*add(term(x), term(y))), to_s(s));
        EXPECT_EQ(str(*subtract(term(x), term(y))), to_s(d));
        EXPECT_EQ(str(*multiply(term(x), term(y))), to_s(p));
        // Through bignum operands too: (x*2^64 + y) - x*2^64 == y.
        term two64 = big("18446744073709551616");
        term bx = *add(*multiply(term(x), two64), term(y));
        EXPECT_EQ(*subtract(bx, *multiply(term(x), two64)), term(y));
        EXPECT_EQ(big(str(bx)), bx);
    }
}
