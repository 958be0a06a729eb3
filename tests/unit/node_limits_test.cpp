// Per-process and pre-connection bounds of a node: a process's message queue at
// max_message_queue_len (the process is killed, as OTP's max_heap_size kills, or the message is
// dropped), messages queued for a connection still being set up (the output bounds and
// backpressure of docs/node.md "Writes" apply to them too), and large messages decoded off the
// I/O thread arriving in the order they were sent.
#include <erl/epmd.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;
using erl::test::local_node_options;

// Collects the node's log events.
struct log_capture {
    std::mutex mu;
    std::vector<std::string> lines;
    void attach(erl::node_options& o) {
        o.logger = [this](const erl::log_event& e) {
            std::lock_guard lk(mu);
            lines.push_back(erl::format_log_line(e));
        };
    }
    bool contains(const std::string& s) {
        std::lock_guard lk(mu);
        for (const auto& l : lines)
            if (l.find(s) != std::string::npos) return true;
        return false;
    }
};

bool is_down_with(const erl::term& m, const erl::reference& ref, const erl::term& reason) {
    return m.is_tuple(5) && m[0] == erl::term(erl::atom("DOWN")) && m[1] == erl::term(ref) &&
           m[4] == reason;
}

}  // namespace

TEST(NodeLimits, a_message_beyond_max_message_queue_len_kills_the_process) {
    auto opts = local_node_options("mql", free_port());
    opts.max_message_queue_len = 10;
    log_capture logs;
    logs.attach(opts);
    erl::node n(opts);
    ASSERT_FALSE(n.start());
    auto target = n.spawn_mailbox();
    auto watcher = n.spawn_mailbox();
    ASSERT_TRUE(target && watcher);
    const auto ref = watcher->monitor(target->self());
    for (int i = 0; i < 10; ++i)
        watcher->send(target->self(), erl::term(i));
    auto s = n.stats();
    EXPECT_EQ(s.message_queue_len_max, 10u);
    EXPECT_EQ(s.message_queue_len_max_pid, target->self());
    EXPECT_EQ(s.processes_killed_queue_limit, 0u);
    watcher->send(target->self(), erl::term(10));
    auto down = watcher->receive(5s);
    ASSERT_TRUE(down) << down.error().message();
    EXPECT_TRUE(is_down_with(*down, ref, erl::term(erl::atom("killed")))) << *down;
    EXPECT_EQ(target->receive(0ms).error(), erl::errc::exited);
    EXPECT_EQ(target->exit_reason(), erl::term(erl::atom("killed")));
    s = n.stats();
    EXPECT_EQ(s.processes_killed_queue_limit, 1u);
    EXPECT_EQ(s.messages_dropped_queue_limit, 1u);
    EXPECT_TRUE(logs.contains("killed: message queue reached max_message_queue_len (10)"));
    EXPECT_NE(erl::to_prometheus_text(s).find("erlcpp_processes_killed_queue_limit_total 1"),
              std::string::npos);
}

TEST(NodeLimits, drop_keeps_the_first_messages_and_counts_the_rest) {
    auto opts = local_node_options("mqd", free_port());
    opts.max_message_queue_len = 5;
    opts.message_queue_limit = erl::message_queue_limit_action::drop;
    log_capture logs;
    logs.attach(opts);
    erl::node n(opts);
    ASSERT_FALSE(n.start());
    auto target = n.spawn_mailbox();
    ASSERT_TRUE(target);
    for (int i = 0; i < 8; ++i)
        n.send(target->self(), erl::term(i));
    auto s = n.stats();
    EXPECT_EQ(s.message_queue_len_max, 5u);
    EXPECT_EQ(s.messages_dropped_queue_limit, 3u);
    EXPECT_EQ(s.processes_killed_queue_limit, 0u);
    for (int i = 0; i < 5; ++i) {
        auto m = target->receive(1s);
        ASSERT_TRUE(m);
        EXPECT_EQ(*m, erl::term(i));
    }
    EXPECT_EQ(target->receive(20ms).error(), erl::errc::timeout);
    // Room again: the next message is queued.
    n.send(target->self(), erl::term(99));
    auto m = target->receive(1s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, erl::term(99));
    EXPECT_TRUE(logs.contains("messages beyond it are dropped"));
}

