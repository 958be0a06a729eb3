// Interop: resource limits. Each limit is exceeded by a real OTP node or, where OTP
// cannot be made to misbehave on purpose, by a raw peer that speaks the distribution protocol
// through our own sans-io cores (proto::handshake, proto::dist_writer). Exceeding a limit must
// close that connection with a log line naming the limit, and the node must carry on.
#include <erl/node.hpp>

#include "harness/cluster.hpp"
#include "harness/named_cluster_test.hpp"
#include "proto/dist_codec.hpp"
#include "proto/handshake.hpp"
#include "raw_peer.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::echo_service;
using erl::interop::raw_peer;

namespace {

// Splits a byte stream of complete frames (Len:32 + data) into frames, prefix included.
std::vector<std::vector<std::uint8_t>> split_frames(const std::vector<std::uint8_t>& s) {
    std::vector<std::vector<std::uint8_t>> out;
    std::size_t i = 0;
    while (i + 4 <= s.size()) {
        std::size_t len = (std::size_t(s[i]) << 24) | (std::size_t(s[i + 1]) << 16) |
                          (std::size_t(s[i + 2]) << 8) | s[i + 3];
        out.emplace_back(s.begin() + i, s.begin() + i + 4 + len);
        i += 4 + len;
    }
    return out;
}

// The frames of `count` REG_SENDs to 'nobody', each carrying a binary of payload_size bytes,
// written by one writer (one fragment sequence each) for a peer with `flags` in fragments of
// fragment_size bytes.
std::vector<std::vector<std::vector<std::uint8_t>>> fragmented_reg_sends(std::uint64_t flags,
                                                                         std::size_t fragment_size,
                                                                         std::size_t payload_size,
                                                                         int count) {
    erl::proto::writer_options wo;
    wo.fragment_size = fragment_size;
    erl::proto::dist_writer w(flags, wo);
    const erl::term control =
        erl::tuple(erl::term(6), erl::pid{}, erl::atom(""), erl::atom("nobody"));
    const erl::term payload = erl::binary(std::vector<std::uint8_t>(payload_size, 7));
    std::vector<std::vector<std::vector<std::uint8_t>>> out;
    for (int i = 0; i < count; ++i) {
        std::vector<std::uint8_t> bytes;
        w.append_message(bytes, control, &payload);
        out.push_back(split_frames(bytes));
    }
    return out;
}

}  // namespace

class LimitsInterop : public erl::interop::named_cluster_test<"cpplim", "beamlim"> {
  protected:
};

TEST_F(LimitsInterop, message_above_max_message_size_closes_only_that_connection) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.max_message_size = 100000; }));
    echo_service echo(*cpp.node);
    beam_node big(beam_opts());
    beam_node other(beam_opts());
    EXPECT_EQ(other.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    // 50 kB passes, 200 kB closes the connection (BEAM sees nodedown).
    EXPECT_EQ(big.eval("{echo, " + cpp.quoted_name() +
                       "} ! {self(), binary:copy(<<1>>, 50000)}, "
                       "receive B -> byte_size(B) after 5000 -> timeout end"),
              "50000");
    EXPECT_EQ(
        big.eval("monitor_node(" + cpp.quoted_name() + ", true), {echo, " + cpp.quoted_name() +
                 "} ! {self(), binary:copy(<<1>>, 200000)}, "
                 "receive {nodedown, _} -> nodedown after 10000 -> timeout end"),
        "nodedown");
    EXPECT_TRUE(cpp.wait_log("max_message_size (100000 bytes)")) << cpp.log_text();
    // The node carries on: the other peer is still connected, the offender can come back.
    EXPECT_EQ(other.eval("{echo, " + cpp.quoted_name() +
                         "} ! {self(), still_here}, "
                         "receive M -> M after 5000 -> timeout end"),
              "still_here");
    EXPECT_EQ(big.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(LimitsInterop, fragments_in_flight_above_max_fragment_sequences_close_connection) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.max_fragment_sequences = 4; }));
    raw_peer peer(cpp.node->listen_port());
    ASSERT_TRUE(peer.handshake(cpp.name(), cookie));
    ASSERT_TRUE(peer.flags & erl::proto::dflag::fragments);
    // Start 5 fragmented messages and never finish them: send only each first fragment.
    for (const auto& frames : fragmented_reg_sends(peer.flags, 1000, 10000, 5)) {
        ASSERT_GT(frames.size(), 1u);
        ASSERT_TRUE(peer.send_all(frames.front()));
    }
    EXPECT_TRUE(peer.closed_within(10s));
    EXPECT_TRUE(cpp.wait_log("max_fragment_sequences (4)")) << cpp.log_text();
    // The node carries on.
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(LimitsInterop, fragmented_bytes_above_max_fragmented_bytes_close_connection) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.max_fragmented_bytes = 20000; }));
    raw_peer peer(cpp.node->listen_port());
    ASSERT_TRUE(peer.handshake(cpp.name(), cookie));
    const auto frames = fragmented_reg_sends(peer.flags, 8000, 100000, 1).front();
    ASSERT_GT(frames.size(), 4u);
    for (std::size_t i = 0; i + 1 < frames.size(); ++i)  // all but the last fragment
        if (!peer.send_all(frames[i])) break;
    EXPECT_TRUE(peer.closed_within(10s));
    EXPECT_TRUE(cpp.wait_log("max_fragmented_bytes (20000)")) << cpp.log_text();
}

