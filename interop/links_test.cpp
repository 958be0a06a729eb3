// Interop: links, exit signals, monitors and supervision between C++ processes and
// real erl / elixir nodes. Each test starts its own private epmd, C++ node and BEAM nodes.
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/supervisor.hpp>

#include "../examples/demo/supervision.hpp"
#include "harness/cluster.hpp"
#include "node/test_access.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;

namespace {

erl::atom A(const char* s) {
    return erl::atom(s);
}

std::size_t watcher_count(const std::shared_ptr<erl::detail::process>& p) {
    return erl::test::watcher_count(*p);
}

// A thread process that just waits (until killed), registered under `name`.
erl::pid idle_process(erl::node& n, const char* name) {
    erl::spawn_options o;
    o.name = erl::atom(name);
    return erl::spawn(
               n,
               [](erl::mailbox& m) {
                   while (m.receive()) {
                   }
               },
               o)
        .value();
}

void wait_watchers(erl::node& n, const erl::pid& p, std::size_t count = 1) {
    auto proc = erl::test::core_of(n).find_process(p);
    if (proc) erl::interop::wait_until([&] { return watcher_count(proc) >= count; }, 5s, 5ms);
}

bool wait_exited(const erl::mailbox& m) {
    return erl::interop::wait_until([&] { return m.exited(); }, 10s, 5ms);
}

}  // namespace

class LinksInterop : public erl::interop::cluster_test {
  protected:
    LinksInterop() : cluster_test("cpplinks") {}
    // net_ticktime 8 s (a tick every 2 s) for every C++ node of these tests.
    cpp_node::options links_opts() const {
        return cpp_opts([](erl::node_options& o) { o.net_ticktime = 8s; });
    }
};

TEST_F(LinksInterop, erlang_link_and_exit_kill_on_cpp_process) {
    cpp_node cpp(links_opts());
    beam_node beam(beam_opts());
    auto self = cpp.node->spawn_mailbox().value();
    auto victim = erl::spawn_monitor(self, [](erl::mailbox& m) {
                      while (m.receive()) {
                      }
                  }).value();
    ASSERT_EQ(beam.eval("register(tester, self())"), "true");
    self.send(A("tester"), erl::atom(beam.node_name()), erl::tuple(A("victim"), victim.pid));
    beam.eval("V = receive {victim, P} -> P after 5000 -> timeout end");
    // erlang:link/1 + exit(Pid, kill) from BEAM: the C++ process dies with `killed` and the
    // trapping BEAM process receives the EXIT.
    EXPECT_EQ(beam.eval("Parent = self(), spawn(fun() -> process_flag(trap_exit, true), link(V), "
                        "exit(V, kill), R = receive {'EXIT', V, X} -> X after 5000 -> timeout end, "
                        "Parent ! {result, R} end), "
                        "receive {result, R} -> R after 10000 -> timeout end"),
              "killed");
    EXPECT_EQ(*self.receive(5s),
              erl::tuple(A("DOWN"), victim.monitor, A("process"), victim.pid, A("killed")));
}

TEST_F(LinksInterop, cpp_process_linked_to_crashing_beam_process) {
    cpp_node cpp(links_opts());
    beam_node beam(beam_opts());
    auto inbox = cpp.node->spawn_mailbox(A("inbox")).value();
    beam.eval("{inbox, " + cpp.quoted_name() +
              "} ! {procs, spawn(fun() -> receive go -> exit(boom) end end), "
              "spawn(fun() -> receive go -> exit(boom2) end end)}");
    auto procs = inbox.receive(10s);
    ASSERT_TRUE(procs && procs->is_tuple(3));
    const auto p1 = (*procs)[1].as_pid(), p2 = (*procs)[2].as_pid();
    auto trapper = cpp.node->spawn_mailbox().value();
    auto plain = cpp.node->spawn_mailbox().value();
    trapper.trap_exit(true);
    trapper.link(p1);
    trapper.send(p1, erl::term(A("go")));  // after the LINK on the same connection
    plain.link(p2);
    plain.send(p2, erl::term(A("go")));
    EXPECT_EQ(*trapper.receive(10s), erl::tuple(A("EXIT"), p1, A("boom")));
    EXPECT_FALSE(trapper.exited());
    ASSERT_TRUE(wait_exited(plain));
    EXPECT_EQ(*plain.exit_reason(), erl::term(A("boom2")));
}

