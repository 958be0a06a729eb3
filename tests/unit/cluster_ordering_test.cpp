// The node_event ordering contract of <erl/node.hpp>, which the cluster services (global, pg)
// are built on: nodeup before the connection's first message, every noconnection DOWN before
// the nodedown, and no message of a connection its reader closed after the nodedown. Two
// erlcpp nodes in one process, many reconnects, both sides closing.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST(ClusterService, node_events_keep_the_ordering_contract) {
    const auto port = erl::test::free_port();
    erl::node a(erl::test::local_node_options("orda", port));
    erl::node b(erl::test::local_node_options("ordb", port));
    ASSERT_FALSE(a.start());
    ASSERT_FALSE(b.start());
    const erl::atom inbox_name("ordering_inbox");
    auto inbox = a.spawn_mailbox(inbox_name);
    auto watcher = a.spawn_mailbox();
    ASSERT_TRUE(inbox && watcher);

    std::mutex mu;
    std::vector<std::string> problems;
    int ups = 0, downs = 0;
    std::size_t inbox_at_nodedown = 0;
    const auto id = a.monitor_nodes([&](const erl::node_event& ev) {
        if (ev.node != b.name()) return;
        std::lock_guard lk(mu);
        if (ev.up) {
            ++ups;
            // 1. nothing of the new connection is delivered yet
            if (inbox->pending() != 0) problems.push_back("a message arrived before nodeup");
        } else {
            ++downs;
            // 2. the monitor across the connection has fired already
            if (watcher->pending() != 1) problems.push_back("nodedown before the DOWN");
            inbox_at_nodedown = inbox->pending();
        }
    });

    constexpr int rounds = 20;
    constexpr int burst = 200;
    for (int round = 0; round < rounds; ++round) {
        auto target = b.spawn_mailbox();
        ASSERT_TRUE(target);
        // b connects by sending: its first messages travel on the connection coming up.
        for (int i = 0; i < burst; ++i)
            b.send(inbox_name, a.name(), erl::tuple(std::int64_t{round}, std::int64_t{i}));
        ASSERT_TRUE(erl::test::wait_until([&] { return inbox->pending() == burst; }));
        watcher->monitor(target->self());
        // More messages, then a disconnect: by b (a's reader sees the close: every message it
        // read precedes the nodedown) or by a itself (another thread closes the connection).
        const bool peer_closes = round % 2 == 0;
        for (int i = 0; i < burst; ++i)
            b.send(inbox_name, a.name(), erl::tuple(std::int64_t{round}, std::int64_t{burst + i}));
        if (peer_closes)
            b.disconnect(a.name());
        else
            a.disconnect(b.name());
        ASSERT_TRUE(erl::test::wait_until([&] {
            std::lock_guard lk(mu);
            return downs == round + 1;
        }));
        auto down = watcher->receive(5s);
        ASSERT_TRUE(down);
        ASSERT_TRUE(down->is_tuple(5));
        EXPECT_EQ((*down)[4], erl::term(erl::atom("noconnection")));
        // b may still be writing when a closes, so wait until b has seen the nodedown too
        // before counting what reached the inbox.
        ASSERT_TRUE(erl::test::wait_until([&] { return !b.is_connected(a.name()); }));
        std::size_t received = 0;
        int last = -1;
        while (auto m = inbox->receive(0ms)) {
            // per-sender order: the sequence numbers only increase
            const int seq = static_cast<int>((*m)[1].as_int64());
            EXPECT_GT(seq, last);
            last = seq;
            ++received;
        }
        std::lock_guard lk(mu);
        // 3. a connection its reader closed delivers nothing after the nodedown
        if (peer_closes) EXPECT_EQ(received, inbox_at_nodedown) << "round " << round;
        EXPECT_GE(received, static_cast<std::size_t>(burst));
    }
    a.demonitor_nodes(id);
    std::lock_guard lk(mu);
    EXPECT_EQ(ups, rounds);
    EXPECT_EQ(downs, rounds);
    EXPECT_TRUE(problems.empty()) << problems.front();
    b.stop();
    a.stop();
}
