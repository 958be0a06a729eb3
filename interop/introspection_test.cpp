// Interop: BEAM's introspection BIFs over rpc/erpc answered by a C++ node (erlang:processes/0,
// process_info/1,2, memory/0,1, system_info/1, statistics/1, ...). Every call is made from a
// real erl node against the C++ node and against a second BEAM node in the same test, and the
// two results are compared in shape (same types, same keys, same errors). etop attaches to
// erlcpp-demo and prints its processes; an Elixir node uses Process.info and :erlang.memory.
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;

namespace {

// Erlang helpers bound on the probe node: C is the C++ node, B the BEAM reference node.
//   Sh(T)      the shape of T: pid, port, ref, int, float, atom, bin, [], {list, Shapes} (runs of
//              equal shapes collapsed), tuples element by element.
//   Cmp(N, F)  same if N(F(C)) =:= N(F(B)), else {differ, CppSide, BeamSide}.
//   E(Node, M, F, A)  {ok, V} or {Class, Reason} of erpc:call (the exception's reason).
const char* helpers = R"(
Dd = fun Dd([X, X | T]) -> Dd([X | T]); Dd([X | T]) -> [X | Dd(T)]; Dd([]) -> [] end,
Sh = fun Sh(X) when is_pid(X) -> pid; Sh(X) when is_port(X) -> port;
         Sh(X) when is_reference(X) -> ref; Sh(X) when is_integer(X) -> int;
         Sh(X) when is_float(X) -> float; Sh(X) when is_atom(X) -> atom;
         Sh(X) when is_binary(X) -> bin; Sh([]) -> [];
         Sh(X) when is_list(X) -> {list, Dd([Sh(Y) || Y <- X])};
         Sh(X) when is_tuple(X) -> list_to_tuple([Sh(Y) || Y <- tuple_to_list(X)]);
         Sh(X) when is_map(X) -> map end,
Id = fun(X) -> X end,
Keys = fun(L) -> [K || {K, _} <- L] end,
Cmp = fun(Norm, F) -> X = Norm(F(C)), Y = Norm(F(B)),
                      case X =:= Y of true -> same; false -> {differ, X, Y} end end,
E = fun(Node, M, F, A) -> try erpc:call(Node, M, F, A) of V -> {ok, V}
                          catch Cl:{exception, R, _} -> {Cl, R}; Cl:R -> {Cl, R} end end,
W = fun(Node, Name) -> rpc:call(Node, erlang, whereis, [Name]) end,
ok)";

class IntrospectionInterop : public erl::interop::cluster_test {
  protected:
    IntrospectionInterop() : cluster_test("cppintro") {}

    // A C++ node with an rpc server (introspection on by default), a BEAM reference node and
    // the probe node the calls are made from, connected and with the helpers bound.
    void start_trio() {
        cpp.emplace(cpp_opts());
        rpc = std::make_unique<erl::rpc::server>(*cpp->node);
        ref.emplace(beam_opts());
        probe.emplace(beam_opts());
        ASSERT_EQ(probe->eval("C = " + cpp->quoted_name() + ", B = '" + ref->node_name() +
                              "', {net_adm:ping(C), net_adm:ping(B)}"),
                  "{pong,pong}");
        ASSERT_EQ(probe->eval(helpers), "ok");
    }

    // Compares `fun(N) -> Body end` on both nodes after normalizing with `norm` (Sh, Id, Keys).
    void same(const std::string& norm, const std::string& body) {
        EXPECT_EQ(probe->eval("Cmp(" + norm + ", fun(N) -> " + body + " end)"), "same") << body;
    }

    std::optional<cpp_node> cpp;
    std::unique_ptr<erl::rpc::server> rpc;
    std::optional<beam_node> ref;
    std::optional<beam_node> probe;

    void TearDown() override { rpc.reset(); }
};

