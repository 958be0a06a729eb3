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
    io:format("(100000 messages counted by the C++ sink in ~p ms)~n", [Ms]),
    ok;
main(_) ->
    io:format("usage: demo_driver.escript DemoNode Cookie~n"),
    halt(2).

show(Expr, Val) -> io:format("erl> ~s~n~p~n~n", [Expr, Val]).
