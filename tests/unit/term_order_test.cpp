// Standard term order, exact equality and hashing. Expected values marked "erl:" were checked
// by hand against OTP 25 (`erl -noshell`, e.g. io:format("~w", [{1,2} < {1.0,1}])).
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

using namespace erl;

namespace {
term a(std::string_view s) {
    return term(atom(s));
}
term big(std::string_view s) {
    return *integer_from_string(s);
}
term bits(std::initializer_list<std::uint8_t> b, std::size_t n) {
    std::vector<std::uint8_t> v(b);
    return bitstring(v, n);
}
closure make_closure(std::string_view mod, std::int64_t old_index, std::vector<term> fv = {}) {
    closure c;
    c.module = atom(mod);
    c.old_index = old_index;
    c.old_uniq = 77;
    c.pid = term(pid{atom("n@h"), 1, 0, 1});
    c.free_vars = std::move(fv);
    return c;
}
}  // namespace

TEST(TermOrder, KindOrder) {
    // number < atom < reference < fun < port < pid < tuple < map < [] < list < bitstring
    std::vector<term> v = {term(1),
                           a("a"),
                           term(reference{atom("n@h"), 1, 3, {1, 2, 3}}),
                           term(export_fun{atom("m"), atom("f"), 1}),
                           term(port{atom("n@h"), 1, 1}),
                           term(pid{atom("n@h"), 1, 0, 1}),
                           tuple(1),
                           make_map({}),
                           term(),
                           list(1),
                           binary(std::string_view("a"))};
    for (std::size_t i = 0; i < v.size(); ++i)
        for (std::size_t j = 0; j < v.size(); ++j) {
            EXPECT_EQ(v[i] <=> v[j], i <=> j) << i << " vs " << j;
            EXPECT_EQ(v[i] == v[j], i == j);
        }
    // A bitstring also sorts after lists; a bignum before atoms.
    EXPECT_LT(list(1), bits({0x80}, 1));
    EXPECT_LT(big("100000000000000000000000"), a(""));
    EXPECT_LT(term(1e300), a(""));
}

TEST(TermOrder, IntegersAndFloatsByValue) {
    EXPECT_LT(term(1), term(2));
    EXPECT_LT(term(-1), term(0.5));
    EXPECT_LT(term(0.5), term(1));
    EXPECT_LT(term(1.5), term(2));
    EXPECT_GT(term(3), term(2.5));
    // erl: 1 < 1.0 false, 1.0 < 1 false, 1 == 1.0 true. We break the tie: integer first,
    // and == is exact (=:=).
    EXPECT_LT(term(1), term(1.0));
    EXPECT_NE(term(1), term(1.0));
    EXPECT_EQ(compare(term(1), term(1.0)), std::strong_ordering::less);
    EXPECT_EQ(compare(term(1.0), term(1)), std::strong_ordering::greater);
    // -0.0 and 0.0 differ exactly (as in OTP 27's =:=); -0.0 first.
    EXPECT_NE(term(-0.0), term(0.0));
    EXPECT_LT(term(-0.0), term(0.0));
    EXPECT_LT(term(0), term(-0.0));  // equal by value: integer first
    EXPECT_LT(term(-1), term(-0.0));
}