TEST_F(IntrospectionInterop, erlang_bifs_answer_with_beam_shapes_and_errors) {
    start_trio();
    // processes/0, registered/0, whereis/1, is_process_alive/1.
    same("Sh", "rpc:call(N, erlang, processes, [])");
    same("Sh", "[is_atom(X) || X <- rpc:call(N, erlang, registered, [])]");
    same("Sh", "W(N, net_kernel)");
    same("Id", "W(N, no_such_name)");
    same("Id", "E(N, erlang, whereis, [\"net_kernel\"])");
    same("Id", "rpc:call(N, erlang, is_process_alive, [W(N, net_kernel)])");
    same("Id", "E(N, erlang, is_process_alive, [self()])");  // not a local pid: badarg
    same("Id", "E(N, erlang, is_process_alive, [x])");

    // process_info/1: the same items in the same order; /2 for each item and for a list.
    same("Keys", "rpc:call(N, erlang, process_info, [W(N, net_kernel)])");
    const char* items[] = {
        "registered_name",  "message_queue_len", "status",     "trap_exit",  "memory",
        "current_function", "initial_call",      "reductions", "priority",   "error_handler",
        "group_leader",     "total_heap_size",   "heap_size",  "stack_size", "message_queue_data"};
    for (const char* i : items)
        same("Sh", std::string("rpc:call(N, erlang, process_info, [W(N, net_kernel), ") + i + "])");
    const char* list_items[] = {
        "messages",           "links",      "monitors",          "monitored_by", "dictionary",
        "garbage_collection", "suspending", "current_stacktrace"};
    for (const char* i : list_items)
        same("Id", std::string("{K, V} = rpc:call(N, erlang, process_info, [W(N, net_kernel), ") +
                       i + "]), {K, is_list(V)}");
    same("Keys",
         "rpc:call(N, erlang, process_info, [W(N, net_kernel), [registered_name, memory, "
         "messages, links, monitors, monitored_by, status, trap_exit, reductions, dictionary]])");
    same("Id", "E(N, erlang, process_info, [W(N, net_kernel), bogus_item])");
    same("Id", "E(N, erlang, process_info, [W(N, net_kernel), [memory, bogus_item]])");
    same("Id", "E(N, erlang, process_info, [self(), memory])");
    same("Id", "E(N, erlang, process_info, [W(N, net_kernel), \"memory\"])");
    same("Id", "E(N, erlang, process_info, [not_a_pid])");
    // registered_name of an unregistered process: [] alone, {registered_name, []} in a list.
    same("Id",
         "U = [P || P <- rpc:call(N, erlang, processes, []), rpc:call(N, erlang, process_info, "
         "[P, registered_name]) =:= []], {U =/= [], rpc:call(N, erlang, process_info, [hd(U), "
         "[registered_name]])}");

    // memory/0,1.
    same("Keys", "rpc:call(N, erlang, memory, [])");
    same("Sh", "rpc:call(N, erlang, memory, [total])");
    same("Sh", "rpc:call(N, erlang, memory, [[total, processes, binary, atom]])");
    same("Id", "E(N, erlang, memory, [bogus])");
    same("Id", "E(N, erlang, memory, [[total, bogus]])");

    // system_info/1.
    const char* infos[] = {"process_count", "process_limit",      "atom_count", "atom_limit",
                           "schedulers",    "schedulers_online",  "threads",    "otp_release",
                           "version",       "system_version",     "machine",    "creation",
                           "wordsize",      "logical_processors", "dist_ctrl"};
    for (const char* i : infos)
        same("Sh", std::string("rpc:call(N, erlang, system_info, [") + i + "])");
    same("Id", "rpc:call(N, erlang, system_info, [otp_release])");
    same("Id", "E(N, erlang, system_info, [no_such_info])");

    // statistics/1.
    const char* stats[] = {
        "wall_clock",        "runtime",          "run_queue",          "io",
        "reductions",        "context_switches", "total_active_tasks", "exact_reductions",
        "garbage_collection"};
    for (const char* s : stats)
        same("Sh", std::string("rpc:call(N, erlang, statistics, [") + s + "])");
    same("Id", "E(N, erlang, statistics, [no_such_statistic])");

    // nodes/0,1, node/0,1, is_alive/0, ports/0.
    same("Sh", "rpc:call(N, erlang, nodes, [])");
    same("Sh", "rpc:call(N, erlang, nodes, [connected])");
    same("Sh", "rpc:call(N, erlang, nodes, [[this, visible]])");
    same("Id", "rpc:call(N, erlang, nodes, [this]) =:= [N]");
    same("Id", "E(N, erlang, nodes, [bogus])");
    same("Id", "rpc:call(N, erlang, node, []) =:= N");
    same("Id", "rpc:call(N, erlang, node, [self()]) =:= node()");
    same("Id", "E(N, erlang, node, [not_a_pid])");
    same("Id", "rpc:call(N, erlang, is_alive, [])");
    same("Id", "is_list(rpc:call(N, erlang, ports, []))");
    EXPECT_EQ(probe->eval("rpc:call(C, erlang, ports, [])"), "[]");

    // system_time/0,1 and monotonic_time/0,1 in BEAM's units; the same clock as this machine's.
    same("Sh", "rpc:call(N, erlang, system_time, [])");
    same("Sh", "rpc:call(N, erlang, monotonic_time, [])");
    for (const char* u :
         {"second", "millisecond", "microsecond", "nanosecond", "native", "perf_counter", "1000"}) {
        same("Sh", std::string("rpc:call(N, erlang, system_time, [") + u + "])");
        same("Sh", std::string("rpc:call(N, erlang, monotonic_time, [") + u + "])");
    }
    same("Id", "E(N, erlang, system_time, [bogus_unit])");
    same("Id", "E(N, erlang, monotonic_time, [0])");
    same("Id", "abs(rpc:call(N, erlang, system_time, [second]) - os:system_time(second)) =< 5");

    // The rex forms (erl_call, ei_rpc, old rpc clients) reach the same functions.
    same("Sh", "gen_server:call({rex, N}, {call, erlang, whereis, [net_kernel], user})");
    same("Sh",
         "{rex, N} ! {self(), {call, erlang, memory, [total], user}}, "
         "receive {rex, Rx} -> Rx after 10000 -> timeout end");

    // net_adm:localhost/0.
    same("Sh", "rpc:call(N, net_adm, localhost, [])");

    // Real values: the process count is the length of processes/0 and grows by one with a new
    // C++ process; the registered names include the C++ node's services.
    const std::string count = probe->eval("rpc:call(C, erlang, system_info, [process_count])");
    auto extra = cpp->node->spawn_mailbox(erl::atom("intro_extra")).value();
    EXPECT_EQ(probe->eval("rpc:call(C, erlang, system_info, [process_count])"),
              std::to_string(std::stoi(count) + 1));
    EXPECT_EQ(probe->eval("length(rpc:call(C, erlang, processes, [])) =:= rpc:call(C, erlang, "
                          "system_info, [process_count])"),
              "true");
    EXPECT_EQ(probe->eval("[lists:member(X, rpc:call(C, erlang, registered, [])) || X <- "
                          "[net_kernel, rex, intro_extra]]"),
              "[true,true,true]");
    // A dead process: undefined, as on BEAM.
    ASSERT_EQ(probe->eval("Dead = W(C, intro_extra), is_pid(Dead)"), "true");
    extra.exit(erl::atom("normal"));
    EXPECT_EQ(probe->eval("{rpc:call(C, erlang, process_info, [Dead]), rpc:call(C, erlang, "
                          "process_info, [Dead, memory]), rpc:call(C, erlang, is_process_alive, "
                          "[Dead])}"),
              "{undefined,undefined,false}");
    EXPECT_EQ(probe->eval("Bd = spawn(B, erlang, node, []), Mr = monitor(process, Bd), "
                          "receive {'DOWN', Mr, _, _, _} -> ok end, {rpc:call(B, erlang, "
                          "process_info, [Bd]), rpc:call(B, erlang, process_info, [Bd, memory])}"),
              "{undefined,undefined}");
}

