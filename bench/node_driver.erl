%% The driver of the distribution benchmark (scripts/bench-node). A real BEAM node runs the same
%% measurements against each target node offering `echo` and `sink` (see bench/node_peer.erl):
%%   - sink throughput: N messages to {sink, Node}, then {done, self()}, wait for {count, N};
%%     small messages {msg, I} and ~1 KB terms {msg, I, Payload};
%%   - the receiving OS process's CPU time per message during those runs (utime + stime from
%%     /proc/<pid>/stat, all threads);
%%   - echo round trip: sequential {self(), {ping, I}} -> {ping, I}, median and p99;
%%   - large echo: sequential {self(), Bin} -> Bin with one LargeMB MiB binary, median per run.
%% Every repetition measures every target in turn; cells show the median and the spread.
%% It then prints one table with the C++ figures measured by erlcpp-bench-node (read from a file
%% of "result KEY VALUE" lines) and the ratios erlcpp/BEAM and erlcpp/ei.
%%
%% Arguments (strings, from -run node_driver main ...):
%%   ClkTck CppResultsFile SmallN BigN EchoN Reps LargeN LargeMB Label=Node=OsPid...
%% Labels: beam, ei, erlcpp (others are measured and printed as extra columns). A target may
%% end in =Suffix: its services are then echo<Suffix> and sink<Suffix> (erlcpp-demo offers
%% echo_thread/sink_thread, its thread-bodied variants).
-module(node_driver).
-export([main/1]).
%% Also used by scripts/bench-rpc's driver.
-export([cpu_ticks/1]).

main([ClkTck, CppFile, SmallN, BigN, EchoN, Reps, LargeN, LargeMB | Targets]) ->
    try
        put(large, {list_to_integer(LargeN), list_to_integer(LargeMB)}),
        run(list_to_integer(ClkTck), CppFile, list_to_integer(SmallN), list_to_integer(BigN),
            list_to_integer(EchoN), list_to_integer(Reps), [parse_target(T) || T <- Targets]),
        halt(0)
    catch C:E:St ->
        io:format(standard_error, "driver failed: ~p:~p~n~p~n", [C, E, St]),
        halt(1)
    end.

parse_target(S) ->
    case string:split(S, "=", all) of
        [Label, Node, OsPid] -> {list_to_atom(Label), {list_to_atom(Node), ""}, OsPid};
        [Label, Node, OsPid, Suffix] -> {list_to_atom(Label), {list_to_atom(Node), Suffix}, OsPid}
    end.

payload() ->
    [{item, K, <<"0123456789abcdef01234567">>, K * 1.5, [K, K + 1]} || K <- lists:seq(1, 18)].

run(ClkTck, CppFile, SmallN, BigN, EchoN, Reps, Targets) ->
    Payload = payload(),
    BigSize = byte_size(term_to_binary({msg, 1000000, Payload})),
    io:format("~s~n", [header(SmallN, BigN, BigSize, EchoN, Reps)]),
    Results = measure_all(Targets, ClkTck, SmallN, BigN, EchoN, Reps, Payload),
    Cpp = read_cpp(CppFile),
    print_table(Results, Cpp).

header(SmallN, BigN, BigSize, EchoN, Reps) ->
    io_lib:format("sink: ~b small {msg, I} / ~b x ~b-byte terms per run; echo: ~b sequential"
                  " round trips per run; ~b runs, the targets taking turns within every run~n"
                  "cells: median of the runs [lowest-highest run]; ratios of medians,"
                  " erlcpp value / other value (msg/s: higher is better;"
                  " CPU and round trips: lower is better)",
                  [SmallN, BigN, BigSize, EchoN div max(1, Reps), Reps]).

%% Every repetition measures every target once, one after the other, so a change of load on a
%% shared machine hits all targets of a ratio instead of only the one measured at that moment.
measure_all(Targets, ClkTck, SmallN, BigN, EchoN, Reps, Payload) ->
    Dests = [{Label, dests(Node), OsPid} || {Label, Node, OsPid} <- Targets],
    [warm_up(Label, D, Payload) || {Label, D, _} <- Dests],
    EchoPerRep = max(1, EchoN div max(1, Reps)),
    Runs = [{Label, one_run(D, OsPid, ClkTck, SmallN, BigN, EchoPerRep, Payload)}
            || _ <- lists:seq(1, Reps), {Label, D, OsPid} <- Dests],
    [{Label, summarize([R || {L, R} <- Runs, L =:= Label])} || {Label, _, _} <- Dests].

