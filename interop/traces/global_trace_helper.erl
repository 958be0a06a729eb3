%% Loaded into every node that capture_global.escript starts. It traces the cluster service
%% processes of its node (global_name_server with everything it spawns, the global locker and
%% registrar, the pg scopes) and keeps the trace in a local collector process, and it offers the
%% small actions the scenarios run on the node (idle processes to register or join, locks).
-module(global_trace_helper).
-export([start/1, collect/0, roles/0, idle/0, stop_idle/1, reg/2, lock/2, unlock/1,
         join/3, leave/3, sync/0]).

-define(COLLECTOR, global_trace_collector).

%% Starts tracing. Scopes: the pg scopes to trace (they must be running).
start(Scopes) ->
    Self = self(),
    Collector = spawn(fun() -> register(?COLLECTOR, self()), Self ! ready, loop([]) end),
    receive ready -> ok end,
    Flags = [send, 'receive', timestamp, {tracer, Collector}],
    Gns = whereis(global_name_server),
    Locker = global:get_locker(),
    Registrar = element(9, global:info()),
    _ = erlang:trace(Gns, true, [set_on_spawn | Flags]),
    _ = erlang:trace(Locker, true, Flags),
    _ = erlang:trace(Registrar, true, [set_on_spawn | Flags]),
    [erlang:trace(whereis(S), true, Flags) || S <- Scopes],
    Roles = [{Gns, global_name_server}, {Locker, global_locker}, {Registrar, global_registrar}
             | [{whereis(S), {pg, S}} || S <- Scopes]],
    ?COLLECTOR ! {roles, Roles},
    ok.

loop(Acc) ->
    receive
        {roles, R} -> put(roles, R), loop(Acc);
        {collect, From} -> From ! {trace, lists:reverse(Acc), get(roles)}, loop(Acc);
        T when element(1, T) =:= trace_ts -> loop([T | Acc]);
        _ -> loop(Acc)
    end.

%% The trace so far, oldest first: [{trace_ts, Pid, send, Msg, To, Ts} |
%% {trace_ts, Pid, 'receive', Msg, Ts} | ...], and the pid roles.
collect() ->
    %% Trace messages reach the collector asynchronously: wait until all that were generated
    %% so far are there.
    Ref = erlang:trace_delivered(all),
    receive {trace_delivered, all, Ref} -> ok end,
    ?COLLECTOR ! {collect, self()},
    receive {trace, T, R} -> {T, R} end.

roles() ->
    {_, R} = collect(),
    R.

idle() ->
    spawn(fun() -> receive stop -> ok end end).

stop_idle(Pid) ->
    Ref = monitor(process, Pid),
    Pid ! stop,
    receive {'DOWN', Ref, _, _, _} -> ok end.

reg(Name, Pid) -> global:register_name(Name, Pid).

%% A lock held by a process of its own until unlock/1; returns that process.
lock(Id, Nodes) ->
    Self = self(),
    Holder = spawn(fun() ->
                           R = global:set_lock(Id, Nodes, 0),
                           Self ! {locked, self(), R},
                           receive {unlock, From} -> global:del_lock(Id, Nodes), From ! {unlocked, self()} end
                   end),
    receive {locked, Holder, R} -> {Holder, R} end.

unlock(Holder) ->
    Holder ! {unlock, self()},
    receive {unlocked, Holder} -> ok end.

join(Scope, Group, Pid) -> pg:join(Scope, Group, Pid).
leave(Scope, Group, Pid) -> pg:leave(Scope, Group, Pid).

sync() -> global:sync().
