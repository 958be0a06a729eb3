// Links, exit signals and monitors between processes of one node, and across two erlcpp nodes
// in one test process (loopback only; the first node embeds the EPMD on a free port).
#include <erl/node.hpp>
#include <erl/process.hpp>

#include "node/test_access.hpp"

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <atomic>
#include <thread>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;

erl::node_options opts(std::uint16_t epmd_port, bool embed = true) {
    auto o = erl::test::local_node_options("links", epmd_port, "links_cookie");
    if (!embed) o.epmd = erl::epmd_mode::require_running;
    o.net_ticktime = 4s;
    return o;
}

erl::atom A(const char* s) {
    return erl::atom(s);
}

bool is_exit_msg(const std::optional<erl::term>& m, const erl::pid& from, const erl::term& reason) {
    return m && m->is_tuple(3) && (*m)[0].is_atom(A("EXIT")) && (*m)[1] == erl::term(from) &&
           (*m)[2] == reason;
}

// Waits until the process has exited (exit signals to local processes are synchronous, but a
// remote one arrives on an I/O thread).
bool wait_exited(const erl::mailbox& m, std::chrono::milliseconds t = 5s) {
    auto end = std::chrono::steady_clock::now() + t;
    while (!m.exited() && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(5ms);
    return m.exited();
}

std::size_t link_entries(const erl::mailbox& m) {
    return erl::test::link_entries(*erl::test::process_of(m));
}
std::size_t watcher_count(const erl::mailbox& m) {
    return erl::test::watcher_count(*erl::test::process_of(m));
}

class LinksLocal : public ::testing::Test {
  protected:
    void SetUp() override {
        node = std::make_unique<erl::node>(opts(free_port()));
        ASSERT_FALSE(node->start());
    }
    void TearDown() override {
        node->stop();
        erl::join_processes(*node, 10s);
    }
    erl::mailbox mb() { return node->spawn_mailbox().value(); }
    std::unique_ptr<erl::node> node;
};

}  // namespace

TEST_F(LinksLocal, crash_propagates_to_non_trapping_linked_process) {
    auto a = mb(), b = mb(), c = mb();
    a.link(b.self());
    b.link(c.self());
    EXPECT_EQ(a.links(), std::vector<erl::pid>{b.self()});
    a.exit(erl::term(A("boom")));
    EXPECT_TRUE(b.exited());
    EXPECT_TRUE(c.exited());  // and on along the chain
    EXPECT_EQ(*c.exit_reason(), erl::term(A("boom")));
}

TEST_F(LinksLocal, trapping_process_gets_exit_message) {
    auto a = mb(), b = mb();
    EXPECT_FALSE(b.trap_exit(true));
    b.link(a.self());
    a.exit(erl::term(A("boom")));
    EXPECT_TRUE(is_exit_msg(b.receive(1s), a.self(), erl::term(A("boom"))));
    EXPECT_FALSE(b.exited());
    EXPECT_TRUE(b.links().empty());
}

TEST_F(LinksLocal, normal_exit_is_ignored_unless_trapping) {
    auto a = mb(), b = mb(), c = mb();
    c.trap_exit(true);
    a.link(b.self());
    a.link(c.self());
    a.exit();
    EXPECT_FALSE(b.exited());
    EXPECT_TRUE(is_exit_msg(c.receive(1s), a.self(), erl::term(erl::atoms::normal())));
}

TEST_F(LinksLocal, exit2_kill_is_untrappable_and_propagates_killed) {
    auto killer = mb(), victim = mb(), watcher = mb();
    victim.trap_exit(true);
    watcher.trap_exit(true);
    victim.link(watcher.self());
    killer.exit(victim.self(), erl::term(A("kill")));
    EXPECT_TRUE(victim.exited());
    EXPECT_EQ(*victim.exit_reason(), erl::term(A("killed")));
    EXPECT_TRUE(is_exit_msg(watcher.receive(1s), victim.self(), erl::term(A("killed"))));
}

TEST_F(LinksLocal, link_exit_with_reason_kill_is_trappable) {
    auto a = mb(), b = mb();
    b.trap_exit(true);
    a.link(b.self());
    a.exit(erl::term(A("kill")));
    EXPECT_TRUE(is_exit_msg(b.receive(1s), a.self(), erl::term(A("kill"))));
    EXPECT_FALSE(b.exited());
}

