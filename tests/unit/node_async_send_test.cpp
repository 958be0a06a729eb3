// mailbox::async_send and process_context::async_send towards a peer that reads only when told
// to: the send completes at once while the connection has room, waits (no thread held) while
// it is busy and completes once the peer has read; a cancelled one is never sent; the node's
// stop and a lost connection end a waiting one; and what arrives at the peer is in the order it
// was sent, also when async sends wait and blocking sends and try_send come after them.
#include <erl/node.hpp>
#include <erl/process.hpp>

#include "completion_future.hpp"
#include "lazy_peer.hpp"
#include "node_test_support.hpp"
#include "proto/dist_codec.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using erl::test::lazy_peer;
using erl::test::tuple_future;
using erl::test::wait_until;

const erl::term& chunk() {
    static const erl::term c = erl::binary(std::vector<std::uint8_t>(64 * 1024, 7));
    return c;
}
erl::term numbered(std::int64_t seq) {
    return erl::tuple(erl::term(seq), chunk());
}

// A started node connected to a lazy peer, with a mailbox to send from.
struct busy_link {
    erl::node_options opts;
    std::optional<erl::node> n;
    std::unique_ptr<lazy_peer> peer;
    erl::atom peer_node;
    erl::pid to;
    std::optional<erl::mailbox> mb;

    explicit busy_link(const char* prefix, unsigned threads = 2) {
        const std::uint16_t epmd = erl::test::free_port();
        opts = erl::test::local_node_options(prefix, epmd);
        opts.listen_port = erl::test::free_port();
        opts.output_busy_limit = 256 * 1024;
        opts.threads = threads;
        n.emplace(opts);
        if (n->start()) return;
        peer = std::make_unique<lazy_peer>(n->listen_port());
        if (peer->fd < 0 || !peer->handshake(std::string(n->name().str()), opts.cookie)) return;
        peer_node = erl::atom(peer->name);
        to = erl::pid{peer_node, 1, 0, 0x1234};
        if (!wait_until([&] { return n->is_connected(peer_node); })) return;
        if (auto m = n->spawn_mailbox()) mb = *m;
    }
    bool ready() const { return mb.has_value(); }
    // try_send numbered messages from `seq` on until the connection is busy, then queue more
    // than the kernel's largest send buffer (tcp_wmem's 4 MiB) past the bound from an I/O
    // thread (where a send never waits), so the connection stays busy however much of the
    // queue the kernel still takes while the peer does not read; returns the next sequence
    // number.
    std::int64_t fill(std::int64_t seq) {
        while (seq < 100000 && !mb->try_send(to, numbered(seq)))
            ++seq;
        std::promise<void> queued;
        asio::post(n->executor(), [&] {
            for (int i = 0; i < 4 * 1024 * 1024 / (64 * 1024) + 1; ++i)
                mb->send(to, numbered(seq++));
            queued.set_value();
        });
        queued.get_future().wait();
        return seq;
    }
    // Fills the connection, then starts an async_send that has to wait; the future gets its
    // outcome.
    std::future<std::tuple<erl::error_code>> waiting_send() {
        const std::int64_t seq = fill(0);
        auto [h, f] = tuple_future<erl::error_code>();
        mb->async_send(to, numbered(seq), h);
        return std::move(f);
    }
};

// Reads everything the node sends to the peer and keeps the sequence numbers of the messages
// that carry one, in arrival order.
class collector {
  public:
    explicit collector(lazy_peer& p) : peer_(p), reader_(p.flags) {
        thread_ = std::thread([this] { run(); });
    }
    ~collector() {
        on_ = false;
        thread_.join();
    }
    std::vector<std::int64_t> seqs() const {
        std::lock_guard lk(mu_);
        return seqs_;
    }
    // Waits until as many messages as `expected` holds have arrived; they must be exactly
    // those, in that order.
    ::testing::AssertionResult received(const std::vector<std::int64_t>& expected) const {
        if (!wait_until([&] { return count() >= expected.size(); }, std::chrono::seconds(30)))
            return ::testing::AssertionFailure()
                   << count() << " of " << expected.size() << " messages arrived";
        if (seqs() != expected) return ::testing::AssertionFailure() << "out of order or extra";
        return ::testing::AssertionSuccess();
    }