dests({Node, Suffix}) ->
    {{list_to_atom("sink" ++ Suffix), Node}, {list_to_atom("echo" ++ Suffix), Node}}.

warm_up(Label, {{_, Node} = Sink, Echo}, Payload) ->
    io:format(standard_error, "  warming up ~s (~s)...~n", [Label, Node]),
    %% Connect, and let each side settle its atom caches and buffers.
    {ok, _} = sink_run(Sink, 2000, fun(I) -> {msg, I} end),
    {ok, _} = sink_run(Sink, 500, fun(I) -> {msg, I, Payload} end),
    _ = echo_run(Echo, 500),
    _ = large_echo_run(Echo, 1),
    ok.

one_run({Sink, Echo}, OsPid, ClkTck, SmallN, BigN, EchoN, Payload) ->
    {SmallRate, SmallCpu} = sink_measured(Sink, OsPid, ClkTck, SmallN, fun(I) -> {msg, I} end),
    {BigRate, BigCpu} = sink_measured(Sink, OsPid, ClkTck, BigN, fun(I) -> {msg, I, Payload} end),
    Rtts = lists:sort(echo_run(Echo, EchoN)),
    {LargeN, _} = get(large),
    L0 = cpu_ticks(OsPid),
    Large = lists:sort(large_echo_run(Echo, LargeN)),
    L1 = cpu_ticks(OsPid),
    #{sink_small => SmallRate, sink_big => BigRate, cpu_small => SmallCpu, cpu_big => BigCpu,
      echo_median => percentile(Rtts, 0.5), echo_p99 => percentile(Rtts, 0.99),
      echo_large => percentile(Large, 0.5),
      cpu_large => (L1 - L0) * (1000 / ClkTck) / max(1, LargeN)}.

%% Rate (msgs/s) of one sink run and the receiver's CPU ns per message during it.
sink_measured(Sink, OsPid, ClkTck, N, Gen) ->
    C0 = cpu_ticks(OsPid),
    {ok, Secs} = sink_run(Sink, N, Gen),
    C1 = cpu_ticks(OsPid),
    {N / Secs, (C1 - C0) * (1.0e9 / ClkTck) / N}.

%% Per key: {Median, Lowest, Highest} over the runs.
summarize(Runs) ->
    maps:map(fun(_, Vs) -> Sorted = lists:sort(Vs),
                           {percentile(Sorted, 0.5), hd(Sorted), lists:last(Sorted)} end,
             lists:foldl(fun(R, Acc) ->
                                 maps:fold(fun(K, V, A) -> maps:update_with(K, fun(L) -> [V | L] end,
                                                                            [V], A) end, Acc, R)
                         end, #{}, Runs)).

sink_run({_, Node} = Dest, N, Gen) ->
    T0 = erlang:monotonic_time(nanosecond),
    send_loop(Dest, Gen, 1, N),
    Dest ! {done, self()},
    receive
        {count, N} -> {ok, (erlang:monotonic_time(nanosecond) - T0) / 1.0e9};
        {count, M} -> error({wrong_count, Node, N, M})
    after 120000 -> error({sink_timeout, Node})
    end.

send_loop(_Dest, _Gen, I, N) when I > N -> ok;
send_loop(Dest, Gen, I, N) ->
    Dest ! Gen(I),
    send_loop(Dest, Gen, I + 1, N).

%% Round-trip times in microseconds.
echo_run({_, Node} = Dest, N) ->
    Self = self(),
    [begin
         T0 = erlang:monotonic_time(nanosecond),
         Dest ! {Self, {ping, I}},
         receive {ping, I} -> ok after 10000 -> error({echo_timeout, Node}) end,
         (erlang:monotonic_time(nanosecond) - T0) / 1000
     end || I <- lists:seq(1, N)].

%% Round-trip times in milliseconds of N echoes of one LargeMB MiB binary (made once per process,
%% so that building it is not timed; its bytes vary so that nothing on the way can shortcut).
large_echo_run({_, Node} = Dest, N) ->
    Bin = large_binary(),
    Self = self(),
    [begin
         T0 = erlang:monotonic_time(nanosecond),
         Dest ! {Self, Bin},
         receive B when is_binary(B), byte_size(B) =:= byte_size(Bin) -> ok
         after 60000 -> error({large_echo_timeout, Node})
         end,
         (erlang:monotonic_time(nanosecond) - T0) / 1.0e6
     end || _ <- lists:seq(1, N)].

large_binary() ->
    case get(large_binary) of
        undefined ->
            {_, MB} = get(large),
            B = crypto:strong_rand_bytes(MB * 1024 * 1024),
            put(large_binary, B),
            B;
        B -> B
    end.

percentile(Sorted, P) ->
    Len = length(Sorted),
    lists:nth(max(1, min(Len, round(P * Len + 0.5))), Sorted).

%% utime + stime (clock ticks) of every thread of OS process OsPid.
cpu_ticks(OsPid) ->
    {ok, Bin} = file:read_file("/proc/" ++ OsPid ++ "/stat"),
    %% Fields after the ")" closing the command name start at field 3 (state).
    [_, Rest] = string:split(Bin, ")", trailing),
    Fields = string:lexemes(Rest, " "),
    binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)).

