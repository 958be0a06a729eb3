// The link table alone: every transition of erl_dist_protocol "Link Protocol".
#include "node/link_table.hpp"

#include <gtest/gtest.h>

using erl::detail::link_table;

namespace {
erl::term pid_term(std::uint32_t id, const char* node = "a@127.0.0.1") {
    return erl::term(erl::pid{erl::atom(node), id, 0, 1});
}
}  // namespace

TEST(LinksTable, link_sent_only_once_while_active) {
    link_table t;
    auto b = pid_term(2);
    EXPECT_TRUE(t.link_sent(b));
    EXPECT_FALSE(t.link_sent(b));  // already active: no second LINK
    EXPECT_TRUE(t.is_linked(b));
    EXPECT_EQ(t.active().size(), 1u);
}

TEST(LinksTable, unlink_makes_link_inactive_until_matching_ack) {
    link_table t;
    auto b = pid_term(2);
    t.link_sent(b);
    EXPECT_TRUE(t.unlink_sent(b, 7));
    EXPECT_FALSE(t.is_linked(b));
    EXPECT_FALSE(t.unlink_sent(b, 8));          // not active: no second UNLINK_ID
    EXPECT_FALSE(t.unlink_ack_received(b, 6));  // another id: ignored
    EXPECT_EQ(t.size(), 1u);
    EXPECT_TRUE(t.unlink_ack_received(b, 7));
    EXPECT_EQ(t.size(), 0u);
}

TEST(LinksTable, exit_through_inactive_link_is_ignored_and_clears_it) {
    link_table t;
    auto b = pid_term(2);
    t.link_sent(b);
    t.unlink_sent(b, 1);
    EXPECT_FALSE(t.exit_received(b));  // the exit crossed our unlink: not acted on
    EXPECT_EQ(t.size(), 0u);
    EXPECT_FALSE(t.unlink_ack_received(b, 1));  // late ack finds nothing
}

TEST(LinksTable, exit_through_active_link_is_acted_on_once) {
    link_table t;
    auto b = pid_term(2);
    t.link_received(b);
    EXPECT_TRUE(t.exit_received(b));
    EXPECT_FALSE(t.exit_received(b));
}

TEST(LinksTable, link_received_during_our_unlink_does_not_reactivate) {
    link_table t;
    auto b = pid_term(2);
    t.link_sent(b);
    t.unlink_sent(b, 3);
    EXPECT_FALSE(t.link_received(b));  // ignored: both sides end up unlinked
    EXPECT_FALSE(t.is_linked(b));
    EXPECT_TRUE(t.unlink_ack_received(b, 3));
    EXPECT_EQ(t.size(), 0u);
}

TEST(LinksTable, relink_during_unlink_ignores_the_old_ack) {
    link_table t;
    auto b = pid_term(2);
    t.link_sent(b);
    t.unlink_sent(b, 4);
    EXPECT_TRUE(t.link_sent(b));  // LINK sent again: active, pending unlink forgotten
    EXPECT_TRUE(t.is_linked(b));
    EXPECT_FALSE(t.unlink_ack_received(b, 4));
    EXPECT_TRUE(t.is_linked(b));
}

TEST(LinksTable, unlink_id_received_removes_active_keeps_inactive) {
    link_table t;
    auto b = pid_term(2), c = pid_term(3);
    t.link_received(b);
    t.link_sent(c);
    t.unlink_sent(c, 9);
    t.unlink_id_received(b);
    t.unlink_id_received(c);  // both unlinked at once: ours stays until our ack
    EXPECT_EQ(t.size(), 1u);
    EXPECT_TRUE(t.unlink_ack_received(c, 9));
}

TEST(LinksTable, node_down_returns_active_links_and_drops_inactive_ones) {
    link_table t;
    auto b = pid_term(2, "b@h"), c = pid_term(3, "b@h"), d = pid_term(4, "d@h");
    t.link_sent(b);
    t.link_sent(c);
    t.unlink_sent(c, 1);
    t.link_sent(d);
    auto down = t.on_node_down(erl::atom("b@h"));
    ASSERT_EQ(down.size(), 1u);
    EXPECT_EQ(down[0], b);
    EXPECT_EQ(t.size(), 2u);  // b (removed by its noconnection exit) and d remain
    EXPECT_TRUE(t.exit_received(b));
    EXPECT_EQ(t.take_active(), std::vector<erl::term>{d});
    EXPECT_EQ(t.size(), 0u);
}
