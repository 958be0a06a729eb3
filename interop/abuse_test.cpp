// Interop: a node under attack by unauthenticated clients still serves real BEAM peers. The
// attackers are raw TCP clients (raw_peer) that connect and never finish the distribution
// handshake; the checks are made from a real OTP node (net_adm:ping/1, messages through the
// echo service).
#include <erl/node.hpp>

#include "epmd/codec.hpp"
#include "harness/cluster.hpp"
#include "harness/named_cluster_test.hpp"
#include "raw_peer.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::echo_service;
using erl::interop::raw_peer;

using AbuseInterop = erl::interop::named_cluster_test<"cppab", "beamab">;

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

// erlcpp-epmd answers malformed and refused requests as OTP's epmd does, byte for byte, and
// closes idle connections after -packet_timeout as OTP's does. Each check runs against both
// daemons started side by side.
namespace {

// ALIVE2_REQ bytes, also for names our client would never send.
std::string alive2_request(const std::string& name, std::uint16_t highest = 6) {
    erl::epmd::node_info info{.name = name, .port = 5555, .highest = highest, .lowest = 5};
    auto b = erl::epmd::detail::encode_alive2_request(info);
    return std::string(b.begin(), b.end());
}

// The daemon's answer to `request` on a fresh connection: the ALIVE2 reply ('v' 6 bytes, 'y'
// 4 bytes) or whatever came before it closed the connection. OTP keeps a connection open after
// an error reply, so this stops at the reply's length.
std::string exchange(std::uint16_t port, const std::string& request) {
    raw_peer p(port);
    p.send_all(std::span(reinterpret_cast<const std::uint8_t*>(request.data()), request.size()));
    std::vector<std::uint8_t> got;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        std::size_t want = got.empty() ? 1 : got[0] == 'v' ? 6 : got[0] == 'y' ? 4 : 1;
        if (got.size() >= want) break;
        if (p.read_some(got, 100ms) == 0) break;  // closed
    }
    return std::string(got.begin(), got.end());
}

}  // namespace

TEST(EpmdAbuseInterop, refused_and_malformed_registrations_answered_as_otp_does) {
    using erl::interop::epmd_instance;
    epmd_instance otp(epmd_instance::flavor::otp);
    epmd_instance ours(epmd_instance::flavor::erlcpp);
    const std::vector<std::pair<const char*, std::string>> cases = {
        {"name of 300 characters", alive2_request(std::string(300, 'a'))},
        {"name of 256 two-byte characters", alive2_request([] {
             std::string s;
             for (int i = 0; i < 256; ++i)
                 s += "\xc3\xa9";
             return s;
         }())},
        {"name not UTF-8", alive2_request("\xff\xfe")},
        {"old protocol, name too long", alive2_request(std::string(300, 'a'), 5)},
        {"NUL in the name", alive2_request(std::string("a\0b", 3))},
        {"packet too small", std::string("\x00\x03x\x00\x01", 5)},
    };
    for (const auto& [what, req] : cases) {
        const std::string want = exchange(otp.port(), req);
        EXPECT_EQ(exchange(ours.port(), req), want) << what;
    }
    EXPECT_EQ(exchange(otp.port(), cases[0].second), std::string("v\x01\x00\x00\x00\x63", 6));
}

TEST(EpmdAbuseInterop, idle_connections_closed_after_packet_timeout_as_otp_does) {
    using erl::interop::epmd_instance;
    for (auto f : {epmd_instance::flavor::otp, epmd_instance::flavor::erlcpp}) {
        epmd_instance e(f, {"-packet_timeout", "1"});
        raw_peer idle(e.port());
        raw_peer partial(e.port());
        const std::uint8_t half[] = {0, 16, 'x'};
        ASSERT_TRUE(partial.send_all(half));
        EXPECT_TRUE(idle.closed_within(10s)) << e.program();
        EXPECT_TRUE(partial.closed_within(10s)) << e.program();
    }
}
