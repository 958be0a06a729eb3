// Interop: rpc / erpc between real erl / elixir nodes and C++ nodes, both ways, the
// rex protocol (erl_call, gen_server:call({rex, N}, ...)) and the erlcpp-call CLI. Results are
// checked on the BEAM side, and where a BEAM node can give the same answer it is compared with
// what BEAM itself says.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "call_checks.hpp"
#include "harness/cluster.hpp"
#include "node/test_access.hpp"

#include <gtest/gtest.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::expect_evals;
using erl::interop::quote_atom;

namespace {

// Registers module `mod`: echo, add, concat, error, exit, throw, cpp_throw and whoami, each run
// as `o` says.
void add_test_functions(erl::rpc::server& r, const char* mod, erl::rpc::function_options o = {}) {
    r.add(
        mod, "echo", [](const erl::term& t) { return t; }, o);
    r.add(
        mod, "add", [](std::int64_t a, std::int64_t b) { return a + b; }, o);
    r.add(
        mod, "concat", [](const std::string& a, const std::string& b) { return a + b; }, o);
    r.add(
        mod, "error", [](const erl::term& t) -> erl::term { erl::rpc::raise_error(t); }, o);
    r.add(
        mod, "exit", [](const erl::term& t) -> erl::term { erl::rpc::raise_exit(t); }, o);
    r.add(
        mod, "throw", [](const erl::term& t) -> erl::term { erl::rpc::raise_throw(t); }, o);
    r.add(
        mod, "cpp_throw", []() -> erl::term { throw std::runtime_error("plain C++ failure"); }, o);
    r.add(
        mod, "whoami",
        [](erl::rpc::call_context& ctx) { return erl::tuple(erl::term(ctx.self()), ctx.caller()); },
        o);
}

// A C++ node serving the `test` module over rpc (see the handlers below).
struct rpc_node : erl::interop::cpp_node {
    std::unique_ptr<erl::rpc::server> rpc;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<erl::term> notes;  // collected by test:note/1

    explicit rpc_node(options o) : cpp_node(std::move(o)) {
        rpc = std::make_unique<erl::rpc::server>(*node);
        auto& r = *rpc;
        add_test_functions(r, "test");
        r.add(
            "test", "sleep",
            [](erl::rpc::call_context& ctx, std::int64_t ms) -> boost::asio::awaitable<erl::term> {
                boost::asio::steady_timer t(ctx.executor(), std::chrono::milliseconds(ms));
                co_await t.async_wait(boost::asio::use_awaitable);
                co_return erl::term(erl::atom("slept"));
            });
        r.add("test", "block", [](std::int64_t ms) {  // a sync handler holding a pool thread
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return erl::atom("blocked");
        });
        r.add("test", "note", [this](const erl::term& t) {
            std::lock_guard lk(mu);
            notes.push_back(t);
            cv.notify_all();
        });
    }
    // The server goes first: its handlers use mu/notes, and the base class stops the node.
    ~rpc_node() { rpc.reset(); }
    bool wait_notes(std::size_t n, std::chrono::milliseconds t = 10s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, t, [&] { return notes.size() >= n; });
    }
};

}  // namespace

class RpcInterop : public erl::interop::cluster_test {
  protected:
    // Starts an rpc_node and an erl node and runs `checks` on the erl node, `$D` naming the
    // C++ node.
    void expect_from_erl(const std::vector<erl::interop::eval_check>& checks) {
        rpc_node cpp(cpp_opts());
        beam_node beam(beam_opts());
        expect_evals(beam, cpp.quoted_name(), checks);
    }
    // Likewise, each check run a second time with `$D` naming the erl node itself: the C++
    // node answers as BEAM does.
    void expect_from_erl_as_on_erl(const std::vector<erl::interop::eval_check>& checks) {
        rpc_node cpp(cpp_opts());
        beam_node beam(beam_opts());
        erl::interop::expect_same_evals(beam, cpp.quoted_name(), "node()", checks);
    }
    // The same from an Elixir node, `$D` naming the C++ node as an Elixir atom.
    void expect_from_elixir(const std::vector<erl::interop::eval_check>& checks) {
        rpc_node cpp(cpp_opts());
        beam_node ex(beam_opts(/*elixir=*/true));
        expect_evals(ex, ":\"" + cpp.name() + "\"", checks);
    }
};

