// The embeddable epmd server driven by our client, in process, on 127.0.0.1 with an ephemeral
// port (never 4369).
#include <gtest/gtest.h>

#include <erl/epmd.hpp>

#include "epmd/codec.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

namespace erl::epmd {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

class EpmdServer : public testing::Test {
  protected:
    void start(server::options o = {}) {
        o.port = 0;
        if (o.addresses.empty()) o.addresses = {"127.0.0.1"};
        srv_ = std::make_unique<server>(server_io_.get_executor(), std::move(o));
        ASSERT_FALSE(srv_->start());
        port_ = srv_->port();
        ASSERT_NE(port_, 0);
        thread_ = std::thread([this] { server_io_.run(); });
    }
    void SetUp() override { start(); }
    void TearDown() override {
        regs_.clear();
        if (srv_) srv_->stop();
        guard_.reset();
        if (thread_.joinable()) thread_.join();
        srv_.reset();
    }

    template <class T>
    T sync(asio::awaitable<T> op) {
        std::optional<T> out;
        asio::co_spawn(
            client_io_, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(op)); },
            asio::detached);
        client_io_.restart();
        client_io_.run();
        return std::move(*out);
    }

    erl::result<registration> reg(std::string name, std::uint16_t highest = 6) {
        node_info info{.name = std::move(name), .port = 5555, .highest = highest, .lowest = 5};
        return sync(async_register("127.0.0.1", port_, info, 5s));
    }

    std::vector<std::pair<std::string, std::uint16_t>> listed() {
        auto r = names("127.0.0.1", port_, 5s);
        EXPECT_TRUE(r.has_value());
        return r ? *r : decltype(listed()){};
    }

    bool listed_name(const std::string& n) {
        for (auto& [name, p] : listed())
            if (name == n) return true;
        return false;
    }

    // Waits (bounded) until the name disappears; the server sees the close asynchronously.
    bool eventually_unlisted(const std::string& n) {
        for (int i = 0; i < 500; ++i) {
            if (!listed_name(n)) return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }

    // A fresh connection to the server.
    tcp::socket open(asio::io_context& io) {
        tcp::socket s(io);
        s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_));
        return s;
    }

    // Sends raw bytes on a fresh connection and returns what the server sent until it closed.
    std::string raw_exchange(const std::string& bytes) {
        asio::io_context io;
        auto s = open(io);
        asio::write(s, asio::buffer(bytes));
        std::string out;
        boost::system::error_code ec;
        char buf[256];
        for (;;) {
            std::size_t n = s.read_some(asio::buffer(buf), ec);
            out.append(buf, n);
            if (ec) break;
        }
        return out;
    }

    asio::io_context server_io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_{server_io_.get_executor()};
    std::thread thread_;
    std::unique_ptr<server> srv_;
    std::uint16_t port_ = 0;
    asio::io_context client_io_;
    std::vector<registration> regs_;
};

TEST_F(EpmdServer, register_lookup_and_names) {
    auto r = reg("alpha");
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_GE(r->creation(), 4u);  // 'v' reply: a 32-bit time-based creation
    auto info = port_please("127.0.0.1", port_, "alpha", 5s);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->port, 5555);
    EXPECT_EQ(info->name, "alpha");
    EXPECT_EQ(info->highest, 6);
    EXPECT_EQ(info->lowest, 5);
    auto all = listed();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0], (std::pair<std::string, std::uint16_t>{"alpha", 5555}));
    auto raw = raw_request("127.0.0.1", port_, "n", 5s);
    ASSERT_TRUE(raw.has_value());
    EXPECT_EQ(raw->substr(4), "name alpha at port 5555\n");
    EXPECT_EQ(srv_->registered().size(), 1u);
}

TEST_F(EpmdServer, unknown_name_is_not_found) {
    auto info = port_please("127.0.0.1", port_, "nobody", 5s);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error(), erl::errc::epmd_not_found);
}

TEST_F(EpmdServer, duplicate_name_is_refused_and_close_frees_it) {
    auto a = reg("dup");
    ASSERT_TRUE(a.has_value());
    auto b = reg("dup");
    ASSERT_FALSE(b.has_value());
    EXPECT_EQ(b.error(), erl::errc::epmd_name_taken);
    auto c1 = a->creation();
    a->close();
    ASSERT_TRUE(eventually_unlisted("dup"));
    auto again = reg("dup");
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->creation(), c1 + 1);  // OTP bumps the creation of a reused name
}

