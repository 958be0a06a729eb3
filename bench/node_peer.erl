%% The BEAM peer of the distribution benchmark (scripts/bench-node): the same registered
%% services as erlcpp-demo and bench/ei_node.c, in plain Erlang.
%%   echo  {Pid, T}      -> Pid ! T
%%   sink  any message   -> counted;  {done, Pid} -> Pid ! {count, N}, and the count resets
-module(node_peer).
-export([start/0]).

start() ->
    register(echo, spawn(fun echo/0)),
    register(sink, spawn(fun() -> sink(0) end)),
    io:format("ready ~s ~s~n", [node(), os:getpid()]).

echo() ->
    receive
        {Pid, T} when is_pid(Pid) -> Pid ! T;
        _ -> ok
    end,
    echo().

sink(N) ->
    receive
        {done, Pid} when is_pid(Pid) ->
            Pid ! {count, N},
            sink(0);
        _ ->
            sink(N + 1)
    end.