// --- BEAM -> C++ -------------------------------------------------------------------------------

TEST_F(RpcInterop, rpc_call_returns_cpp_result) {
    expect_from_erl({
        {"rpc:call($D, test, echo, [{hi, [1,2], <<\"x\">>, #{k => 1.5}}])",
         "{hi,[1,2],<<\"x\">>,#{k => 1.5}}"},
        {"rpc:call($D, test, add, [40, 2])", "42"},
        {"rpc:call($D, test, concat, [\"ab\", <<\"cd\">>])", "<<\"abcd\">>"},
        {"erpc:call($D, test, add, [1, 2])", "3"},
        {"erpc:call($D, erlang, node, [])", "$D"},
        // The call runs in a fresh process of the C++ node; the caller is the BEAM
        // process.
        {"{P, C} = erpc:call($D, test, whoami, []), "
         "{node(P) =:= $D, P =/= self(), C =:= self()}",
         "{true,true,true}"},
    });
}

TEST_F(RpcInterop, unknown_function_is_undef_as_beam_reports_it) {
    // Same answers as BEAM gives for a function it does not have.
    expect_from_erl_as_on_erl({
        {"rpc:call($D, nomod, nofun, [1, x])",
         "{badrpc,{'EXIT',{undef,[{nomod,nofun,[1,x],[]}]}}}"},
        {"try erpc:call($D, test, echo, [1, 2]) catch C:R -> {C, R} end", ""},
    });
}

TEST_F(RpcInterop, handler_failures_map_to_erlang_classes) {
    expect_from_erl({
        // Erpc: erpc:call's exception as {Class, Reason}. exit and throw: exactly what a BEAM
        // function doing the same produces.
        {"Erpc = fun(N, M, F, A) -> try erpc:call(N, M, F, A) catch C:R -> {C, R} end end, "
         "{Erpc($D, test, exit, [bye]), Erpc(node(), erlang, exit, [bye])}",
         "{{exit,{exception,bye}},{exit,{exception,bye}}}"},
        {"Erpc($D, test, throw, [ball])", "{throw,ball}"},
        // error: {exception, Reason, Stack}, the stack naming the C++ function.
        {"Erpc($D, test, error, [boom])", "{error,{exception,boom,[{test,error,1,[]}]}}"},
        {"rpc:call($D, test, error, [boom])", "{badrpc,{'EXIT',{boom,[{test,error,1,[]}]}}}"},
        {"rpc:call($D, test, exit, [bye])", "{badrpc,{'EXIT',bye}}"},
        {"rpc:call($D, test, throw, [ball])", "ball"},
        // Arguments that do not convert: badarg, as a BIF reports it (the arguments in the
        // frame).
        {"Erpc($D, test, add, [1, two])", "{error,{exception,badarg,[{test,add,[1,two],[]}]}}"},
        // Any other C++ exception.
        {"Erpc($D, test, cpp_throw, [])",
         "{error,{exception,{cpp_exception,<<\"plain C++ failure\">>},[{test,cpp_throw,0,[]}]}}"},
    });
}

TEST_F(RpcInterop, caller_timeout_and_late_result_dropped) {
    expect_from_erl({
        {"try erpc:call($D, test, sleep, [1500], 100) catch C:R -> {C, R} end",
         "{error,{erpc,timeout}}"},
        {"rpc:call($D, test, sleep, [1500], 100)", "{badrpc,timeout}"},
        // Nothing arrives later: the abandoned calls leave no message behind.
        {"receive X -> X after 2500 -> none end", "none"},
        {"rpc:call($D, test, sleep, [10])", "slept"},
    });
}

TEST_F(RpcInterop, long_handlers_do_not_stall_other_calls) {
    // A slow coroutine and a blocking sync handler are pending while quick calls complete: the
    // quick call's answer comes before either slow one is done.
    expect_from_erl({
        {"S1 = erpc:send_request($D, test, sleep, [4000]), "
         "S2 = erpc:send_request($D, test, block, [4000]), "
         "E = [erpc:call($D, test, echo, [I], 3000) || I <- lists:seq(1, 20)], "
         "{lists:sum(E), erpc:wait_response(S1, 0), erpc:wait_response(S2, 0)}",
         "{210,no_response,no_response}"},
        {"{erpc:receive_response(S1, 10000), erpc:receive_response(S2, 10000)}", "{slept,blocked}"},
    });
}

