// Interop: partitions made by stopping one side with SIGSTOP. The stopped node keeps its sockets
// open but answers no ticks, which is what a cut link looks like to the other side: after
// net_ticktime (4 s on both sides here) the connection is declared dead, links and monitors
// fire with `noconnection` and monitor_node delivers nodedown (OTP's dist_util tick protocol,
// net_kernel). After SIGCONT the nodes reconnect and messages flow again.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <mutex>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::demo_child;
using erl::interop::echo_service;

namespace {

// SIGCONT for a stopped BEAM node when the test ends, whatever the outcome, so the harness can
// stop it normally.
struct continue_on_exit {
    int pid;
    ~continue_on_exit() {
        if (pid > 0) ::kill(pid, SIGCONT);
    }
};

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

class PartitionInterop : public erl::interop::cluster_test {
  protected:
    PartitionInterop() : cluster_test("cpppart", "beampart") {}

    beam_node::options ticking_beam() const {
        auto o = beam_opts();
        o.extra_args = {"-kernel", "net_ticktime", "4"};
        return o;
    }
};

// A stopped BEAM peer: the C++ node reports nodedown (tick_timeout), a linked C++ process that
// traps exits gets {'EXIT', P, noconnection}, a monitor {'DOWN', _, process, P, noconnection},
// monitor_node {nodedown, Node}; after SIGCONT both directions work again.
TEST_F(PartitionInterop, stopped_beam_node_is_declared_dead_and_recovers) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.net_ticktime = 4s; }));
    echo_service echo(*cpp.node);
    std::mutex mu;
    std::vector<erl::node_event> events;
    cpp.node->monitor_nodes([&](const erl::node_event& e) {
        std::lock_guard lk(mu);
        events.push_back(e);
    });
    auto watch = cpp.node->spawn_mailbox(erl::atom("watch"));
    ASSERT_TRUE(watch);
    beam_node beam(ticking_beam());
    const erl::atom beam_name(beam.node_name());
    ASSERT_EQ(beam.eval("register(part, self()), Self = self(), P = spawn(fun() -> "
                        "process_flag(trap_exit, true), "
                        "receive {'EXIT', _, R} -> Self ! {p_exit, R} end end), "
                        "{watch, " +
                        cpp.quoted_name() + "} ! P, ok"),
              "ok");
    auto p = watch->receive(10s);
    ASSERT_TRUE(p && p->is_pid());
    const erl::pid target = p->as_pid();
    watch->trap_exit(true);
    watch->link(target);
    const erl::reference mref = watch->monitor(target);
    watch->monitor_node(beam_name);
    // The link and monitor are in place on the BEAM side before the partition.
    ASSERT_EQ(beam.eval("{links, L} = process_info(P, links), {monitored_by, M} = "
                        "process_info(P, monitored_by), {length(L), length(M)}"),
              "{1,1}");

    continue_on_exit resume{beam.os_pid()};
    const auto stopped_at = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(beam.os_pid(), SIGSTOP), 0);
    auto down = [&] {
        std::lock_guard lk(mu);
        for (auto& e : events)
            if (!e.up && e.node == beam_name) return true;
        return false;
    };
    EXPECT_TRUE(erl::interop::wait_until(down, 20s));
    const double detected = seconds_since(stopped_at);
    {
        std::lock_guard lk(mu);
        for (auto& e : events)
            if (!e.up && e.node == beam_name)
                EXPECT_EQ(e.reason, erl::make_error_code(erl::errc::tick_timeout))
                    << e.reason.message();
    }
    bool got_exit = false, got_down = false, got_nodedown = false;
    const erl::atom noconnection("noconnection");
    while (!(got_exit && got_down && got_nodedown)) {
        auto m = watch->receive(10s);
        if (!m) break;
        if (m->is_tuple(3) && (*m)[0].is_atom(erl::atom("EXIT")) && (*m)[1] == erl::term(target))
            got_exit = (*m)[2].is_atom(noconnection);
        else if (m->is_tuple(5) && (*m)[0].is_atom(erl::atom("DOWN")) && (*m)[1] == erl::term(mref))
            got_down = (*m)[4].is_atom(noconnection);
        else if (m->is_tuple(2) && (*m)[0].is_atom(erl::atom("nodedown")))
            got_nodedown = (*m)[1].is_atom(beam_name);
    }
    EXPECT_TRUE(got_exit);
    EXPECT_TRUE(got_down);
    EXPECT_TRUE(got_nodedown);
    std::printf("[ figures  ] stopped BEAM declared dead after %.1f s (net_ticktime 4 s)\n",
                detected);
    RecordProperty("detected_ms", static_cast<int>(detected * 1000));

    ASSERT_EQ(::kill(beam.os_pid(), SIGCONT), 0);
    // The woken node finds its old connection closed; a new one comes up.
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return beam.eval("net_adm:ping(" + cpp.quoted_name() + ")") == "pong"; }, 30s,
        200ms));
    EXPECT_EQ(beam.eval("{echo, " + cpp.quoted_name() +
                        "} ! {self(), after_partition}, "
                        "receive after_partition -> ok after 5000 -> timeout end"),
              "ok");
    watch->send(erl::atom("part"), beam_name, erl::atom("from_cpp"));
    EXPECT_EQ(beam.eval("receive from_cpp -> ok after 5000 -> timeout end"), "ok");
    // The BEAM side saw the partition too: P, linked to `watch` and trapping exits, got
    // {'EXIT', Watch, noconnection}.
    EXPECT_EQ(beam.eval("receive {p_exit, R} -> R after 5000 -> timeout end"), "noconnection");
    watch->exit();
}

