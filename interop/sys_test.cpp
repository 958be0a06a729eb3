// Interop: OTP's sys module on C++ gen_servers, from real erl and elixir nodes. Each sys call
// on erlcpp-demo's `counter` (an inline gen_server) is compared with the same call on a BEAM
// gen_server holding the same state; a threaded C++ server is checked for suspend/resume,
// code_change and sys:terminate.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>

#include "call_checks.hpp"
#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::expect_evals;

namespace {

// A BEAM gen_server `counter` answering as the demo's: get, {add, N}, cast reset.
void start_beam_counter(beam_node& b) {
    b.eval(
        R"ERL(Forms = [begin {ok, Ts, _} = erl_scan:string(F), {ok, Fm} = erl_parse:parse_form(Ts), Fm end
                    || F <- ["-module(cnt).", "-behaviour(gen_server).",
                             "-export([init/1, handle_call/3, handle_cast/2]).",
                             "init(S) -> {ok, S}.",
                             "handle_call(get, _F, S) -> {reply, S, S};"
                             "handle_call({add, N}, _F, S) -> {reply, S + N, S + N}.",
                             "handle_cast(reset, _S) -> {noreply, 0}."]],
    {ok, cnt, Bin} = compile:forms(Forms),
    {module, cnt} = code:load_binary(cnt, "cnt.erl", Bin),
    {ok, _} = gen_server:start({local, counter}, cnt, 0, []), ok)ERL");
    // What must agree between the two get_status answers: {status, Pid, {module, Mod},
    // [PDict, SysState, Parent, Debug, Misc]} with gen_server's Misc; a server started
    // without a link is its own parent. The process dictionaries differ (a BEAM process has
    // '$ancestors' and '$initial_call', a C++ one none) and only their type is compared.
    b.eval(R"ERL(Shape = fun({status, P, {module, M}, [D, SS, Par, Dbg,
                          [{header, "Status for generic server counter"},
                           {data, [{"Status", SS2}, {"Parent", Par2}, {"Logged events", L}]},
                           {data, [{"State", S}]}]]})
                     when is_pid(P), is_list(D), P =:= Par, P =:= Par2 ->
                         {M, SS, SS2, Dbg, L, S}
                 end, ok)ERL");
}

// A threaded C++ gen_server: get, {add, N}; its state is the count; code_change from "1"
// adds Extra to it.
struct counter : erl::gen_server::server {
    std::int64_t n = 0;
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_tuple(2) && req[0].is_atom(erl::atom("add"))) n += req[1].as_int64();
        return erl::term(n);
    }
    std::optional<erl::term> state() const override { return erl::term(n); }
    std::optional<erl::term> code_change(const erl::term& vsn, const erl::term& state,
                                         const erl::term& extra) override {
        if (vsn != erl::charlist("1") || !extra.is_small())
            return erl::tuple(erl::atom("bad_upgrade"), vsn);
        n = state.as_int64() + extra.as_int64();
        return std::nullopt;
    }
    std::atomic<int> terminated{0};
    erl::term terminate_reason;
    void terminate(const erl::term& reason) override {
        terminate_reason = reason;
        ++terminated;
    }
};

}  // namespace

class SysInterop : public erl::interop::cluster_test {};