TEST_F(LimitsInterop, new_atoms_above_per_connection_bound_close_connection) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.max_new_atoms_per_connection = 500; }));
    echo_service echo(*cpp.node);
    beam_node beam(beam_opts());
    const std::string prefix = erl::interop::unique_name("fresh");
    // 100 new atoms are fine.
    EXPECT_EQ(beam.eval("A1 = [list_to_atom(\"" + prefix +
                        "_a\" ++ integer_to_list(N)) || N <- "
                        "lists:seq(1, 100)], {echo, " +
                        cpp.quoted_name() +
                        "} ! {self(), A1}, "
                        "receive R -> R =:= A1 after 5000 -> timeout end"),
              "true");
    // 2000 more are not: the connection is closed before the message is delivered.
    const std::size_t before = erl::atom_table_size();
    EXPECT_EQ(beam.eval("monitor_node(" + cpp.quoted_name() +
                        ", true), "
                        "A2 = [list_to_atom(\"" +
                        prefix +
                        "_b\" ++ integer_to_list(N)) || N <- "
                        "lists:seq(1, 2000)], {echo, " +
                        cpp.quoted_name() +
                        "} ! {self(), A2}, "
                        "receive {nodedown, _} -> nodedown after 10000 -> timeout end"),
              "nodedown");
    EXPECT_TRUE(cpp.wait_log("max_new_atoms_per_connection 500")) << cpp.log_text();
    // The bound holds while decoding: no more than 500 - 100 further atoms were created.
    EXPECT_LE(erl::atom_table_size(), before + 400u);
    // The node carries on; the peer may reconnect (with a fresh budget).
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(LimitsInterop, atom_table_bound_refuses_more_atoms_and_node_carries_on) {
    const std::size_t saved = erl::atom_table_limit();
    struct restore {
        std::size_t v;
        ~restore() { erl::set_atom_table_limit(v); }
    } guard{saved};
    // A hidden BEAM node: no global name server traffic, so after the table fills up the peer
    // sends only atoms we know (a visible node's global sync would bring new atoms, and a
    // connection bringing a new atom into a full table is closed — that is the point).
    auto bo = beam_opts();
    bo.extra_args = {"-hidden"};
    beam_node beam(bo);
    // Room for the node's own atoms and the peer's name, not for 3000 more.
    cpp_node cpp(
        cpp_opts([](erl::node_options& o) { o.max_atoms = erl::atom_table_size() + 1000; }));
    echo_service echo(*cpp.node);
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    const std::string prefix = erl::interop::unique_name("table");
    EXPECT_EQ(beam.eval("monitor_node(" + cpp.quoted_name() +
                        ", true), "
                        "A = [list_to_atom(\"" +
                        prefix +
                        "_\" ++ integer_to_list(N)) || N <- "
                        "lists:seq(1, 3000)], {echo, " +
                        cpp.quoted_name() +
                        "} ! {self(), A}, "
                        "receive {nodedown, _} -> nodedown after 10000 -> timeout end"),
              "nodedown");
    EXPECT_TRUE(cpp.wait_log("atom table full")) << cpp.log_text();
    EXPECT_LE(erl::atom_table_size(), erl::atom_table_limit());
    // Known atoms still work: the peer reconnects and messages without new atoms flow (a
    // message bringing a new atom would close the connection again).
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(beam.eval("{echo, " + cpp.quoted_name() +
                        "} ! {self(), {1, <<\"two\">>, [3]}}, "
                        "receive M -> M after 5000 -> timeout end"),
              "{1,<<\"two\">>,[3]}");
}

