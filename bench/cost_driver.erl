%% The driver of scripts/cost-model: a BEAM node that runs one workload against one target each
%% time a line on stdin asks for it, so the script can open and close its measurement window
%% (perf stat, callgrind) exactly around the workload. Protocol (one line each way):
%%   run Workload Node N   ->   done Workload Node N Seconds
%%   quit
%% Workloads: sink (N small {msg, I} to {sink, Node}, then {done, self()} and wait for the
%% count), sink_big (the same with the ~1 KB terms {msg, I, Payload} of bench-node), echo (N
%% sequential round trips through {echo, Node}), gen_call (N sequential
%% gen_server:call({counter, Node}, get)), rpc_call (N sequential rpc:call(Node, demo, echo,
%% [x])). Before its first measured run a target gets the same workload unmeasured (connection,
%% atom caches and buffers settle).
-module(cost_driver).
-export([main/0]).

main() ->
    loop(#{}),
    halt(0).

loop(Warm) ->
    case io:get_line("") of
        eof -> ok;
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["quit"] -> ok;
                ["run", W, NodeS, NS] ->
                    Node = list_to_atom(NodeS),
                    N = list_to_integer(NS),
                    Warm1 = warm_up(W, Node, Warm),
                    {Us, ok} = timer:tc(fun() -> workload(list_to_atom(W), Node, N) end),
                    io:format("done ~s ~s ~b ~.6f~n", [W, NodeS, N, Us / 1.0e6]),
                    loop(Warm1)
            end
    end.

warm_up(W, Node, Warm) ->
    case maps:is_key({W, Node}, Warm) of
        true -> Warm;
        false ->
            ok = workload(list_to_atom(W), Node, 2000),
            Warm#{{W, Node} => true}
    end.

workload(sink, Node, N) ->
    Dest = {sink, Node},
    send_loop(Dest, 1, N),
    Dest ! {done, self()},
    receive {count, N} -> ok; {count, M} -> error({wrong_count, Node, N, M})
    after 120000 -> error({sink_timeout, Node})
    end;
workload(sink_big, Node, N) ->
    Dest = {sink, Node},
    Payload = payload(),
    [Dest ! {msg, I, Payload} || I <- lists:seq(1, N)],
    Dest ! {done, self()},
    receive {count, N} -> ok; {count, M} -> error({wrong_count, Node, N, M})
    after 120000 -> error({sink_timeout, Node})
    end;
workload(echo, Node, N) ->
    Dest = {echo, Node},
    Self = self(),
    repeat(fun(I) -> Dest ! {Self, {ping, I}},
                     receive {ping, I} -> ok after 10000 -> error({echo_timeout, Node}) end
           end, N);
workload(gen_call, Node, N) ->
    repeat(fun(_) -> gen_server:call({counter, Node}, get) end, N);
workload(rpc_call, Node, N) ->
    repeat(fun(_) -> x = rpc:call(Node, demo, echo, [x]) end, N).

%% The ~1 KB term of bench/node_driver.erl.
payload() ->
    [{item, K, <<"0123456789abcdef01234567">>, K * 1.5, [K, K + 1]} || K <- lists:seq(1, 18)].

send_loop(_Dest, I, N) when I > N -> ok;
send_loop(Dest, I, N) -> Dest ! {msg, I}, send_loop(Dest, I + 1, N).

repeat(F, N) -> repeat(F, 1, N).
repeat(_F, I, N) when I > N -> ok;
repeat(F, I, N) -> F(I), repeat(F, I + 1, N).
