#!/usr/bin/env escript
%% Drives the erlcpp demo node from a real Erlang node and prints a transcript.
%% Usage: demo_driver.escript DemoNode Cookie   (ERL_EPMD_PORT selects the EPMD)
-mode(compile).

main([NodeStr, Cookie]) ->
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
    timer:sleep(100),
    {worker, N} ! {link, self()},
    Restarted = receive {linked, W2} -> W2 after 5000 -> timeout end,
    show("%% demo_sup restarted the worker: {worker, N} ! {link, self()}, receive {linked, W2} -> W2 end.",
         Restarted),
    ok;
main(_) ->
    io:format("usage: demo_driver.escript DemoNode Cookie~n"),
    halt(2).

show(Expr, Val) -> io:format("erl> ~s~n~p~n~n", [Expr, Val]).
