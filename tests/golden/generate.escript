#!/usr/bin/env escript
%% -*- erlang -*-
%% Generates the ETF golden vectors from a real OTP node:
%%   escript tests/golden/generate.escript > tests/golden/etf_vectors.txt
%% One vector per line, tab separated:
%%   Name  Options  HexOfTermToBinary  TermPrintedWith~tw (or "-" when longer than 2000 bytes)
%% The same Name appears once per encoding option; the C++ tests check that every vector
%% decodes, that all encodings of one Name decode to the same term, that the decoded term
%% prints as ~w does (where printing is unambiguous), and (interop) that OTP finds our
%% re-encoding =:= to its own.
-mode(compile).

main(_) ->
    ok = io:setopts(standard_io, [{encoding, unicode}]),
    Opts = [{"default", []}, {"compressed", [compressed]}, {"minor0", [{minor_version, 0}]},
            {"minor1", [{minor_version, 1}]}, {"minor2", [{minor_version, 2}]},
            {"compressed9_minor2", [{compressed, 9}, {minor_version, 2}]}],
    lists:foreach(
      fun({Name, Term, Which}) ->
              Seen = lists:foldl(
                       fun({OName, O}, Acc) ->
                               case Which =:= all orelse lists:member(OName, Which) of
                                   false -> Acc;
                                   true ->
                                       Bin = term_to_binary(Term, O),
                                       case lists:member(Bin, Acc) of
                                           true -> Acc;
                                           false -> emit(Name, OName, Bin, Term), [Bin | Acc]
                                       end
                               end
                       end, [], Opts),
              true = Seen =/= []
      end, terms()).

emit(Name, OName, Bin, Term) ->
    Hex = binary:encode_hex(Bin),
    Text0 = unicode:characters_to_binary(io_lib:format("~tw", [Term])),
    %% Long texts are left out ("-") to keep the committed file small.
    Text = case byte_size(Text0) > 2000 of true -> <<"-">>; false -> Text0 end,
    io:put_chars(standard_io, [Name, $\t, OName, $\t, Hex, $\t, Text, $\n]).

crafted(Bin) -> binary_to_term(Bin).

make_closure(A, B) -> fun(X) -> {A, B, X} end.
make_nofree() -> fun(X) -> X + 1 end.

deep(0, Acc) -> Acc;
deep(N, Acc) -> deep(N - 1, [Acc]).

deep_tuple(0, Acc) -> Acc;
deep_tuple(N, Acc) -> deep_tuple(N - 1, {N, Acc}).