TEST_F(RpcInterop, cast_multicall_async_call_and_send_request) {
    rpc_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    const std::string c = cpp.quoted_name();
    expect_evals(beam, c,
                 {
                     {"rpc:cast($D, test, note, [one])", "true"},
                     {"erpc:cast($D, test, note, [two])", "ok"},
                 });
    ASSERT_TRUE(cpp.wait_notes(2));
    {
        std::lock_guard lk(cpp.mu);
        EXPECT_EQ(erl::make_list(cpp.notes).to_string().size(), std::string("[one,two]").size());
    }
    expect_evals(beam, c,
                 {
                     {"rpc:multicall([$D, node()], erlang, node, [])",
                      "{[" + c + "," + quote_atom(beam.node_name()) + "],[]}"},
                     {"erpc:multicall([$D, $D], test, add, [1, 1])", "[{ok,2},{ok,2}]"},
                     {"rpc:yield(rpc:async_call($D, test, echo, [y]))", "y"},
                     {"erpc:receive_response(erpc:send_request($D, test, echo, [z]), 5000)", "z"},
                     {"rpc:nb_yield(rpc:async_call($D, test, sleep, [50]), 5000)", "{value,slept}"},
                 });
}

TEST_F(RpcInterop, spawn_request_link_and_monitor_options_honoured) {
    expect_from_erl({
        // A linked + monitored erpc:execute_call: the reply says both were set up, the DOWN
        // carries erpc's result shape and the link delivers the same reason as an exit
        // signal.
        {"process_flag(trap_exit, true), Ref = make_ref(), "
         "ReqId = spawn_request($D, erpc, execute_call, "
         "[Ref, test, sleep, [200]], [link, monitor]), "
         "Pid = receive {spawn_reply, ReqId, ok, P} -> P after 5000 -> none end, "
         "Linked = lists:member(Pid, element(2, process_info(self(), links))), "
         "Down = receive {'DOWN', ReqId, process, Pid, R1} -> R1 after 5000 -> none end, "
         "Exit = receive {'EXIT', Pid, R2} -> R2 after 5000 -> none end, "
         "{Linked, Down =:= {Ref, return, slept}, Exit =:= Down}",
         "{true,true,true}"},
        // The caller dying kills the linked C++ process (its DOWN comes back to a monitor).
        {"Self = self(), "
         "Caller = spawn(fun() -> R = spawn_request($D, erpc, execute_call, "
         "[make_ref(), test, sleep, [3000]], [link]), "
         "receive {spawn_reply, R, ok, P0} -> Self ! {cpid, P0} end, "
         "receive go -> exit(die) end end), "
         "CP = receive {cpid, P1} -> P1 after 5000 -> none end, "
         "M = monitor(process, CP), Caller ! go, "
         "receive {'DOWN', M, process, _, Why} -> Why after 5000 -> none end",
         "die"},
        // Any other spawn request: a clear error reply, never silence.
        {"R3 = spawn_request($D, io, format, [\"x\"], []), "
         "receive {spawn_reply, R3, error, E} -> E after 5000 -> none end",
         "notsup"},
        // A registered function can also be spawned as a plain process.
        {"R4 = spawn_request($D, test, note, [spawned], [monitor]), "
         "receive {'DOWN', R4, process, _, W} -> W after 5000 -> none end",
         "normal"},
    });
}

TEST_F(RpcInterop, rex_protocol_for_old_clients) {
    expect_from_erl({
        {"gen_server:call({rex, $D}, {call, test, echo, [r], user})", "r"},
        {"gen_server:call({rex, $D}, {call, test, error, [x], user})",
         "{badrpc,{'EXIT',{x,[{test,error,1,[]}]}}}"},
        {"{rex, $D} ! {self(), {call, test, add, [2, 3], user}}, "
         "receive {rex, R} -> R after 5000 -> none end",
         "5"},
        {"{rex, $D} ! {self(), {call, nomod, f, [], user}}, "
         "receive {rex, R2} -> R2 after 5000 -> none end",
         "{badrpc,{'EXIT',{undef,[{nomod,f,[],[]}]}}}"},
    });
}