  private:
    std::size_t count() const {
        std::lock_guard lk(mu_);
        return seqs_.size();
    }
    void run() {
        std::vector<std::uint8_t> in;
        std::vector<erl::proto::dist_message> msgs;
        while (on_) {
            in.clear();
            const long r = peer_.read_some(in, 20ms);
            if (r == 0) return;
            if (r < 0) continue;
            msgs.clear();
            if (reader_.feed(in, msgs)) return;
            std::lock_guard lk(mu_);
            for (auto& m : msgs)
                if (m.payload && m.payload->is_tuple(2) && (*m.payload)[0].is_small())
                    seqs_.push_back((*m.payload)[0].as_int64());
        }
    }
    lazy_peer& peer_;
    erl::proto::dist_reader reader_;
    mutable std::mutex mu_;
    std::vector<std::int64_t> seqs_;
    std::atomic<bool> on_{true};
    std::thread thread_;
};

std::vector<std::int64_t> up_to(std::int64_t end, std::vector<std::int64_t> skip = {}) {
    std::vector<std::int64_t> v;
    for (std::int64_t i = 0; i < end; ++i)
        if (std::find(skip.begin(), skip.end(), i) == skip.end()) v.push_back(i);
    return v;
}

}  // namespace

TEST(NodeAsyncSend, completes_at_once_with_room_waits_while_busy_and_after_the_peer_reads) {
    busy_link l("asend");
    ASSERT_TRUE(l.ready());
    // Room: completes with the peer reading nothing.
    auto [h0, f0] = tuple_future<erl::error_code>();
    l.mb->async_send(l.to, numbered(0), h0);
    EXPECT_EQ(std::get<0>(f0.get()), erl::error_code());
    std::int64_t seq = l.fill(1);
    ASSERT_EQ(l.mb->try_send(l.to, numbered(seq)), erl::errc::would_block);
    // Busy: three sends wait; meanwhile the connection stays busy for try_send too.
    std::atomic<int> completed{0};
    std::mutex mu;
    std::vector<erl::error_code> outcomes;
    for (int i = 0; i < 3; ++i)
        l.mb->async_send(l.to, numbered(seq++), [&](erl::error_code ec) {
            std::lock_guard lk(mu);
            outcomes.push_back(ec);
            ++completed;
        });
    EXPECT_EQ(completed.load(), 0);
    EXPECT_EQ(l.mb->try_send(l.to, numbered(seq)), erl::errc::would_block);
    // The peer reads: the waiting sends complete, and everything arrives in order.
    collector c(*l.peer);
    EXPECT_TRUE(wait_until([&] { return completed.load() == 3; }, 30s)) << completed.load();
    {
        std::lock_guard lk(mu);
        EXPECT_EQ(outcomes, std::vector<erl::error_code>(3));
    }
    EXPECT_TRUE(c.received(up_to(seq)));
    l.n->stop();
}

// Callback, use_future and awaitable forms waiting together, one of them cancelled, and a
// blocking send after them: the cancelled message never leaves, the others arrive in the order
// they were sent (the blocking send waited for the async ones ahead of it).
TEST(NodeAsyncSend, cancelled_send_is_not_sent_and_the_rest_keep_their_order) {
    busy_link l("asendc");
    ASSERT_TRUE(l.ready());
    std::int64_t seq = l.fill(0);
    ASSERT_EQ(l.mb->try_send(l.to, numbered(seq)), erl::errc::would_block);

    auto strand = asio::make_strand(l.n->executor());
    asio::cancellation_signal sig;
    std::promise<erl::error_code> cancelled;
    const std::int64_t cancelled_seq = seq++;
    l.mb->async_send(l.to, numbered(cancelled_seq),
                     asio::bind_cancellation_slot(
                         sig.slot(), asio::bind_executor(strand, [&](erl::error_code ec) {
                             cancelled.set_value(ec);
                         })));
    std::future<void> by_future = l.mb->async_send(l.to, numbered(seq++), asio::use_future);
    const std::int64_t awaited_seq = seq++;
    std::future<void> by_coroutine = asio::co_spawn(
        l.n->executor(),
        [&]() -> asio::awaitable<void> {
            co_await l.mb->async_send(l.to, numbered(awaited_seq), asio::use_awaitable);
        },
        asio::use_future);
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    auto c_future = cancelled.get_future();
    ASSERT_EQ(c_future.wait_for(30s), std::future_status::ready);
    EXPECT_EQ(c_future.get(), asio::error::operation_aborted);
    EXPECT_EQ(by_future.wait_for(0s), std::future_status::timeout);

    std::atomic<bool> blocking_done{false};
    const std::int64_t blocking_seq = seq++;
    std::thread blocked([&] {
        l.mb->send(l.to, numbered(blocking_seq));
        blocking_done = true;
    });
    collector c(*l.peer);
    ASSERT_EQ(by_future.wait_for(30s), std::future_status::ready);
    EXPECT_NO_THROW(by_future.get());
    ASSERT_EQ(by_coroutine.wait_for(30s), std::future_status::ready);
    EXPECT_NO_THROW(by_coroutine.get());
    EXPECT_TRUE(wait_until([&] { return blocking_done.load(); }, 30s));
    blocked.join();
    EXPECT_TRUE(c.received(up_to(seq, {cancelled_seq})));
    l.n->stop();
}

