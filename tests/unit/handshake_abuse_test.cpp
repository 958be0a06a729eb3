// Unauthenticated incoming connections: the pending-handshake gate on its own, and a node
// facing raw TCP clients that open handshakes and never finish them. Loopback only; the EPMD
// is embedded in the first node on a free port.
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include "common/byte_order.hpp"
#include "node_test_support.hpp"
#include "proto/dist_flags.hpp"
#include "proto/handshake_gate.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

using erl::proto::handshake_gate;

TEST(HandshakeGate, oldest_pending_handshake_gives_way_when_full) {
    handshake_gate g;
    std::vector<int> evicted;
    std::vector<handshake_gate::ticket> t;
    const handshake_gate::limits lim{3, 0};
    for (int i = 0; i < 5; ++i)
        t.push_back(g.enter(
            "10.0.0." + std::to_string(i), [&, i] { evicted.push_back(i); }, lim));
    EXPECT_EQ(evicted, (std::vector<int>{0, 1}));
    EXPECT_EQ(g.pending(), 3u);
    g.leave(t[3]);
    EXPECT_EQ(g.pending(), 2u);
    g.enter(
        "10.0.0.9", [&] { evicted.push_back(9); }, lim);
    EXPECT_EQ(evicted.size(), 2u);  // room was left by the finished one
    g.leave(t[0]);                  // already evicted: ignored
    g.leave(0);
    EXPECT_EQ(g.pending(), 3u);
}

TEST(HandshakeGate, per_address_bound_evicts_that_address_only) {
    handshake_gate g;
    std::vector<std::string> evicted;
    const handshake_gate::limits lim{100, 2};
    g.enter(
        "a", [&] { evicted.push_back("a0"); }, lim);
    g.enter(
        "b", [&] { evicted.push_back("b0"); }, lim);
    g.enter(
        "a", [&] { evicted.push_back("a1"); }, lim);
    g.enter(
        "a", [&] { evicted.push_back("a2"); }, lim);
    g.enter(
        "a", [&] { evicted.push_back("a3"); }, lim);
    EXPECT_EQ(evicted, (std::vector<std::string>{"a0", "a1"}));
    EXPECT_EQ(g.pending_from("a"), 2u);
    EXPECT_EQ(g.pending_from("b"), 1u);
    EXPECT_EQ(g.pending(), 3u);
}

erl::node_options opts(std::uint16_t epmd_port) {
    return erl::test::local_node_options("gate", "gate_cookie", epmd_port);
}

// A raw distribution client: TCP connect and, optionally, a version-6 send_name.
struct raw_client {
    tcp::socket s;
    raw_client(asio::io_context& io, std::uint16_t port) : s(io) {
        s.connect({asio::ip::make_address("127.0.0.1"), port});
        // Reads below wait for the node's answer, bounded so a broken node fails the test.
        timeval tv{10, 0};
        ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    void send_name(const std::string& name) {
        std::vector<std::uint8_t> m(2);
        m.push_back('N');
        erl::detail::append_be64(m, erl::proto::dflag::default_advertised(false));
        erl::detail::append_be32(m, 1);
        erl::detail::append_be16(m, static_cast<std::uint16_t>(name.size()));
        m.insert(m.end(), name.begin(), name.end());
        erl::detail::store_be16(m.data(), static_cast<std::uint16_t>(m.size() - 2));
        asio::write(s, asio::buffer(m));
    }
    // The acceptor's status message ('s' + text).
    std::string read_status() {
        std::uint8_t len[2];
        asio::read(s, asio::buffer(len));
        std::string body(erl::detail::load_be16(len), '\0');
        asio::read(s, asio::buffer(body));
        return body;
    }
    // True once the node has closed the connection.
    bool closed_by_peer() {
        std::uint8_t b[64];
        boost::system::error_code ec;
        for (;;) {
            s.read_some(asio::buffer(b), ec);
            if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
        }
    }
};

TEST(HandshakeAbuse, names_of_unauthenticated_peers_never_become_atoms) {
    const auto port = erl::test::free_port();
    erl::node a(opts(port));
    ASSERT_FALSE(a.start());
    asio::io_context io;
    const std::string prefix = "flood_" + std::to_string(::getpid()) + "_";
    const std::size_t atoms_before = erl::atom_table_size();
    constexpr int n = 3000;
    for (int i = 0; i < n; ++i) {
        raw_client c(io, a.listen_port());
        c.send_name(prefix + std::to_string(i) + "@127.0.0.1");
        // The status is sent after the node decided on the name: "ok", then the challenge,
        // which is never answered.
        ASSERT_EQ(c.read_status(), "sok") << i;
    }
    EXPECT_EQ(erl::atom_table_size(), atoms_before);
    for (int i = 0; i < n; i += 97)
        EXPECT_FALSE(erl::atom::existing(prefix + std::to_string(i) + "@127.0.0.1"));
    // A peer that proves the cookie still gets in, and its name becomes an atom then.
    erl::node b(opts(port));
    ASSERT_FALSE(b.start());
    EXPECT_TRUE(b.ping(a.name(), 5s));
    EXPECT_TRUE(a.is_connected(b.name()));
}

TEST(HandshakeAbuse, idle_connections_do_not_lock_out_authenticated_peers) {
    const auto port = erl::test::free_port();
    auto o = opts(port);
    o.max_connections = 4;
    o.max_pending_handshakes = 8;
    o.max_pending_handshakes_per_address = 6;
    erl::node a(o);
    ASSERT_FALSE(a.start());
    asio::io_context io;
    // Far more idle connections than max_connections: they never send a byte.
    std::vector<std::unique_ptr<raw_client>> idle;
    for (int i = 0; i < 40; ++i)
        idle.push_back(std::make_unique<raw_client>(io, a.listen_port()));
    // The oldest gave way to the newer ones (or were refused while the node was still taking
    // them in); either way the node closed them.
    EXPECT_TRUE(idle.front()->closed_by_peer());
    // Authenticated peers come in, up to max_connections, while the flood holds its sockets.
    std::vector<std::unique_ptr<erl::node>> peers;
    for (int i = 0; i < 3; ++i) {
        peers.push_back(std::make_unique<erl::node>(opts(port)));
        ASSERT_FALSE(peers.back()->start());
        EXPECT_TRUE(peers.back()->ping(a.name(), 5s)) << i;
    }
    EXPECT_EQ(a.nodes().size(), 3u);
}

}  // namespace