TEST_F(RpcInterop, otp_erl_call_against_cpp_node) {
    rpc_node cpp(cpp_opts());
    const std::vector<std::pair<std::string, std::string>> env = {
        {"ERL_EPMD_PORT", std::to_string(epmd.port())}};
    auto r = erl::interop::process::run(
        {"erl_call", "-n", cpp.name(), "-c", cookie, "-a", "test echo [hi]"}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "hi");
    r = erl::interop::process::run(
        {"erl_call", "-n", cpp.name(), "-c", cookie, "-a", "test add [20,22]"}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "42");
}

TEST_F(RpcInterop, elixir_rpc_and_erpc) {
    expect_from_elixir({
        {":rpc.call($D, :test, :echo, [%{a: 1}])", "%{a: 1}"},
        {":erpc.call($D, :test, :add, [1, 2])", "3"},
        {"try do :erpc.call($D, :test, :error, [:boom]) "
         "rescue e in ErlangError -> e.original end",
         "{:exception, :boom, [{:test, :error, 1, []}]}"},
    });
}

// --- C++ -> BEAM -------------------------------------------------------------------------------

TEST_F(RpcInterop, cpp_client_calls_beam_functions) {
    rpc_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    const erl::atom b(beam.node_name());
    auto r = erl::rpc::call(*cpp.node, b, "erlang", "node", erl::term());
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r.value(), erl::term(b));
    r = erl::rpc::call(*cpp.node, b, "lists", "reverse", erl::list(erl::list(1, 2, 3)));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), erl::list(3, 2, 1));
    // A crashing BEAM function: the error class, reason and BEAM's stack come back as data.
    r = erl::rpc::call(*cpp.node, b, "erlang", "binary_to_list", erl::list(erl::atom("x")));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().class_, erl::atom("error"));
    ASSERT_TRUE(r.error().reason.is_tuple(3));
    EXPECT_EQ(r.error().reason[0], erl::term(erl::atom("exception")));
    EXPECT_EQ(r.error().reason[1], erl::term(erl::atom("badarg")));
    EXPECT_TRUE(r.error().reason[2].is_list());
    // exit and throw.
    r = erl::rpc::call(*cpp.node, b, "erlang", "exit", erl::list(erl::atom("bye")));
    EXPECT_EQ(r.to_term().to_string(), "{exit,{exception,bye}}");
    r = erl::rpc::call(*cpp.node, b, "erlang", "throw", erl::list(erl::atom("ball")));
    EXPECT_EQ(r.to_term().to_string(), "{throw,ball}");
    EXPECT_EQ(r.to_rpc_term().to_string(), "ball");
    // Unknown function: undef, as erpc reports it.
    r = erl::rpc::call(*cpp.node, b, "nomod", "f", erl::list(1));
    EXPECT_EQ(r.to_rpc_term().to_string(), "{badrpc,{'EXIT',{undef,[{nomod,f,[1],[]}]}}}");
    // A slow one: timeout, and the late result does not confuse the next call.
    r = erl::rpc::call(*cpp.node, b, "timer", "sleep", erl::list(1500), 200ms);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, erl::make_error_code(erl::errc::timeout));
    EXPECT_EQ(r.to_term().to_string(), "{error,{erpc,timeout}}");
    std::this_thread::sleep_for(1600ms);
    r = erl::rpc::call(*cpp.node, b, "erlang", "node", erl::term());
    EXPECT_TRUE(r.ok());
    // The BEAM side holds no monitor from us any more.
    EXPECT_EQ(beam.eval("lists:sum([length(element(2, process_info(P, monitored_by))) || "
                        "P <- processes(), node(P) =:= node(), "
                        "lists:any(fun(X) -> is_pid(X) andalso node(X) =/= node() end, "
                        "element(2, process_info(P, monitored_by)))])"),
              "0");
    // Cast.
    EXPECT_FALSE(erl::rpc::cast(*cpp.node, b, erl::atom("erlang"), erl::atom("register"),
                                erl::list(erl::atom("from_cast"), erl::term())));
    // An unreachable node.
    r = erl::rpc::call(*cpp.node, erl::atom("nobody@127.0.0.1"), "erlang", "node", erl::term(), 2s);
    EXPECT_EQ(r.error().code, erl::make_error_code(erl::errc::noconnection));
    EXPECT_EQ(r.to_rpc_term().to_string(), "{badrpc,nodedown}");
}

