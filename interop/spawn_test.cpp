// Interop: erlang:spawn/4, spawn_link/4 and spawn_monitor/4 across nodes, both ways, between a
// C++ node, a real erl node and a second C++ node: link and monitor set up with the spawn
// (erl_dist_protocol SPAWN_REQUEST opts), the errors BEAM gives as values, and C++ process kinds
// (erl::add_spawnable) started by erl's spawn/4.
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <future>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;

namespace {

erl::atom A(std::string_view s) {
    return erl::atom(s);
}

erl::atom node_atom(const beam_node& b) {
    return erl::atom(b.node_name());
}

// The next message matching pred, or nullopt after 10 s.
std::optional<erl::term> next_if(erl::mailbox& mb, const std::function<bool(const erl::term&)>& p) {
    return mb.receive_if(p, 10s);
}

bool is_exit_from(const erl::term& t, const erl::pid& p) {
    return t.is_tuple(3) && t[0].is_atom(A("EXIT")) && t[1].is_pid() && t[1].as_pid() == p;
}

bool is_down(const erl::term& t, const erl::reference& ref) {
    return t.is_tuple(5) && t[0].is_atom(A("DOWN")) && t[1].is_reference() &&
           t[1].as_reference() == ref;
}

// The C++ process kinds of these tests: worker:start(ReplyTo) tells ReplyTo it runs, then
// answers {ping, From} with {pong, self()} until it gets stop (exit normal) or {exit, Reason}.
void add_worker_kinds(erl::node& n) {
    erl::add_spawnable(n, A("worker"), A("start"), 1,
                       [](erl::mailbox& mb, std::vector<erl::term> args) {
                           if (args[0].is_pid())
                               mb.send(args[0].as_pid(), erl::tuple(A("started"), mb.self_term()));
                           while (auto m = mb.receive()) {
                               if (m->is_atom(A("stop"))) return;
                               if (m->is_tuple(2) && (*m)[0].is_atom(A("exit")))
                                   throw erl::exit_exception((*m)[1]);
                               if (m->is_tuple(2) && (*m)[0].is_atom(A("ping")) && (*m)[1].is_pid())
                                   mb.send((*m)[1].as_pid(), erl::tuple(A("pong"), mb.self_term()));
                           }
                       });
    // worker:crash(Reason): a coroutine kind that ends with Reason at once.
    erl::add_spawnable(
        n, A("worker"), A("crash"), 1,
        [](erl::process_context&, std::vector<erl::term> args) -> boost::asio::awaitable<void> {
            throw erl::exit_exception(args[0]);
            co_return;
        });
}

}  // namespace

class SpawnInterop : public erl::interop::cluster_test {
  protected:
    SpawnInterop() : cluster_test("cppspawn", "beamspawn") {}
};

// --- C++ -> BEAM ------------------------------------------------------------------------------

TEST_F(SpawnInterop, spawn_link_on_beam_is_linked_before_the_process_runs) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    auto mb = cpp.node->spawn_mailbox().value();
    mb.trap_exit(true);
    // erlang:exit/1 ends the new process as soon as it runs: only a link made with the spawn
    // turns that into an exit signal (a link made afterwards would give noproc).
    auto p = erl::spawn_link(mb, node_atom(beam), A("erlang"), A("exit"), erl::list(A("boom")));
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(p->node, node_atom(beam));
    auto ex = next_if(mb, [&](const erl::term& t) { return is_exit_from(t, *p); });
    ASSERT_TRUE(ex);
    EXPECT_EQ((*ex)[2].to_string(), "boom");
}