TEST_F(LinksLocal, exit2_normal_ignored_by_others_but_ends_self) {
    auto a = mb(), b = mb(), t = mb();
    t.trap_exit(true);
    a.exit(b.self(), erl::term(erl::atoms::normal()));
    EXPECT_FALSE(b.exited());
    a.exit(t.self(), erl::term(A("stop")));
    EXPECT_TRUE(is_exit_msg(t.receive(1s), a.self(), erl::term(A("stop"))));
    a.exit(a.self(), erl::term(erl::atoms::normal()));
    EXPECT_TRUE(a.exited());
}

TEST_F(LinksLocal, link_to_dead_process_gives_noproc) {
    auto a = mb(), dead = mb();
    const auto dead_pid = dead.self();
    dead.exit();
    a.trap_exit(true);
    a.link(dead_pid);
    EXPECT_TRUE(is_exit_msg(a.receive(1s), dead_pid, erl::term(A("noproc"))));
    auto b = mb();
    b.link(dead_pid);  // not trapping: dies with noproc
    EXPECT_EQ(*b.exit_reason(), erl::term(A("noproc")));
}

TEST_F(LinksLocal, unlink_removes_both_ends) {
    auto a = mb(), b = mb();
    a.link(b.self());
    EXPECT_EQ(b.links(), std::vector<erl::pid>{a.self()});
    a.unlink(b.self());
    EXPECT_TRUE(a.links().empty());
    EXPECT_TRUE(b.links().empty());
    a.exit(erl::term(A("boom")));
    EXPECT_FALSE(b.exited());
}

TEST_F(LinksLocal, monitor_by_pid_and_by_name) {
    auto w = mb();
    auto t = node->spawn_mailbox(A("mon_target")).value();
    auto r1 = w.monitor(t.self());
    auto r2 = w.monitor(A("mon_target"));
    t.exit(erl::term(A("bye")));
    auto d1 = w.receive(1s), d2 = w.receive(1s);
    ASSERT_TRUE(d1 && d2);
    EXPECT_EQ(*d1, erl::tuple(A("DOWN"), r1, A("process"), t.self(), A("bye")));
    EXPECT_EQ(*d2, erl::tuple(A("DOWN"), r2, A("process"),
                              erl::tuple(A("mon_target"), node->name()), A("bye")));
}

TEST_F(LinksLocal, monitor_of_dead_or_unknown_target_gives_noproc) {
    auto w = mb(), dead = mb();
    const auto dp = dead.self();
    dead.exit();
    auto r = w.monitor(dp);
    EXPECT_EQ(*w.receive(1s), erl::tuple(A("DOWN"), r, A("process"), dp, A("noproc")));
    auto r2 = w.monitor(A("nobody_by_that_name"));
    EXPECT_EQ(*w.receive(1s),
              erl::tuple(A("DOWN"), r2, A("process"),
                         erl::tuple(A("nobody_by_that_name"), node->name()), A("noproc")));
}

TEST_F(LinksLocal, demonitor_stops_down_and_flush_removes_queued_one) {
    auto w = mb(), t = mb(), u = mb();
    auto r = w.monitor(t.self());
    EXPECT_TRUE(w.demonitor(r));
    EXPECT_FALSE(w.demonitor(r));
    t.exit(erl::term(A("bye")));
    EXPECT_FALSE(w.receive(50ms));
    auto r2 = w.monitor(u.self());
    u.exit(erl::term(A("bye")));
    EXPECT_EQ(w.pending(), 1u);
    EXPECT_FALSE(w.demonitor(r2, /*flush=*/true));  // already fired
    EXPECT_EQ(w.pending(), 0u);
}

TEST_F(LinksLocal, monitor_node_self_never_fires_and_unknown_node_gives_nodedown) {
    auto w = mb();
    w.monitor_node(node->name());
    auto ghost = erl::atom("ghost_links_node@127.0.0.1");
    w.monitor_node(ghost);
    auto m = w.receive(20s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, erl::tuple(A("nodedown"), ghost));
    EXPECT_FALSE(w.receive(50ms));
}

// --------------------------------------------------------------------------------------------
// Two erlcpp nodes: the same operations go over the distribution protocol.

