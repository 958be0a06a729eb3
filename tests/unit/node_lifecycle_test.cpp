// Node lifecycle: stop and start again, stop from one of the node's own threads, stop while
// links and monitors wait for a connection that is still being set up. Every wait is for an
// event, with a deadline; a failure is an assertion, not a crash or a hang.
#include <erl/epmd.hpp>
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"
#include "silent_peer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

erl::node_options opts(std::uint16_t epmd_port) {
    return erl::test::local_node_options("life", epmd_port);
}

// A one-shot event with a deadline.
class event {
  public:
    void set() {
        std::lock_guard lk(mu_);
        set_ = true;
        cv_.notify_all();
    }
    bool wait(std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lk(mu_);
        return cv_.wait_for(lk, timeout, [&] { return set_; });
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool set_ = false;
};

}  // namespace

TEST(NodeLifecycle, stop_and_start_again_after_ping) {
    const auto epmd_port = erl::test::free_port();
    erl::node b(opts(epmd_port));  // b hosts the EPMD and stays up
    ASSERT_FALSE(b.start());
    erl::node a(opts(epmd_port));
    for (int round = 0; round < 3; ++round) {
        SCOPED_TRACE(round);
        ASSERT_FALSE(a.start());
        ASSERT_TRUE(a.alive());
        EXPECT_TRUE(a.ping(b.name(), 10s));
        EXPECT_TRUE(b.ping(a.name(), 10s));
        // Names and messages work in the new run, from the peer too.
        auto mb = a.spawn_mailbox(erl::atom("again"));
        ASSERT_TRUE(mb);
        b.send(erl::atom("again"), a.name(), erl::term(round));
        auto m = mb->receive(10s);
        ASSERT_TRUE(m);
        EXPECT_EQ(*m, erl::term(round));
        a.stop();
        EXPECT_FALSE(a.alive());
        EXPECT_TRUE(mb->exited());
        EXPECT_FALSE(a.whereis(erl::atom("again")));
        EXPECT_FALSE(a.spawn_mailbox());  // not alive
    }
    a.stop();  // a second stop does nothing
}

TEST(NodeLifecycle, stop_from_a_handler_on_the_nodes_own_thread) {
    const auto epmd_port = erl::test::free_port();
    erl::node b(opts(epmd_port));
    ASSERT_FALSE(b.start());
    erl::node a(opts(epmd_port));
    ASSERT_FALSE(a.start());
    auto watcher = a.spawn_mailbox();
    ASSERT_TRUE(watcher);
    event stopped;
    std::atomic<bool> once{false};
    // monitor_nodes callbacks run on the node's I/O threads.
    a.monitor_nodes([&](const erl::node_event& ev) {
        if (!ev.up || once.exchange(true)) return;
        a.stop();
        stopped.set();
    });
    // The handler stops the node as the connection comes up, so connect() may report it
    // closed again: what counts is that the stop completes.
    (void)a.connect(b.name(), 10s);
    ASSERT_TRUE(stopped.wait());
    EXPECT_FALSE(a.alive());
    EXPECT_TRUE(watcher->exited());
    // start() waits for the stop the handler began, then runs again.
    ASSERT_FALSE(a.start());
    EXPECT_TRUE(a.ping(b.name(), 10s));
}

TEST(NodeLifecycle, stop_from_a_thread_bodied_process) {
    erl::node a(opts(erl::test::free_port()));
    ASSERT_FALSE(a.start());
    event stopped;
    auto p = erl::spawn(a, [&](erl::mailbox&) {
        a.stop();
        stopped.set();
    });
    ASSERT_TRUE(p);
    ASSERT_TRUE(stopped.wait());
    EXPECT_FALSE(a.alive());
    EXPECT_TRUE(erl::join_processes(a, 10s));
    ASSERT_FALSE(a.start());
    EXPECT_TRUE(a.alive());
}

TEST(NodeLifecycle, stop_while_links_and_monitors_wait_for_a_connection) {
    const auto epmd_port = erl::test::free_port();
    erl::node a(opts(epmd_port));
    ASSERT_FALSE(a.start());
    erl::test::silent_peer silent(epmd_port, "silent");
    ASSERT_TRUE(silent.registered());
    const erl::atom peer("silent@127.0.0.1");
    const erl::pid remote{peer, 1, 0, 1};
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    mb->trap_exit(true);
    mb->link(remote);
    const auto ref = mb->monitor(erl::atom("svc"), peer);
    mb->monitor_node(peer);
    EXPECT_FALSE(a.is_connected(peer));  // the handshake never completes
    a.stop();
    EXPECT_FALSE(a.alive());
    ASSERT_TRUE(mb->exited());
    EXPECT_EQ(*mb->exit_reason(), erl::term(erl::atom("shutdown")));
    (void)ref;
    // The node runs again; the pending attempt left nothing behind.
    ASSERT_FALSE(a.start());
    EXPECT_TRUE(a.nodes().empty());
}