TEST_F(RpcInterop, multicall_across_two_cpp_nodes_and_beam) {
    rpc_node c1(cpp_opts());
    rpc_node c2(cpp_opts());
    beam_node beam(beam_opts());
    const std::string n1 = quote_atom(c1.name()), n2 = quote_atom(c2.name()),
                      nb = quote_atom(beam.node_name());
    // From BEAM.
    EXPECT_EQ(beam.eval("rpc:multicall([" + n1 + ", " + n2 + ", node()], erlang, node, [])"),
              "{[" + n1 + "," + n2 + "," + nb + "],[]}");
    EXPECT_EQ(beam.eval("erpc:multicall([" + n1 + ", " + n2 + "], test, add, [20, 22], 5000)"),
              "[{ok,42},{ok,42}]");
    // From C++: a C++ node calls the other C++ node, BEAM and itself.
    auto rs = erl::rpc::multicall(*c1.node,
                                  {c2.node->name(), erl::atom(beam.node_name()), c1.node->name()},
                                  erl::atom("erlang"), erl::atom("node"), erl::term(), 5s);
    ASSERT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[0].to_term(), erl::tuple(erl::atoms::ok(), c2.node->name()));
    EXPECT_EQ(rs[1].to_term(), erl::tuple(erl::atoms::ok(), erl::atom(beam.node_name())));
    EXPECT_EQ(rs[2].to_term(), erl::tuple(erl::atoms::ok(), c1.node->name()));
    auto r = erl::rpc::call(*c1.node, c2.node->name(), "test", "error", erl::list(erl::atom("x")));
    EXPECT_EQ(r.to_term().to_string(), "{error,{exception,x,[{test,error,1,[]}]}}");
}

// --- erlcpp-call -------------------------------------------------------------------------------

