// Interop: erl::supervisor seen and driven from real erl and elixir nodes — OTP's supervisor
// calls (supervisor:which_children/count_children/get_childspec/start_child/terminate_child/
// restart_child/delete_child, Supervisor.which_children/count_children) and sys on
// erlcpp-demo's demo_sup and demo_pool, compared in the same test with a BEAM supervisor; and
// children placed on other BEAM and erlcpp nodes that move when their node is killed.
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/supervisor.hpp>

#include "cluster_support.hpp"
#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::demo_child;

namespace {

// A callback module for BEAM reference supervisors: init/1 returns its argument, and
// worker/1 starts a process that answers {From, args} with {args, [Tag]} (as demo_pool's
// workers answer with their start arguments).
constexpr const char* ref_sup_source = R"(-module(ref_sup).
-behaviour(supervisor).
-export([init/1, start/1, worker/1]).
start(Init) -> {ok, P} = supervisor:start_link(?MODULE, Init), unlink(P), {ok, P}.
init(Init) -> {ok, Init}.
worker(Tag) -> {ok, spawn_link(fun() -> loop([Tag]) end)}.
loop(Args) ->
    receive {From, args} -> From ! {args, Args}, loop(Args);
            {exit, R} -> exit(R)
    end.
)";

// Compiles `source` (module `name`) in `dir` and loads it on `beam`.
void load_module(beam_node& beam, const erl::interop::temp_dir& dir, const std::string& name,
                 const char* source) {
    const auto file = dir.path(name + ".erl");
    std::ofstream(file) << source;
    beam.eval("{ok, " + name + ", Bin_" + name + "} = compile:file(\"" + file +
              "\", [binary, return_errors]), {module, " + name + "} = code:load_binary(" + name +
              ", \"" + file + "\", Bin_" + name + ")");
}

// The shape of which_children/1's list: {IdIsTerm, ChildKind, Type, ModulesIsList}.
constexpr const char* shape_fun =
    "Shape = fun(L) -> [{I =/= undefined, if is_pid(C) -> pid; true -> C end, T, is_list(M)} "
    "|| {I, C, T, M} <- L] end";

// erlcpp-demo, and an erl node where ref_sup is loaded, `Ref` is a BEAM supervisor started
// with `ref_init` (what ref_sup:init/1 returns) and `Shape` is bound.
struct demo_and_ref {
    demo_child demo;
    beam_node beam;
    erl::interop::temp_dir dir{"sup"};

    demo_and_ref(std::uint16_t epmd_port, const std::string& cookie, beam_node::options bo,
                 const std::string& ref_init)
        : demo(epmd_port, cookie), beam(std::move(bo)) {
        load_module(beam, dir, "ref_sup", ref_sup_source);
        beam.eval("{ok, Ref} = ref_sup:start(" + ref_init + ")");
        beam.eval(shape_fun);
    }
    // {Name, DemoNode}
    std::string at(const char* name) const {
        return std::string("{") + name + ", " + demo.quoted_name() + "}";
    }
};

// ref_sup:init/1 results: one permanent worker, as demo_sup; a transient template, as demo_pool.
const std::string one_worker =
    "{#{strategy => one_for_one, intensity => 100, period => 10}, "
    "[#{id => worker, start => {ref_sup, worker, [w]}}]}";
const std::string simple_template =
    "{#{strategy => simple_one_for_one, intensity => 100, period => 10}, "
    "[#{id => w, start => {ref_sup, worker, []}, restart => transient}]}";

erl::atom A(const char* s) {
    return erl::atom(s);
}

// A child running timer:sleep(infinity) on one of `nodes`.
erl::child_spec sleeper(const char* id, erl::placement where) {
    return erl::child_spec::remote(A(id), A("timer"), A("sleep"), erl::list(A("infinity")),
                                   std::move(where));
}

// The node the child `id` of `sup` runs on now ("" while it is not running).
std::string child_node(erl::supervisor& sup, const char* id) {
    auto kids = sup.which_children();
    if (!kids) return {};
    for (auto& k : *kids)
        if (k.id == erl::term(A(id)) && k.pid) return std::string(k.pid->node.str());
    return {};
}

}  // namespace

