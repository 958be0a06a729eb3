%% The BEAM side of the process-scale benchmark (scripts/bench-procs): the same workload as
%% bench/procs_bench.cpp. N processes each send `ready` to the parent and wait in receive; once
%% all are ready the parent measures the OS process's RSS, sends each `stop` and waits for N
%% `done` replies. Prints "result KEY VALUE" lines.
-module(procs_beam).
-export([main/1]).

main([NStr]) ->
    N = list_to_integer(NStr),
    Self = self(),
    erlang:garbage_collect(),
    Rss0 = rss(),
    Mem0 = erlang:memory(processes),
    T0 = erlang:monotonic_time(),
    Ps = [spawn(fun() -> Self ! ready, receive stop -> Self ! done end end)
          || _ <- lists:seq(1, N)],
    SpawnS = seconds(T0),
    ok = wait(ready, N),
    ReadyS = seconds(T0),
    Rss1 = rss(),
    Mem1 = erlang:memory(processes),
    T1 = erlang:monotonic_time(),
    [P ! stop || P <- Ps],
    ok = wait(done, N),
    StopS = seconds(T1),
    [io:format("result ~s ~.6g~n", [K, float(V)])
     || {K, V} <- [{spawn_rate, N / SpawnS}, {ready_rate, N / ReadyS},
                   {rss_per_process, (Rss1 - Rss0) / N},
                   {memory_processes_per_process, (Mem1 - Mem0) / N},
                   {stop_rate, N / StopS}]],
    halt().

wait(_, 0) -> ok;
wait(Tag, K) -> receive Tag -> wait(Tag, K - 1) after 120000 -> timeout end.

seconds(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1.0e9.

rss() ->
    {ok, S} = file:read_file("/proc/self/statm"),
    [_, Pages | _] = string:split(string:trim(binary_to_list(S)), " ", all),
    list_to_integer(Pages) * 4096.
