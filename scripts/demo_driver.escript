#!/usr/bin/env escript
%% Drives the erlcpp demo node from a real Erlang node and prints a transcript.
%% Usage: demo_driver.escript DemoNode Cookie   (ERL_EPMD_PORT selects the EPMD)
-mode(compile).

main([NodeStr, Cookie | WorkerStrs]) ->
    N = list_to_atom(NodeStr),
    Me = list_to_atom("driver_" ++ os:getpid() ++ "@127.0.0.1"),
    {ok, _} = net_kernel:start([Me, longnames]),
    erlang:set_cookie(node(), list_to_atom(Cookie)),
    show("net_adm:ping(N).", net_adm:ping(N)),
    show("nodes().", nodes()),
    Msg = {hello, from_erlang, [1, 2, 3], #{map => <<"binary">>}, 12345678901234567890},
    {echo, N} ! {self(), Msg},
    show("{echo, N} ! {self(), Msg}, receive Echo -> Echo end.",
         receive Echo -> Echo after 5000 -> timeout end),
    T0 = erlang:monotonic_time(millisecond),
    [{sink, N} ! {msg, I} || I <- lists:seq(1, 100000)],
    {sink, N} ! {done, self()},
    Count = receive C -> C after 30000 -> timeout end,
    Ms = erlang:monotonic_time(millisecond) - T0,
    show("[{sink, N} ! {msg, I} || I <- lists:seq(1, 100000)], {sink, N} ! {done, self()}, "
         "receive Count -> Count end.", Count),
    io:format("(100000 messages counted by the C++ sink in ~p ms)~n~n", [Ms]),
    %% rpc: OTP 25's rpc:call is erpc (SPAWN_REQUEST); the C++ node answers it.
    show("rpc:call(N, demo, add, [1 bsl 70, 1]).", rpc:call(N, demo, add, [1 bsl 70, 1])),
    show("rpc:call(N, demo, raise, [oops]).", rpc:call(N, demo, raise, [oops])),
    show("gen_server:call({counter, N}, {add, 5}).", gen_server:call({counter, N}, {add, 5})),
    %% links and monitors with a supervised C++ worker.
    process_flag(trap_exit, true),
    {worker, N} ! {link, self()},
    Worker = receive {linked, W} -> W after 5000 -> timeout end,
    show("{worker, N} ! {link, self()}, receive {linked, W} -> W end.", Worker),
    Ref = monitor(process, Worker),
    show("Ref = monitor(process, Worker).", Ref),
    {worker, N} ! {exit, boom},
    Exit = receive {'EXIT', Worker, R1} -> {'EXIT', Worker, R1} after 5000 -> timeout end,
    show("{worker, N} ! {exit, boom}, receive {'EXIT', Worker, R} = E -> E end.", Exit),
    Down = receive {'DOWN', Ref, process, Worker, R2} -> {'DOWN', Ref, process, Worker, R2}
           after 5000 -> timeout end,
    show("receive {'DOWN', Ref, process, Worker, _} = D -> D end.", Down),
    Restarted = until(fun() -> relink(N, Worker) end),
    show("%% demo_sup restarted the worker: {worker, N} ! {link, self()}, receive {linked, W2} -> W2 end.",
         Restarted),
    %% global and pg: the C++ node is a full cluster member.
    show("global:sync().", global:sync()),
    Counter = global:whereis_name({erlcpp_demo, N}),
    show("global:whereis_name({erlcpp_demo, N}).", Counter),
    show("rpc:call(N, demo, locked_add, [{demo_lock, self()}, Counter, 3]).",
         rpc:call(N, demo, locked_add, [{demo_lock, self()}, Counter, 3])),
    show("gen_server:call({global, {erlcpp_demo, N}}, get).",
         gen_server:call({global, {erlcpp_demo, N}}, get)),
    {ok, _} = pg:start_link(),
    %% Our new scope learns the C++ node's groups from its sync: wait for the join event.
    {PgRef, Now} = pg:monitor(erlcpp_demo_workers),
    Members = case Now of
                  [] -> receive {PgRef, join, erlcpp_demo_workers, Joined} -> Joined
                        after 10000 -> timeout end;
                  _ -> Now
              end,
    show("pg:get_members(erlcpp_demo_workers).", Members),
    hot_code(N),
    dispatch(N, [list_to_atom(W) || W <- WorkerStrs]),
    ok;
main(_) ->
    io:format("usage: demo_driver.escript DemoNode Cookie [Worker1 Worker2]~n"),
    halt(2).

%% A C++ module upgraded in the running node (erlcpp-demo --code-path build/plugins/v1), with
%% its gen_server demo_plugin_server moved to the new version by OTP's sequence.
hot_code(N) ->
    case rpc:call(N, code, which, [demo_plugin]) of
        Path when is_list(Path) ->
            S = {demo_plugin_server, N},
            show("rpc:call(N, demo_plugin, version, []).", rpc:call(N, demo_plugin, version, [])),
            show("gen_server:call({demo_plugin_server, N}, {add, 2}).",
                 gen_server:call(S, {add, 2})),
            V2 = filename:join(filename:dirname(filename:dirname(Path)), "v2"),
            show("rpc:call(N, code, add_patha, [V2]).", rpc:call(N, code, add_patha, [V2])),
            show("rpc:call(N, code, soft_purge, [demo_plugin]).",
                 rpc:call(N, code, soft_purge, [demo_plugin])),
            show("sys:suspend({demo_plugin_server, N}).", sys:suspend(S)),
            show("rpc:call(N, code, load_file, [demo_plugin]).",
                 rpc:call(N, code, load_file, [demo_plugin])),
            show("sys:change_code({demo_plugin_server, N}, demo_plugin, \"1\", []).",
                 sys:change_code(S, demo_plugin, "1", [])),
            show("sys:resume({demo_plugin_server, N}).", sys:resume(S)),
            show("rpc:call(N, demo_plugin, version, []).", rpc:call(N, demo_plugin, version, [])),
            show("sys:get_state({demo_plugin_server, N}).", sys:get_state(S));
        _ ->
            ok
    end.

%% A C++ dispatcher (erl::dispatch in the demo) spreads idempotent calls over two BEAM nodes;
%% W2 kills itself with kill -9 mid-run (after serving 100), and no call is lost.
dispatch(N, [W1, W2]) ->
    [until(fun() -> case net_adm:ping(W) of pong -> ok; pang -> retry end end) || W <- [W1, W2]],
    % W2 is reachable before its -eval has set the trace that kills it: wait for that too.
    until(fun() ->
              case rpc:call(W2, erlang, whereis, [demo_kill_switch]) of
                  P when is_pid(P) -> ok;
                  _ -> retry
              end
          end),
    show("rpc:call(N, demo, dispatch, [[W1, W2], round_robin, 1000]). %% W2 gets kill -9 mid-run",
         rpc:call(N, demo, dispatch, [[W1, W2], round_robin, 1000], 60000)),
    show("net_adm:ping(W2).", net_adm:ping(W2));
dispatch(_, _) ->
    ok.

%% Links the restarted worker; a request sent before the supervisor registered the new one is
%% lost, so it is asked again.
relink(N, Old) ->
    {worker, N} ! {link, self()},
    receive {linked, W} when W =/= Old -> W; {linked, _} -> retry after 200 -> retry end.

%% F() until it gives something other than retry (10 s at most, then timeout).
until(F) -> until(F, erlang:monotonic_time(millisecond) + 10000).
until(F, Deadline) ->
    case F() of
        retry ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> timeout;
                false -> receive after 20 -> until(F, Deadline) end
            end;
        V -> V
    end.

show(Expr, Val) -> io:format("erl> ~s~n~p~n~n", [Expr, Val]).