class SupervisorInterop : public erl::interop::cluster_test {
  protected:
    SupervisorInterop() : cluster_test("cppsup", "beamsup") {}
};

TEST_F(SupervisorInterop, which_children_and_count_children_from_erl_match_a_beam_supervisor) {
    demo_and_ref peers(epmd.port(), cookie, beam_opts(), one_worker);
    auto& beam = peers.beam;
    auto& demo = peers.demo;
    const std::string sup = peers.at("demo_sup");
    EXPECT_EQ(beam.eval("[{worker, W, worker, []}] = supervisor:which_children(" + sup +
                        "), node(W) =:= " + demo.quoted_name()),
              "true");
    EXPECT_EQ(beam.eval("Shape(supervisor:which_children(" + sup +
                        ")) =:= Shape(supervisor:which_children(Ref))"),
              "true");
    EXPECT_EQ(beam.eval("supervisor:count_children(" + sup + ")"),
              "[{specs,1},{active,1},{supervisors,0},{workers,1}]");
    EXPECT_EQ(
        beam.eval("supervisor:count_children(" + sup + ") =:= supervisor:count_children(Ref)"),
        "true");
    // A crash shows up as a new pid under the same id.
    EXPECT_EQ(beam.eval("M = erlang:monitor(process, W), exit(W, crash), "
                        "receive {'DOWN', M, _, _, R} -> R after 10000 -> timeout end"),
              "crash");
    EXPECT_EQ(beam.eval("[{worker, W2, worker, []}] = supervisor:which_children(" + sup +
                        "), is_pid(W2) andalso W2 =/= W"),
              "true");
}

TEST_F(SupervisorInterop, supervisor_queries_from_elixir_match_an_elixir_supervisor) {
    demo_child demo(epmd.port(), cookie);
    beam_node ex(beam_opts(/*elixir=*/true));
    const std::string sup = "{:demo_sup, :\"" + demo.name() + "\"}";
    ex.eval(
        "{:ok, ref} = Supervisor.start_link([%{id: :worker, start: {Agent, :start_link, "
        "[fn -> 0 end]}}], strategy: :one_for_one); Process.unlink(ref)");
    EXPECT_EQ(ex.eval("Supervisor.count_children(" + sup + ")"),
              "%{active: 1, specs: 1, supervisors: 0, workers: 1}");
    EXPECT_EQ(ex.eval("Supervisor.count_children(" + sup + ") == Supervisor.count_children(ref)"),
              "true");
    EXPECT_EQ(ex.eval("[{:worker, w, :worker, []}] = Supervisor.which_children(" + sup +
                      "); node(w) == :\"" + demo.name() + "\""),
              "true");
    EXPECT_EQ(ex.eval("[{:worker, r, :worker, mods}] = Supervisor.which_children(ref); "
                      "is_pid(r) and is_list(mods)"),
              "true");
    // Supervisor.terminate_child / restart_child, as on an Elixir supervisor.
    EXPECT_EQ(ex.eval("Supervisor.terminate_child(" + sup + ", :worker)"), ":ok");
    EXPECT_EQ(ex.eval("Supervisor.which_children(" + sup + ")"),
              "[{:worker, :undefined, :worker, []}]");
    EXPECT_EQ(ex.eval("{:ok, p} = Supervisor.restart_child(" + sup + ", :worker); is_pid(p)"),
              "true");
    EXPECT_EQ(ex.eval("Supervisor.delete_child(" + sup + ", :worker)"), "{:error, :running}");
    EXPECT_EQ(ex.eval("Supervisor.delete_child(ref, :worker)"), "{:error, :running}");
}