TEST_F(IntrospectionInterop, process_info_shows_links_and_monitors_of_a_cpp_process) {
    start_trio();
    auto p = cpp->node->spawn_mailbox(erl::atom("watched")).value();
    // On the probe: a linked process, a monitored one (by pid), a registered one monitored by
    // name, and one that monitors the C++ process.
    ASSERT_EQ(probe->eval("Idle = fun() -> receive stop -> ok end end, L = spawn(Idle), "
                          "M = spawn(Idle), Nm = spawn(Idle), register(intro_named, Nm), "
                          "Wt = spawn(fun() -> monitor(process, {watched, C}), Idle() end), ok"),
              "ok");
    ASSERT_EQ(probe->eval("{watched, C} ! {pids, L, M}, ok"), "ok");
    auto msg = p.receive(10s);
    ASSERT_TRUE(msg && msg->is_tuple(3));
    p.link((*msg)[1].as_pid());
    p.monitor((*msg)[2].as_pid());
    p.monitor(erl::atom("intro_named"), erl::atom(probe->node_name()));
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            return probe->eval(
                       "{monitored_by, Mb} = rpc:call(C, erlang, process_info, [W(C, "
                       "watched), monitored_by]), Mb =:= [Wt]") == "true";
        },
        10s));
    EXPECT_EQ(probe->eval("rpc:call(C, erlang, process_info, [W(C, watched), [links, monitors, "
                          "monitored_by, registered_name, trap_exit]]) =:= [{links, [L]}, "
                          "{monitors, [{process, M}, {process, {intro_named, node()}}]}, "
                          "{monitored_by, [Wt]}, {registered_name, watched}, {trap_exit, false}]"),
              "true");
    // The same from BEAM's own view of the link: L lists the C++ process.
    EXPECT_EQ(probe->eval("{links, Ls} = process_info(L, links), Ls =:= [W(C, watched)]"), "true");
    p.trap_exit(true);
    EXPECT_EQ(probe->eval("rpc:call(C, erlang, process_info, [W(C, watched), trap_exit])"),
              "{trap_exit,true}");
}