TEST(TermOrder, ExactNumberComparisons) {
    // erl: 1 < 1.0000000000000002 true.
    EXPECT_LT(term(1), term(1.0000000000000002));
    // erl: 9007199254740993 > 9007199254740992.0 true (no precision loss).
    EXPECT_GT(term(9007199254740993LL), term(9007199254740992.0));
    EXPECT_LT(term(9007199254740993LL), term(9007199254740994.0));
    EXPECT_GT(term(INT64_MAX), term(9223372036854774784.0));  // largest double < 2^63
    EXPECT_LT(term(INT64_MAX), term(9223372036854775808.0));  // 2^63
    EXPECT_GT(term(INT64_MIN), term(-9223372036854777856.0));
    EXPECT_LT(term(INT64_MIN), term(-9223372036854774784.0));
    // INT64_MIN == -2^63 exactly: tie broken integer first.
    EXPECT_LT(term(INT64_MIN), term(-9223372036854775808.0));
    EXPECT_GT(term(-9223372036854775807LL - 0), term(-9223372036854775808.0));
    // erl: -9223372036854775809 < -9223372036854775808.0 true.
    EXPECT_LT(big("-9223372036854775809"), term(-9223372036854775808.0));
    // erl: 9223372036854775808 == 9223372036854775808.0 true.
    EXPECT_LT(big("9223372036854775808"), term(9223372036854775808.0));
    EXPECT_GT(big("9223372036854775809"), term(9223372036854775808.0));
    // erl: 18446744073709551617 > 1.8446744073709552e19 true.
    EXPECT_GT(big("18446744073709551617"), term(1.8446744073709552e19));
    EXPECT_LT(big("18446744073709551615"), term(1.8446744073709552e19));
    // Huge values.
    EXPECT_LT(term(1.7976931348623157e308), big("1" + std::string(309, '0')));
    EXPECT_GT(term(1.7976931348623157e308), big("1" + std::string(308, '0')));
    EXPECT_LT(term(-1.7976931348623157e308), big("-1" + std::string(308, '0')));
    EXPECT_GT(term(-1.7976931348623157e308), big("-1" + std::string(309, '0')));
    // 2^1023 exactly equals the double 2^1023: integer first.
    term p1023 = term(1);
    for (int i = 0; i < 1023; ++i)
        p1023 = *multiply(p1023, term(2));
    EXPECT_LT(p1023, term(8.98846567431158e307));
    EXPECT_LT(p1023, term(std::ldexp(1.0, 1023)));
    EXPECT_GT(*add(p1023, term(1)), term(std::ldexp(1.0, 1023)));
    EXPECT_GT(p1023, term(std::nextafter(std::ldexp(1.0, 1023), 0.0)));
    // Bignums among themselves and with small integers.
    EXPECT_LT(big("-100000000000000000000"), term(INT64_MIN));
    EXPECT_GT(big("100000000000000000000"), term(INT64_MAX));
    EXPECT_LT(big("100000000000000000000"), big("100000000000000000001"));
    EXPECT_LT(big("-100000000000000000001"), big("-100000000000000000000"));
    EXPECT_LT(big("-1000000000000000000000000000"), big("-100000000000000000000"));
    EXPECT_LT(big("100000000000000000000"), big("1000000000000000000000000000"));
}

TEST(TermOrder, TieBreakDoesNotOverrideLaterDifferences) {
    // erl: {1,2} < {1.0,1} false; {1.0,a} < {1,b} true; {1,a} < {1.0,b} true.
    EXPECT_GT(tuple(1, 2), tuple(1.0, 1));
    EXPECT_LT(tuple(1.0, a("a")), tuple(1, a("b")));
    EXPECT_LT(tuple(1, a("a")), tuple(1.0, a("b")));
    // Equal by value everywhere: first exact difference decides.
    EXPECT_LT(tuple(1, 2.0), tuple(1.0, 2));
    EXPECT_LT(list(1, 2), list(1.0, 2));
    EXPECT_GT(list(2.0, 1), list(2, 1.0));
}

TEST(TermOrder, Atoms) {
    EXPECT_LT(a("a"), a("b"));
    EXPECT_LT(a("ab"), a("b"));
    EXPECT_LT(a(""), a("a"));
    EXPECT_LT(a("B"), a("a"));
    EXPECT_EQ(a("x"), a("x"));
}

TEST(TermOrder, Tuples) {
    // Arity first.
    EXPECT_LT(tuple(9, 9), tuple(1, 1, 1));
    EXPECT_LT(make_tuple({}), tuple(0));
    EXPECT_LT(tuple(1, 2), tuple(1, 3));
    EXPECT_EQ(tuple(1, tuple(2, list(3))), tuple(1, tuple(2, list(3))));
}