TEST(NodeLimits, spawn_option_bounds_one_process_and_remote_senders_hit_it_too) {
    erl::test::node_pair nodes("mqa", "mqb");
    ASSERT_TRUE(nodes.start());
    erl::node& a = nodes.a;
    erl::node& b = nodes.b;
    // A thread body that never takes the messages it is sent: its queue only grows.
    auto bounded = erl::spawn(
        b, erl::process_body([](erl::mailbox& mb) {
            mb.receive_if([](const erl::term& t) { return t == erl::term(erl::atom("never")); });
        }),
        {.max_message_queue_len = 20});
    auto unbounded = b.spawn_mailbox();
    ASSERT_TRUE(bounded && unbounded);
    auto sender = a.spawn_mailbox();
    ASSERT_TRUE(sender);
    const auto ref = sender->monitor(*bounded);
    for (int i = 0; i < 25; ++i) {
        sender->send(*bounded, erl::term(i));
        sender->send(unbounded->self(), erl::term(i));
    }
    auto down = sender->receive(10s);
    ASSERT_TRUE(down) << down.error().message();
    EXPECT_TRUE(is_down_with(*down, ref, erl::term(erl::atom("killed")))) << *down;
    // The node default (unbounded) still holds for the others.
    for (int i = 0; i < 25; ++i) {
        auto m = unbounded->receive(5s);
        ASSERT_TRUE(m);
        EXPECT_EQ(*m, erl::term(i));
    }
    EXPECT_EQ(b.stats().processes_killed_queue_limit, 1u);
}

namespace {

// A node name registered in the test's EPMD whose port accepts TCP connections (the kernel's
// backlog) and never answers: a connection to it stays pending until net_setuptime.
struct silent_peer {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor{io, {boost::asio::ip::make_address("127.0.0.1"), 0}};
    std::optional<erl::epmd::registration> reg;
    std::string name = erl::test::unique_node_name("silent");

    explicit silent_peer(std::uint16_t epmd_port) {
        erl::epmd::node_info info;
        info.name = name.substr(0, name.find('@'));
        info.port = acceptor.local_endpoint().port();
        auto f =
            boost::asio::co_spawn(io, erl::epmd::async_register("127.0.0.1", epmd_port, info, 5s),
                                  boost::asio::use_future);
        io.run();
        auto r = f.get();
        if (r) reg.emplace(std::move(*r));
    }
};

// A node (output_busy_limit 64 KiB) that sends to a silent peer, and 16 KiB messages.
struct pending_setup {
    std::uint16_t epmd = free_port();
    erl::node_options opts;
    log_capture logs;
    std::optional<erl::node> n;
    std::optional<silent_peer> peer;
    erl::term chunk = erl::binary(std::vector<std::uint8_t>(16 * 1024, 7));

    pending_setup(const char* prefix, std::size_t queue_limit,
                  std::chrono::milliseconds setuptime) {
        opts = local_node_options(prefix, epmd);
        opts.output_busy_limit = 64 * 1024;
        opts.output_queue_limit = queue_limit;
        opts.net_setuptime = setuptime;
        logs.attach(opts);
        n.emplace(opts);
    }
    bool start() {
        if (n->start()) return false;
        peer.emplace(epmd);
        return peer->reg.has_value();
    }
    erl::pid to() const { return erl::pid{erl::atom(peer->name), 1, 0, 1}; }
};

const erl::connection_stats* connection_to(const erl::node_stats& s, erl::atom peer) {
    for (const auto& c : s.connections)
        if (c.peer == peer) return &c;
    return nullptr;
}

}  // namespace

TEST(NodeLimits, sends_before_the_connection_is_up_are_bounded_like_output) {
    pending_setup t("pend", std::size_t{64} << 20, 1500ms);
    ASSERT_TRUE(t.start());
    auto mb = t.n->spawn_mailbox();
    ASSERT_TRUE(mb);
    int sent = 0;
    erl::error_code ec;
    while (sent < 100 && !(ec = mb->try_send(t.to(), t.chunk)))
        ++sent;
    ASSERT_EQ(ec, erl::errc::would_block) << "after " << sent << " messages";
    EXPECT_EQ(sent, 4);  // 4 x (16 KiB + its control) reach the 64 KiB busy limit
    auto s = t.n->stats();
    auto* c = connection_to(s, erl::atom(t.peer->name));
    ASSERT_NE(c, nullptr);
    EXPECT_FALSE(c->up);
    EXPECT_GE(c->send_queue_bytes, t.opts.output_busy_limit);

    // A blocking send waits for the connection; the set-up fails at net_setuptime and the
    // send returns then (its message and the queued ones dropped, as Erlang drops messages to
    // an unreachable node).
    std::atomic<bool> done{false};
    std::thread blocked([&] {
        mb->send(t.to(), t.chunk);
        done = true;
    });
    EXPECT_TRUE(erl::test::wait_until([&] { return done.load(); }, 10s));
    blocked.join();
    EXPECT_TRUE(erl::test::wait_until([&] {
        return t.logs.contains("net_setuptime") && t.logs.contains("4 messages, ") &&
               t.logs.contains("queued for the peer before the connection was up are dropped");
    }));
    // A new attempt starts with an empty queue.
    EXPECT_FALSE(mb->try_send(t.to(), t.chunk));
}

