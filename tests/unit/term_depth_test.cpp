// Every algorithm on terms at nesting depths BEAM accepts: a 10,000,000-deep list and a
// 1,000,000-deep tuple nest are built, encoded, decoded, compared, hashed, printed, parsed,
// converted and destroyed without recursion (the C++ stack is a few MB; one frame per level
// would overflow it long before these depths). Run under ASan too (build-san).
#include <erl/etf.hpp>
#include <erl/parse.hpp>
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using erl::term;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ERLCPP_TEST_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ERLCPP_TEST_UNDER_ASAN 1
#endif

#ifdef ERLCPP_TEST_UNDER_ASAN
// Under ASan (build-san) every level costs ~10x the time; 2,000,000 levels still need hundreds
// of MB of C++ stack if any algorithm recursed, and keep the suite within a minute. (The full
// 10,000,000 passes under ASan too, in about 5 minutes.)
constexpr std::size_t list_depth = 2'000'000;
#else
constexpr std::size_t list_depth = 10'000'000;
#endif
constexpr std::size_t tuple_depth = 1'000'000;

// [[[...[Leaf]...]]] with `depth` list levels.
term deep_list(std::size_t depth, term leaf) {
    term t = std::move(leaf);
    for (std::size_t i = 0; i < depth; ++i) {
        term* e;
        term* tail;
        term l = erl::detail::new_list(1, e, tail);
        *e = std::move(t);
        t = std::move(l);
    }
    return t;
}

// {{{...{Leaf}...}}} with `depth` tuple levels.
term deep_tuple(std::size_t depth, term leaf) {
    term t = std::move(leaf);
    for (std::size_t i = 0; i < depth; ++i) {
        term* e;
        term tu = erl::detail::new_tuple(1, e);
        *e = std::move(t);
        t = std::move(tu);
    }
    return t;
}

class TermDepth : public ::testing::TestWithParam<bool> {
  protected:
    // Parameter: true = the list nest, false = the tuple nest.
    std::size_t depth() const { return GetParam() ? list_depth : tuple_depth; }
    term make(term leaf) const {
        return GetParam() ? deep_list(depth(), std::move(leaf))
                          : deep_tuple(depth(), std::move(leaf));
    }
};

TEST_P(TermDepth, encode_and_decode_round_trip_with_default_limits) {
    const term t = make(term(1));
    const auto bytes = erl::etf::encode(t);
    EXPECT_EQ(bytes.size(), erl::etf::encoded_size(t));
    auto back = erl::etf::decode(bytes);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_TRUE(*back == t);
    EXPECT_EQ(back->hash(), t.hash());
    // The explicit limit is still there for those who want it.
    erl::etf::limits lim;
    lim.max_depth = 1000;
    auto refused = erl::etf::decode(bytes, lim);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), erl::make_error_code(erl::errc::too_deep));
}

TEST_P(TermDepth, compare_and_hash_walk_the_whole_nest) {
    // Equal nests that share nothing are compared in the decode test; here a copy (which
    // compares equal at once) and a nest that differs only at its leaf.
    const term a = make(term(1));
    const term b = a;
    const term c = make(term(2));
    EXPECT_TRUE(a == b);
    EXPECT_EQ(a <=> b, std::strong_ordering::equal);
    EXPECT_FALSE(a == c);
    EXPECT_EQ(a <=> c, std::strong_ordering::less);
    EXPECT_EQ(c <=> a, std::strong_ordering::greater);
    EXPECT_EQ(a.hash(), b.hash());
    EXPECT_NE(a.hash(), c.hash());
}

TEST_P(TermDepth, print_and_parse_round_trip) {
    const term t = make(erl::atom("x"));
    const std::string s = erl::to_string(t);
    ASSERT_EQ(s.size(), 2 * depth() + 1);
    EXPECT_EQ(s.substr(0, 3), GetParam() ? "[[[" : "{{{");
    erl::parse_error err;
    auto back = erl::parse(s, err, erl::parse_options{});
    ASSERT_TRUE(back) << err.message;
    EXPECT_TRUE(*back == t);
    erl::parse_options o;
    o.max_depth = 1000;
    EXPECT_FALSE(erl::parse(s, err, o));
}

TEST_P(TermDepth, conversions_and_copies_share_the_nest) {
    const term t = make(term(7));
    auto same = erl::from_term<term>(erl::to_term(t));
    ASSERT_TRUE(same);
    EXPECT_TRUE(*same == t);
    if (GetParam()) {
        auto v = erl::from_term<std::vector<term>>(t);
        ASSERT_TRUE(v);
        ASSERT_EQ(v->size(), 1u);
        EXPECT_TRUE(erl::make_list(*v) == t);
    }
}

TEST_P(TermDepth, destroy_frees_the_nest_iteratively) {
    // Destroying the only reference frees every level; a shared inner level survives.
    term inner;
    {
        term t = make(term(3));
        term x = t;
        for (int i = 0; i < 5; ++i)
            x = GetParam() ? x.as_list().elements[0] : x[0];
        inner = x;
    }
    term x = inner;
    std::size_t levels = 0;
    while (x.is_list() && !x.is_nil()) {
        x = term(x.as_list().elements[0]);
        ++levels;
    }
    while (x.is_tuple()) {
        x = term(x[0]);
        ++levels;
    }
    EXPECT_EQ(levels, depth() - 5);
    EXPECT_TRUE(x == term(3));
}

INSTANTIATE_TEST_SUITE_P(Nests, TermDepth, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "list" : "tuple"; });

}  // namespace