TEST_F(IntrospectionInterop, scheduler_wall_time_is_the_io_threads_cpu_and_wall_time) {
    start_trio();
    // BEAM answers `undefined` until a living process has turned the flag on.
    ASSERT_EQ(probe->eval("Holder = spawn(B, fun() -> erlang:system_flag(scheduler_wall_time, "
                          "true), receive stop -> ok end end), ok"),
              "ok");
    ASSERT_TRUE(erl::interop::wait_until(
        [&] {
            return probe->eval("rpc:call(B, erlang, statistics, [scheduler_wall_time])") !=
                   "undefined";
        },
        10s));
    same("Sh", "rpc:call(N, erlang, statistics, [scheduler_wall_time])");
    same("Sh", "rpc:call(N, erlang, statistics, [scheduler_wall_time_all])");
    // Two samples around work the I/O threads do: per thread Active <= Total, Total grows, and
    // the threads' CPU time grows with the 200 calls served in between.
    EXPECT_EQ(probe->eval(R"(S1 = rpc:call(C, erlang, statistics, [scheduler_wall_time]),
_ = [rpc:call(C, erlang, processes, []) || _ <- lists:seq(1, 200)],
S2 = rpc:call(C, erlang, statistics, [scheduler_wall_time]),
Sum = fun(S) -> lists:sum([A || {_, A, _} <- S]) end,
{length(S1) =:= length(S2) andalso length(S1) >= 1,
 lists:all(fun({{I, A1, T1}, {I, A2, T2}}) -> A1 =< T1 andalso A2 =< T2 andalso T2 > T1 end,
           lists:zip(S1, S2)),
 Sum(S2) > Sum(S1)})"),
              "{true,true,true}");
    probe->eval("Holder ! stop, ok");
}