read_cpp(File) ->
    case file:read_file(File) of
        {ok, Bin} ->
            maps:from_list(
              [{K, binary_to_float_any(V)}
               || Line <- string:lexemes(Bin, "\n"),
                  [<<"result">>, K, V] <- [string:lexemes(Line, " ")]]);
        _ -> #{}
    end.

binary_to_float_any(B) ->
    try binary_to_float(B) catch _:_ ->
        try float(binary_to_integer(B)) catch _:_ ->
            %% printf %g may give "1.5e+06"
            [M, E] = string:split(B, "e"),
            Mant = try binary_to_float(M) catch _:_ -> float(binary_to_integer(M)) end,
            Mant * math:pow(10, binary_to_integer(string:trim(E, leading, "+")))
        end
    end.

%% ---------------------------------------------------------------------------------------------
print_table(Results, Cpp) ->
    Stat = fun(Label, Key) ->
                   case lists:keyfind(Label, 1, Results) of
                       {_, M} -> maps:get(Key, M, undefined);
                       false -> undefined
                   end
           end,
    Get = fun(Label, Key) ->
                  case Stat(Label, Key) of
                      {Med, _, _} -> Med;
                      undefined -> undefined
                  end
          end,
    Extra = [L || {L, _} <- Results, not lists:member(L, [beam, ei, erlcpp])],
    Rows =
        [{"sink, small msgs (msg/s)", sink_small, hi, ">= ei's rate"},
         {"sink, ~1 KB terms (msg/s)", sink_big, hi, ""},
         {"receiver CPU/msg, small (us)", cpu_small, lo, "<= 0.3x BEAM"},
         {"receiver CPU/msg, ~1 KB (us)", cpu_big, lo, "<= 0.3x BEAM"},
         {"echo round trip, median (us)", echo_median, lo, "<= 0.8x BEAM"},
         {"echo round trip, p99 (us)", echo_p99, lo, "<= 0.5x BEAM"},
         {large_label(), echo_large, lo, "memory bandwidth"},
         {large_cpu_label(), cpu_large, lo, ""}],
    %% With a baseline build (BASELINE_BIN in scripts/bench-node): before/after in this run.
    Base = [erlcpp_base || lists:member(erlcpp_base, Extra)],
    Cols = ["metric", "BEAM", "ei", "erlcpp"] ++ [atom_to_list(E) || E <- Extra]
        ++ ["erlcpp/BEAM", "erlcpp/ei"] ++ ["erlcpp/base" || _ <- Base] ++ ["goal"],
    Body =
        [begin
             Labels = [beam, ei, erlcpp | Extra],
             [B, E, C | _] = [scale(Key, Get(L, Key)) || L <- Labels],
             [Name | [fmt_spread(Key, Stat(L, Key)) || L <- Labels]]
                 ++ [ratio(C, B), ratio(C, E)]
                 ++ [ratio(C, scale(Key, Get(L, Key))) || L <- Base] ++ [Goal]
         end || {Name, Key, _Dir, Goal} <- Rows],
    BeamSend = Get(beam, sink_small),
    CppSend = maps:get(<<"erlcpp_to_beam_small_rate">>, Cpp, undefined),
    Local = maps:get(<<"erlcpp_to_erlcpp_small_rate">>, Cpp, undefined),
    LocalBest = maps:get(<<"erlcpp_to_erlcpp_small_rate_best">>, Cpp, undefined),
    LocalCpu = maps:get(<<"erlcpp_to_erlcpp_cpu_ns_per_msg">>, Cpp, undefined),
    Coro = maps:get(<<"erlcpp_to_erlcpp_coroutines_small_rate">>, Cpp, undefined),
    CoroBest = maps:get(<<"erlcpp_to_erlcpp_coroutines_small_rate_best">>, Cpp, undefined),
    CoroCpu = maps:get(<<"erlcpp_to_erlcpp_coroutines_cpu_ns_per_msg">>, Cpp, undefined),
    Dash = ["-" || _ <- Extra],
    BaseDash = ["-" || _ <- Base],
    Body2 =
        [["send small msgs to BEAM sink (msg/s)", fmt(BeamSend), "-", fmt(CppSend)] ++ Dash
         ++ [ratio(CppSend, BeamSend), "-"] ++ BaseDash ++ ["sender: BEAM vs erlcpp"],
         ["erlcpp<->erlcpp small msgs, median (msg/s)", "-", "-", fmt(Local)] ++ Dash
         ++ ["-", "-"] ++ BaseDash ++ [">= 4M/s"],
         ["erlcpp<->erlcpp small msgs, best run (msg/s)", "-", "-", fmt(LocalBest)] ++ Dash
         ++ ["-", "-"] ++ BaseDash ++ [">= 4M/s"],
         ["erlcpp<->erlcpp CPU/msg, both nodes (us)", "-", "-", fmt(scale(cpu_small, LocalCpu))]
         ++ Dash ++ ["-", "-"] ++ BaseDash ++ [""],
         ["erlcpp<->erlcpp coroutines, median (msg/s)", "-", "-", fmt(Coro)] ++ Dash
         ++ ["-", "-"] ++ BaseDash ++ [">= 4M/s"],
         ["erlcpp<->erlcpp coroutines, best run (msg/s)", "-", "-", fmt(CoroBest)] ++ Dash
         ++ ["-", "-"] ++ BaseDash ++ [">= 4M/s"],
         ["erlcpp<->erlcpp coroutines CPU/msg (us)", "-", "-", fmt(scale(cpu_small, CoroCpu))]
         ++ Dash ++ ["-", "-"] ++ BaseDash ++ [""]]
        ++ [[Label, "-", "-", fmt(V)] ++ Dash ++ ["-", "-"] ++ BaseDash ++ [What]
            || {Key, Label, What} <- [{<<"memcpy_large_ms">>, floor_label("memcpy of"),
                                      "floor: one copy"},
                                     {<<"tcp_echo_large_ms">>, floor_label("loopback TCP echo of"),
                                      "floor: kernel, no Erlang"}],
               V <- [maps:get(Key, Cpp, undefined)], V =/= undefined],
    All = [Cols | Body ++ Body2],
    Widths = [lists:max([string:length(lists:nth(I, R)) || R <- All])
              || I <- lists:seq(1, length(Cols))],
    Line = fun(R) ->
                   [H | T] = lists:zip(R, Widths),
                   {S0, W0} = H,
                   io:format("~s~n", [string:trim(
                                        [string:pad(S0, W0, trailing)
                                         | [["  ", string:pad(S, W, leading)] || {S, W} <- T]],
                                        trailing)])
           end,
    Line(hd(All)),
    io:format("~s~n", [lists:duplicate(lists:sum(Widths) + 2 * (length(Widths) - 1), $-)]),
    lists:foreach(Line, tl(All)).