TEST_F(LinksInterop, unlink_while_exit_in_flight) {
    cpp_node cpp(links_opts());
    beam_node beam(beam_opts());
    auto inbox = cpp.node->spawn_mailbox(A("inbox")).value();
    beam.eval("{inbox, " + cpp.quoted_name() +
              "} ! spawn(fun() -> receive go -> exit(boom) end end)");
    auto p = inbox.receive(10s);
    ASSERT_TRUE(p && p->is_pid());
    auto m = cpp.node->spawn_mailbox().value();
    m.trap_exit(true);
    m.link(p->as_pid());
    m.send(p->as_pid(), erl::term(A("go")));  // the BEAM process exits and sends EXIT...
    m.unlink(p->as_pid());                    // ...while our UNLINK_ID is on its way
    // Whatever crosses, the unlinked process sees no exit and the link state is cleared by the
    // UNLINK_ID_ACK or the voided EXIT.
    EXPECT_FALSE(m.receive(1s));
    EXPECT_FALSE(m.exited());
    EXPECT_TRUE(m.links().empty());
    auto link_entries = [&] { return erl::test::link_entries(*erl::test::process_of(m)); };
    erl::interop::wait_until([&] { return link_entries() == 0; }, 5s, 5ms);
    EXPECT_EQ(link_entries(), 0u);
    // A live BEAM process: unlink is acknowledged and the link is gone on both sides.
    beam.eval("Q = spawn(fun() -> receive stop -> ok end end), {inbox, " + cpp.quoted_name() +
              "} ! Q");
    auto q = inbox.receive(10s);
    ASSERT_TRUE(q && q->is_pid());
    m.link(q->as_pid());
    m.unlink(q->as_pid());
    m.send(q->as_pid(), erl::term(A("probe_done")));
    EXPECT_EQ(beam.eval("timer:sleep(200), {links, L} = process_info(Q, links), L"), "[]");
}

TEST_F(LinksInterop, monitors_both_ways_by_name) {
    cpp_node cpp(links_opts());
    beam_node beam(beam_opts());
    // BEAM monitors a C++ process by {Name, Node}.
    auto target = idle_process(*cpp.node, "watched_cpp");
    beam.eval("Ref = erlang:monitor(process, {watched_cpp, " + cpp.quoted_name() + "})");
    wait_watchers(*cpp.node, target);
    auto killer = cpp.node->spawn_mailbox().value();
    killer.exit(target, erl::term(A("bye")));
    EXPECT_EQ(beam.eval("receive {'DOWN', Ref, process, Obj, R} -> {Obj, R} after 5000 -> "
                        "timeout end"),
              "{{watched_cpp," + cpp.quoted_name() + "},bye}");
    // BEAM monitors an unknown C++ name: noproc.
    EXPECT_EQ(beam.eval("R2 = erlang:monitor(process, {nobody_here, " + cpp.quoted_name() +
                        "}), receive {'DOWN', R2, process, _, Why} -> Why after 5000 -> timeout "
                        "end"),
              "noproc");
    // C++ monitors a BEAM process by name, and an unknown BEAM name.
    beam.eval("register(beam_target, spawn(fun() -> receive go -> exit(bye) end end))");
    auto w = cpp.node->spawn_mailbox().value();
    const erl::atom bn(beam.node_name());
    auto ref = w.monitor(A("beam_target"), bn);
    auto ref2 = w.monitor(A("no_such_beam_name"), bn);
    EXPECT_EQ(*w.receive(10s), erl::tuple(A("DOWN"), ref2, A("process"),
                                          erl::tuple(A("no_such_beam_name"), bn), A("noproc")));
    w.send(A("beam_target"), bn, erl::term(A("go")));  // after MONITOR_P on the connection
    EXPECT_EQ(*w.receive(10s),
              erl::tuple(A("DOWN"), ref, A("process"), erl::tuple(A("beam_target"), bn), A("bye")));
}

TEST_F(LinksInterop, kill9_of_beam_node_gives_noconnection_to_cpp_watchers) {
    cpp_node cpp(links_opts());
    beam_node beam(beam_opts());
    auto inbox = cpp.node->spawn_mailbox(A("inbox")).value();
    beam.eval("P0 = spawn(fun() -> receive stop -> ok end end), {inbox, " + cpp.quoted_name() +
              "} ! P0");
    auto p = inbox.receive(10s);
    ASSERT_TRUE(p && p->is_pid());
    const erl::atom bn(beam.node_name());
    auto w = cpp.node->spawn_mailbox().value();
    w.trap_exit(true);
    w.link(p->as_pid());
    auto ref = w.monitor(p->as_pid());
    w.monitor_node(bn);
    auto plain = cpp.node->spawn_mailbox().value();
    plain.link(p->as_pid());
    // A round trip through the same connection: our LINK and MONITOR_P signals were handled.
    ASSERT_EQ(beam.eval("register(tester, self())"), "true");
    w.send(A("tester"), bn, erl::term(A("synced")));
    EXPECT_EQ(beam.eval("receive synced -> length(element(2, process_info(P0, links))) after "
                        "5000 -> timeout end"),
              "2");
    beam.kill9();
    std::vector<erl::term> got;
    while (got.size() < 3) {
        auto m = w.receive(30s);  // within the tick time (the socket closes at once)
        if (!m) break;
        got.push_back(*m);
    }
    auto has = [&](const erl::term& x) {
        return std::find(got.begin(), got.end(), x) != got.end();
    };
    EXPECT_TRUE(has(erl::tuple(A("EXIT"), *p, A("noconnection"))));
    EXPECT_TRUE(has(erl::tuple(A("DOWN"), ref, A("process"), *p, A("noconnection"))));
    EXPECT_TRUE(has(erl::tuple(A("nodedown"), bn)));
    ASSERT_TRUE(wait_exited(plain));
    EXPECT_EQ(*plain.exit_reason(), erl::term(A("noconnection")));
}

