// Interop: a node under attack by unauthenticated clients still serves real BEAM peers. The
// attackers are raw TCP clients (raw_peer) that connect and never finish the distribution
// handshake; the checks are made from a real OTP node (net_adm:ping/1, messages through the
// echo service).
#include <erl/node.hpp>

#include "harness/cluster.hpp"
#include "raw_peer.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::echo_service;
using erl::interop::raw_peer;

class AbuseInterop : public erl::interop::cluster_test {
  protected:
    AbuseInterop() : cluster_test("cppab", "beamab") {}
};

// More connections than max_connections, half of them silent, half stopped after send_name
// (a unique node name each, the challenge never answered): with the defaults the node closes
// the oldest pending ones as new ones come, never makes an atom of an unproven name, and a real
// node still gets pong and its messages through.
TEST_F(AbuseInterop, never_finished_handshakes_do_not_lock_out_net_adm_ping) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    const auto& o = cpp.node->options();
    const std::size_t flood = o.max_connections + 200;
    const std::size_t atoms_before = erl::atom_table_size();
    std::vector<std::unique_ptr<raw_peer>> held;
    for (std::size_t i = 0; i < flood; ++i) {
        held.push_back(std::make_unique<raw_peer>(cpp.node->listen_port()));
        if (i % 2) continue;
        erl::proto::handshake_config cfg;
        cfg.role = erl::proto::handshake_role::initiator;
        cfg.our_name = held.back()->name;
        cfg.cookie = "not_the_cookie";
        cfg.peer_name = cpp.name();
        erl::proto::handshake hs(std::move(cfg));
        hs.start();
        ASSERT_TRUE(held.back()->send_all(hs.take_output()));
    }
    // The node closed all but (at most) max_pending_handshakes of them.
    auto closed = [&] {
        std::size_t n = 0;
        std::vector<std::uint8_t> sink;
        for (auto& p : held) {
            sink.clear();
            if (p->fd < 0 || p->read_some(sink, 0ms) == 0) {
                if (p->fd >= 0) ::close(p->fd);
                p->fd = -1;
                ++n;
            }
        }
        return n;
    };
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return closed() >= flood - o.max_pending_handshakes; }, 20s));
    EXPECT_TRUE(cpp.wait_log("max_pending_handshakes")) << cpp.log_text();
    // The flood still holds its newest sockets; a real node connects regardless.
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(beam.eval("{echo, " + cpp.quoted_name() +
                        "} ! {self(), served}, receive M -> M after 5000 -> timeout end"),
              "served");
    // No name sent by the flood became an atom (the real peer brings a few new ones: its name,
    // and what its global name server sends).
    for (std::size_t i = 0; i < flood; i += 2)
        EXPECT_FALSE(erl::atom::existing(held[i]->name)) << held[i]->name;
    EXPECT_LT(erl::atom_table_size(), atoms_before + 100);
}