// A stopped erlcpp-demo child: the BEAM node sees nodedown, a monitor by name and a link to the
// demo's worker fire with noconnection; after SIGCONT it reconnects and messages flow.
TEST_F(PartitionInterop, stopped_cpp_node_is_declared_dead_by_beam_and_recovers) {
    demo_child demo(epmd.port(), cookie, {"--ticktime", "4000"});
    beam_node beam(ticking_beam());
    const std::string n = demo.quoted_name();
    ASSERT_EQ(beam.eval("net_adm:ping(" + n + ")"), "pong");
    ASSERT_EQ(
        beam.eval("process_flag(trap_exit, true), monitor_node(" + n +
                  ", true), MRef = erlang:monitor(process, {echo, " + n + "}), {worker, " + n +
                  "} ! {link, self()}, "
                  "receive {linked, W} -> is_pid(W) after 5000 -> timeout end"),
        "true");
    const auto stopped_at = std::chrono::steady_clock::now();
    demo.signal(SIGSTOP);
    EXPECT_EQ(
        beam.eval("receive {nodedown, " + n + "} -> nodedown after 20000 -> timeout end", 30s),
        "nodedown");
    const double detected = seconds_since(stopped_at);
    EXPECT_EQ(beam.eval("receive {'DOWN', MRef, process, _, R} -> R after 5000 -> timeout end"),
              "noconnection");
    EXPECT_EQ(beam.eval("receive {'EXIT', W, R2} -> R2 after 5000 -> timeout end"), "noconnection");
    std::printf("[ figures  ] stopped erlcpp-demo declared dead after %.1f s (net_ticktime 4 s)\n",
                detected);
    RecordProperty("detected_ms", static_cast<int>(detected * 1000));

    demo.signal(SIGCONT);
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return beam.eval("net_adm:ping(" + n + ")") == "pong"; }, 30s, 200ms));
    EXPECT_EQ(beam.eval("{echo, " + n +
                        "} ! {self(), after_partition}, "
                        "receive after_partition -> ok after 5000 -> timeout end"),
              "ok");
    EXPECT_EQ(beam.eval("rpc:call(" + n + ", demo, add, [1, 2])"), "3");
    EXPECT_TRUE(demo.running());
}