TEST(NodeLimits, sends_that_do_not_wait_close_a_pending_connection_past_output_queue_limit) {
    pending_setup t("pendq", 256 * 1024, 20s);
    ASSERT_TRUE(t.start());
    std::atomic<int> sent{0};
    const erl::pid to = t.to();
    const erl::term chunk = t.chunk;
    // A coroutine process runs on the I/O thread, where sends never wait.
    auto p = erl::spawn(
        *t.n, erl::coroutine_body([&](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            for (int i = 0; i < 40; ++i, ++sent)
                ctx.send(to, chunk);
            co_return;
        }));
    ASSERT_TRUE(p);
    EXPECT_TRUE(erl::test::wait_until([&] { return sent.load() == 40; }));
    EXPECT_TRUE(erl::test::wait_until([&] {
        return t.logs.contains(
                   "bytes of output queued for the peer while the connection is being set up") &&
               t.logs.contains("besides its largest message), above output_queue_limit (262144)");
    }));
}

TEST(NodeLimits, large_messages_decoded_off_the_io_thread_keep_their_order) {
    const std::uint16_t epmd = free_port();
    auto ao = local_node_options("offa", epmd);
    auto bo = local_node_options("offb", epmd);
    bo.threads = 1;
    bo.decode_offload_threshold = 1024;
    erl::node a(ao);
    erl::node b(bo);
    ASSERT_FALSE(a.start());
    ASSERT_FALSE(b.start());
    auto rx = b.spawn_mailbox(erl::atom("offload_rx"));
    auto tx = a.spawn_mailbox();
    ASSERT_TRUE(rx && tx);
    // Big (binaries, a 100,000-deep list) and small messages interleaved: every one arrives,
    // in order (the small ones wait for the big one before them).
    erl::term deep = erl::term(erl::atom("bottom"));
    for (int i = 0; i < 100'000; ++i)
        deep = erl::list(deep);
    std::vector<erl::term> sent;
    for (int i = 0; i < 60; ++i) {
        erl::term m = i % 3 == 0 ? erl::tuple(i, erl::binary(std::string(70'000 + i, 'x')))
                      : i == 31  ? erl::tuple(i, deep)
                                 : erl::tuple(i, erl::atom("small"));
        sent.push_back(m);
        tx->send(erl::atom("offload_rx"), b.name(), m);
    }
    for (std::size_t i = 0; i < sent.size(); ++i) {
        auto m = rx->receive(10s);
        ASSERT_TRUE(m) << i;
        EXPECT_EQ(*m, sent[i]) << i;
    }
}

// One message larger than output_queue_limit, then small ones from the same process before any
// write could take it (a coroutine process runs on the I/O thread: its sends never wait): the
// connection keeps up, so every message arrives and it stays up. The small ones count against
// the limit, the large one does not.
TEST(NodeLimits, small_sends_after_one_larger_than_output_queue_limit_keep_the_connection) {
    const std::uint16_t epmd = free_port();
    auto ao = local_node_options("bigq_a", epmd);
    ao.output_busy_limit = 1 << 20;
    ao.output_queue_limit = 8 << 20;
    log_capture logs;
    logs.attach(ao);
    erl::node a(ao), b(local_node_options("bigq_b", epmd));
    ASSERT_FALSE(a.start());
    ASSERT_FALSE(b.start());
    ASSERT_TRUE(a.ping(b.name()));
    auto rx = b.spawn_mailbox();
    ASSERT_TRUE(rx);
    const erl::pid to = rx->self();
    const erl::term big = erl::binary(std::vector<std::uint8_t>(32 << 20, 3));
    auto p = erl::spawn(
        a, erl::coroutine_body([&](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            ctx.send(to, big);
            for (int i = 0; i < 10; ++i)
                ctx.send(to, erl::term(i));
            co_return;
        }));
    ASSERT_TRUE(p);
    auto first = rx->receive(20s);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, big);
    for (int i = 0; i < 10; ++i) {
        auto m = rx->receive(10s);
        ASSERT_TRUE(m) << i;
        EXPECT_EQ(*m, erl::term(i));
    }
    EXPECT_FALSE(logs.contains("limit exceeded"));
    const auto stats = a.stats();
    auto* c = connection_to(stats, b.name());
    ASSERT_NE(c, nullptr);
    EXPECT_TRUE(c->up);
}
