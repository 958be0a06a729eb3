// node::stats() between two erlcpp nodes in one process: the connection counters move by
// exactly the messages sent, bytes written by one side are the bytes read by the other, rpc
// calls are counted with their outcome and duration, and a refused handshake is counted by
// reason.
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <functional>
#include <thread>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;
using erl::test::local_node_options;

// The connection to `peer` in a snapshot (the test fails if there is none).
erl::connection_stats conn_to(const erl::node_stats& s, erl::atom peer) {
    for (const auto& c : s.connections)
        if (c.peer == peer) return c;
    ADD_FAILURE() << "no connection to " << peer.str();
    return {};
}

std::uint64_t failures(const erl::node_stats& s, std::string_view reason) {
    for (const auto& r : s.handshake_failures)
        if (r.reason == reason) return r.count;
    return 0;
}

struct NodeStats : ::testing::Test {
    std::uint16_t port = free_port();
    erl::node a{local_node_options("stats_a", port)};
    erl::node b{local_node_options("stats_b", port)};
    void SetUp() override {
        ASSERT_FALSE(a.start());
        ASSERT_FALSE(b.start());
        ASSERT_FALSE(a.connect(b.name()));
        ASSERT_TRUE(erl::test::wait_until([&] { return b.is_connected(a.name()); }));
    }
    void TearDown() override {
        a.stop();
        b.stop();
    }
};

TEST_F(NodeStats, counters_move_by_the_messages_sent) {
    auto sink = b.spawn_mailbox(erl::atom("stats_sink"));
    ASSERT_TRUE(sink);
    const auto a0 = conn_to(a.stats(), b.name());
    const auto b0 = conn_to(b.stats(), a.name());
    EXPECT_TRUE(a0.up);
    EXPECT_FALSE(a0.tls);

    constexpr int n = 25;
    for (int i = 0; i < n; ++i)
        a.send(erl::atom("stats_sink"), b.name(), erl::term(std::int64_t{i}));
    for (int i = 0; i < n; ++i)
        ASSERT_TRUE(sink->receive(5s));

    const auto a1 = conn_to(a.stats(), b.name());
    const auto b1 = conn_to(b.stats(), a.name());
    EXPECT_EQ(a1.messages_sent - a0.messages_sent, std::uint64_t{n});
    EXPECT_EQ(b1.messages_received - b0.messages_received, std::uint64_t{n});
    // Small messages: one frame each (no fragments, ticks only every net_ticktime / 4).
    EXPECT_EQ(b1.frames_received - b0.frames_received - (b1.ticks_received - b0.ticks_received),
              std::uint64_t{n});
    EXPECT_EQ(a1.frames_sent - a0.frames_sent - (a1.ticks_sent - a0.ticks_sent), std::uint64_t{n});
    EXPECT_EQ(a1.messages_received - a0.messages_received, 0u);
    EXPECT_GE(a1.last_activity, a0.last_activity);
    EXPECT_GT(b1.bytes_received - b0.bytes_received, std::uint64_t{n} * 4);

    // What one side wrote is what the other read, from the handshake on.
    EXPECT_TRUE(erl::test::wait_until([&] {
        auto sa = conn_to(a.stats(), b.name());
        auto sb = conn_to(b.stats(), a.name());
        return sa.bytes_sent == sb.bytes_received && sb.bytes_sent == sa.bytes_received &&
               sa.send_queue_bytes == 0;
    }));

    const auto s = b.stats();
    EXPECT_EQ(s.node, b.name());
    EXPECT_GE(s.processes, 1u);
    EXPECT_EQ(s.atoms, erl::atom_table_size());
    EXPECT_LE(s.network_atoms, s.atoms);
    EXPECT_EQ(s.atom_limit, erl::atom_table_limit());
    ASSERT_EQ(s.memory.size(), 1u);
    EXPECT_EQ(s.memory[0].kind, "connection_buffers");
    EXPECT_GE(s.memory[0].bytes, 4u * 1024);  // the reader's read buffer at least
}

TEST_F(NodeStats, rpc_calls_are_counted_with_outcome_and_duration) {
    erl::rpc::server rb(b);
    rb.add("t", "add", [](std::int64_t x, std::int64_t y) { return x + y; });
    rb.add("t", "err", [](const erl::term& t) -> erl::term { erl::rpc::raise_error(t); });
    const auto s0 = b.stats();
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(erl::rpc::call(a, b.name(), "t", "add",
                                 erl::make_list({erl::term(std::int64_t{i}), erl::term(1LL)}), 5s)
                      .to_term()
                      .to_string(),
                  "{ok," + std::to_string(i + 1) + "}");
    (void)erl::rpc::call(a, b.name(), "t", "err", erl::make_list({erl::term(erl::atom("x"))}), 5s);
    (void)erl::rpc::call(a, b.name(), "t", "missing", erl::make_list({}), 5s);
    const auto s1 = b.stats();
    EXPECT_EQ(s1.rpc_calls_served - s0.rpc_calls_served, 5u);
    EXPECT_EQ(s1.rpc_calls_failed - s0.rpc_calls_failed, 2u);
    EXPECT_EQ(s1.rpc_call_duration.count() - s0.rpc_call_duration.count(), 5u);
    EXPECT_GT(s1.rpc_call_duration.sum, s0.rpc_call_duration.sum);
    ASSERT_EQ(s1.rpc_call_duration.upper_bounds.size(), s1.rpc_call_duration.counts.size());
    EXPECT_DOUBLE_EQ(s1.rpc_call_duration.upper_bounds.front().count(), 50e-6);
    EXPECT_DOUBLE_EQ(s1.rpc_call_duration.upper_bounds.back().count(), 10.0);
    // Nothing was served by the caller.
    EXPECT_EQ(a.stats().rpc_calls_served, 0u);
}

TEST_F(NodeStats, refused_handshake_is_counted_by_reason) {
    erl::node c{local_node_options("stats_c", port, "another_cookie")};
    ASSERT_FALSE(c.start());
    const auto before = failures(b.stats(), "bad_cookie");
    EXPECT_TRUE(c.connect(b.name(), 5s));
    EXPECT_TRUE(erl::test::wait_until([&] {
        return failures(b.stats(), "bad_cookie") == before + 1;
    })) << erl::to_prometheus_text(b.stats());
    c.stop();
}

}  // namespace