large_label() ->
    {_, MB} = get(large),
    lists:flatten(io_lib:format("echo ~b MiB binary, round trip (ms)", [MB])).

large_cpu_label() ->
    {_, MB} = get(large),
    lists:flatten(io_lib:format("target CPU per ~b MiB echo (ms)", [MB])).

floor_label(What) ->
    {_, MB} = get(large),
    lists:flatten(io_lib:format("~s ~b MiB (ms)", [What, MB])).

scale(_, undefined) -> undefined;
scale(cpu_small, Ns) -> Ns / 1000;
scale(cpu_big, Ns) -> Ns / 1000;
scale(_, V) -> V.

fmt_spread(_, undefined) -> "-";
fmt_spread(Key, {Med, Lo, Hi}) ->
    lists:flatten([fmt(scale(Key, Med)), " [", fmt(scale(Key, Lo)), "-", fmt(scale(Key, Hi)), "]"]).

fmt(undefined) -> "-";
fmt(V) when V >= 1000 -> integer_to_list(round(V));
fmt(V) when V >= 10 -> io_lib:format("~.1f", [float(V)]);
fmt(V) -> io_lib:format("~.2f", [float(V)]).

ratio(undefined, _) -> "-";
ratio(_, undefined) -> "-";
ratio(_, B) when B == 0 -> "-";
ratio(A, B) -> io_lib:format("~.2fx", [A / B]).