class LinksRemote : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto port = free_port();
        a = std::make_unique<erl::node>(opts(port, true));
        ASSERT_FALSE(a->start());
        b = std::make_unique<erl::node>(opts(port, false));
        ASSERT_FALSE(b->start());
    }
    void TearDown() override {
        if (b) b->stop();
        a->stop();
        erl::join_processes(*a, 10s);
        if (b) erl::join_processes(*b, 10s);
    }
    // Sends a marker from `from` to `to` and takes it at `to` (within 10 s): signals between
    // two processes keep their order, so once it is taken every signal `from` sent before it
    // (LINK, UNLINK_ID, MONITOR_P) has been handled at `to`.
    static void signals_arrived(erl::mailbox& from, erl::mailbox& to) {
        const erl::term marker = erl::tuple(A("signals_arrived"), from.self_term());
        from.send(to.self(), marker);
        ASSERT_TRUE(to.receive_if([&](const erl::term& t) { return t == marker; }, 10s));
    }
    // Links `pa` to `pb` and waits until the LINK signal has reached pb.
    static void link_to(erl::mailbox& pa, erl::mailbox& pb) {
        pa.link(pb.self());
        signals_arrived(pa, pb);
    }
    std::unique_ptr<erl::node> a, b;
};

TEST_F(LinksRemote, exit_through_remote_link_and_exit2_kill) {
    auto pa = a->spawn_mailbox().value();
    auto pb = b->spawn_mailbox().value();
    pa.trap_exit(true);
    ASSERT_NO_FATAL_FAILURE(link_to(pa, pb));  // both ends know the link once LINK arrived
    EXPECT_EQ(pb.links(), std::vector<erl::pid>{pa.self()});
    pa.exit(pb.self(), erl::term(A("kill")));
    EXPECT_TRUE(is_exit_msg(pa.receive(5s), pb.self(), erl::term(A("killed"))));
    EXPECT_TRUE(wait_exited(pb));
}

TEST_F(LinksRemote, unlink_uses_unlink_id_and_later_exit_is_ignored) {
    auto pa = a->spawn_mailbox().value();
    auto pb = b->spawn_mailbox().value();
    pb.trap_exit(true);
    ASSERT_NO_FATAL_FAILURE(link_to(pa, pb));
    pa.unlink(pb.self());
    EXPECT_TRUE(pa.links().empty());
    ASSERT_NO_FATAL_FAILURE(signals_arrived(pa, pb));  // UNLINK_ID handled at pb
    EXPECT_TRUE(pb.links().empty());
    // Our UNLINK_ID gets acknowledged: the entry goes, not just inactive. pb's UNLINK_ID_ACK
    // left before a marker pb sends now.
    ASSERT_NO_FATAL_FAILURE(signals_arrived(pb, pa));
    EXPECT_EQ(link_entries(pa), 0u);
    pa.exit(erl::term(A("boom")));
    EXPECT_FALSE(pb.receive(200ms));
}

TEST_F(LinksRemote, remote_monitor_by_name_and_noproc) {
    auto w = a->spawn_mailbox().value();
    auto t = b->spawn_mailbox(A("remote_target")).value();
    auto r = w.monitor(A("remote_target"), b->name());
    auto r2 = w.monitor(A("no_such_name"), b->name());
    auto m2 = w.receive(5s);
    ASSERT_TRUE(m2);
    EXPECT_EQ(*m2, erl::tuple(A("DOWN"), r2, A("process"), erl::tuple(A("no_such_name"), b->name()),
                              A("noproc")));
    // Wait until the MONITOR_P arrived before ending the target.
    ASSERT_NO_FATAL_FAILURE(signals_arrived(w, t));
    EXPECT_EQ(watcher_count(t), 1u);
    t.exit(erl::term(A("bye")));
    auto m = w.receive(5s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, erl::tuple(A("DOWN"), r, A("process"), erl::tuple(A("remote_target"), b->name()),
                             A("bye")));
}

TEST_F(LinksRemote, node_stop_fires_noconnection_and_nodedown) {
    auto w = a->spawn_mailbox().value();
    auto t = b->spawn_mailbox().value();
    w.trap_exit(true);
    w.link(t.self());
    auto r = w.monitor(t.self());
    w.monitor_node(b->name());
    ASSERT_NO_FATAL_FAILURE(signals_arrived(w, t));  // LINK and MONITOR_P handled at t
    b->stop();
    std::vector<erl::term> got;
    while (auto m = w.receive(5s)) {
        got.push_back(*m);
        if (got.size() == 3) break;
    }
    ASSERT_EQ(got.size(), 3u);
    auto has = [&](const erl::term& x) {
        return std::find(got.begin(), got.end(), x) != got.end();
    };
    // b closes its connections before its processes exit, so a sees noconnection (not
    // `shutdown`) for the link and the monitor.
    EXPECT_TRUE(has(erl::tuple(A("EXIT"), t.self(), A("noconnection"))));
    EXPECT_TRUE(has(erl::tuple(A("DOWN"), r, A("process"), t.self(), A("noconnection"))));
    EXPECT_TRUE(has(erl::tuple(A("nodedown"), b->name())));
}