TEST_F(SpawnInterop, spawn_monitor_and_spawn_on_beam_run_the_function) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    auto mb = cpp.node->spawn_mailbox(A("inbox")).value();
    auto s = erl::spawn_monitor(mb, node_atom(beam), A("erlang"), A("exit"), erl::list(A("done")));
    ASSERT_TRUE(s) << s.error().message();
    auto down = next_if(mb, [&](const erl::term& t) { return is_down(t, s->monitor); });
    ASSERT_TRUE(down);
    EXPECT_EQ((*down)[3], erl::term(s->pid));
    EXPECT_EQ((*down)[4].to_string(), "done");

    // spawn/4 without link or monitor: the BEAM process runs erlang:send/2 to our mailbox.
    auto p = erl::spawn(*cpp.node, node_atom(beam), A("erlang"), A("send"),
                        erl::list(erl::tuple(A("inbox"), cpp.node->name()), A("hello")));
    ASSERT_TRUE(p) << p.error().message();
    auto hello = next_if(mb, [](const erl::term& t) { return t.is_atom(A("hello")); });
    EXPECT_TRUE(hello);
    // BEAM sees the process as its own: it has no links (spawn/4 made none).
    beam.eval("register(probe, self())");
    mb.send(A("probe"), node_atom(beam), erl::term(*p));
    EXPECT_EQ(beam.eval("receive P -> node(P) =:= node() after 5000 -> none end"), "true");
}

TEST_F(SpawnInterop, spawn_of_an_undefined_function_on_beam_starts_and_exits_undef) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    auto mb = cpp.node->spawn_mailbox().value();
    auto s = erl::spawn_monitor(mb, node_atom(beam), A("no_such_module"), A("f"),
                                erl::list(erl::term(1)));
    ASSERT_TRUE(s) << s.error().message();  // not a spawn error on BEAM
    auto down = next_if(mb, [&](const erl::term& t) { return is_down(t, s->monitor); });
    ASSERT_TRUE(down);
    // The same reason BEAM gives for a local spawn of the same call.
    EXPECT_EQ((*down)[4].to_string(),
              beam.eval("{_, R} = spawn_monitor(no_such_module, f, [1]), "
                        "receive {'DOWN', R, process, _, Why} -> Why after 5000 -> none end"));
}

TEST_F(SpawnInterop, spawn_errors_are_values) {
    cpp_node cpp(cpp_opts());
    cpp_node bare(cpp_opts());  // an erlcpp node with no process kind and no rpc server
    beam_node beam(beam_opts());
    auto mb = cpp.node->spawn_mailbox().value();
    auto is = [](const auto& r, erl::errc e) { return !r && r.error() == erl::make_error_code(e); };
    // badarg: the argument list is not a proper list (erlang:spawn/4 raises badarg).
    EXPECT_TRUE(is(erl::spawn(*cpp.node, node_atom(beam), A("erlang"), A("node"), erl::term(1)),
                   erl::errc::badarg));
    EXPECT_TRUE(is(erl::spawn_link(mb, node_atom(beam), A("erlang"), A("node"),
                                   erl::make_list({erl::term(1)}, erl::term(2))),
                   erl::errc::badarg));
    // noconnection: no such node (BEAM returns a pid that exits noconnection).
    const erl::atom ghost("ghost_node_never_started@127.0.0.1");
    EXPECT_TRUE(is(erl::spawn_monitor(mb, ghost, A("erlang"), A("node"), erl::list(), 3s),
                   erl::errc::noconnection));
    // notsup: an erlcpp node cannot run Erlang code it has no C++ kind for.
    EXPECT_TRUE(is(
        erl::spawn_link(mb, bare.node->name(), A("io"), A("format"), erl::list(erl::binary("x"))),
        erl::errc::notsup));
    // Our own name: a local spawn of a registered kind, notsup without one.
    EXPECT_TRUE(is(erl::spawn(*cpp.node, cpp.node->name(), A("worker"), A("start"),
                              erl::list(erl::term(mb.self()))),
                   erl::errc::notsup));
    // A failed spawn leaves no link and no monitor behind.
    EXPECT_TRUE(mb.links().empty());
    EXPECT_FALSE(mb.receive(50ms));
}

TEST_F(SpawnInterop, link_from_spawn_link_fires_noconnection_when_the_node_dies) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    auto mb = cpp.node->spawn_mailbox().value();
    mb.trap_exit(true);
    auto p = erl::spawn_link(mb, node_atom(beam), A("timer"), A("sleep"), erl::list(A("infinity")));
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(mb.links().size(), 1u);
    beam.kill9();
    auto ex = next_if(mb, [&](const erl::term& t) { return is_exit_from(t, *p); });
    ASSERT_TRUE(ex);
    EXPECT_EQ((*ex)[2].to_string(), "noconnection");
}

