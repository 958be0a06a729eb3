// Output of a node towards its peers: a peer that does not read makes its connection busy
// (try_send reports would_block, a blocking send waits and resumes once the peer reads), and
// the node's sockets are close-on-exec (a forked and exec'ed child holds none of them).
#include <erl/etf.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>

#include <gtest/gtest.h>

#include "lazy_peer.hpp"
#include "node_test_support.hpp"
#include "proto/handshake.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;
using erl::test::lazy_peer;
using erl::test::local_node_options;

std::size_t queued_to(const erl::node& n, erl::atom peer) {
    for (const auto& c : n.stats().connections)
        if (c.peer == peer) return c.send_queue_bytes;
    return 0;
}

// A node with a small output_busy_limit and a lazy_peer connected to it that reads nothing
// until told to; a mailbox of the node sends 64 KiB binaries to a pid of the peer.
class NodeOutput : public testing::Test {
  protected:
    void start(const char* prefix, std::size_t busy_limit) {
        opts_ = local_node_options(prefix, free_port());
        opts_.listen_port = free_port();
        opts_.output_busy_limit = busy_limit;
        n_.emplace(opts_);
        ASSERT_FALSE(n_->start());
        peer_ = std::make_unique<lazy_peer>(n_->listen_port());
        ASSERT_GE(peer_->fd, 0);
        ASSERT_TRUE(peer_->handshake(std::string(n_->name().str()), opts_.cookie));
        peer_node_ = erl::atom(peer_->name);
        ASSERT_TRUE(erl::test::wait_until([&] { return n_->is_connected(peer_node_); }));
        auto mb = n_->spawn_mailbox();
        ASSERT_TRUE(mb);
        mb_.emplace(std::move(*mb));
        to_ = erl::pid{peer_node_, 1, 0, 0x1234};
    }

    erl::node_options opts_;
    std::optional<erl::node> n_;
    std::unique_ptr<lazy_peer> peer_;
    erl::atom peer_node_;
    std::optional<erl::mailbox> mb_;
    erl::pid to_;
    const erl::term chunk_ = erl::binary(std::vector<std::uint8_t>(64 * 1024, 7));
};

}  // namespace

TEST_F(NodeOutput, try_send_would_block_and_blocking_send_resumes_when_the_peer_reads) {
    ASSERT_NO_FATAL_FAILURE(start("out", 256 * 1024));

    // The kernel's socket buffers fill first, then the node's queue up to the busy limit.
    int sent = 0;
    erl::error_code ec;
    while (sent < 4096 && !(ec = mb_->try_send(to_, chunk_)))
        ++sent;
    ASSERT_EQ(ec, erl::errc::would_block) << "after " << sent << " messages";
    EXPECT_GT(queued_to(*n_, peer_node_), 0u);

    std::atomic<bool> done{false};
    std::thread blocked([&] {
        mb_->send(to_, chunk_);
        done = true;
    });
    // The peer reads everything: the blocking send completes, try_send succeeds again.
    std::atomic<bool> reading{true};
    std::atomic<std::size_t> received{0};
    std::thread reader([&] {
        std::vector<std::uint8_t> sink;
        while (reading) {
            sink.clear();
            const long r = peer_->read_some(sink, 20ms);
            if (r == 0) break;
            if (r > 0) received.fetch_add(static_cast<std::size_t>(r));
        }
    });
    EXPECT_TRUE(erl::test::wait_until([&] { return done.load(); }, 30s));
    blocked.join();
    EXPECT_TRUE(erl::test::wait_until([&] { return !mb_->try_send(to_, chunk_); }, 30s));
    EXPECT_TRUE(n_->is_connected(peer_node_));
    // Everything queued reaches the peer: the messages try_send took and the blocking one.
    const std::size_t payload_bytes = static_cast<std::size_t>(sent + 1) * 64 * 1024;
    EXPECT_TRUE(erl::test::wait_until([&] { return received.load() >= payload_bytes; }, 30s))
        << received.load() << " of " << payload_bytes << " bytes";
    reading = false;
    reader.join();
    n_->stop();
}

// A sender waiting on a busy connection is released when the connection goes away (here the
// peer closes it without ever reading).
TEST_F(NodeOutput, blocking_send_returns_when_the_busy_connection_closes) {
    ASSERT_NO_FATAL_FAILURE(start("outc", 128 * 1024));
    int sent = 0;
    while (sent < 4096 && !mb_->try_send(to_, chunk_))
        ++sent;
    // The sender sends until the connection is gone; as the peer never reads, one of its sends
    // ends up waiting. The kernel may still take some of the queue after try_send first reported
    // would_block, so the sender's first send need not be the one that waits.
    std::atomic<bool> in_send{false};
    std::atomic<bool> done{false};
    std::thread blocked([&] {
        while (n_->is_connected(peer_node_)) {
            in_send = true;
            mb_->send(to_, chunk_);
            in_send = false;
        }
        done = true;
    });
    // Closed once the sender is inside a send while the connection is busy (a try_send that
    // finds room queues one more chunk, which only fills the connection further).
    EXPECT_TRUE(erl::test::wait_until(
        [&] { return in_send.load() && mb_->try_send(to_, chunk_) == erl::errc::would_block; },
        30s));
    peer_.reset();  // the peer goes away without reading: the waiting sender is released
    EXPECT_TRUE(erl::test::wait_until([&] { return done.load(); }, 30s));
    blocked.join();
    EXPECT_FALSE(n_->is_connected(peer_node_));
    n_->stop();
}

