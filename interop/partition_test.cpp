// Interop: partitions made by stopping one side with SIGSTOP. The stopped node keeps its sockets
// open but answers no ticks, which is what a cut link looks like to the other side: after
// net_ticktime (4 s on both sides here) the connection is declared dead, links and monitors
// fire with `noconnection` and monitor_node delivers nodedown (OTP's dist_util tick protocol,
// net_kernel). After SIGCONT the nodes reconnect and messages flow again.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "demo_child.hpp"
#include "harness/cluster.hpp"
#include "harness/named_cluster_test.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::continue_on_exit;
using erl::interop::cpp_node;
using erl::interop::demo_child;
using erl::interop::echo_service;

namespace {

// A network namespace joined to this one by a veth pair (10.213.N.1 outside, .2 inside) whose
// link can be cut and restored while the processes on both ends keep running. Needs
// CAP_NET_ADMIN and iproute2's `ip`; ok() is false where the machine does not allow it. The
// destructor deletes the pair and the namespace (run it after the processes inside are gone).
class netns_link {
  public:
    netns_link() {
        const int n = ::getpid() % 250 + 1;
        const std::string tag = std::to_string(::getpid());
        ns_ = "erlcpp" + tag;
        outside_if_ = "eca" + tag;
        const std::string inside_if = "ecb" + tag;
        outside_ip = "10.213." + std::to_string(n) + ".1";
        inside_ip = "10.213." + std::to_string(n) + ".2";
        ok_ =
            ip({"netns", "add", ns_}) &&
            ip({"link", "add", outside_if_, "type", "veth", "peer", "name", inside_if}) &&
            ip({"link", "set", inside_if, "netns", ns_}) &&
            ip({"addr", "add", outside_ip + "/30", "dev", outside_if_}) &&
            ip({"link", "set", outside_if_, "up"}) &&
            ip({"netns", "exec", ns_, "ip", "addr", "add", inside_ip + "/30", "dev", inside_if}) &&
            ip({"netns", "exec", ns_, "ip", "link", "set", inside_if, "up"}) &&
            ip({"netns", "exec", ns_, "ip", "link", "set", "lo", "up"});
    }
    ~netns_link() {
        ip({"link", "del", outside_if_});
        ip({"netns", "del", ns_});
    }
    netns_link(const netns_link&) = delete;
    netns_link& operator=(const netns_link&) = delete;

    bool ok() const noexcept { return ok_; }
    bool cut() { return ip({"link", "set", outside_if_, "down"}); }
    bool restore() { return ip({"link", "set", outside_if_, "up"}); }
    // Command prefix that runs a program inside the namespace.
    std::vector<std::string> exec() const { return {"ip", "netns", "exec", ns_}; }

    std::string outside_ip, inside_ip;

  private:
    static bool ip(std::vector<std::string> args) {
        args.insert(args.begin(), "ip");
        return erl::interop::process::run(std::move(args), {}, 10s).exit_code == 0;
    }
    std::string ns_, outside_if_;
    bool ok_ = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

class PartitionInterop : public erl::interop::named_cluster_test<"cpppart", "beampart"> {
  protected:
    beam_node::options ticking_beam() const {
        auto o = beam_opts();
        o.extra_args = {"-kernel", "net_ticktime", "4"};
        return o;
    }

    // From `beam`: connects to node `n` (quoted), then monitor_node, a monitor of {echo, N} and
    // a link (trapping exits) to the demo's worker, each to fire when the partition comes.
    static void watch_from_beam(beam_node& beam, const std::string& n) {
        ASSERT_EQ(beam.eval("net_adm:ping(" + n + ")"), "pong");
        ASSERT_EQ(
            beam.eval("process_flag(trap_exit, true), monitor_node(" + n +
                      ", true), MRef = erlang:monitor(process, {echo, " + n + "}), {worker, " + n +
                      "} ! {link, self()}, "
                      "receive {linked, W} -> is_pid(W) after 5000 -> timeout end"),
            "true");
    }