// --- BEAM -> C++ and C++ -> C++ ---------------------------------------------------------------

TEST_F(SpawnInterop, erl_spawns_registered_cpp_process_kinds) {
    cpp_node cpp(cpp_opts());
    add_worker_kinds(*cpp.node);
    beam_node beam(beam_opts());
    const std::string c = cpp.quoted_name();
    // spawn_link/4 from erl: the C++ process runs, answers, and its exit reaches the linker.
    EXPECT_EQ(beam.eval("process_flag(trap_exit, true), "
                        "P = spawn_link(" +
                        c +
                        ", worker, start, [self()]), "
                        "Started = receive {started, P} -> ok after 5000 -> none end, "
                        "P ! {ping, self()}, "
                        "Pong = receive {pong, P} -> ok after 5000 -> none end, "
                        "Linked = lists:member(P, element(2, process_info(self(), links))), "
                        "P ! {exit, bye}, "
                        "Exit = receive {'EXIT', P, R} -> R after 5000 -> none end, "
                        "{node(P), Started, Pong, Linked, Exit}"),
              "{" + c + ",ok,ok,true,bye}");
    // spawn_monitor/4 of the coroutine kind: the 'DOWN' carries its exit reason.
    EXPECT_EQ(beam.eval("{P2, R2} = spawn_monitor(" + c +
                        ", worker, crash, [{oops, 1}]), "
                        "receive {'DOWN', R2, process, P2, W} -> W after 5000 -> none end"),
              "{oops,1}");
    // The linker dying kills the C++ process (the link was made with the spawn).
    EXPECT_EQ(beam.eval("Self = self(), "
                        "Owner = spawn(fun() -> "
                        "  OW = spawn_link(" +
                        c +
                        ", worker, start, [Self]), "
                        "  receive go -> exit({owner_died, OW}) end end), "
                        "W3 = receive {started, X} -> X after 5000 -> none end, "
                        "M3 = monitor(process, W3), Owner ! go, "
                        "receive {'DOWN', M3, process, W3, {owner_died, W3}} -> ok "
                        "after 5000 -> none end"),
              "ok");
    // Neither a kind nor an rpc function: spawn_monitor/4 raises notsup, spawn/4 gives a pid
    // that exits notsup (erlang.erl spawn_opt/5).
    EXPECT_EQ(
        beam.eval("catch element(1, element(2, catch spawn_monitor(" + c + ", nomod, nofun, [])))"),
        "notsup");
    EXPECT_EQ(beam.eval("P4 = spawn(" + c +
                        ", nomod, nofun, []), M4 = monitor(process, P4), "
                        "receive {'DOWN', M4, process, P4, W4} -> W4 after 5000 -> none end"),
              "notsup");
}

TEST_F(SpawnInterop, cpp_spawns_on_another_cpp_node_and_on_itself) {
    cpp_node a(cpp_opts());
    cpp_node b(cpp_opts());
    add_worker_kinds(*a.node);
    add_worker_kinds(*b.node);
    for (erl::node* where : {b.node.get(), a.node.get()}) {
        auto mb = a.node->spawn_mailbox().value();
        mb.trap_exit(true);
        auto p = erl::spawn_link(mb, where->name(), A("worker"), A("start"),
                                 erl::list(erl::term(mb.self())));
        ASSERT_TRUE(p) << p.error().message();
        EXPECT_EQ(p->node, where->name());
        auto started = next_if(mb, [](const erl::term& t) { return t.is_tuple(2); });
        ASSERT_TRUE(started);
        EXPECT_EQ((*started)[1], erl::term(*p));
        mb.send(*p, erl::tuple(A("exit"), A("bye")));
        auto ex = next_if(mb, [&](const erl::term& t) { return is_exit_from(t, *p); });
        ASSERT_TRUE(ex);
        EXPECT_EQ((*ex)[2].to_string(), "bye");

        auto s =
            erl::spawn_monitor(mb, where->name(), A("worker"), A("crash"), erl::list(A("crashed")));
        ASSERT_TRUE(s) << s.error().message();
        auto down = next_if(mb, [&](const erl::term& t) { return is_down(t, s->monitor); });
        ASSERT_TRUE(down);
        EXPECT_EQ((*down)[4].to_string(), "crashed");
    }
    // A kind removed is no longer spawnable.
    EXPECT_TRUE(erl::remove_spawnable(*b.node, A("worker"), A("crash"), 1));
    auto r = erl::spawn(*a.node, b.node->name(), A("worker"), A("crash"), erl::list(A("x")));
    EXPECT_TRUE(!r && r.error() == erl::make_error_code(erl::errc::notsup));
}