// ALIVE2_REQ bytes for a name (and extra data) the codec's client side would never send.
std::string alive2_bytes(std::string name, std::uint16_t highest = 6, std::string extra = {}) {
    node_info info{.name = std::move(name), .port = 5555, .highest = highest, .lowest = 5};
    info.extra = std::move(extra);
    auto b = detail::encode_alive2_request(info);
    return std::string(b.begin(), b.end());
}

TEST_F(EpmdServer, old_protocol_registration_gets_y_reply) {
    asio::io_context io;
    auto s = open(io);
    // ALIVE2_REQ with HighestVersion 5: epmd_srv.c answers 'y' with a 16-bit creation 1..3.
    asio::write(s, asio::buffer(alive2_bytes("o", 5)));
    unsigned char raw[4];
    asio::read(s, asio::buffer(raw));
    EXPECT_EQ(raw[0], 'y');
    EXPECT_EQ(raw[1], 0);
    EXPECT_EQ(raw[2], 0);
    EXPECT_GE(raw[3], 1);
    EXPECT_LE(raw[3], 3);
}

TEST_F(EpmdServer, extra_bytes_on_registration_end_it) {
    asio::io_context io;
    auto s = open(io);
    asio::write(s, asio::buffer(alive2_bytes("q")));
    char reply[6];
    asio::read(s, asio::buffer(reply));
    EXPECT_EQ(reply[0], 'v');
    EXPECT_TRUE(listed_name("q"));
    asio::write(s, asio::buffer("z", 1));
    EXPECT_TRUE(eventually_unlisted("q"));
}

TEST_F(EpmdServer, garbage_oversized_and_partial_requests_cost_only_their_client) {
    EXPECT_EQ(raw_exchange(std::string("\x00\x03qqq", 5)), "");  // unknown request
    EXPECT_EQ(raw_exchange(std::string("\x0b\xf2", 2)), "");     // Len 3058: too large
    EXPECT_EQ(raw_exchange(std::string("\x00\x00", 2)), "");     // Len 0
    EXPECT_EQ(raw_exchange(std::string("\x00\x01nn", 4)), "");   // more than announced
    // A partial request held open does not block others.
    asio::io_context io;
    auto partial = open(io);
    asio::write(partial, asio::buffer(std::string("\x00\x10x", 3)));
    auto r = reg("still_works");
    EXPECT_TRUE(r.has_value());
    EXPECT_TRUE(listed_name("still_works"));
}

TEST_F(EpmdServer, refused_registrations_get_the_error_reply_otp_sends) {
    // What OTP 25's epmd answers (node_reg2 refuses; do_request replies result 1, creation 99).
    const std::string v_error("v\x01\x00\x00\x00\x63", 6), y_error("y\x01\x00\x63", 4);
    EXPECT_EQ(raw_exchange(alive2_bytes(std::string(300, 'a'))), v_error);  // > 255 characters
    EXPECT_EQ(raw_exchange(alive2_bytes("\xff\xfe")), v_error);             // not UTF-8
    EXPECT_EQ(raw_exchange(alive2_bytes(std::string(300, 'a'), 5)), y_error);
    EXPECT_EQ(raw_exchange(alive2_bytes("n", 6, std::string(1021, 'e'))), v_error);
    // Malformed: no reply at all, as OTP.
    EXPECT_EQ(raw_exchange(alive2_bytes(std::string("a\0b", 3))), "");
    EXPECT_TRUE(listed().empty());
}

class EpmdServerFull : public EpmdServer {
  protected:
    void SetUp() override {
        server::options o;
        o.max_connections = 4;
        o.packet_timeout = std::chrono::seconds(60);
        start(std::move(o));
    }
};