TEST(TermOrder, Lists) {
    EXPECT_LT(term(), list(1));  // erl: [] < [1] true
    EXPECT_LT(list(1), list(1, 2));
    EXPECT_LT(list(1, 2), list(2));
    EXPECT_GT(list(1), make_list({term(1)}, term(2)));     // erl: [1] < [1|2] false
    EXPECT_LT(make_list({term(1)}, term(2)), list(1, 2));  // erl: [1|2] < [1,2] true
    // Improper tails compared as terms.
    EXPECT_LT(make_list({term(1)}, a("a")), make_list({term(1)}, a("b")));
    EXPECT_LT(make_list({term(1)}, a("z")), make_list({term(1)}, binary(std::string_view("a"))));
    // Tail vs continuing list: a bitstring tail is greater than a list.
    EXPECT_GT(make_list({term(1)}, binary(std::string_view())), list(1, 2));
    EXPECT_LT(make_list({term(1)}, tuple()), list(1, 2));
    EXPECT_EQ(make_list({term(1)}, term(2)), make_list({term(1)}, term(2)));
    EXPECT_NE(make_list({term(1)}, term(2)), list(1, 2));
}

TEST(TermOrder, Maps) {
    auto m = [](std::initializer_list<std::pair<term, term>> p) { return map(p); };
    // Size first: erl: #{} < #{a=>1}; #{z=>1} < #{a=>1,b=>2}.
    EXPECT_LT(m({}), m({{a("a"), term(1)}}));
    EXPECT_LT(m({{a("z"), term(1)}}), m({{a("a"), term(1)}, {a("b"), term(2)}}));
    // Keys before values: erl: #{a=>2} < #{b=>1} true.
    EXPECT_LT(m({{a("a"), term(2)}}), m({{a("b"), term(1)}}));
    // Map-key order: integers before floats: erl: #{1=>a} < #{1.0=>a} true,
    // #{2=>a} < #{1.0=>a} true.
    EXPECT_LT(m({{term(1), a("a")}}), m({{term(1.0), a("a")}}));
    EXPECT_LT(m({{term(2), a("a")}}), m({{term(1.0), a("a")}}));
    // erl: lists:sort gives [#{1=>a},#{2=>a},#{1.0=>a},#{a=>1},#{a=>1,b=>2}].
    std::vector<term> v = {m({{a("a"), term(1)}, {a("b"), term(2)}}), m({{a("a"), term(1)}}),
                           m({{term(1.0), a("a")}}), m({{term(2), a("a")}}),
                           m({{term(1), a("a")}})};
    std::sort(v.begin(), v.end());
    EXPECT_EQ(v[0], m({{term(1), a("a")}}));
    EXPECT_EQ(v[1], m({{term(2), a("a")}}));
    EXPECT_EQ(v[2], m({{term(1.0), a("a")}}));
    EXPECT_EQ(v[3], m({{a("a"), term(1)}}));
    EXPECT_EQ(v[4], m({{a("a"), term(1)}, {a("b"), term(2)}}));
    // Values compare by value (erl treats #{a=>1} and #{a=>1.0} as ==); integer first.
    EXPECT_LT(m({{a("a"), term(1)}}), m({{a("a"), term(1.0)}}));
    EXPECT_LT(m({{a("a"), term(1.0)}}), m({{a("a"), term(2)}}));
    // Nested map keys use exact order too: #{{2}=>x} < #{{1.0}=>x}.
    EXPECT_LT(m({{tuple(2), a("x")}}), m({{tuple(1.0), a("x")}}));
    // Map vs tuple/nil: erl: #{} < {1,2} false, #{} < [] true.
    EXPECT_GT(m({}), tuple(1, 2));
    EXPECT_LT(m({}), term());
}

TEST(TermOrder, Bitstrings) {
    term ab = binary(std::string_view("ab"));
    EXPECT_LT(binary(std::string_view()), binary(std::string_view("a")));
    EXPECT_LT(binary(std::string_view("a")), ab);
    EXPECT_LT(ab, binary(std::string_view("b")));
    // erl: <<1:1>> < <<1:2>> false; <<1,2>> < <<1,2,0:1>> true; <<2:2>> < <<1>> false.
    EXPECT_GT(bits({0x80}, 1), bits({0x40}, 2));
    EXPECT_LT(binary(std::string_view("\x01\x02")), bits({1, 2, 0}, 17));
    EXPECT_GT(bits({0x80}, 2), binary(std::string_view("\x01")));
    // erl: <<1:1>> < <<128>> true; <<0:1>> < <<0>> true.
    EXPECT_LT(bits({0x80}, 1), binary(std::string_view("\x80")));
    EXPECT_LT(bits({0x00}, 1), binary(std::string_view("\0", 1)));
    EXPECT_EQ(bits({0xFF}, 3), bits({0xE0}, 3));  // masked
    EXPECT_NE(bits({0xE0}, 3), bits({0xE0}, 4));
    // Unsigned byte comparison.
    EXPECT_LT(binary(std::string_view("\x7F")), binary(std::string_view("\x80")));
}

