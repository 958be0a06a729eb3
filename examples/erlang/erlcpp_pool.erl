%% erlcpp_pool: calls from Erlang spread over a pool of C++ workers (gen_servers on erlcpp
%% nodes) found through a pg group, with failover — the BEAM side of erl::dispatch
%% (docs/distribution.md).
%%
%% The C++ workers join the group with erl::pg::join; pg (pg.erl) tells every node of the scope,
%% so pg:get_members/2 here lists them. A call goes to the members in turn (round robin over the
%% sorted member list, one counter per group); a member that is gone (noproc) or whose node is
%% down ({nodedown, _} / noconnection) was never reached, so the call moves to the next member
%% while the deadline lasts. Any other failure (a timeout, the worker's own exit) is returned:
%% the request may have run.
%%
%%   1> erlcpp_pool:call(pg, erlcpp_pool, {work, 21}, 5000).
%%   {ok, 42}
-module(erlcpp_pool).
-export([call/4, members/2]).

-spec members(atom(), term()) -> [pid()].
members(Scope, Group) ->
    lists:sort(pg:get_members(Scope, Group)).

-spec call(atom(), term(), term(), timeout()) ->
          {ok, term()} | {error, no_members | timeout | term()}.
call(Scope, Group, Request, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    case members(Scope, Group) of
        [] ->
            {error, no_members};
        Members ->
            Start = next_index(Scope, Group) rem length(Members),
            {Tail, Head} = lists:split(Start, Members),
            try_members(Head ++ Tail, Request, Deadline, no_members)
    end.

try_members([], _Request, _Deadline, Last) ->
    {error, Last};
try_members([Pid | Rest], Request, Deadline, _Last) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    if
        Left =< 0 ->
            {error, timeout};
        true ->
            try
                {ok, gen_server:call(Pid, Request, Left)}
            catch
                exit:{noproc, _} -> try_members(Rest, Request, Deadline, noproc);
                exit:{{nodedown, _}, _} -> try_members(Rest, Request, Deadline, nodedown);
                exit:{noconnection, _} -> try_members(Rest, Request, Deadline, noconnection);
                exit:{timeout, _} -> {error, timeout};
                exit:{Reason, _} -> {error, Reason}
            end
    end.

%% One counter per group, shared by the callers of this node (atomics in persistent_term).
next_index(Scope, Group) ->
    Key = {?MODULE, Scope, Group},
    Ref = case persistent_term:get(Key, undefined) of
              undefined ->
                  New = atomics:new(1, []),
                  persistent_term:put(Key, New),
                  persistent_term:get(Key);
              R ->
                  R
          end,
    atomics:add_get(Ref, 1, 1).