    // The partition as watch_from_beam's watchers see it: nodedown, then the monitor and the
    // link with noconnection. Returns the seconds from `since` to the nodedown.
    static double expect_partition_seen(beam_node& beam, const std::string& n,
                                        std::chrono::steady_clock::time_point since) {
        EXPECT_EQ(
            beam.eval("receive {nodedown, " + n + "} -> nodedown after 20000 -> timeout end", 30s),
            "nodedown");
        const double detected = seconds_since(since);
        EXPECT_EQ(beam.eval("receive {'DOWN', MRef, process, _, R} -> R after 5000 -> timeout end"),
                  "noconnection");
        EXPECT_EQ(beam.eval("receive {'EXIT', W, R2} -> R2 after 5000 -> timeout end"),
                  "noconnection");
        return detected;
    }

    // After the partition heals: a new connection comes up and a message round-trips.
    static void expect_reconnects(beam_node& beam, const std::string& n) {
        EXPECT_TRUE(erl::interop::wait_until(
            [&] { return beam.eval("net_adm:ping(" + n + ")") == "pong"; }, 30s, 200ms));
        EXPECT_EQ(beam.eval("{echo, " + n +
                            "} ! {self(), healed}, receive healed -> ok after 5000 -> timeout end"),
                  "ok");
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
    // The link and monitor are in place on the BEAM side before the partition (LINK and
    // MONITOR_P travel on the distribution connection, the evaluation on another channel, so
    // the test waits for BEAM to have handled both).
    std::string on_beam;
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            on_beam = beam.eval(
                "{length(element(2, process_info(P, links))), "
                "length(element(2, process_info(P, monitored_by)))}");
            return on_beam == "{1,1}";
        },
        10s));
    ASSERT_EQ(on_beam, "{1,1}");

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
    expect_reconnects(beam, cpp.quoted_name());
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
    watch_from_beam(beam, n);
    const auto stopped_at = std::chrono::steady_clock::now();
    demo.signal(SIGSTOP);
    const double detected = expect_partition_seen(beam, n, stopped_at);
    std::printf("[ figures  ] stopped erlcpp-demo declared dead after %.1f s (net_ticktime 4 s)\n",
                detected);
    RecordProperty("detected_ms", static_cast<int>(detected * 1000));

    demo.signal(SIGCONT);
    expect_reconnects(beam, n);
    EXPECT_EQ(beam.eval("rpc:call(" + n + ", demo, add, [1, 2])"), "3");
    EXPECT_TRUE(demo.running());
}

// A cut link between running nodes: erlcpp-demo in its own network namespace (with its own
// epmd), reached over a veth pair that is set down. Unlike SIGSTOP both nodes keep running, so
// each side times the other out on its own: the BEAM node sees nodedown and noconnection, the
// demo logs its net_ticktime timeout. After the link is back up the nodes reconnect.
TEST_F(PartitionInterop, cut_veth_link_between_running_nodes) {
    netns_link link;
    if (!link.ok()) GTEST_SKIP() << "network namespaces need CAP_NET_ADMIN and iproute2";
    const std::string port = std::to_string(epmd.port());
    std::optional<erl::interop::process> inner_epmd;
    {
        erl::interop::process::options po;
        po.args = link.exec();
        po.args.insert(po.args.end(), {"epmd", "-port", port});
        inner_epmd.emplace(po);
    }
    auto names = link.exec();
    names.insert(names.end(), {"epmd", "-port", port, "-names"});
    ASSERT_TRUE(erl::interop::wait_until(
        [&] { return erl::interop::process::run(names, {}, 5s).exit_code == 0; }, 10s, 100ms));
    std::optional<demo_child> demo;
    demo.emplace(epmd.port(), cookie, std::vector<std::string>{"--ticktime", "4000"},
                 std::vector<std::pair<std::string, std::string>>{}, link.exec(), link.inside_ip);
    beam_node beam(ticking_beam());
    const std::string n = demo->quoted_name();
    watch_from_beam(beam, n);
    const auto cut_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(link.cut());
    const double detected = expect_partition_seen(beam, n, cut_at);
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return demo->log().find("net_ticktime") != std::string::npos; }, 20s))
        << demo->log();
    std::printf("[ figures  ] cut link: BEAM declared the demo dead after %.1f s\n", detected);
    RecordProperty("detected_ms", static_cast<int>(detected * 1000));
    EXPECT_TRUE(demo->running());

    ASSERT_TRUE(link.restore());
    expect_reconnects(beam, n);
    // The processes inside go before the namespace does.
    demo.reset();
    inner_epmd.reset();
}