TEST(TermOrder, UnmaskedTrailingBitsFromRawBuilderAreIgnored) {
    std::uint8_t* d;
    term x = detail::new_binary(1, d, 3);
    d[0] = 0xFF;  // low 5 bits set although unused
    term y = bits({0xE0}, 3);
    EXPECT_EQ(x, y);
    EXPECT_EQ(x.hash(), y.hash());
    EXPECT_EQ(compare(x, y), std::strong_ordering::equal);
}

TEST(TermOrder, Pids) {
    // Serial, then number, then node name, then creation (erts_cmp).
    pid p1{atom("a@h"), 5, 0, 1}, p2{atom("a@h"), 6, 0, 1}, p3{atom("a@h"), 1, 1, 1};
    pid p4{atom("b@h"), 5, 0, 1}, p5{atom("a@h"), 5, 0, 2};
    EXPECT_LT(term(p1), term(p2));
    EXPECT_LT(term(p2), term(p3));  // serial dominates
    EXPECT_LT(term(p1), term(p4));
    EXPECT_LT(term(p4), term(p3));
    EXPECT_LT(term(p1), term(p5));
    EXPECT_EQ(term(p1), term(pid{atom("a@h"), 5, 0, 1}));
}

TEST(TermOrder, PortsAndRefs) {
    // Node (name, creation) first, then the id.
    EXPECT_LT(term(port{atom("a@h"), 9, 1}), term(port{atom("b@h"), 1, 1}));
    EXPECT_LT(term(port{atom("a@h"), 9, 1}), term(port{atom("a@h"), 1, 2}));
    EXPECT_LT(term(port{atom("a@h"), 1, 1}), term(port{atom("a@h"), 2, 1}));
    reference r1{atom("a@h"), 1, 3, {5, 0, 1}}, r2{atom("a@h"), 1, 3, {1, 0, 2}};
    EXPECT_LT(term(r1), term(r2));  // most significant word (last) first
    reference r3{atom("b@h"), 1, 3, {0, 0, 0}};
    EXPECT_LT(term(r2), term(r3));
    reference r4{atom("a@h"), 1, 4, {5, 0, 1, 0}};
    EXPECT_NE(term(r1), term(r4));  // OTP says equal; we order the shorter first
    EXPECT_LT(term(r1), term(r4));
    reference r5{atom("a@h"), 1, 4, {5, 0, 1, 1}};
    EXPECT_LT(term(r4), term(r5));
    EXPECT_GT(term(r5), term(r2));
}

TEST(TermOrder, Funs) {
    // erl: fun() -> ok end < fun lists:map/2 true (closures before exports).
    term c = term(make_closure("zzz", 0));
    term e = term(export_fun{atom("aaa"), atom("f"), 0});
    EXPECT_LT(c, e);
    EXPECT_LT(term(export_fun{atom("m"), atom("f"), 1}), term(export_fun{atom("m"), atom("g"), 0}));
    EXPECT_LT(term(export_fun{atom("m"), atom("f"), 1}), term(export_fun{atom("m"), atom("f"), 2}));
    EXPECT_LT(term(make_closure("a", 5)), term(make_closure("b", 0)));
    EXPECT_LT(term(make_closure("a", 0)), term(make_closure("a", 1)));
    EXPECT_LT(term(make_closure("a", 0, {term(1)})),
              term(make_closure("a", 0, {term(1), term(0)})));
    EXPECT_LT(term(make_closure("a", 0, {term(1)})), term(make_closure("a", 0, {term(2)})));
    EXPECT_EQ(term(make_closure("a", 0, {list(1)})), term(make_closure("a", 0, {list(1)})));
    closure x = make_closure("a", 0), y = make_closure("a", 0);
    y.uniq[3] = 1;
    EXPECT_NE(term(x), term(y));
    EXPECT_LT(term(x), term(y));
}