TEST_F(SupervisorInterop, child_calls_from_erl_give_otp_results_and_errors) {
    demo_and_ref peers(epmd.port(), cookie, beam_opts(), one_worker);
    auto& beam = peers.beam;
    const std::string sup = peers.at("demo_sup");
    // The same call on both supervisors gives the same answer.
    auto both = [&](const std::string& call) {
        return beam.eval("{supervisor:" + call + "(" + sup + ", worker), supervisor:" + call +
                         "(Ref, worker)}");
    };
    EXPECT_EQ(both("restart_child"), "{{error,running},{error,running}}");
    EXPECT_EQ(both("delete_child"), "{{error,running},{error,running}}");
    EXPECT_EQ(beam.eval("{ok, #{id := worker, restart := permanent, type := worker, "
                        "shutdown := 5000, significant := false}} = supervisor:get_childspec(" +
                        sup + ", worker), ok"),
              "ok");
    EXPECT_EQ(beam.eval("{supervisor:get_childspec(" + sup +
                        ", nope), supervisor:get_childspec(Ref, nope)}"),
              "{{error,not_found},{error,not_found}}");
    EXPECT_EQ(both("terminate_child"), "{ok,ok}");
    EXPECT_EQ(
        beam.eval("[{worker, undefined, worker, []}] = supervisor:which_children(" + sup + "), ok"),
        "ok");
    EXPECT_EQ(beam.eval("{supervisor:count_children(" + sup + "), supervisor:count_children(Ref)}"),
              "{[{specs,1},{active,0},{supervisors,0},{workers,1}],"
              "[{specs,1},{active,0},{supervisors,0},{workers,1}]}");
    EXPECT_EQ(beam.eval("{ok, P} = supervisor:restart_child(" + sup +
                        ", worker), {ok, _} = supervisor:restart_child(Ref, worker), is_pid(P)"),
              "true");
    EXPECT_EQ(beam.eval("case {supervisor:start_child(" + sup +
                        ", #{id => worker, start => {m, f, []}}), "
                        "supervisor:start_child(Ref, #{id => worker, start => {m, f, []}})} of "
                        "{{error, {already_started, _}}, {error, {already_started, _}}} -> same "
                        "end"),
              "same");
    EXPECT_EQ(beam.eval("{supervisor:start_child(" + sup +
                        ", #{id => x}), "
                        "supervisor:start_child(Ref, #{id => x})}"),
              "{{error,missing_start},{error,missing_start}}");
    EXPECT_EQ(beam.eval("{supervisor:start_child(" + sup +
                        ", junk), "
                        "supervisor:start_child(Ref, junk)}"),
              "{{error,{invalid_child_spec,junk}},{error,{invalid_child_spec,junk}}}");
}

TEST_F(SupervisorInterop, simple_one_for_one_from_erl_matches_a_beam_supervisor) {
    demo_and_ref peers(epmd.port(), cookie, beam_opts(), simple_template);
    auto& beam = peers.beam;
    auto& demo = peers.demo;
    const std::string pool = peers.at("demo_pool");
    EXPECT_EQ(
        beam.eval("{supervisor:which_children(" + pool + "), supervisor:which_children(Ref)}"),
        "{[],[]}");
    EXPECT_EQ(beam.eval("{ok, C1} = supervisor:start_child(" + pool +
                        ", [one]), {ok, R1} = supervisor:start_child(Ref, [one]), "
                        "node(C1) =:= " +
                        demo.quoted_name()),
              "true");
    EXPECT_EQ(beam.eval("C1 ! {self(), args}, receive {args, A} -> A after 5000 -> timeout end"),
              "[one]");
    EXPECT_EQ(beam.eval("{ok, C2} = supervisor:start_child(" + pool +
                        ", [two]), {ok, _} = supervisor:start_child(Ref, [two]), "
                        "Shape(supervisor:which_children(" +
                        pool + ")) =:= Shape(supervisor:which_children(Ref))"),
              "true");
    EXPECT_EQ(
        beam.eval("{supervisor:count_children(" + pool + "), supervisor:count_children(Ref)}"),
        "{[{specs,1},{active,2},{supervisors,0},{workers,2}],"
        "[{specs,1},{active,2},{supervisors,0},{workers,2}]}");
    // A crash is restarted with the same arguments.
    EXPECT_EQ(beam.eval("M2 = erlang:monitor(process, C2), C2 ! {exit, crash}, "
                        "receive {'DOWN', M2, _, _, R} -> R after 10000 -> timeout end"),
              "crash");
    EXPECT_EQ(beam.eval("[C2b] = [C || {undefined, C, worker, _} <- "
                        "supervisor:which_children(" +
                        pool +
                        "), C =/= C1], C2b ! {self(), args}, "
                        "receive {args, A2} -> A2 after 5000 -> timeout end"),
              "[two]");
    // terminate_child by pid only; the id-based calls are refused as OTP refuses them.
    EXPECT_EQ(beam.eval("{supervisor:terminate_child(" + pool +
                        ", C1), supervisor:terminate_child(Ref, R1)}"),
              "{ok,ok}");
    for (const char* call : {"terminate_child", "restart_child", "delete_child"})
        EXPECT_EQ(beam.eval(std::string("{supervisor:") + call + "(" + pool +
                            ", w), supervisor:" + call + "(Ref, w)}"),
                  "{{error,simple_one_for_one},{error,simple_one_for_one}}");
    EXPECT_EQ(
        beam.eval("{supervisor:count_children(" + pool + "), supervisor:count_children(Ref)}"),
        "{[{specs,1},{active,1},{supervisors,0},{workers,1}],"
        "[{specs,1},{active,1},{supervisors,0},{workers,1}]}");
}