// A coroutine process on a node with one I/O thread: ctx.async_send suspends it while the
// connection is busy (where ctx.send would queue past the bound), the thread serves other work
// meanwhile, and the process resumes and finishes once the peer reads.
TEST(NodeAsyncSend, coroutine_process_waits_for_room_without_holding_the_io_thread) {
    busy_link l("asendco", 1);
    ASSERT_TRUE(l.ready());
    constexpr std::int64_t total =
        256;  // 16 MiB: far past the 256 KiB bound and the kernel buffers
    std::atomic<std::int64_t> sent{0};
    std::atomic<bool> finished{false};
    ASSERT_TRUE(erl::spawn(
        *l.n, erl::coroutine_body([&](erl::process_context& ctx) -> asio::awaitable<void> {
            for (std::int64_t i = 0; i < total; ++i) {
                co_await ctx.async_send(l.to, numbered(i), asio::use_awaitable);
                ++sent;
            }
            finished = true;
        })));
    // The process stops short of the end while the peer reads nothing...
    EXPECT_TRUE(wait_until(
        [&] {
            const auto q = l.n->stats();
            for (const auto& s : q.connections)
                if (s.peer == l.peer_node && s.send_queue_bytes >= l.opts.output_busy_limit)
                    return true;
            return false;
        },
        30s));
    EXPECT_FALSE(finished.load()) << sent.load();
    // ... and the I/O thread is free: a local round trip through it completes.
    auto echo = l.n->spawn_mailbox();
    ASSERT_TRUE(echo);
    auto [h, f] = tuple_future<erl::error_code, erl::term>();
    echo->async_receive(erl::infinity, h);
    l.n->send(echo->self(), erl::term(1));
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    collector c(*l.peer);
    EXPECT_TRUE(wait_until([&] { return finished.load(); }, 30s)) << sent.load();
    EXPECT_TRUE(c.received(up_to(total)));
    l.n->stop();
}

TEST(NodeAsyncSend, stop_ends_a_waiting_send_with_shutting_down) {
    busy_link l("asends");
    ASSERT_TRUE(l.ready());
    auto f = l.waiting_send();
    EXPECT_EQ(f.wait_for(0s), std::future_status::timeout);
    l.n->stop();
    // stop() returned after the completion ran on the node's io_context.
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(f.get()), erl::errc::shutting_down);
}

TEST(NodeAsyncSend, waiting_send_ends_with_noconnection_when_the_connection_closes) {
    busy_link l("asendn");
    ASSERT_TRUE(l.ready());
    auto f = l.waiting_send();
    EXPECT_EQ(f.wait_for(0s), std::future_status::timeout);
    l.peer.reset();  // closes without reading
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(f.get()), erl::errc::noconnection);
    // A node's own async_send to a node that cannot be reached drops the message as send()
    // does: it completes with success.
    auto [h2, f2] = tuple_future<erl::error_code>();
    l.n->async_send(erl::atom("nobody"), erl::atom("not a node name"), erl::term(1), h2);
    ASSERT_EQ(f2.wait_for(30s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(f2.get()), erl::error_code());
    l.n->stop();
}