// --- completion-token forms ----------------------------------------------------------------

// A coroutine process on a node with one I/O thread spawns on BEAM with async_spawn_link and
// async_spawn_monitor (nothing may block that thread), and a callback form runs erlang:send/2
// there: the link and the monitor exist before the BEAM process runs, as with the blocking forms.
TEST_F(SpawnInterop, async_spawn_forms_from_a_coroutine_on_a_single_io_thread) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.threads = 1; }));
    beam_node beam(beam_opts());
    const erl::atom where = node_atom(beam);
    std::promise<std::vector<erl::term>> seen;
    auto spawned = erl::spawn(
        *cpp.node, [&, where](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            using boost::asio::as_tuple;
            using boost::asio::use_awaitable;
            std::vector<erl::term> out;
            ctx.trap_exit(true);
            auto linked =
                co_await erl::async_spawn_link(ctx.handle(), where, A("erlang"), A("exit"),
                                               erl::list(A("boom")), 10s, as_tuple(use_awaitable));
            const bool ok1 = !std::get<0>(linked);
            const erl::pid p = std::get<1>(linked);
            out.push_back(erl::term(A(ok1 ? "spawned" : "spawn_link_failed")));
            auto ex = co_await ctx.async_receive_if(
                [ok1, p](const erl::term& t) { return ok1 && is_exit_from(t, p); }, 10s);
            out.push_back(ex ? (*ex)[2] : erl::term(A("no_exit")));
            auto monitored = co_await erl::async_spawn_monitor(ctx.handle(), where, A("erlang"),
                                                               A("exit"), erl::list(A("done")), 10s,
                                                               as_tuple(use_awaitable));
            const bool ok2 = !std::get<0>(monitored);
            const erl::reference ref = std::get<1>(monitored).monitor;
            auto down = co_await ctx.async_receive_if(
                [ok2, ref](const erl::term& t) { return ok2 && is_down(t, ref); }, 10s);
            out.push_back(down ? (*down)[4] : erl::term(A("no_down")));
            seen.set_value(std::move(out));
        });
    ASSERT_TRUE(spawned);
    auto f = seen.get_future();
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto out = f.get();
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].to_string(), "spawned");
    EXPECT_EQ(out[1].to_string(), "boom");
    EXPECT_EQ(out[2].to_string(), "done");

    auto mb = cpp.node->spawn_mailbox(A("inbox")).value();
    std::promise<erl::error_code> sent;
    erl::async_spawn(*cpp.node, where, A("erlang"), A("send"),
                     erl::list(erl::tuple(A("inbox"), cpp.node->name()), A("hello")), 10s,
                     [&](erl::error_code ec, erl::pid) { sent.set_value(ec); });
    EXPECT_FALSE(sent.get_future().get());
    EXPECT_TRUE(next_if(mb, [](const erl::term& t) { return t.is_atom(A("hello")); }));
    // An error as a value: a node that is not there.
    std::promise<erl::error_code> lost;
    erl::async_spawn(*cpp.node, A("nobody_here@127.0.0.1"), A("erlang"), A("node"), erl::list(), 5s,
                     [&](erl::error_code ec, erl::pid) { lost.set_value(ec); });
    EXPECT_EQ(lost.get_future().get(), erl::errc::noconnection);
}