TEST_F(SupervisorInterop, sys_get_state_get_status_suspend_resume_from_erl) {
    demo_and_ref peers(epmd.port(), cookie, beam_opts(), one_worker);
    auto& beam = peers.beam;
    const std::string sup = peers.at("demo_sup");
    EXPECT_EQ(beam.eval("#{strategy := S, intensity := I, period_ms := P, children := C} = "
                        "sys:get_state(" +
                        sup + "), {S, I, P, C =:= supervisor:which_children(" + sup + ")}"),
              "{one_for_one,100,10000,true}");
    // get_status: the gen_server shape of a BEAM supervisor's status.
    const std::string status_shape =
        "StatusShape = fun({status, _, {module, gen_server}, [_, St, _, _, "
        "[{header, \"Status for generic server \" ++ _} | _]]}) -> St end";
    beam.eval(status_shape);
    EXPECT_EQ(
        beam.eval("{StatusShape(sys:get_status(" + sup + ")), StatusShape(sys:get_status(Ref))}"),
        "{running,running}");
    EXPECT_EQ(beam.eval("{sys:suspend(" + sup + "), sys:suspend(Ref)}"), "{ok,ok}");
    EXPECT_EQ(
        beam.eval("{StatusShape(sys:get_status(" + sup + ")), StatusShape(sys:get_status(Ref))}"),
        "{suspended,suspended}");
    // A call sent before a system message is held while suspended; the system message is not.
    EXPECT_EQ(beam.eval("CallRef = make_ref(), " + sup +
                        " ! {'$gen_call', {self(), CallRef}, count_children}, "
                        "suspended = StatusShape(sys:get_status(" +
                        sup + ")), receive {CallRef, _} -> answered after 0 -> held end"),
              "held");
    EXPECT_EQ(beam.eval("{sys:resume(" + sup + "), sys:resume(Ref)}"), "{ok,ok}");
    EXPECT_EQ(beam.eval("receive {CallRef, Counts} -> Counts after 10000 -> timeout end"),
              "[{specs,1},{active,1},{supervisors,0},{workers,1}]");
    // sys:statistics counts the messages handled, as for a BEAM supervisor.
    EXPECT_EQ(beam.eval("{sys:statistics(" + sup + ", true), sys:statistics(Ref, true)}"),
              "{ok,ok}");
    beam.eval("supervisor:which_children(" + sup + "), supervisor:which_children(Ref)");
    EXPECT_EQ(beam.eval("StatsIn = fun(S) -> {ok, L} = sys:statistics(S, get), "
                        "proplists:get_value(messages_in, L) end, {StatsIn(" +
                        sup + "), StatsIn(Ref)}"),
              "{1,1}");
}

// --- children on other nodes ---------------------------------------------------------------

