// The link table alone: every transition of erl_dist_protocol "Link Protocol".
#include "node/link_table.hpp"

#include <gtest/gtest.h>

using erl::detail::link_table;

namespace {
erl::term pid_term(std::uint32_t id, const char* node = "a@127.0.0.1") {
    return erl::term(erl::pid{erl::atom(node), id, 0, 1});
}

// A link table and a pid `b` of node a@127.0.0.1 to link with.
class LinksTable : public testing::Test {
  protected:
    // Links `p` from our side, then starts unlinking it with UNLINK_ID `id`.
    void unlinking(const erl::term& p, std::uint64_t id) {
        t.link_sent(p);
        t.unlink_sent(p, id);
    }

    link_table t;
    const erl::term b = pid_term(2);
};
}  // namespace

TEST_F(LinksTable, link_sent_only_once_while_active) {
    EXPECT_TRUE(t.link_sent(b));
    EXPECT_FALSE(t.link_sent(b));  // already active: no second LINK
    EXPECT_TRUE(t.is_linked(b));
    EXPECT_EQ(t.active().size(), 1u);
}

TEST_F(LinksTable, unlink_makes_link_inactive_until_matching_ack) {
    t.link_sent(b);
    EXPECT_TRUE(t.unlink_sent(b, 7));
    EXPECT_FALSE(t.is_linked(b));
    EXPECT_FALSE(t.unlink_sent(b, 8));          // not active: no second UNLINK_ID
    EXPECT_FALSE(t.unlink_ack_received(b, 6));  // another id: ignored
    EXPECT_EQ(t.size(), 1u);
    EXPECT_TRUE(t.unlink_ack_received(b, 7));
    EXPECT_EQ(t.size(), 0u);
}

TEST_F(LinksTable, exit_through_inactive_link_is_ignored_and_clears_it) {
    unlinking(b, 1);
    EXPECT_FALSE(t.exit_received(b));  // the exit crossed our unlink: not acted on
    EXPECT_EQ(t.size(), 0u);
    EXPECT_FALSE(t.unlink_ack_received(b, 1));  // late ack finds nothing
}

TEST_F(LinksTable, exit_through_active_link_is_acted_on_once) {
    t.link_received(b);
    EXPECT_TRUE(t.exit_received(b));
    EXPECT_FALSE(t.exit_received(b));
}

TEST_F(LinksTable, link_received_during_our_unlink_does_not_reactivate) {
    unlinking(b, 3);
    EXPECT_FALSE(t.link_received(b));  // ignored: both sides end up unlinked
    EXPECT_FALSE(t.is_linked(b));
    EXPECT_TRUE(t.unlink_ack_received(b, 3));
    EXPECT_EQ(t.size(), 0u);
}

TEST_F(LinksTable, relink_during_unlink_ignores_the_old_ack) {
    unlinking(b, 4);
    EXPECT_TRUE(t.link_sent(b));  // LINK sent again: active, pending unlink forgotten
    EXPECT_TRUE(t.is_linked(b));
    EXPECT_FALSE(t.unlink_ack_received(b, 4));
    EXPECT_TRUE(t.is_linked(b));
}

TEST_F(LinksTable, unlink_id_received_removes_active_keeps_inactive) {
    const auto c = pid_term(3);
    t.link_received(b);
    unlinking(c, 9);
    t.unlink_id_received(b);
    t.unlink_id_received(c);  // both unlinked at once: ours stays until our ack
    EXPECT_EQ(t.size(), 1u);
    EXPECT_TRUE(t.unlink_ack_received(c, 9));
}

TEST_F(LinksTable, node_down_returns_active_links_and_drops_inactive_ones) {
    const auto b = pid_term(2, "b@h"), c = pid_term(3, "b@h"), d = pid_term(4, "d@h");
    t.link_sent(b);
    unlinking(c, 1);
    t.link_sent(d);
    auto down = t.on_node_down(erl::atom("b@h"));
    ASSERT_EQ(down.size(), 1u);
    EXPECT_EQ(down[0], b);
    EXPECT_EQ(t.size(), 2u);  // b (removed by its noconnection exit) and d remain
    EXPECT_TRUE(t.exit_received(b));
    EXPECT_EQ(t.take_active(), std::vector<erl::term>{d});
    EXPECT_EQ(t.size(), 0u);
}