terms() ->
    Latin1 = list_to_atom([$a + (I rem 26) || I <- lists:seq(1, 255)]),
    Latin1High = list_to_atom([16#C0 + (I rem 60) || I <- lists:seq(1, 255)]),
    Unicode255 = list_to_atom(lists:duplicate(255, 16#65E5)),
    Node = 'foo@bar.example',
    Pid = crafted(<<131, 88, 100, 0, 15, "foo@bar.example", 0, 0, 0, 42, 0, 0, 0, 7, 16#12, 16#34, 16#56, 16#78>>),
    OldPid = crafted(<<131, 103, 100, 0, 15, "foo@bar.example", 0, 0, 0, 42, 0, 0, 0, 7, 2>>),
    Port = crafted(<<131, 89, 100, 0, 15, "foo@bar.example", 0, 0, 1, 0, 0, 0, 0, 3>>),
    V4Port = crafted(<<131, 120, 100, 0, 15, "foo@bar.example", 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 3>>),
    Ref = crafted(<<131, 90, 0, 3, 100, 0, 15, "foo@bar.example", 0, 0, 0, 5, 0, 0, 1, 1, 0, 0, 2, 2, 0, 0, 3, 3>>),
    Ref5 = crafted(<<131, 90, 0, 5, 100, 0, 15, "foo@bar.example", 0, 0, 0, 5, 0, 0, 1, 1, 0, 0, 2, 2, 0, 0, 3, 3, 0, 0, 4, 4, 0, 0, 5, 5>>),
    _ = Node,
    Map33 = maps:from_list([{I, I * I} || I <- lists:seq(1, 33)]),
    Map100 = maps:from_list([{list_to_atom("k" ++ integer_to_list(I)), <<I>>} || I <- lists:seq(1, 100)]),
    [{"int_0", 0, all}, {"int_1", 1, all}, {"int_255", 255, all}, {"int_256", 256, all},
     {"int_m1", -1, all}, {"int_m256", -256, all},
     {"int32_max", 2147483647, all}, {"int32_min", -2147483648, all},
     {"int32_max_p1", 2147483648, all}, {"int32_min_m1", -2147483649, all},
     {"int64_max", 9223372036854775807, all}, {"int64_min", -9223372036854775808, all},
     {"int64_max_p1", 9223372036854775808, all}, {"int64_min_m1", -9223372036854775809, all},
     {"uint64_max", 18446744073709551615, all}, {"two_pow_64", 18446744073709551616, all},
     {"neg_two_pow_64", -18446744073709551616, all},
     {"big_1000", 1 bsl 1000, all}, {"neg_big_2100", -(1 bsl 2100) + 12345, all},
     {"float_0", 0.0, all}, {"float_1_5", 1.5, all}, {"float_m2_25", -2.25, all},
     {"float_pi", 3.141592653589793, all}, {"float_1e300", 1.0e300, all},
     {"float_m1em300", -1.0e-300, all}, {"float_denorm", 5.0e-324, all},
     {"float_tenth", 0.1, all},
     {"atom_empty", '', all}, {"atom_a", a, all}, {"atom_ok", ok, all}, {"atom_true", true, all},
     {"atom_space", 'hello world', all}, {"atom_latin1", 'ü', all}, {"atom_latin1_2", 'ÿéè', all},
     {"atom_unicode", '日本', all}, {"atom_255", Latin1, all}, {"atom_255_latin1_high", Latin1High, all},
     {"atom_255_unicode", Unicode255, all},
     {"nil", [], all}, {"list_123", [1, 2, 3], all}, {"string_hello", "hello", all},
     {"list_256", [256, 1], all}, {"improper_ab", [a | b], all}, {"improper_123", [1, 2 | 3], all},
     {"list_seq300", lists:seq(1, 300), all}, {"unicode_chars", [1000, 2000, 16#1F600], all},
     {"string_65535", lists:duplicate(65535, 7), ["compressed", "compressed9_minor2"]},
     {"list_65536", lists:duplicate(65536, 7), ["compressed", "compressed9_minor2"]},
     {"mixed_list", [a, 1, 2.5, <<"b">>, {c}, [d]], all},
     {"tuple_0", {}, all}, {"tuple_1", {a}, all}, {"tuple_3", {1, 2, 3}, all},
     {"tuple_300", list_to_tuple(lists:seq(1, 300)), all}, {"tuple_nested", {{{{}}}}, all},
     {"map_0", #{}, all}, {"map_1", #{a => 1}, all},
     {"map_mixed", #{1 => a, "x" => [1], {t} => #{}, <<"b">> => 2.5}, all},
     {"map_33", Map33, all}, {"map_100", Map100, all},
     {"bin_empty", <<>>, all}, {"bin_123", <<1, 2, 3>>, all}, {"bin_text", <<"text">>, all},
     {"bits_1", <<1:1>>, all}, {"bits_15", <<255, 1:7>>, all}, {"bits_3", <<5:3>>, all},
     {"bin_4k", list_to_binary([I rem 256 || I <- lists:seq(1, 4096)]), ["default", "compressed"]},
     {"pid_local", self(), all}, {"pid_remote", Pid, all}, {"pid_old", OldPid, all},
     {"port_local", hd(erlang:ports()), all}, {"port_remote", Port, all}, {"port_v4", V4Port, all},
     {"ref_local", make_ref(), all}, {"ref_remote", Ref, all}, {"ref_5", Ref5, all},
     {"export_fun", fun erlang:abs/1, all}, {"export_fun_lists", fun lists:map/2, all},
     {"closure_nofree", make_nofree(), all},
     {"closure_free", make_closure(<<"bin">>, [1, {x}]), all},
     {"deep_list_500", deep(500, []), all}, {"deep_tuple_300", deep_tuple(300, done), all},
     {"control_send", {2, '', Pid}, all},
     {"control_reg_send", {6, Pid, '', net_kernel}, all},
     {"gen_call", {'$gen_call', {Pid, [alias | Ref]}, {is_auth, 'a@b'}}, all},
     {"mixed", {ok, [{<<"k">>, 1.5, #{x => [a, b]}}], "str", Pid, -7, 1 bsl 70}, all}].