TEST_F(LinksInterop, stopping_cpp_node_gives_beam_watchers_noconnection) {
    auto cpp = std::make_unique<cpp_node>(links_opts());
    beam_node beam(beam_opts());
    auto doomed = idle_process(*cpp->node, "doomed");
    auto inbox = cpp->node->spawn_mailbox(A("inbox")).value();
    const std::string node = cpp->quoted_name();
    beam.eval("Ref = erlang:monitor(process, {doomed, " + node + "}), monitor_node(" + node +
              ", true), Parent = self(), Helper = spawn(fun() -> process_flag(trap_exit, true), "
              "{inbox, " +
              node +
              "} ! {helper, self()}, receive {doomed_pid, D} -> link(D), "
              "Parent ! linked, receive {'EXIT', D, R} -> Parent ! {helper_exit, R} end end end)");
    auto h = inbox.receive(10s);
    ASSERT_TRUE(h && h->is_tuple(2));
    inbox.send((*h)[1].as_pid(), erl::tuple(A("doomed_pid"), doomed));
    EXPECT_EQ(beam.eval("receive linked -> linked after 5000 -> timeout end"), "linked");
    wait_watchers(*cpp->node, doomed);
    inbox = {};
    cpp.reset();  // stop: connections close first
    EXPECT_EQ(beam.eval("receive {'DOWN', Ref, process, _, R1} -> R1 after 10000 -> timeout end"),
              "noconnection");
    EXPECT_EQ(beam.eval("receive {nodedown, N} -> N after 10000 -> timeout end"), node);
    EXPECT_EQ(beam.eval("receive {helper_exit, R3} -> R3 after 10000 -> timeout end"),
              "noconnection");
}

TEST_F(LinksInterop, cpp_supervisor_restarts_worker_while_beam_monitors_it) {
    cpp_node cpp(links_opts());
    beam_node beam(beam_opts());
    auto sup = demo_supervision::start(*cpp.node);
    ASSERT_TRUE(sup);
    const std::string node = cpp.quoted_name();
    beam.eval("SupRef = erlang:monitor(process, {demo_sup, " + node + "})");
    // The demo worker links to a trapping BEAM process and replies {linked, W}; crashing it
    // gives that process {'EXIT', W, crash}.
    beam.eval("Parent = self(), spawn(fun() -> process_flag(trap_exit, true), {worker, " + node +
              "} ! {link, self()}, W = receive {linked, X} -> X after 5000 -> timeout end, "
              "Parent ! {w, W}, receive {'EXIT', W, R} -> Parent ! {exit, R} after 10000 -> "
              "Parent ! {exit, timeout} end end), "
              "W1 = receive {w, X} -> X after 5000 -> timeout end");
    EXPECT_EQ(beam.eval("is_pid(W1)"), "true");
    beam.eval("{worker, " + node + "} ! {exit, crash}");
    EXPECT_EQ(beam.eval("receive {exit, R} -> R after 10000 -> timeout end"), "crash");
    // Restarted under the same name, with a new pid; the supervisor itself stayed up.
    EXPECT_EQ(beam.eval("[{worker, W2, worker, _}] = supervisor:which_children({demo_sup, " + node +
                        "}), is_pid(W2) andalso W2 =/= W1"),
              "true");
    EXPECT_EQ(beam.eval("receive {'DOWN', SupRef, _, _, _} = D -> D after 300 -> no_down end"),
              "no_down");
    // exit(Sup, kill) from BEAM: the monitor fires with killed.
    ASSERT_EQ(beam.eval("register(tester, self())"), "true");
    auto helper = cpp.node->spawn_mailbox().value();
    helper.send(A("tester"), erl::atom(beam.node_name()), erl::tuple(A("sup"), sup.self()));
    EXPECT_EQ(beam.eval("S = receive {sup, P9} -> P9 after 5000 -> timeout end, exit(S, kill), "
                        "receive {'DOWN', SupRef, process, _, R9} -> R9 after 5000 -> timeout "
                        "end"),
              "killed");
}

TEST_F(LinksInterop, elixir_process_monitor_on_cpp_process) {
    cpp_node cpp(links_opts());
    beam_node ex(beam_opts(/*elixir=*/true));
    auto target = idle_process(*cpp.node, "ex_watched");
    ex.eval("ref = Process.monitor({:ex_watched, :\"" + cpp.name() + "\"})");
    wait_watchers(*cpp.node, target);
    auto killer = cpp.node->spawn_mailbox().value();
    killer.exit(target, erl::term(A("bye")));
    EXPECT_EQ(ex.eval("receive do {:DOWN, ^ref, :process, {name, _node}, reason} -> {name, "
                      "reason} after 5000 -> :timeout end"),
              "{:ex_watched, :bye}");
}