TEST_F(SupervisorInterop, child_on_a_killed_beam_node_moves_and_intensity_ends_the_supervisor) {
    cpp_node cpp(cpp_opts());
    beam_node b1(beam_opts()), b2(beam_opts()), obs(beam_opts());
    erl::supervisor_flags f;
    f.intensity = 1;  // one lost node is absorbed, the second is one too many
    f.period = 60s;
    erl::spawn_options o;
    o.name = A("remote_sup");
    auto sup = erl::supervisor::start(
        *cpp.node, f,
        {sleeper("sleeper",
                 erl::placement::on({A(b1.node_name().c_str()), A(b2.node_name().c_str())}))},
        o);
    ASSERT_TRUE(sup) << sup.error().message();
    const std::string ref = "{remote_sup, " + cpp.quoted_name() + "}";
    // Seen from a third BEAM node: the child runs on b1, as a BEAM child would show.
    EXPECT_EQ(obs.eval("[{sleeper, P1, worker, [timer]}] = supervisor:which_children(" + ref +
                       "), node(P1)"),
              erl::interop::quote_atom(b1.node_name()));
    EXPECT_EQ(obs.eval("rpc:call(node(P1), erlang, is_process_alive, [P1])"), "true");
    obs.eval("SupMon = erlang:monitor(process, " + ref + ")");
    b1.kill9();
    ASSERT_TRUE(erl::interop::wait_until(
        [&] { return child_node(*sup, "sleeper") == b2.node_name(); }, 20s));
    EXPECT_EQ(obs.eval("[{sleeper, P2, worker, [timer]}] = supervisor:which_children(" + ref +
                       "), {node(P2), rpc:call(node(P2), erlang, is_process_alive, [P2])}"),
              "{" + erl::interop::quote_atom(b2.node_name()) + ",true}");
    EXPECT_EQ(obs.eval("supervisor:count_children(" + ref + ")"),
              "[{specs,1},{active,1},{supervisors,0},{workers,1}]");
    // The second loss is beyond the intensity: the supervisor exits shutdown, as OTP's does.
    b2.kill9();
    EXPECT_EQ(
        obs.eval("receive {'DOWN', SupMon, process, _, R} -> R after 20000 -> timeout end", 30s),
        "shutdown");
}

TEST_F(SupervisorInterop, rest_for_one_restarts_later_children_on_the_nodes_left) {
    cpp_node cpp(cpp_opts());
    beam_node b1(beam_opts()), b2(beam_opts());
    const erl::atom n1(b1.node_name()), n2(b2.node_name());
    erl::supervisor_flags f;
    f.strategy = erl::restart_strategy::rest_for_one;
    f.intensity = 5;
    // first on b1 (fewest children), second on b2, third on b1 again.
    auto sup = erl::supervisor::start(*cpp.node, f,
                                      {sleeper("first", erl::placement::on({n1, n2})),
                                       sleeper("second", erl::placement::on({n1, n2})),
                                       sleeper("third", erl::placement::on({n1, n2}))});
    ASSERT_TRUE(sup) << sup.error().message();
    EXPECT_EQ(child_node(*sup, "first"), b1.node_name());
    EXPECT_EQ(child_node(*sup, "second"), b2.node_name());
    EXPECT_EQ(child_node(*sup, "third"), b1.node_name());
    auto before = sup->which_children().value();
    // Losing b2 restarts `second` (on b1, the only node left) and `third` after it; `first`
    // keeps its pid.
    b2.kill9();
    ASSERT_TRUE(erl::interop::wait_until(
        [&] { return child_node(*sup, "second") == b1.node_name(); }, 20s));
    auto after = sup->which_children().value();
    ASSERT_EQ(after.size(), 3u);
    EXPECT_EQ(after[0].pid, before[0].pid);
    EXPECT_NE(after[2].pid, before[2].pid);
    EXPECT_EQ(after[2].pid->node, n1);
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            return b1.eval(
                       "length([P || P <- processes(), "
                       "erlang:process_info(P, current_function) =:= "
                       "{current_function, {timer, sleep, 1}}])") == "3";
        },
        10s));
}

