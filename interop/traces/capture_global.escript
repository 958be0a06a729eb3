#!/usr/bin/env escript
%% -*- erlang -*-
%% Captures what OTP's global and pg send and receive, as ground truth for the sans-io cores in
%% src/cluster and their unit tests:
%%   escript interop/traces/capture_global.escript [OutDir]   (default: interop/traces)
%% Every scenario starts fresh nodes (peer, control over stdio, so this script stays outside the
%% cluster) on 127.0.0.1 with a private epmd on a free port, traces global_name_server (and all
%% it spawns), the locker, the registrar and the pg scopes of every node, runs its actions, and
%% writes
%%   <scenario>.etf  term_to_binary({Scenario, [{Label, Node, Roles, Trace}]}, [{minor_version, 2}])
%%                   (UTF-8 atoms, as the distribution sends them)
%%                   Trace = the node's trace messages oldest first ({trace_ts, Pid, send, Msg,
%%                   To, Ts} | {trace_ts, Pid, 'receive', Msg, Ts} | ...), Roles = [{Pid, Role}]
%%   <scenario>.txt  the same, readable, all nodes merged in timestamp order
%% Every node and the epmd are stopped before the script ends, also when a scenario fails.
-mode(compile).

main(Args) ->
    Dir = filename:dirname(escript:script_name()),
    Out = case Args of [O | _] -> O; [] -> Dir end,
    {ok, Mod, Bin} = compile:file(filename:join(Dir, "global_trace_helper.erl"), [binary]),
    Port = free_port(),
    Epmd = open_port({spawn_executable, os:find_executable("epmd")},
                     [{args, ["-port", integer_to_list(Port)]}, exit_status]),
    {os_pid, EpmdOs} = erlang:port_info(Epmd, os_pid),
    try
        wait_epmd(Port, 100),
        Ctx = #{port => Port, helper => {Mod, Bin}, cookie => cookie()},
        [run(Ctx, Out, S) || S <- scenarios(Args)],
        ok
    after
        os:cmd("kill " ++ integer_to_list(EpmdOs)),
        receive {Epmd, {exit_status, _}} -> ok after 5000 -> ok end
    end.

scenarios([_, Only | _]) -> [list_to_atom(Only)];
scenarios(_) -> [connect, three, clash, partition, nodedown].

run(Ctx, Out, Scenario) ->
    Labels = labels(Scenario),
    Peers = [{L, start_node(Ctx, L)} || L <- Labels],
    try
        Nodes = maps:from_list([{L, N} || {L, {_, N}} <- Peers]),
        Ps = maps:from_list([{L, P} || {L, {P, _}} <- Peers]),
        [ok = peer:call(P, global_trace_helper, start, [[pg, scope2]]) || P <- maps:values(Ps)],
        scenario(Scenario, Ps, Nodes),
        settle(maps:values(Ps)),
        Traces = [begin {T, R} = peer:call(P, global_trace_helper, collect, []), {L, maps:get(L, Nodes), R, T} end
                  || {L, P} <- lists:sort(maps:to_list(Ps)), is_process_alive(P)],
        ok = file:write_file(filename:join(Out, atom_to_list(Scenario) ++ ".etf"),
                             term_to_binary({Scenario, Traces}, [{minor_version, 2}])),
        ok = file:write_file(filename:join(Out, atom_to_list(Scenario) ++ ".txt"), text(Scenario, Traces)),
        io:format("~p: ~p events~n", [Scenario, lists:sum([length(T) || {_, _, _, T} <- Traces])])
    after
        [catch peer:stop(P) || {_, {P, _}} <- Peers]
    end.

labels(three) -> [a, b, c];
labels(partition) -> [a, b, c];
labels(_) -> [a, b].

start_node(#{port := Port, helper := {Mod, Bin}, cookie := Cookie}, Label) ->
    Name = lists:flatten(io_lib:format("gt_~s_~s", [Label, integer_to_list(erlang:unique_integer([positive]))
                                                    ++ "_" ++ os:getpid()])),
    {ok, P, Node} = peer:start(#{name => Name, host => "127.0.0.1", longnames => true,
                                 connection => standard_io,
                                 args => ["-setcookie", Cookie, "-kernel", "start_pg", "true",
                                          "-kernel", "inet_dist_use_interface", "{127,0,0,1}"],
                                 env => [{"ERL_EPMD_PORT", integer_to_list(Port)}]}),
    {module, Mod} = peer:call(P, code, load_binary, [Mod, "global_trace_helper.erl", Bin]),
    {ok, _} = peer:call(P, pg, start, [scope2]),
    {P, Node}.