TEST_F(SysInterop, sys_on_demo_counter_answers_as_on_beam_gen_server) {
    erl::interop::demo_child demo(epmd.port(), cookie);
    beam_node beam(beam_opts());
    start_beam_counter(beam);
    const std::string d = "{counter, " + demo.quoted_name() + "}";
    // Each expression on the demo's counter and on the BEAM one (`$D`): the same answer.
    auto both = [&](const std::vector<erl::interop::eval_check>& checks) {
        erl::interop::expect_same_evals(beam, d, "counter", checks);
    };
    both({
        {"gen_server:call($D, {add, 5})", "5"},
        // sys:get_state is the count (the demo counter's state() hook).
        {"sys:get_state($D)", "5"},
        {"Shape(sys:get_status($D))", "{gen_server,running,running,[],[],5}"},
        // replace_state with a fun the server cannot run: the error a crashing fun gives on
        // BEAM.
        {"try sys:replace_state($D, fun nomod:nofun/1) catch error:R -> R end",
         "{callback_failed,{gen_server,system_replace_state},{error,undef}}"},
        {"sys:get_state($D)", "5"},
        // change_code is refused while running, as sys.erl refuses it.
        {"sys:change_code($D, cnt, \"1\", [])",
         "{error,{unknown_system_msg,{change_code,cnt,\"1\",[]}}}"},
        // Suspended: a call sent before a system message is still unanswered when the system
        // message's answer arrives (a running server would have answered it first), and it is
        // answered after resume.
        {"sys:suspend($D)", "ok"},
        {"Shape(sys:get_status($D))", "{gen_server,suspended,suspended,[],[],5}"},
        {"Ref = make_ref(), $D ! {'$gen_call', {self(), Ref}, {add, 1}}, "
         "S = sys:get_state($D), "
         "Early = receive {Ref, _} -> answered after 0 -> waiting end, "
         "ok = sys:resume($D), "
         "Late = receive {Ref, V} -> V after 5000 -> none end, {S, Early, Late}",
         "{5,waiting,6}"},
        // Statistics: OTP's keys; messages in and out counted exactly.
        {"sys:statistics($D, get)", "{ok,no_statistics}"},
        {"sys:statistics($D, true)", "ok"},
        {"[gen_server:call($D, get) || _ <- [1, 2, 3]], gen_server:cast($D, reset), "
         "{ok, St} = sys:statistics($D, get), "
         "{[K || {K, _} <- St], proplists:get_value(messages_in, St), "
         "proplists:get_value(messages_out, St)}",
         "{[start_time,current_time,reductions,messages_in,messages_out],4,3}"},
    });
    EXPECT_EQ(beam.eval("{ok, St2} = sys:statistics(" + d +
                        ", get), {{_, _, _}, {_, _, _}} = proplists:get_value(start_time, St2), "
                        "R = proplists:get_value(reductions, St2), is_integer(R) andalso R > 0"),
              "true");
    both({
        {"sys:statistics($D, false)", "ok"},
        // The log: the last events, as gen_server records them.
        {"ok = sys:log($D, true), gen_server:call($D, {add, 2}), "
         "{ok, Ev} = sys:log($D, get), ok = sys:log($D, false), "
         "[case E of {in, {'$gen_call', {P, _}, Req}} when P =:= self() -> {in, Req}; "
         "{out, Rep, {P, _}, S1} when P =:= self() -> {out, Rep, S1} end || E <- Ev]",
         "[{in,{add,2}},{out,2,2}]"},
        {"sys:no_debug($D)", "ok"},
    });
}

TEST_F(SysInterop, threaded_server_suspend_change_code_and_terminate) {
    cpp_node cpp(cpp_opts());
    auto c = std::make_shared<counter>();
    auto srv = erl::gen_server::start(*cpp.node, c, erl::atom("tcounter"));
    ASSERT_TRUE(srv);
    beam_node beam(beam_opts());
    expect_evals(
        beam, "{tcounter, " + cpp.quoted_name() + "}",
        {
            {"gen_server:call($D, {add, 3})", "3"},
            {"sys:get_state($D)", "3"},
            // Calls from another process while suspended wait; they are answered after resume.
            {"ok = sys:suspend($D), Self = self(), "
             "Callers = [spawn(fun() -> Self ! {self(), gen_server:call($D, {add, 1})} end) "
             "|| _ <- [1, 2, 3]], ok",
             "ok"},
            // A failing code_change: the error as sys:change_code returns it; state and code
            // unchanged.
            {"sys:change_code($D, tcounter, \"0\", 10)", "{error,{bad_upgrade,\"0\"}}"},
            {"sys:change_code($D, tcounter, \"1\", 10)", "ok"},
            {"ok = sys:resume($D), "
             "lists:sort([receive {P, V} -> V after 5000 -> none end || P <- Callers])",
             "[14,15,16]"},
            {"sys:get_state($D)", "16"},
            // sys:terminate: ok, then the server runs terminate/2 and exits with the reason.
            {"Mon = monitor(process, $D), ok = sys:terminate($D, shutdown), "
             "receive {'DOWN', Mon, _, _, Why} -> Why after 5000 -> none end",
             "shutdown"},
        });
    EXPECT_EQ(c->terminated.load(), 1);
    EXPECT_EQ(c->terminate_reason, erl::term(erl::atom("shutdown")));
    EXPECT_FALSE(srv.value()->alive());
}

TEST_F(SysInterop, elixir_sys_get_state_suspend_resume) {
    cpp_node cpp(cpp_opts());
    auto srv = erl::gen_server::start(*cpp.node, std::make_shared<counter>(), erl::atom("tcounter"),
                                      {.run_inline = true});
    ASSERT_TRUE(srv);
    beam_node ex(beam_opts(/*elixir=*/true));
    expect_evals(ex, "{:tcounter, :\"" + cpp.name() + "\"}",
                 {
                     {"GenServer.call($D, {:add, 4})", "4"},
                     {":sys.get_state($D)", "4"},
                     {":sys.suspend($D)", ":ok"},
                     {"{:status, _, {:module, :gen_server}, [_, status, _, _, _]} = "
                      ":sys.get_status($D); status",
                      ":suspended"},
                     {"task = Task.async(fn -> GenServer.call($D, {:add, 1}) end); "
                      ":ok = :sys.resume($D); Task.await(task)",
                      "5"},
                     {":sys.get_state($D)", "5"},
                 });
}