// Every socket of a node (listener, EPMD registration and the in-process EPMD's, connections
// in both directions) is close-on-exec: a child forked and exec'ed meanwhile holds none.
TEST_F(NodeOutput, sockets_are_close_on_exec) {
    erl::test::node_pair nodes("cloexec_a", "cloexec_b");
    ASSERT_TRUE(nodes.start());
    erl::node& a = nodes.a;
    erl::node& b = nodes.b;
    ASSERT_TRUE(a.ping(b.name()));
    ASSERT_TRUE(erl::test::wait_until([&] { return b.is_connected(a.name()); }));

    // The parent holds sockets (so the check below is not vacuous).
    auto sockets_in = [](const std::string& listing) {
        std::size_t n = 0;
        for (std::size_t at = 0; (at = listing.find("socket:", at)) != std::string::npos; ++at)
            ++n;
        return n;
    };
    std::string parent;
    if (FILE* f = ::popen(("ls -l /proc/" + std::to_string(::getpid()) + "/fd").c_str(), "r"); f) {
        char buf[4096];
        while (std::size_t k = std::fread(buf, 1, sizeof buf, f))
            parent.append(buf, k);
        ::pclose(f);
    }
    EXPECT_GE(sockets_in(parent), 5u) << parent;

    int out[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::dup2(out[1], 1);  // dup2 clears close-on-exec on the copy
        ::execl("/bin/ls", "ls", "-l", "/proc/self/fd", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string listing;
    char buf[4096];
    for (ssize_t k; (k = ::read(out[0], buf, sizeof buf)) > 0;)
        listing.append(buf, static_cast<std::size_t>(k));
    ::close(out[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << listing;
    EXPECT_NE(listing.find("pipe:"), std::string::npos) << listing;  // it did list its fds
    EXPECT_EQ(sockets_in(listing), 0u) << listing;
    a.stop();
    b.stop();
}

// Compressed payloads whose frames span reads, back to back, and the message after them arrive
// in order at a coroutine process.
TEST_F(NodeOutput, compressed_messages_spanning_reads_arrive_in_order) {
    const std::uint16_t epmd = free_port();
    auto opts = local_node_options("cmp", epmd);
    opts.threads = 1;
    erl::node n(opts);
    ASSERT_FALSE(n.start());
    // A coroutine process (on the I/O thread) counts what it gets until `after`.
    std::atomic<int> bigs{0};
    std::atomic<bool> after{false};
    ASSERT_TRUE(erl::spawn(
        n, erl::coroutine_body([&](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            while (auto m = co_await ctx.async_receive()) {
                if (*m == erl::term(erl::atom("after"))) {
                    after = true;
                    co_return;
                }
                if (m->size() == std::size_t{64} << 20) ++bigs;
            }
        }),
        {.name = erl::atom("cmp_rx")}));
    lazy_peer peer(n.listen_port());
    ASSERT_GE(peer.fd, 0);
    ASSERT_TRUE(peer.handshake(std::string(n.name().str()), opts.cookie));
    const erl::term from = erl::pid{erl::atom(peer.name), 1, 0, 0x1234};
    auto frame = [&](const erl::term& payload, int level) {
        std::vector<std::uint8_t> body{131, 68, 0};
        erl::etf::encode_body(body, erl::tuple(6, from, erl::atom(""), erl::atom("cmp_rx")));
        auto p = erl::etf::encode(payload, {.compression_level = level});
        body.insert(body.end(), p.begin() + 1, p.end());
        std::vector<std::uint8_t> f;
        for (int s = 24; s >= 0; s -= 8)
            f.push_back(static_cast<std::uint8_t>(body.size() >> s));
        f.insert(f.end(), body.begin(), body.end());
        return f;
    };
    // 64 MiB of zeros compress to a ~65 KB frame: larger than one read, so each is completed
    // across reads; four back to back.
    const erl::term big = erl::binary(std::vector<std::uint8_t>(64u << 20, 0));
    std::vector<std::uint8_t> all;
    const auto one = frame(big, 9);
    for (int i = 0; i < 4; ++i)
        all.insert(all.end(), one.begin(), one.end());
    auto small = frame(erl::term(erl::atom("after")), 0);
    all.insert(all.end(), small.begin(), small.end());
    ASSERT_EQ(::send(peer.fd, all.data(), all.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(all.size()));
    EXPECT_TRUE(erl::test::wait_until([&] { return after.load(); }, 20s)) << bigs.load();
    EXPECT_EQ(bigs.load(), 4);
}