// --------------------------------------------------------------------------------------------
// C++ processes.

class ProcessSpawn : public LinksLocal {};

TEST_F(ProcessSpawn, thread_process_echoes_and_ends_normally) {
    auto self = mb();
    auto s = erl::spawn_monitor(self, [](erl::mailbox& m) {
        auto msg = m.receive(5s);
        if (msg && msg->is_tuple(2)) m.send((*msg)[0].as_pid(), (*msg)[1]);
    });
    ASSERT_TRUE(s);
    self.send(s->pid, erl::tuple(self.self(), 42));
    EXPECT_EQ(*self.receive(5s), erl::term(42));
    EXPECT_EQ(*self.receive(5s),
              erl::tuple(A("DOWN"), s->monitor, A("process"), s->pid, erl::atoms::normal()));
}

TEST_F(ProcessSpawn, exceptions_become_exit_reasons) {
    auto self = mb();
    self.trap_exit(true);
    auto p1 = erl::spawn_link(
        self, [](erl::mailbox&) { throw erl::exit_exception(erl::term(A("custom"))); });
    ASSERT_TRUE(p1);
    EXPECT_TRUE(is_exit_msg(self.receive(5s), *p1, erl::term(A("custom"))));
    auto p2 = erl::spawn_link(self, [](erl::mailbox&) { throw std::runtime_error("bad thing"); });
    ASSERT_TRUE(p2);
    EXPECT_TRUE(is_exit_msg(self.receive(5s), *p2,
                            erl::tuple(A("cpp_exception"), erl::binary("bad thing"))));
}

TEST_F(ProcessSpawn, killed_thread_process_sees_receive_end) {
    auto self = mb();
    std::atomic<bool> body_returned{false};
    auto s = erl::spawn_monitor(self, [&](erl::mailbox& m) {
        while (m.receive()) {
        }
        body_returned = true;
    });
    ASSERT_TRUE(s);
    self.exit(s->pid, erl::term(A("kill")));
    EXPECT_EQ(*self.receive(5s),
              erl::tuple(A("DOWN"), s->monitor, A("process"), s->pid, A("killed")));
    ASSERT_TRUE(erl::join_processes(*node, 5s));
    EXPECT_TRUE(body_returned);
}

TEST_F(ProcessSpawn, spawn_with_name_and_trap_exit_options) {
    auto self = mb();
    erl::spawn_options o;
    o.name = A("named_cpp_proc");
    o.trap_exit = true;
    auto p = erl::spawn(
        *node,
        [](erl::mailbox& m) {
            auto msg = m.receive(5s);  // the 'EXIT' from the exit/2 below, as a message
            if (msg && msg->is_tuple(3)) m.send(A("spawn_test_reply"), (*msg)[2]);
        },
        o);
    ASSERT_TRUE(p);
    EXPECT_EQ(node->whereis(A("named_cpp_proc")), *p);
    auto reply_box = node->spawn_mailbox(A("spawn_test_reply")).value();
    self.exit(*p, erl::term(A("please_stop")));
    EXPECT_EQ(*reply_box.receive(5s), erl::term(A("please_stop")));
    auto dup = erl::spawn(
        *node, [](erl::mailbox&) {}, o);
    // The first may still hold the name or have ended; either way no crash. When it still
    // runs, the name is taken.
    if (!dup) EXPECT_EQ(dup.error(), make_error_code(erl::errc::name_taken));
}

TEST_F(ProcessSpawn, coroutine_process_receives_with_timeout_and_replies) {
    auto self = mb();
    auto ready = node->spawn_mailbox(A("coro_test_ready")).value();
    auto s =
        erl::spawn_monitor(self, [](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            // Nothing arrives first: the timeout returns nullopt.
            auto none = co_await ctx.async_receive(30ms);
            if (none) throw erl::exit_exception(erl::term(erl::atom("unexpected")));
            ctx.send(erl::atom("coro_test_ready"), erl::term(erl::atom("ready")));
            while (auto m = co_await ctx.async_receive(5s)) {
                if (m->is_atom(erl::atom("stop"))) co_return;
                if (m->is_tuple(2))
                    ctx.send((*m)[0].as_pid(), erl::tuple(erl::atom("echo"), (*m)[1]));
            }
        });
    ASSERT_TRUE(s);
    EXPECT_EQ(ready.receive(5s), erl::term(A("ready")));
    for (int i = 0; i < 50; ++i) {
        self.send(s->pid, erl::tuple(self.self(), i));
        EXPECT_EQ(*self.receive(5s), erl::tuple(A("echo"), i));
    }
    self.send(s->pid, erl::term(A("stop")));
    EXPECT_EQ(*self.receive(5s),
              erl::tuple(A("DOWN"), s->monitor, A("process"), s->pid, erl::atoms::normal()));
}

