%% The BEAM target of the rpc benchmarks (scripts/bench-rpc, scripts/cost-model): the same rpc
%% function and gen_server as erlcpp-demo — demo:echo/1 and a counter (get, {add, K}, reset).
-module(demo).
-behaviour(gen_server).
-export([echo/1, start_counter/0, init/1, handle_call/3, handle_cast/2]).
echo(X) -> X.
start_counter() -> {ok, _} = gen_server:start({local, counter}, demo, 0, []), ok.
init(N) -> {ok, N}.
handle_call(get, _From, N) -> {reply, N, N};
handle_call({add, K}, _From, N) -> {reply, N + K, N + K}.
handle_cast(reset, _) -> {noreply, 0}.