TEST(NodeLifecycle, pending_link_fires_noconnection_when_the_set_up_fails) {
    // No timer polls the pending connection: its failure is the event that fires the link,
    // the monitor and monitor_node.
    const auto epmd_port = erl::test::free_port();
    erl::node a(opts(epmd_port));
    ASSERT_FALSE(a.start());
    const erl::atom peer("nobody_here@127.0.0.1");  // not registered: the EPMD lookup fails
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    mb->trap_exit(true);
    const erl::pid remote{peer, 1, 0, 1};
    mb->link(remote);
    const auto ref = mb->monitor(erl::atom("svc"), peer);
    mb->monitor_node(peer);
    bool exit_seen = false, down_seen = false, nodedown_seen = false;
    while (!(exit_seen && down_seen && nodedown_seen)) {
        auto m = mb->receive(10s);
        ASSERT_TRUE(m) << "exit " << exit_seen << " down " << down_seen << " nodedown "
                       << nodedown_seen;
        if (m->is_tuple(3) && (*m)[0].is_atom(erl::atom("EXIT"))) {
            EXPECT_EQ((*m)[1], erl::term(remote));
            EXPECT_EQ((*m)[2], erl::term(erl::atom("noconnection")));
            exit_seen = true;
        } else if (m->is_tuple(5) && (*m)[0].is_atom(erl::atom("DOWN"))) {
            EXPECT_EQ((*m)[1], erl::term(ref));
            EXPECT_EQ((*m)[4], erl::term(erl::atom("noconnection")));
            down_seen = true;
        } else if (m->is_tuple(2) && (*m)[0].is_atom(erl::atom("nodedown"))) {
            nodedown_seen = true;
        } else {
            ADD_FAILURE() << "unexpected " << m->to_string();
        }
    }
    EXPECT_TRUE(mb->links().empty());
}

namespace {
// A gen_server that stops itself through its own `running` handle from a callback.
struct self_stopper : erl::gen_server::server {
    erl::gen_server::running* handle = nullptr;
    std::atomic<int> terminated{0};
    event done;
    std::optional<erl::term> handle_call(const erl::term&, const from&) override {
        return erl::term(erl::atom("ok"));
    }
    void handle_cast(const erl::term&) override { handle->stop(erl::term(erl::atom("bye"))); }
    void terminate(const erl::term& reason) override {
        EXPECT_EQ(reason, erl::term(erl::atom("bye")));
        ++terminated;
        done.set();
    }
};
}  // namespace

TEST(NodeLifecycle, gen_server_stopped_from_its_own_callback_is_joined_later) {
    erl::node a(opts(erl::test::free_port()));
    ASSERT_FALSE(a.start());
    auto impl = std::make_shared<self_stopper>();
    auto r = erl::gen_server::start(a, impl, erl::atom("stopper"));
    ASSERT_TRUE(r);
    impl->handle = r->get();
    erl::gen_server::cast(a, erl::atom("stopper"), erl::atom("stop"));
    ASSERT_TRUE(impl->done.wait());
    // The handle still owns the thread: destroying it joins it, terminate ran once.
    r->reset();
    EXPECT_EQ(impl->terminated.load(), 1);
    EXPECT_FALSE(a.whereis(erl::atom("stopper")));
}

TEST(NodeLifecycle, join_processes_waits_for_its_own_nodes_threads_only) {
    const auto epmd_port = erl::test::free_port();
    erl::node a(opts(epmd_port));
    erl::node b(opts(epmd_port));
    ASSERT_FALSE(a.start());
    ASSERT_FALSE(b.start());
    // The body blocks in receive: a message (or the node's stop) ends it.
    auto running = std::make_shared<event>();
    auto body = erl::spawn(a, [running](erl::mailbox& mb) {
        running->set();
        mb.receive();
    });
    ASSERT_TRUE(body);
    ASSERT_TRUE(running->wait());
    EXPECT_TRUE(erl::join_processes(b, 0ms));  // per-node state: b has no thread bodies
    EXPECT_FALSE(erl::join_processes(a, 0ms));
    a.send(*body, erl::atom("go"));
    EXPECT_TRUE(erl::join_processes(a, 10s));
}
