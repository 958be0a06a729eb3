// Interop: erl::supervisor seen and driven from real erl and elixir nodes — OTP's supervisor
// calls (supervisor:which_children/count_children/get_childspec/start_child/terminate_child/
// restart_child/delete_child, Supervisor.which_children/count_children) and sys on
// erlcpp-demo's demo_sup and demo_pool, compared in the same test with a BEAM supervisor.
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/supervisor.hpp>

#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

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
        const auto file = dir.path("ref_sup.erl");
        std::ofstream(file) << ref_sup_source;
        beam.eval("{ok, ref_sup, RefSupBin} = compile:file(\"" + file +
                  "\", [binary, return_errors]), {module, ref_sup} = code:load_binary(ref_sup, "
                  "\"" +
                  file + "\", RefSupBin)");
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