TEST_F(ProcessSpawn, coroutine_selective_receive_and_kill_wakes_it) {
    auto self = mb();
    std::atomic<int> seen{0};
    auto s =
        erl::spawn_monitor(self, [&](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            auto m =
                co_await ctx.async_receive_if([](const erl::term& t) { return t == erl::term(2); });
            if (m) seen = 2;
            auto first = co_await ctx.async_receive();  // 1, left in the queue by the selective one
            if (!first || *first != erl::term(1)) co_return;
            auto rest = co_await ctx.async_receive();  // blocks until killed
            if (!rest) seen = seen + 10;
        });
    ASSERT_TRUE(s);
    self.send(s->pid, erl::term(1));
    self.send(s->pid, erl::term(2));
    for (int i = 0; i < 500 && seen != 2; ++i)
        std::this_thread::sleep_for(5ms);
    EXPECT_EQ(seen, 2);
    self.exit(s->pid, erl::term(A("kill")));
    EXPECT_EQ(*self.receive(5s),
              erl::tuple(A("DOWN"), s->monitor, A("process"), s->pid, A("killed")));
    for (int i = 0; i < 500 && seen != 12; ++i)
        std::this_thread::sleep_for(5ms);
    EXPECT_EQ(seen, 12);
}

// BEAM runs a chain of processes, each spawning the next, with no limit but memory: neither the
// spawns nor the exit that runs back along the links may nest on an I/O thread's stack (here
// 50,000 deep, far past what 8 MiB of stack holds when each level nests).
TEST_F(ProcessSpawn, a_chain_of_coroutine_processes_each_spawning_the_next_runs_and_ends) {
    constexpr int depth = 50000;
    auto self = mb();
    self.trap_exit(true);
    struct chain {
        static erl::coroutine_body level(erl::pid bottom_to, int left) {
            return [bottom_to, left](erl::process_context& ctx) -> boost::asio::awaitable<void> {
                if (left == 0) {
                    ctx.send(bottom_to, erl::term(A("bottom")));
                    throw erl::exit_exception(erl::term(A("chain_done")));
                }
                if (!erl::spawn_link(ctx.handle(), level(bottom_to, left - 1)))
                    throw erl::exit_exception(erl::term(A("spawn_failed")));
                co_await ctx.async_receive(erl::infinity);  // ended by the link
            };
        }
    };
    auto top = erl::spawn_link(self, chain::level(self.self(), depth));
    ASSERT_TRUE(top);
    EXPECT_EQ(self.receive(60s), erl::term(A("bottom")));
    const auto exit = self.receive(60s);
    EXPECT_TRUE(is_exit_msg(exit, *top, erl::term(A("chain_done"))))
        << (exit ? erl::to_string(*exit) : "nothing");
}

// The exit along 100,000 linked mailboxes is told one process after another, not nested.
TEST_F(LinksLocal, an_exit_runs_along_a_chain_of_100000_links) {
    constexpr int length = 100000;
    auto self = mb();
    self.trap_exit(true);
    std::vector<erl::mailbox> chain;
    chain.reserve(length);
    for (int i = 0; i < length; ++i) {
        chain.push_back(mb());
        if (i > 0) chain[i - 1].link(chain[i].self());
    }
    self.link(chain.back().self());
    // A monitor of a process in the middle gets its DOWN, as any monitor does.
    auto watcher = mb();
    const erl::pid middle = chain[length / 2].self();
    const auto ref = watcher.monitor(middle);
    self.exit(chain.front().self(), erl::term(A("cut")));
    // The whole chain has ended, and told its links and monitors, when the exit returns.
    for (const auto& m : chain)
        ASSERT_TRUE(m.exited());
    EXPECT_EQ(watcher.pending(), 1u);
    EXPECT_EQ(watcher.receive(0ms),
              erl::tuple(A("DOWN"), ref, A("process"), middle, erl::term(A("cut"))));
    const auto exit = self.receive(0ms);
    EXPECT_TRUE(is_exit_msg(exit, chain.back().self(), erl::term(A("cut"))))
        << (exit ? erl::to_string(*exit) : "nothing");
}
