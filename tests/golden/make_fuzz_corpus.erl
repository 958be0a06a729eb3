%% Writes the ETF fuzz seed corpus: erlc make_fuzz_corpus.erl && erl -noshell -eval 'make_fuzz_corpus:main(["tests/fuzz/corpus/etf"]), halt().'
-module(make_fuzz_corpus).
-export([main/1]).
main([Dir]) ->
    Pid = binary_to_term(<<131, 88, 100, 0, 3, "a@b", 0, 0, 0, 42, 0, 0, 0, 7, 0,0,0,1>>),
    Ts = [{"small_int", 7, []}, {"int", -70000, []}, {"small_big", 1 bsl 70, []},
          {"large_big", -(1 bsl 2100), []}, {"new_float", 2.5, []}, {"float_text", 2.5, [{minor_version,0}]},
          {"atom_latin1", 'héllo', []}, {"atom_utf8", '日本', []}, {"small_atom_utf8", abc, [{minor_version,2}]},
          {"tuple", {a, 1, "x"}, []}, {"large_tuple", list_to_tuple(lists:seq(1,260)), [compressed]},
          {"nil", [], []}, {"string", "hello", []}, {"list", [1, 1000, a], []}, {"improper", [1 | b], []},
          {"map", #{a => 1, <<"b">> => [2]}, []}, {"map_40", maps:from_list([{I, I} || I <- lists:seq(1, 40)]), []},
          {"binary", <<1,2,3>>, []}, {"bit_binary", <<1:3>>, []},
          {"new_pid", Pid, []}, {"new_port", hd(erlang:ports()), []},
          {"v4_port", binary_to_term(<<131,120,100,0,3,"a@b",0,0,0,7,0,0,0,9,0,0,0,3>>), []},
          {"newer_reference", make_ref(), []}, {"export", fun lists:map/2, []},
          {"new_fun", fun(X) -> {X, Pid} end, []},
          {"compressed", lists:duplicate(200, {ok, 1}), [compressed]},
          {"control", {6, Pid, '', net_kernel}, []},
          {"nested", [[[[{[]}]]]], []}],
    lists:foreach(fun({N, T, O}) -> ok = file:write_file(filename:join(Dir, N), term_to_binary(T, O)) end, Ts),
    Raw = [{"pid_legacy", <<131,103,100,0,3,"a@b",0,0,0,1,0,0,0,2,3>>},
           {"port_legacy", <<131,102,100,0,3,"a@b",0,0,0,5,6>>},
           {"reference_legacy", <<131,101,100,0,3,"a@b",0,0,0,7,9>>},
           {"new_reference", <<131,114,0,2,100,0,3,"a@b",9,0,0,0,1,0,0,0,2>>},
           {"small_atom_latin1", <<131,115,3,"ok",255>>},
           {"atom_cache_ref_body", <<104,2,82,1,82,0>>},
           {"list_tail_string", <<131,108,0,0,0,1,97,1,107,0,2,5,6>>}],
    lists:foreach(fun({N, B}) -> ok = file:write_file(filename:join(Dir, N), B) end, Raw).