TEST_F(IntrospectionInterop, reductions_and_queue_length_move_by_the_messages_sent) {
    start_trio();
    auto q = cpp->node->spawn_mailbox(erl::atom("counted")).value();
    const std::string info =
        "rpc:call(C, erlang, process_info, [W(C, counted), [message_queue_len, reductions]])";
    EXPECT_EQ(probe->eval(info), "[{message_queue_len,0},{reductions,0}]");
    // Messages and the rpc that follows travel on the same connection, in order: the messages
    // are queued before the call is answered.
    EXPECT_EQ(probe->eval("[{counted, C} ! I || I <- lists:seq(1, 25)], " + info),
              "[{message_queue_len,25},{reductions,0}]");
    for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(q.receive(5s));
    EXPECT_EQ(probe->eval(info), "[{message_queue_len,15},{reductions,10}]");
    EXPECT_EQ(probe->eval("{messages, Ms} = rpc:call(C, erlang, process_info, [W(C, counted), "
                          "messages]), Ms"),
              "[11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]");
    // messages is bounded: 1000 of 1015 queued.
    EXPECT_EQ(probe->eval("[{counted, C} ! I || I <- lists:seq(1, 1000)], {messages, Ms2} = "
                          "rpc:call(C, erlang, process_info, [W(C, counted), messages]), "
                          "{length(Ms2), rpc:call(C, erlang, process_info, [W(C, counted), "
                          "message_queue_len])}"),
              "{1000,{message_queue_len,1015}}");
    // statistics(reductions) counts the messages handled node-wide: at least these 10.
    EXPECT_EQ(probe->eval("{Tot, _} = rpc:call(C, erlang, statistics, [reductions]), Tot >= 10"),
              "true");
    // memory grows with the queue: 1015 small integers take at least one slot each.
    EXPECT_EQ(probe->eval("{memory, Mem} = rpc:call(C, erlang, process_info, [W(C, counted), "
                          "memory]), Mem > 1015 * 16"),
              "true");
}

TEST_F(IntrospectionInterop, etop_text_output_names_the_demo_processes) {
    erl::interop::demo_child demo(epmd.port(), cookie);
    beam_node beam(beam_opts());
    const std::string d = demo.quoted_name();
    // The trace port etop's reader connects to (default 8415): a free one.
    const std::string trace_port = std::to_string(erl::interop::free_tcp_port());
    // etop's text output goes to its group leader: a small io server that forwards each
    // put_chars to the test process. etop:start/1 runs until etop:stop/0.
    ASSERT_EQ(beam.eval(R"(Self = self(),
Cap = spawn(fun Loop() ->
        receive {io_request, From, RA, Req} ->
            Text = case Req of
                       {put_chars, _Enc, Chars} -> Chars;
                       {put_chars, _Enc, M, F, A} -> apply(M, F, A);
                       _ -> []
                   end,
            Self ! {etop_out, unicode:characters_to_list(Text)},
            From ! {io_reply, RA, ok}, Loop()
        end end),
Etop = spawn(fun() -> group_leader(Cap, self()),
                      etop:start([{node, )" +
                        d + R"(}, {output, text}, {interval, 1}, {lines, 20}, {port, )" +
                        trace_port + R"(}]) end),
EtopRef = monitor(process, Etop),
Collect = fun Collect(Acc) ->
    Scr = lists:flatten(lists:reverse(Acc)),
    Want = ["echo", "sink", "counter", "net_kernel", "rex", "MsgQ"],
    % A whole screen: the names, between its top and bottom rules.
    Rules = length([L || L <- string:split(Scr, "\n", all), string:prefix(L, "=====") =/= nomatch]),
    case Rules >= 2 andalso lists:all(fun(X) -> string:find(Scr, X) =/= nomatch end, Want) of
        true -> Scr;
        false -> receive {etop_out, S} -> Collect([S | Acc]) after 20000 -> {timeout, Scr} end
    end end,
Screen = Collect([]), is_list(Screen))"),
              "true");
    const std::string screen = beam.eval("Screen", 20s);
    for (const char* name : {"echo", "sink", "counter", "net_kernel", "rex", "echo_thread",
                             "sink_thread", "global_name_server"})
        EXPECT_NE(screen.find(name), std::string::npos) << name << " in " << screen;
    EXPECT_NE(screen.find(demo.name()), std::string::npos) << screen;
    // A C++ gen_server and a supervisor show what a BEAM one waiting in its loop shows (BEAM's
    // own rex is such a gen_server).
    const std::string loop =
        "[{initial_call,{proc_lib,init_p,5}},{current_function,{gen_server,loop,7}}]";
    EXPECT_EQ(beam.eval("process_info(whereis(rex), [initial_call, current_function])"), loop);
    for (const char* name : {"counter", "demo_sup"})
        EXPECT_EQ(
            beam.eval(std::string("rpc:call(") + d + ", erlang, process_info, [rpc:call(" + d +
                      ", erlang, whereis, [" + name + "]), [initial_call, current_function]])"),
            loop)
            << name;
    // The screen's cpu figure is the I/O threads' share of wall time since the last screen
    // (statistics(scheduler_wall_time), the figure etop reads): a number from 0 to 100.
    EXPECT_EQ(
        beam.eval(
            "{match, [Cpu]} = re:run(Screen, \"cpu +([0-9]+)\", [{capture, all_but_first, list}]), "
            "C = list_to_integer(Cpu), C >= 0 andalso C =< 100"),
        "true");
    // ERLCPP_ETOP_SAMPLE=FILE keeps the screen (docs/observability.md shows one).
    if (const char* out = std::getenv("ERLCPP_ETOP_SAMPLE"))
        EXPECT_EQ(beam.eval("file:write_file(\"" + std::string(out) + "\", Screen)"), "ok");
    // etop:stop/0 ends etop; its dbg relay on the demo ends with it (no do_relay process left).
    EXPECT_EQ(beam.eval("etop:stop(), receive {'DOWN', EtopRef, _, _, _} -> stopped after 20000 "
                        "-> timeout end"),
              "stopped");
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            return beam.eval("[P || P <- rpc:call(" + d +
                             ", erlang, processes, []), "
                             "rpc:call(" +
                             d +
                             ", erlang, process_info, [P, initial_call]) =:= "
                             "{initial_call, {dbg, do_relay, 2}}]") == "[]";
        },
        20s));
}