// True once the server has closed `s` (bounded by a receive timeout).
bool closed_by_server(tcp::socket& s) {
    timeval tv{10, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b[16];
    boost::system::error_code ec;
    s.read_some(asio::buffer(b), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
}

TEST_F(EpmdServerFull, idle_connections_give_way_to_new_clients) {
    asio::io_context io;
    std::vector<std::unique_ptr<tcp::socket>> idle;
    for (int i = 0; i < 10; ++i) {
        idle.push_back(std::make_unique<tcp::socket>(open(io)));
    }
    // The oldest idle ones were closed to make room; registration and lookup still work.
    EXPECT_TRUE(closed_by_server(*idle.front()));
    auto r = reg("after_flood");
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(listed_name("after_flood"));
}

class EpmdServerShortTimeout : public EpmdServer {
  protected:
    void SetUp() override {
        server::options o;
        o.packet_timeout = std::chrono::seconds(1);
        start(std::move(o));
    }
};

TEST_F(EpmdServerShortTimeout, idle_and_partial_connections_are_closed_after_packet_timeout) {
    asio::io_context io;
    auto idle = open(io), partial = open(io);
    asio::write(partial, asio::buffer(std::string("\x00\x10x", 3)));
    auto r = reg("stays");  // a registration is not subject to packet_timeout
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(closed_by_server(idle));
    EXPECT_TRUE(closed_by_server(partial));
    EXPECT_TRUE(listed_name("stays"));
}

TEST_F(EpmdServer, kill_refused_with_live_nodes) {
    auto a = reg("live");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(raw_exchange(std::string("\x00\x01k", 3)), "NO");
    EXPECT_EQ(raw_exchange(std::string("\x00\x04sabc", 6)), "");  // STOP needs relaxed mode
    EXPECT_TRUE(listed_name("live"));
    a->close();
    ASSERT_TRUE(eventually_unlisted("live"));
    EXPECT_EQ(raw_exchange(std::string("\x00\x01k", 3)), "OK");
    guard_.reset();
    thread_.join();  // KILL stopped the server, so its io_context runs out of work
    EXPECT_FALSE(answers(port_, 300ms));
}

TEST_F(EpmdServer, many_concurrent_clients) {
    constexpr int n = 200;
    int ok = 0;
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(
            client_io_,
            [&, i]() -> asio::awaitable<void> {
                auto r =
                    co_await async_port_please("127.0.0.1", port_, "x" + std::to_string(i), 10s);
                if (!r && r.error() == erl::errc::epmd_not_found) ++ok;
            },
            asio::detached);
    }
    client_io_.restart();
    client_io_.run();
    EXPECT_EQ(ok, n);
}

TEST(EpmdClient, unreachable_and_timeout_errors) {
    // A port nobody listens on: connection refused.
    asio::io_context io;
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto dead_port = probe.local_endpoint().port();
    probe.close();
    auto r = port_please("127.0.0.1", dead_port, "x", 2s);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), erl::errc::epmd_unreachable);
    // A listener that never answers: the deadline fires.
    tcp::acceptor silent(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto t = port_please("127.0.0.1", silent.local_endpoint().port(), "x", 200ms);
    ASSERT_FALSE(t.has_value());
    EXPECT_EQ(t.error(), erl::errc::timeout);
}

TEST(EpmdClient, default_port_honours_erl_epmd_port) {
    const char* old = std::getenv("ERL_EPMD_PORT");
    std::string saved = old ? old : "";
    ::setenv("ERL_EPMD_PORT", "4444", 1);
    EXPECT_EQ(default_port(), 4444);
    ::setenv("ERL_EPMD_PORT", "notaport", 1);
    EXPECT_EQ(default_port(), 4369);
    ::setenv("ERL_EPMD_PORT", "70000", 1);
    EXPECT_EQ(default_port(), 4369);
    ::unsetenv("ERL_EPMD_PORT");
    EXPECT_EQ(default_port(), 4369);
    if (old) ::setenv("ERL_EPMD_PORT", saved.c_str(), 1);
}

TEST(EpmdStartup, require_running_and_in_process) {
    asio::io_context io;
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto port = probe.local_endpoint().port();
    probe.close();
    std::optional<erl::result<std::unique_ptr<server>>> req, inproc, again;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            req.emplace(co_await async_ensure_epmd(port, startup_mode::require_running));
            inproc.emplace(co_await async_ensure_epmd(port, startup_mode::in_process));
            // Now one answers: require_running succeeds and starts nothing.
            again.emplace(co_await async_ensure_epmd(port, startup_mode::require_running));
            if (*inproc && **inproc) (**inproc)->stop();
        },
        asio::detached);
    io.run();
    ASSERT_TRUE(req && inproc && again);
    ASSERT_FALSE(req->has_value());
    EXPECT_EQ(req->error(), erl::errc::epmd_unreachable);
    ASSERT_TRUE(inproc->has_value());
    ASSERT_NE(inproc->value(), nullptr);
    EXPECT_EQ(inproc->value()->port(), port);
    ASSERT_TRUE(again->has_value());
    EXPECT_EQ(again->value(), nullptr);
}

}  // namespace
}  // namespace erl::epmd