TEST_F(RpcInterop, erlcpp_call_cli_results_and_exit_codes) {
    rpc_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    const std::string tool = erl::interop::bin_dir() + "/erlcpp-call";
    const std::vector<std::pair<std::string, std::string>> env = {
        {"ERL_EPMD_PORT", std::to_string(epmd.port())}};
    auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), tool);
        return erl::interop::process::run(args, env);
    };
    auto r = run({"-n", cpp.name(), "-c", cookie, "-a", "test add [1, 2]"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "3\n");
    r = run({"-n", beam.node_name(), "-c", cookie, "-a", "lists reverse [[1, two, \"x\"]]"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "[\"x\",two,1]\n");
    r = run({"-n", beam.node_name(), "-c", cookie, "-e", "X = 6, X * 7"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "42\n");
    r = run({"-n", cpp.name(), "-c", cookie, "-a", "test error [boom]"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "{badrpc,{'EXIT',{boom,[{test,error,1,[]}]}}}\n");
    r = run({"-n", cpp.name(), "-c", cookie, "-t", "0.2", "-a", "test sleep [3000]"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_EQ(r.out, "{badrpc,timeout}\n");
    r = run({"-n", "nobody@127.0.0.1", "-c", cookie, "-a", "erlang node"});
    EXPECT_EQ(r.exit_code, 4);
    r = run({"-n", cpp.name(), "-c", "wrong" + cookie, "-a", "erlang node"});
    EXPECT_EQ(r.exit_code, 4);
    r = run({"-n", cpp.name(), "-c", cookie, "-a", "test echo [unclosed"});
    EXPECT_EQ(r.exit_code, 2);
}

// --- run_on::io_thread and inline gen_servers (BEAM callers see no difference) -----------------

TEST_F(RpcInterop, inline_functions_answer_exactly_as_pool_functions) {
    rpc_node cpp(cpp_opts());
    add_test_functions(*cpp.rpc, "itest", {.run = erl::rpc::run_on::io_thread});
    beam_node beam(beam_opts());
    const std::string c = cpp.quoted_name();
    const std::vector<std::pair<std::string, std::string>> calls = {
        {"echo", "[{hi, [1,2], <<\"x\">>, #{k => 1.5}}]"},
        {"add", "[40, 2]"},
        {"add", "[1, two]"},  // badarg
        {"add", "[1]"},       // undef
        {"concat", "[\"ab\", <<\"cd\">>]"},
        {"error", "[boom]"},
        {"exit", "[bye]"},
        {"throw", "[ball]"},
        {"cpp_throw", "[]"},
    };
    int k = 0;
    for (const auto& [f, args] : calls) {
        SCOPED_TRACE(f + " " + args);
        std::string answers[2];
        for (int i = 0; i < 2; ++i) {
            const std::string mod = i ? "itest" : "test";
            const std::string v = std::to_string(++k);
            // rpc:call's value and erpc:call's exception, as the caller sees them.
            answers[i] =
                beam.eval("{rpc:call(" + c + ", " + mod + ", " + f + ", " + args +
                          "), try erpc:call(" + c + ", " + mod + ", " + f + ", " + args +
                          ") catch C" + v + ":R" + v + " -> {C" + v + ", R" + v + "} end}");
        }
        EXPECT_EQ(erl::interop::replace_all(answers[1], "{itest,", "{test,"), answers[0]);
    }
    expect_evals(
        beam, c,
        {
            {"{P, C} = erpc:call($D, itest, whoami, []), "
             "{node(P) =:= $D, P =/= self(), C =:= self()}",
             "{true,true,true}"},
            // Casts, multicall, send_request and link/monitor options reach inline
            // functions too.
            {"erpc:multicall([$D, $D], itest, add, [2, 3])", "[{ok,5},{ok,5}]"},
            {"R = erpc:send_request($D, itest, echo, [sr]), erpc:receive_response(R, 5000)", "sr"},
            {"erpc:cast($D, itest, echo, [x])", "ok"},
            {"{SP, SR} = spawn_monitor(fun() -> exit(erpc:call($D, itest, add, [5, 6])) end), "
             "receive {'DOWN', SR, process, SP, V} -> V after 5000 -> none end",
             "11"},
            {"K = rpc:async_call($D, itest, add, [1, 1]), rpc:yield(K)", "2"},
        });
}

TEST_F(RpcInterop, blocked_pool_handler_does_not_stall_inline_functions) {
    rpc_node cpp(cpp_opts());
    add_test_functions(*cpp.rpc, "itest", {.run = erl::rpc::run_on::io_thread});
    // gate:wait/0 holds a pool thread until gate:open/0 (inline) is called: if inline calls
    // queued behind the pool (or the connection stalled) the gate would never open.
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    cpp.rpc->add("gate", "wait", [&] {
        std::unique_lock lk(mu);
        cv.wait_for(lk, 20s, [&] { return open; });
        return erl::atom(open ? "opened" : "gave_up");
    });
    cpp.rpc->add("gate", "open",
                 [&] {
                     {
                         std::lock_guard lk(mu);
                         open = true;
                     }
                     cv.notify_all();
                 },
                 {.run = erl::rpc::run_on::io_thread});
    beam_node beam(beam_opts());
    expect_evals(beam, cpp.quoted_name(),
                 {
                     {"G = erpc:send_request($D, gate, wait, []), "
                      "E = [erpc:call($D, itest, echo, [I], 5000) || I <- lists:seq(1, 20)], "
                      "{lists:sum(E), erpc:wait_response(G, 0)}",
                      "{210,no_response}"},
                     {"erpc:call($D, gate, open, []), erpc:receive_response(G, 10000)", "opened"},
                 });
}

TEST_F(RpcInterop, inline_gen_server_serves_erlang_and_elixir) {
    erl::interop::cpp_node cpp(cpp_opts());
    auto srv = erl::gen_server::start(*cpp.node, std::make_shared<erl::interop::counter_server>(),
                                      erl::atom("counter"), {.run_inline = true});
    ASSERT_TRUE(srv);
    beam_node beam(beam_opts());
    const std::string d = "{counter, " + cpp.quoted_name() + "}";
    erl::interop::expect_counter_gen_server(beam, d);
    // No monitor of the caller is left behind on the server's process.
    EXPECT_EQ(beam.eval("[gen_server:call(" + d + ", get) || _ <- lists:seq(1, 50)], ok"), "ok");
    {
        auto p = erl::test::core_of(*cpp.node).find_name(erl::atom("counter"));
        ASSERT_TRUE(p);
        // The last call's DEMONITOR may still be on its way after the reply.
        bool empty = false;
        for (int i = 0; i < 500 && !empty; ++i) {
            {
                std::lock_guard lk(p->mu);
                empty = p->watchers.empty();
            }
            if (!empty) std::this_thread::sleep_for(10ms);
        }
        EXPECT_TRUE(empty);
    }
    beam_node ex(beam_opts(/*elixir=*/true));
    erl::interop::expect_elixir_counter(ex, cpp.name());
    erl::interop::expect_counter_stops(beam, cpp.quoted_name());
}