TEST_F(LimitsInterop, connections_above_max_connections_are_refused) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.max_connections = 1; }));
    beam_node first(beam_opts());
    beam_node second(beam_opts());
    EXPECT_EQ(first.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(second.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pang");
    EXPECT_TRUE(cpp.wait_log("max_connections (1) reached")) << cpp.log_text();
    EXPECT_EQ(cpp.node->connect(erl::atom(second.node_name()), 5s),
              erl::make_error_code(erl::errc::limit_exceeded));
    // The first connection is unaffected; once it goes, there is room again.
    EXPECT_TRUE(cpp.node->is_connected(erl::atom(first.node_name())));
    EXPECT_EQ(first.eval("erlang:disconnect_node(" + cpp.quoted_name() + ")"), "true");
    erl::interop::wait_until([&] { return cpp.node->nodes().empty(); }, 5s);
    EXPECT_EQ(second.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(LimitsInterop, silent_peer_is_dropped_after_net_setuptime) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.net_setuptime = 1s; }));
    // A TCP client that never says anything, and one that stops inside send_name.
    raw_peer silent(cpp.node->listen_port());
    raw_peer partial(cpp.node->listen_port());
    const std::uint8_t half[] = {0, 40, 'N', 0, 0};
    ASSERT_TRUE(partial.send_all(half));
    EXPECT_TRUE(silent.closed_within(10s));
    EXPECT_TRUE(partial.closed_within(10s));
    EXPECT_TRUE(cpp.wait_log("net_setuptime (1000 ms)")) << cpp.log_text();
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(LimitsInterop, peer_silent_after_handshake_is_dropped_after_net_ticktime) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.net_ticktime = 2s; }));
    std::atomic<int> downs{0};
    cpp.node->monitor_nodes([&](const erl::node_event& e) {
        if (!e.up && e.reason == erl::make_error_code(erl::errc::tick_timeout)) ++downs;
    });
    raw_peer peer(cpp.node->listen_port());
    ASSERT_TRUE(peer.handshake(cpp.name(), cookie));
    // Never answer ticks: after 4 silent tick periods (2 s) the node gives up on us.
    EXPECT_TRUE(peer.closed_within(20s));
    EXPECT_TRUE(cpp.wait_log("net_ticktime")) << cpp.log_text();
    EXPECT_EQ(downs.load(), 1);
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

// Any depth BEAM accepts: a 10,000,000-deep list and a 1,000,000-deep tuple nest built by a
// real node come back from the echo service equal (decoded, re-encoded and freed here without
// recursion or a depth limit).
TEST_F(LimitsInterop, deeply_nested_terms_round_trip_through_echo) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("L = lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 10000000)), "
                        "{echo, " +
                            cpp.quoted_name() +
                            "} ! {self(), L}, "
                            "receive R -> R =:= L after 60000 -> timeout end",
                        std::chrono::seconds(90)),
              "true");
    EXPECT_EQ(beam.eval("T = lists:foldl(fun(_, A) -> {A} end, leaf, lists:seq(1, 1000000)), "
                        "{echo, " +
                            cpp.quoted_name() +
                            "} ! {self(), T}, "
                            "receive R2 -> R2 =:= T after 60000 -> timeout end",
                        std::chrono::seconds(90)),
              "true");
    // The connection stayed up throughout.
    EXPECT_EQ(beam.eval("lists:member(" + cpp.quoted_name() + ", nodes())"), "true");
}
