// The epmd name table: OTP's creation numbering (epmd_srv.c node_reg2, bump_creation,
// get_creation) and registration lifetime bookkeeping.
#include <gtest/gtest.h>

#include "epmd/registry.hpp"

namespace erl::epmd::detail {
namespace {

node_info node(std::string name, std::uint16_t highest = 6) {
    return node_info{.name = std::move(name), .port = 1000, .highest = highest, .lowest = 5};
}

TEST(EpmdRegistry, fresh_name_gets_time_plus_one) {
    registry r(1000, [] { return 1'700'000'000u; });
    EXPECT_EQ(r.add(node("a"), 1), 1'700'000'001u);
}

TEST(EpmdRegistry, creation_never_in_reserved_range) {
    registry r(1000, [] { return 1u; });  // counter would be 2: bumped to 4
    EXPECT_EQ(r.add(node("a"), 1), 4u);
}

TEST(EpmdRegistry, duplicate_name_is_refused_until_unregistered) {
    registry r(1000, [] { return 100u; });
    ASSERT_TRUE(r.add(node("a"), 1));
    EXPECT_FALSE(r.add(node("a"), 2));
    EXPECT_EQ(r.remove_by_conn(1), 1u);
    EXPECT_TRUE(r.add(node("a"), 2));
}

TEST(EpmdRegistry, reregistration_bumps_creation) {
    std::uint32_t now = 500;
    registry r(1000, [&] { return now; });
    auto c1 = r.add(node("a"), 1);
    r.remove_by_conn(1);
    now = 9999;  // the clock is only used for names never seen before
    auto c2 = r.add(node("a"), 2);
    ASSERT_TRUE(c1 && c2);
    EXPECT_EQ(*c2, *c1 + 1);
}

TEST(EpmdRegistry, old_protocol_nodes_get_creation_1_to_3) {
    registry r(1000, [] { return 1'700'000'000u; });
    auto c = r.add(node("old", 5), 1);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, (1'700'000'001u % 3) + 1);
    for (int i = 2; i < 8; ++i) {
        r.remove_by_conn(i - 1);
        auto next = r.add(node("old", 5), i);
        ASSERT_TRUE(next);
        EXPECT_GE(*next, 1u);
        EXPECT_LE(*next, 3u);
        EXPECT_NE(*next, *c);  // consecutive incarnations differ
        c = next;
    }
}

TEST(EpmdRegistry, newest_first_and_remove_by_name) {
    registry r;
    r.add(node("a"), 1);
    r.add(node("b"), 2);
    ASSERT_EQ(r.active().size(), 2u);
    EXPECT_EQ(r.active().front().info.name, "b");
    EXPECT_EQ(r.remove_by_name("a"), 1u);
    EXPECT_FALSE(r.remove_by_name("a"));
    EXPECT_EQ(r.find("a"), nullptr);
    ASSERT_NE(r.find("b"), nullptr);
    EXPECT_EQ(r.unused().size(), 1u);
}

TEST(EpmdRegistry, unused_names_are_bounded) {
    registry r(5, [] { return 10u; });
    for (std::uint64_t i = 0; i < 50; ++i) {
        ASSERT_TRUE(r.add(node("n" + std::to_string(i)), i));
        r.remove_by_conn(i);
    }
    EXPECT_LE(r.unused().size(), 6u);
}

TEST(EpmdRegistry, invalid_names_are_refused) {
    registry r;
    EXPECT_FALSE(r.add(node(""), 1));
    EXPECT_FALSE(r.add(node(std::string(256, 'a')), 1));
    node_info big = node("x");
    big.extra.assign(1021, 'e');
    EXPECT_FALSE(r.add(big, 1));
}

}  // namespace
}  // namespace erl::epmd::detail