%% ---- scenarios --------------------------------------------------------------------------
%% connect: names and pg members on both sides before the connection, then a registration, a
%% lock and pg changes while connected, then process deaths.
scenario(connect, #{a := A, b := B}, #{b := NB} = Nodes) ->
    PA = call(A, idle, []), PB = call(B, idle, []),
    yes = call(A, reg, [name_a, PA]),
    yes = call(B, reg, [name_b, PB]),
    ok = call(A, join, [pg, g1, PA]),
    ok = call(B, join, [pg, g1, PB]),
    ok = call(B, join, [scope2, {tuple, group}, PB]),
    true = peer:call(A, net_kernel, connect_node, [NB]),
    ok = call(A, sync, []), ok = call(B, sync, []),
    wait_members(A, pg, g1, 2), wait_members(B, pg, g1, 2),
    wait_members(A, scope2, {tuple, group}, 1),
    PA2 = call(A, idle, []),
    yes = call(A, reg, [late_a, PA2]),
    {Holder, true} = call(B, lock, [{res1, req1}, maps:values(Nodes)]),
    ok = call(B, unlock, [Holder]),
    ok = call(A, join, [pg, g2, PA2]),
    wait_members(B, pg, g2, 1),
    ok = call(A, leave, [pg, g1, PA]),
    wait_members(B, pg, g1, 1),
    ok = call(A, stop_idle, [PA2]),
    wait_members(B, pg, g2, 0),
    wait_name(B, late_a, undefined),
    ok = call(B, stop_idle, [PB]),
    wait_name(A, name_b, undefined),
    wait_members(A, pg, g1, 0);

%% three: a and b synced, then c (with a name) connects to b only; global makes a and c meet.
scenario(three, #{a := A, b := B, c := C}, #{a := NA, b := NB, c := NC}) ->
    PC = call(C, idle, []),
    yes = call(C, reg, [name_c, PC]),
    true = peer:call(A, net_kernel, connect_node, [NB]),
    ok = call(A, sync, []),
    true = peer:call(C, net_kernel, connect_node, [NB]),
    ok = call(B, sync, []), ok = call(C, sync, []), ok = call(A, sync, []),
    wait_name(A, name_c, PC),
    wait_nodes(A, [NB, NC]), wait_nodes(C, [NA, NB]);

%% clash: the same names registered on both sides before they connect, with the three resolve
%% methods.
scenario(clash, #{a := A, b := B}, #{b := NB}) ->
    [begin
         P1 = call(A, idle, []), P2 = call(B, idle, []),
         yes = peer:call(A, global, register_name, [Name, P1 | M]),
         yes = peer:call(B, global, register_name, [Name, P2 | M])
     end || {Name, M} <- [{clash_exit, []},
                          {clash_notify, [fun global:random_notify_name/3]},
                          {clash_all, [fun global:notify_all_name/3]}]],
    true = peer:call(A, net_kernel, connect_node, [NB]),
    ok = call(A, sync, []), ok = call(B, sync, []),
    wait_name(A, clash_all, undefined), wait_name(B, clash_all, undefined);

%% partition: a, b, c fully connected; a drops c. prevent_overlapping_partitions makes b drop
%% c too (lost_connection, remove_connection); then c reconnects to a.
scenario(partition, #{a := A, b := B, c := C}, #{a := NA, b := NB, c := NC}) ->
    PC = call(C, idle, []),
    yes = call(C, reg, [name_c, PC]),
    true = peer:call(A, net_kernel, connect_node, [NB]),
    true = peer:call(A, net_kernel, connect_node, [NC]),
    ok = call(A, sync, []), ok = call(B, sync, []), ok = call(C, sync, []),
    wait_nodes(B, [NA, NC]),
    true = peer:call(A, erlang, disconnect_node, [NC]),
    %% Every node that hears of the lost connection drops both ends, so b may end up alone too.
    wait_nodes(C, []), wait_not_node(A, NC), wait_not_node(B, NC),
    wait_name(A, name_c, undefined), wait_name(B, name_c, undefined),
    true = peer:call(C, net_kernel, connect_node, [NA]),
    ok = call(C, sync, []), ok = call(A, sync, []),
    wait_name(A, name_c, PC),
    true = peer:call(B, net_kernel, connect_node, [NA]),
    ok = call(B, sync, []), ok = call(A, sync, []), ok = call(C, sync, []),
    wait_name(B, name_c, PC);

%% nodedown: b (with a name, a lock and a pg member) dies; a cleans up.
scenario(nodedown, #{a := A, b := B}, #{a := NA, b := NB}) ->
    PB = call(B, idle, []),
    true = peer:call(A, net_kernel, connect_node, [NB]),
    ok = call(A, sync, []), ok = call(B, sync, []),
    yes = call(B, reg, [name_b, PB]),
    ok = call(B, join, [pg, g1, PB]),
    wait_members(A, pg, g1, 1),
    {_Holder, true} = call(B, lock, [{res_b, req_b}, [NA, NB]]),
    ok = peer:stop(B),
    wait_nodes(A, []),
    wait_name(A, name_b, undefined),
    wait_members(A, pg, g1, 0).

call(P, F, A) -> peer:call(P, global_trace_helper, F, A).

%% The scenarios wait for the state they need with a deadline (no fixed sleeps).
wait_members(P, Scope, Group, N) ->
    wait(fun() -> length(peer:call(P, pg, get_members, [Scope, Group])) =:= N end, {members, Group, N}).
wait_name(P, Name, Pid) ->
    wait(fun() -> peer:call(P, global, whereis_name, [Name]) =:= Pid end, {name, Name, Pid}).
wait_nodes(P, Nodes) ->
    wait(fun() -> lists:sort(peer:call(P, erlang, nodes, [])) =:= lists:sort(Nodes) end, {nodes, Nodes}).

%% The end of a scenario: every node's global has finished with every node it is connected
%% to (get_synced = nodes()), so the trace holds each session to its end.
settle(Ps) ->
    [wait(fun() -> lists:sort(peer:call(P, gen_server, call, [global_name_server, get_synced]))
                       =:= lists:sort(peer:call(P, erlang, nodes, [])) end, synced)
     || P <- Ps, is_process_alive(P)],
    ok.

wait_not_node(P, Node) ->
    wait(fun() -> not lists:member(Node, peer:call(P, erlang, nodes, [])) end, {not_node, Node}).

wait(F, What) -> wait(F, What, erlang:monotonic_time(millisecond) + 20000).
wait(F, What, Deadline) ->
    case F() of
        true -> ok;
        false ->
            erlang:monotonic_time(millisecond) < Deadline orelse error({timeout, What}),
            receive after 20 -> ok end,
            wait(F, What, Deadline)
    end.

%% ---- output -----------------------------------------------------------------------------
text(Scenario, Traces) ->
    Roles = maps:from_list(lists:append([[{P, {L, R}} || {P, R} <- Rs] || {L, _, Rs, _} <- Traces])),
    Nodes = [io_lib:format("%% ~p = ~p~n", [L, N]) || {L, N, _, _} <- Traces],
    Events = lists:sort([{ts(T), L, T} || {L, _, _, Ts} <- Traces, T <- Ts]),
    [io_lib:format("%% ~p: trace of global and pg, all nodes merged by timestamp~n", [Scenario]),
     Nodes | [line(L, T, Roles) || {_, L, T} <- Events]].

ts(T) -> element(tuple_size(T), T).

line(L, {trace_ts, Pid, send, Msg, To, _}, Roles) ->
    io_lib:format("~p ~s send ~s ! ~0tp~n", [L, who(Pid, Roles), who(To, Roles), Msg]);
line(L, {trace_ts, Pid, send_to_non_existing_process, Msg, To, _}, Roles) ->
    io_lib:format("~p ~s send(noproc) ~s ! ~0tp~n", [L, who(Pid, Roles), who(To, Roles), Msg]);
line(L, {trace_ts, Pid, 'receive', Msg, _}, Roles) ->
    io_lib:format("~p ~s recv ~0tp~n", [L, who(Pid, Roles), Msg]);
line(L, T, _) ->
    io_lib:format("~p other ~0tp~n", [L, T]).

who(P, Roles) when is_pid(P) ->
    case maps:find(P, Roles) of
        {ok, {L, R}} -> io_lib:format("~p/~0p", [L, R]);
        error -> io_lib:format("~p@~p", [P, node(P)])
    end;
who(X, _) -> io_lib:format("~0p", [X]).

%% ---- helpers ----------------------------------------------------------------------------
free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

wait_epmd(_Port, 0) -> error(epmd_not_started);
wait_epmd(Port, N) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, []) of
        {ok, S} -> gen_tcp:close(S);
        {error, _} -> receive after 50 -> ok end, wait_epmd(Port, N - 1)
    end.

cookie() -> "gt_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid().