TEST(TermOrder, OrderIsTotalAndConsistentOnAMixedSample) {
    std::vector<term> v = {term(1),
                           term(1.0),
                           term(-0.0),
                           term(0.0),
                           term(0),
                           big("99999999999999999999"),
                           term(9.9e19),
                           a("a"),
                           a("b"),
                           tuple(1, 2),
                           tuple(1.0, 2),
                           tuple(1, 2.0),
                           list(1),
                           make_list({term(1)}, term(2)),
                           term(),
                           make_map({}),
                           map({{term(1), term(1.0)}}),
                           map({{term(1), term(1)}}),
                           map({{term(1.0), term(1)}}),
                           binary(std::string_view("x")),
                           bits({0x80}, 1),
                           term(pid{atom("a@h"), 1, 0, 1}),
                           term(port{atom("a@h"), 1, 1}),
                           term(reference{atom("a@h"), 1, 3, {1, 2, 3}}),
                           term(export_fun{atom("m"), atom("f"), 1}),
                           term(make_closure("m", 1, {term(1.0)})),
                           term(make_closure("m", 1, {term(1)}))};
    for (const term& x : v)
        for (const term& y : v) {
            auto xy = x <=> y, yx = y <=> x;
            EXPECT_EQ(xy == 0, x == y);
            EXPECT_EQ(xy<0, yx> 0);
            if (x == y) EXPECT_EQ(x.hash(), y.hash());
            for (const term& z : v)
                if (xy < 0 && (y <=> z) < 0) EXPECT_LT(x, z);
        }
}

TEST(TermOrder, HashConsistentWithEquality) {
    EXPECT_EQ(tuple(1, a("x"), list(2.5)).hash(), tuple(1, a("x"), list(2.5)).hash());
    EXPECT_NE(term(1).hash(), term(1.0).hash());
    EXPECT_EQ(big("123456789012345678901234567890").hash(),
              big("123456789012345678901234567890").hash());
    term m1 = map({{a("a"), term(1)}, {a("b"), term(2)}});
    term m2 = map({{a("b"), term(2)}, {a("a"), term(1)}});
    EXPECT_EQ(m1, m2);
    EXPECT_EQ(m1.hash(), m2.hash());
    EXPECT_NE(tuple(1, 2).hash(), tuple(2, 1).hash());
    EXPECT_NE(list(1, 2).hash(), make_list({term(1)}, term(2)).hash());
}

TEST(TermOrder, DeepNestingCompares) {
    term x = term(1), y = term(2);
    for (int i = 0; i < 100000; ++i) {
        x = tuple(i, list(map({{term(i), x}})));
        y = tuple(i, list(map({{term(i), y}})));
    }
    EXPECT_LT(x, y);
    EXPECT_NE(x, y);
    EXPECT_NE(x.hash(), y.hash());
}

TEST(TermOrder, DeepChainCompares) {
    term x = term(1), y = term(1);
    for (int i = 0; i < 200000; ++i) {
        x = list(x);
        y = list(y);
    }
    EXPECT_EQ(x, y);
    EXPECT_EQ(x.hash(), y.hash());
    term z = term(2);
    for (int i = 0; i < 200000; ++i)
        z = list(z);
    EXPECT_LT(x, z);
}

TEST(TermOrder, SortRandomIntegersAgreesWithNumericOrder) {
    std::mt19937_64 rng(42);
    std::vector<std::pair<long double, term>> v;
    for (int i = 0; i < 500; ++i) {
        std::int64_t n = static_cast<std::int64_t>(rng());
        switch (i % 3) {
            case 0:
                v.emplace_back(static_cast<long double>(n), term(n));
                break;
            case 1: {
                double d = static_cast<double>(n) / 3.0;
                v.emplace_back(static_cast<long double>(d), term(d));
                break;
            }
            default: {
                term b = *multiply(term(n), term(1000));
                v.emplace_back(static_cast<long double>(n) * 1000, b);
            }
        }
    }
    std::vector<term> ts;
    for (auto& p : v)
        ts.push_back(p.second);
    std::sort(ts.begin(), ts.end());
    std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.first < y.first; });
    for (std::size_t i = 1; i < ts.size(); ++i)
        EXPECT_LE(ts[i - 1], ts[i]);
    // long double has 64-bit mantissa, enough to separate these values mostly; check the
    // ends agree.
    EXPECT_EQ(ts.front(), v.front().second);
    EXPECT_EQ(ts.back(), v.back().second);
}