TEST_F(IntrospectionInterop, elixir_process_info_and_memory) {
    cpp.emplace(cpp_opts());
    rpc = std::make_unique<erl::rpc::server>(*cpp->node);
    auto p = cpp->node->spawn_mailbox(erl::atom("ex_watched")).value();
    beam_node ex(beam_opts(/*elixir=*/true));
    const std::string c = ":\"" + cpp->name() + "\"";
    // :erpc.call(CppNode, M, F, A) as Elixir code.
    auto on_cpp = [&](const std::string& mfa) { return ":erpc.call(" + c + ", " + mfa + ")"; };
    ASSERT_EQ(ex.eval("Node.connect(" + c + ")"), "true");
    ASSERT_EQ(ex.eval("pid = " + on_cpp("Process, :whereis, [:ex_watched]") +
                      "; for i <- 1..3, do: send(pid, i); is_pid(pid)"),
              "true");
    EXPECT_EQ(ex.eval(on_cpp("Process, :info, [pid, :message_queue_len]")),
              "{:message_queue_len, 3}");
    EXPECT_EQ(ex.eval(on_cpp(":erlang, :process_info, [pid, :registered_name]")),
              "{:registered_name, :ex_watched}");
    // Process.info/1 lists the keys a BEAM process of the same kind (registered) lists.
    EXPECT_EQ(ex.eval("Keyword.keys(" + on_cpp("Process, :info, [pid]") +
                      ") == Keyword.keys(Process.info(Process.whereis(:code_server)))"),
              "true");
    EXPECT_EQ(ex.eval("Keyword.keys(" + on_cpp(":erlang, :memory, []") +
                      ") == Keyword.keys(:erlang.memory())"),
              "true");
    EXPECT_EQ(ex.eval("is_integer(" + on_cpp(":erlang, :memory, [:total]") + ")"), "true");
    EXPECT_EQ(ex.eval("try do " + on_cpp(":erlang, :memory, [:bogus]") +
                      " rescue e in ErlangError -> e.original end"),
              "{:exception, :badarg, [{:erlang, :memory, [:bogus], []}]}");
    p.exit(erl::atom("normal"));
    EXPECT_EQ(ex.eval(on_cpp("Process, :info, [pid]")), "nil");
}

}  // namespace