// The demo's pool worker, as a BEAM module with the same demo_pool:worker/1: a remote child
// placed on an erlcpp node or a BEAM node runs the same contract on either.
constexpr const char* beam_pool_source = R"(-module(demo_pool).
-export([worker/1]).
worker(Tag) -> loop([Tag]).
loop(Args) ->
    receive {From, args} -> From ! {args, Args}, loop(Args);
            {exit, R} -> exit(R)
    end.
)";

TEST_F(SupervisorInterop, child_moves_from_a_killed_erlcpp_node_to_a_beam_node) {
    cpp_node cpp(cpp_opts());
    demo_child demo(epmd.port(), cookie);
    beam_node b1(beam_opts());
    erl::interop::temp_dir dir("sup-move");
    load_module(b1, dir, "demo_pool", beam_pool_source);
    erl::spawn_options o;
    o.name = A("mixed_sup");
    erl::supervisor_flags f;
    f.intensity = 3;
    auto sup = erl::supervisor::start(
        *cpp.node, f,
        {erl::child_spec::remote(
            A("pooled"), A("demo_pool"), A("worker"), erl::list(A("job")),
            erl::placement::on({A(demo.name().c_str()), A(b1.node_name().c_str())}))},
        o);
    ASSERT_TRUE(sup) << sup.error().message();
    EXPECT_EQ(child_node(*sup, "pooled"), demo.name());
    const std::string ref = "{mixed_sup, " + cpp.quoted_name() + "}";
    // Where the child runs, and its answer to {From, args}.
    b1.eval("Ask = fun() -> [{pooled, P, worker, [demo_pool]}] = supervisor:which_children(" + ref +
            "), P ! {self(), args}, {node(P), receive {args, A} -> A after 5000 -> timeout end} "
            "end");
    EXPECT_EQ(b1.eval("Ask()"), "{" + demo.quoted_name() + ",[job]}");
    demo.signal(SIGKILL);
    ASSERT_TRUE(erl::interop::wait_until(
        [&] { return child_node(*sup, "pooled") == b1.node_name(); }, 20s));
    EXPECT_EQ(b1.eval("Ask()"), "{" + erl::interop::quote_atom(b1.node_name()) + ",[job]}");
}

TEST_F(SupervisorInterop, child_placed_by_pg_group_follows_its_members_nodes) {
    erl::interop::cluster_node cpp(cpp_opts());
    beam_node b1(beam_opts()), b2(beam_opts());
    // Each BEAM node offers itself by a member in group sup_hosts of the default scope.
    for (auto* b : {&b1, &b2}) {
        b->eval(
            "{ok, _} = pg:start(pg), Member = spawn(fun() -> receive stop -> ok end end), "
            "ok = pg:join(sup_hosts, Member)");
        ASSERT_FALSE(cpp.node->connect(erl::atom(b->node_name())));
    }
    ASSERT_TRUE(erl::interop::wait_until(
        [&] { return erl::pg::get_members(*cpp.node, A("sup_hosts")).size() == 2; }, 10s));
    erl::supervisor_flags f;
    f.intensity = 3;
    auto sup =
        erl::supervisor::start(*cpp.node, f, {sleeper("g", erl::placement::group(A("sup_hosts")))});
    ASSERT_TRUE(sup) << sup.error().message();
    // The members' nodes in name order: the first gets the child.
    const bool first_is_b1 = b1.node_name() < b2.node_name();
    beam_node& host = first_is_b1 ? b1 : b2;
    beam_node& other = first_is_b1 ? b2 : b1;
    EXPECT_EQ(child_node(*sup, "g"), host.node_name());
    host.kill9();
    ASSERT_TRUE(
        erl::interop::wait_until([&] { return child_node(*sup, "g") == other.node_name(); }, 20s));
    // The spawn reply names the pid before the new process has reached its function.
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            return other.eval(
                       "length([P || P <- processes(), erlang:process_info(P, "
                       "current_function) =:= {current_function, {timer, sleep, 1}}])") == "1";
        },
        10s));
}
