// Hot code loading of C++ modules driven from real erl nodes: kernel's `code` calls answered
// as BEAM answers them (compared with the same calls on the BEAM node where they mean the
// same), an upgrade back and forth under load from 8 BEAM callers, load_binary rolled out with
// rpc:multicall, purge killing a call that still runs old code, and the live upgrade of
// erlcpp-demo's demo_plugin_server with OTP's sequence (sys:suspend, code:load_file,
// sys:change_code, sys:resume).
#include <erl/code.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "demo_child.hpp"
#include "harness/cluster.hpp"
#include "harness/harness.hpp"

using namespace std::chrono_literals;
using erl::interop::beam_node;

namespace {

const std::string plugin_v1 = std::string(ERLCPP_PLUGIN_DIR) + "/v1";
const std::string plugin_v2 = std::string(ERLCPP_PLUGIN_DIR) + "/v2";
const std::string test_mod_v1 = std::string(ERLCPP_TEST_MODULE_DIR) + "/v1";
const std::string test_mod_v2 = std::string(ERLCPP_TEST_MODULE_DIR) + "/v2";

// "text" as an Erlang string literal (paths without quotes or backslashes).
std::string str(const std::string& s) {
    return "\"" + s + "\"";
}

// A C++ node with an rpc server and a code server whose path is `path`.
struct code_node : erl::interop::cpp_node {
    std::unique_ptr<erl::rpc::server> rpc;
    std::unique_ptr<erl::code::server> code;
    code_node(options o, std::vector<std::string> path, bool allow_binary = true)
        : cpp_node(std::move(o)) {
        rpc = std::make_unique<erl::rpc::server>(*node, erl::rpc::server_options{.threads = 8});
        code = std::make_unique<erl::code::server>(
            *node, *rpc,
            erl::code::options{.code_path = std::move(path), .allow_load_binary = allow_binary});
    }
    ~code_node() {
        code.reset();
        rpc.reset();
    }
};

}  // namespace

class CodeInterop : public erl::interop::cluster_test {
  protected:
    // A BEAM module `bm` compiled on the node, to compare the answers of BEAM's own code server.
    static constexpr const char* beam_module =
        "{ok, bm, BmBin} = compile:forms([{attribute,1,module,bm},"
        "{attribute,2,export,[{f,0}]},{function,3,f,0,[{clause,3,[],[],[{integer,3,1}]}]}]), ok";
};

TEST_F(CodeInterop, code_calls_answer_as_beam_does) {
    code_node cpp(cpp_opts(), {plugin_v1});
    beam_node beam(beam_opts());
    const std::string c = cpp.quoted_name();
    auto on_cpp = [&](const std::string& call) {
        return beam.eval("rpc:call(" + c + ", code, " + call + ")");
    };
    // "f, A" -> code:f(A) on the BEAM node itself.
    auto on_beam = [&](const std::string& call) {
        const auto comma = call.find(',');
        return beam.eval("code:" + call.substr(0, comma) + "(" + call.substr(comma + 1) + ")");
    };
    ASSERT_EQ(beam.eval(beam_module), "ok");

    // Unknown modules.
    EXPECT_EQ(on_cpp("is_loaded, [no_such_mod]"), on_beam("is_loaded, no_such_mod"));
    EXPECT_EQ(on_cpp("which, [no_such_mod]"), on_beam("which, no_such_mod"));
    EXPECT_EQ(on_cpp("which, [no_such_mod]"), "non_existing");
    EXPECT_EQ(on_cpp("load_file, [no_such_mod]"), on_beam("load_file, no_such_mod"));
    EXPECT_EQ(on_cpp("load_file, [no_such_mod]"), "{error,nofile}");
    EXPECT_EQ(on_cpp("ensure_loaded, [no_such_mod]"), on_beam("ensure_loaded, no_such_mod"));
    EXPECT_EQ(on_cpp("delete, [no_such_mod]"), on_beam("delete, no_such_mod"));
    EXPECT_EQ(on_cpp("purge, [no_such_mod]"), on_beam("purge, no_such_mod"));
    EXPECT_EQ(on_cpp("soft_purge, [no_such_mod]"), on_beam("soft_purge, no_such_mod"));
    EXPECT_EQ(on_cpp("add_patha, [\"/nonexistent/dir\"]"),
              on_beam("add_patha, \"/nonexistent/dir\""));
    EXPECT_EQ(on_cpp("add_pathz, [\"/nonexistent/dir\"]"), "{error,bad_directory}");
    EXPECT_EQ(on_cpp("get_path, []"), "[" + str(plugin_v1) + "]");

    // Path, which, load, is_loaded, all_loaded, module_md5 of demo_plugin.
    const std::string file = plugin_v1 + "/demo_plugin.so";
    EXPECT_EQ(on_cpp("which, [demo_plugin]"), str(file));
    EXPECT_EQ(on_cpp("is_loaded, [demo_plugin]"), "false");
    EXPECT_EQ(on_cpp("load_file, [demo_plugin]"), "{module,demo_plugin}");
    EXPECT_EQ(beam.eval("rpc:call(" + c + ", demo_plugin, version, [])"), "1");
    EXPECT_EQ(on_cpp("ensure_loaded, [demo_plugin]"), "{module,demo_plugin}");
    EXPECT_EQ(on_cpp("is_loaded, [demo_plugin]"), "{file," + str(file) + "}");
    EXPECT_EQ(on_cpp("which, [demo_plugin]"), str(file));
    EXPECT_EQ(on_cpp("all_loaded, []"), "[{demo_plugin," + str(file) + "}]");
    EXPECT_EQ(
        beam.eval("{ok, B1} = file:read_file(" + str(file) + "), erlang:md5(B1) =:= rpc:call(" + c +
                  ", code, module_md5, [demo_plugin])"),
        "true");

    // Two versions: the same sequence on both code servers, demo_plugin on the C++ node and a
    // BEAM module `bm` (bm.beam in a directory on BEAM's path) on the BEAM node.
    erl::interop::temp_dir dir("code-bm");
    ASSERT_EQ(beam.eval("ok = file:write_file(" + str(dir.path("bm.beam")) +
                        ", BmBin), code:add_patha(" + str(dir.path()) + ")"),
              "true");
    auto both = [&](const std::string& f, const std::string& want) {
        EXPECT_EQ(on_cpp(f + ", [demo_plugin]"), want) << f;
        std::string on_bm = want;
        if (auto at = on_bm.find("demo_plugin"); at != std::string::npos)
            on_bm.replace(at, 11, "bm");
        EXPECT_EQ(on_beam(f + ", bm"), on_bm) << f << " on BEAM";
    };
    ASSERT_EQ(on_beam("load_file, bm"), "{module,bm}");
    EXPECT_EQ(on_cpp("add_patha, [" + str(plugin_v2) + "]"), "true");
    both("load_file", "{module,demo_plugin}");  // the first version is old code now
    EXPECT_EQ(beam.eval("rpc:call(" + c + ", demo_plugin, version, [])"), "2");
    both("load_file", "{error,not_purged}");
    both("soft_purge", "true");
    both("soft_purge", "true");
    both("load_file", "{module,demo_plugin}");
    both("purge", "false");  // old code removed, but no process was killed
    both("purge", "false");
    both("delete", "true");
    both("delete", "false");
    both("is_loaded", "false");
    EXPECT_EQ(beam.eval("rpc:call(" + c + ", demo_plugin, version, [])"),
              "{badrpc,{'EXIT',{undef,[{demo_plugin,version,[],[]}]}}}");
    // Without current code a load succeeds beside the old code, as erts' loader allows.
    both("load_file", "{module,demo_plugin}");
    both("purge", "false");
    both("load_file", "{module,demo_plugin}");
    EXPECT_EQ(on_cpp("get_path, []"), "[" + str(plugin_v2) + "," + str(plugin_v1) + "]");
    // Current and old, and the first version, which demo_plugin_server still runs (no
    // sys:change_code moved it).
    EXPECT_EQ(cpp.code->resident_versions(erl::atom("demo_plugin")), 3u);
}

// 8 BEAM processes call demo_plugin:version() without pause while the controller loads v2,
// v1, v2, ... 20 times, waiting with soft_purge (as release_handler does) before each load.
// Every call must succeed, and each answer must be the version current when the call started:
// a call that started after load k returned and ended before load k+1 began returns version k.
TEST_F(CodeInterop, upgrade_under_load_loses_no_call) {
    code_node cpp(cpp_opts(), {plugin_v1});
    beam_node beam(beam_opts());
    const std::string c = cpp.quoted_name();
    ASSERT_EQ(beam.eval("C = " + c + ", rpc:call(C, code, load_file, [demo_plugin])"),
              "{module,demo_plugin}");
    const std::string summary = beam.eval(R"(
        T = fun() -> erlang:monotonic_time(microsecond) end,
        Parent = self(),
        Caller = fun Loop(Acc, N) ->
            receive stop -> Parent ! {done, self(), Acc, N}
            after 0 ->
                T0 = T(), V = rpc:call(C, demo_plugin, version, [], 10000), T1 = T(),
                Loop([{T0, V, T1} | Acc], N + 1)
            end
        end,
        Callers = [spawn_link(fun() -> Caller([], 0) end) || _ <- lists:seq(1, 8)],
        SoftPurge = fun SP(0) -> timeout;
                        SP(K) -> case rpc:call(C, code, soft_purge, [demo_plugin]) of
                                     true -> true;
                                     false -> receive after 1 -> SP(K - 1) end
                                 end
                    end,
        Dirs = [{2, ")" + plugin_v2 + R"("}, {1, ")" +
                                              plugin_v1 + R"("}],
        Start = T(),
        Loads = [begin
                     {Vsn, Dir} = lists:nth(1 + (I rem 2), Dirs),
                     receive after 50 -> ok end,
                     true = SoftPurge(5000),
                     true = rpc:call(C, code, add_patha, [Dir]),
                     S = T(), {module, demo_plugin} = rpc:call(C, code, load_file, [demo_plugin]),
                     {S, T(), Vsn}
                 end || I <- lists:seq(0, 19)],
        receive after 20 -> ok end,
        [P ! stop || P <- Callers],
        Results = [receive {done, P, Acc, N} -> {Acc, N} end || P <- Callers],
        Elapsed = T() - Start,
        Calls = lists:append([Acc || {Acc, _} <- Results]),
        Total = lists:sum([N || {_, N} <- Results]),
        Failed = [X || {_, V, _} = X <- Calls, V =/= 1, V =/= 2],
        %% Windows: version 1 from the start until load 1 begins, then Vsn_k from the end of
        %% load k to the start of load k+1.
        Bounds = [{Start, element(1, hd(Loads)), 1}] ++
                 [{E, S2, V} || {{_, E, V}, {S2, _, _}} <- lists:zip(lists:droplast(Loads), tl(Loads))],
        Wrong = [X || {T0, V, T1} = X <- Calls,
                      {Lo, Hi, Want} <- Bounds, T0 >= Lo, T1 =< Hi, V =/= Want],
        Checked = length([X || {T0, _, T1} = X <- Calls, {Lo, Hi, _} <- Bounds, T0 >= Lo, T1 =< Hi]),
        {{Total =:= length(Calls), Failed, Wrong, Checked * 4 > Total},
         Total * 1000000 div Elapsed, Checked, Total, [E2 - S3 || {S3, E2, _} <- Loads]}
    )",
                                          120s);
    std::printf("upgrade under load {checks, calls/s, checked, calls, load times (us)}: %s\n",
                summary.c_str());
    ASSERT_EQ(summary.substr(0, 19), "{{true,[],[],true},");
    EXPECT_EQ(beam.eval("rpc:call(C, demo_plugin, version, [])"), "1");
    // Current, old, and the first version that demo_plugin_server still runs.
    EXPECT_EQ(cpp.code->resident_versions(erl::atom("demo_plugin")), 3u);
}

TEST_F(CodeInterop, load_binary_rolls_out_to_two_nodes_with_multicall) {
    code_node a(cpp_opts(), {plugin_v1});
    code_node b(cpp_opts(), {});
    code_node refusing(cpp_opts(), {}, false);
    beam_node beam(beam_opts());
    const std::string ca = a.quoted_name(), cb = b.quoted_name(), cr = refusing.quoted_name();
    ASSERT_EQ(beam.eval("rpc:call(" + ca + ", code, load_file, [demo_plugin])"),
              "{module,demo_plugin}");
    ASSERT_EQ(beam.eval("{ok, Bin} = file:read_file(\"" + plugin_v2 + "/demo_plugin.so\"), ok"),
              "ok");
    EXPECT_EQ(beam.eval("rpc:multicall([" + ca + ", " + cb +
                        "], code, load_binary, [demo_plugin, \"/rollout/demo_plugin.so\", Bin])"),
              "{[{module,demo_plugin},{module,demo_plugin}],[]}");
    EXPECT_EQ(beam.eval("rpc:multicall([" + ca + ", " + cb + "], demo_plugin, version, [])"),
              "{[2,2],[]}");
    EXPECT_EQ(beam.eval("rpc:call(" + cb + ", code, is_loaded, [demo_plugin])"),
              "{file,\"/rollout/demo_plugin.so\"}");
    EXPECT_EQ(beam.eval("rpc:multicall([" + ca + ", " + cb +
                        "], code, module_md5, [demo_plugin]) =:= {[erlang:md5(Bin), "
                        "erlang:md5(Bin)], []}"),
              "true");
    // load_binary purges the old version first (code_server.erl do_load_binary), so rolling
    // back with the same call works although both nodes hold old code now.
    EXPECT_EQ(beam.eval("{ok, Bin1} = file:read_file(\"" + plugin_v1 +
                        "/demo_plugin.so\"), rpc:multicall([" + ca + ", " + cb +
                        "], code, load_binary, [demo_plugin, \"/rollout/demo_plugin.so\", Bin1])"),
              "{[{module,demo_plugin},{module,demo_plugin}],[]}");
    EXPECT_EQ(beam.eval("rpc:multicall([" + ca + ", " + cb + "], demo_plugin, version, [])"),
              "{[1,1],[]}");
    EXPECT_EQ(beam.eval("rpc:multicall([" + ca + ", " + cb +
                        "], code, load_binary, [demo_plugin, \"/rollout/demo_plugin.so\", Bin])"),
              "{[{module,demo_plugin},{module,demo_plugin}],[]}");
    // The object code itself: code:module_md5/1 of the binary, on the C++ node as on BEAM.
    EXPECT_EQ(beam.eval("rpc:call(" + ca + ", code, module_md5, [Bin]) =:= erlang:md5(Bin)"),
              "true");
    // A node started with allow_load_binary = false refuses.
    EXPECT_EQ(beam.eval("erpc:call(" + cr +
                        ", code, load_binary, [demo_plugin, \"/rollout/demo_plugin.so\", Bin])"),
              "{error,sticky_directory}");
    // Junk is not an object: badfile, and the loaded version stays.
    EXPECT_EQ(
        beam.eval("rpc:call(" + cb + ", code, load_binary, [demo_plugin, \"x\", <<\"junk\">>])"),
        "{error,badfile}");
    EXPECT_EQ(beam.eval("rpc:call(" + cb + ", demo_plugin, version, [])"), "2");
}

// A call started on v1 is still running when v2 is loaded and v1 purged: BEAM's purge kills
// the process; the rpc caller sees {badrpc, {'EXIT', killed}}, an erpc caller exit
// {signal, killed}. v1 is closed once the C++ function has returned. Without a purge, such a
// call returns v1's answer.
TEST_F(CodeInterop, purge_kills_a_call_running_old_code) {
    code_node cpp(cpp_opts(), {test_mod_v1});
    beam_node beam(beam_opts());
    const std::string c = cpp.quoted_name();
    const erl::atom mod("code_test_mod");
    ASSERT_EQ(beam.eval("C = " + c + ", rpc:call(C, code, load_file, [code_test_mod])"),
              "{module,code_test_mod}");
    // Starts `via` in a new BEAM process and returns the version that reported {entered, ...}.
    auto run_old_call = [&](const std::string& self, const std::string& via) {
        return beam.eval(self + " = self(), spawn(fun() -> " + self + " ! {res, " + via +
                         "} end), receive {entered, P" + self + ", V" + self + "} -> V" + self +
                         " after 10000 -> timeout end");
    };
    // code_test_mod from `dir`, put first on the path.
    auto load_from = [&](const std::string& dir) {
        return beam.eval("true = rpc:call(C, code, add_patha, [\"" + dir +
                         "\"]), rpc:call(C, code, load_file, [code_test_mod])");
    };
    ASSERT_EQ(run_old_call("S1", "rpc:call(C, code_test_mod, block, [S1])"), "1");
    ASSERT_EQ(load_from(test_mod_v2), "{module,code_test_mod}");
    EXPECT_EQ(beam.eval("rpc:call(C, code_test_mod, version, [])"), "2");
    EXPECT_EQ(beam.eval("rpc:call(C, code, soft_purge, [code_test_mod])"), "false");
    EXPECT_EQ(beam.eval("rpc:call(C, code, purge, [code_test_mod])"), "true");
    EXPECT_EQ(beam.eval("receive {res, R1} -> R1 after 10000 -> timeout end"),
              "{badrpc,{'EXIT',killed}}");
    EXPECT_TRUE(
        erl::interop::wait_until([&] { return cpp.code->resident_versions(mod) == 1; }, 10s));

    // Once more through erpc, from v2 to v1.
    ASSERT_EQ(run_old_call(
                  "S2", "try erpc:call(C, code_test_mod, block, [S2]) catch Cl:Re -> {Cl, Re} end"),
              "2");
    ASSERT_EQ(load_from(test_mod_v1), "{module,code_test_mod}");
    EXPECT_EQ(beam.eval("rpc:call(C, code, purge, [code_test_mod])"), "true");
    EXPECT_EQ(beam.eval("receive {res, R2} -> R2 after 10000 -> timeout end"),
              "{exit,{signal,killed}}");
    EXPECT_TRUE(
        erl::interop::wait_until([&] { return cpp.code->resident_versions(mod) == 1; }, 10s));
    EXPECT_EQ(beam.eval("rpc:call(C, code_test_mod, version, [])"), "1");

    // Without purge, the call started on v1 finishes on v1 after v2 is loaded.
    ASSERT_EQ(run_old_call("S3", "rpc:call(C, code_test_mod, block, [S3])"), "1");
    ASSERT_EQ(load_from(test_mod_v2), "{module,code_test_mod}");
    EXPECT_EQ(beam.eval("rpc:call(C, code_test_mod, version, [])"), "2");
    EXPECT_EQ(beam.eval("PS3 ! go, receive {res, R3} -> R3 after 10000 -> timeout end"), "1");
    EXPECT_EQ(beam.eval("rpc:call(C, code, soft_purge, [code_test_mod])"), "true");
    EXPECT_EQ(cpp.code->resident_versions(mod), 1u);
}

// erlcpp-demo --code-path v1 loads demo_plugin, which starts demo_plugin_server (state: the
// count). From erl: a refused code_change leaves v1 serving although v2 is loaded; the upgrade
// converts the count into v2's #{count, history} in the same process, and a call sent while
// suspended is answered after resume by v2; the downgrade converts back.
TEST_F(CodeInterop, demo_plugin_server_upgrades_with_sys_change_code) {
    erl::interop::demo_child demo(epmd.port(), cookie, {"--code-path", plugin_v1});
    beam_node beam(beam_opts());
    ASSERT_EQ(beam.eval("Demo = " + demo.quoted_name() + ", D = {demo_plugin_server, Demo}, " +
                        "rpc:call(Demo, demo_plugin, version, [])"),
              "1");
    EXPECT_EQ(beam.eval("gen_server:call(D, {add, 5})"), "5");
    EXPECT_EQ(beam.eval("gen_server:call(D, version)"), "1");
    EXPECT_EQ(beam.eval("sys:get_state(D)"), "5");
    EXPECT_EQ(beam.eval("{status, Pid, {module, gen_server}, [_, running, _, [], "
                        "[{header, H} | _]]} = sys:get_status(D), H"),
              "\"Status for generic server demo_plugin_server\"");

    // v2 loaded, but its code_change refuses this OldVsn: v1 keeps the server.
    EXPECT_EQ(beam.eval("ok = sys:suspend(D), true = rpc:call(Demo, code, add_patha, [" +
                        str(plugin_v2) + "]), rpc:call(Demo, code, load_file, [demo_plugin])"),
              "{module,demo_plugin}");
    EXPECT_EQ(beam.eval("rpc:call(Demo, demo_plugin, version, [])"), "2");
    EXPECT_EQ(beam.eval("sys:change_code(D, demo_plugin, \"0\", [])"),
              "{error,{unsupported_vsn,\"0\"}}");
    EXPECT_EQ(beam.eval("ok = sys:resume(D), {gen_server:call(D, version), sys:get_state(D)}"),
              "{1,5}");

    // The upgrade.
    EXPECT_EQ(beam.eval("ok = sys:suspend(D), Ref = make_ref(), "
                        "D ! {'$gen_call', {self(), Ref}, {add, 1}}, "
                        "sys:change_code(D, demo_plugin, \"1\", [])"),
              "ok");
    EXPECT_EQ(beam.eval("sys:get_state(D) =:= #{count => 5, history => []}"), "true");
    EXPECT_EQ(beam.eval("receive {Ref, _} -> answered after 0 -> waiting end"), "waiting");
    EXPECT_EQ(beam.eval("ok = sys:resume(D), receive {Ref, V} -> V after 5000 -> none end"), "6");
    EXPECT_EQ(beam.eval("{gen_server:call(D, version), gen_server:call(D, history)}"), "{2,[1]}");
    EXPECT_EQ(beam.eval("sys:get_state(D) =:= #{count => 6, history => [1]}"), "true");
    EXPECT_EQ(beam.eval("{status, Pid2, _, _} = sys:get_status(D), Pid2 =:= Pid"), "true");

    // And back: v1 current again, {down, "1"}.
    EXPECT_EQ(beam.eval("true = rpc:call(Demo, code, soft_purge, [demo_plugin]), "
                        "true = rpc:call(Demo, code, add_patha, [" +
                        str(plugin_v1) + "]), rpc:call(Demo, code, load_file, [demo_plugin])"),
              "{module,demo_plugin}");
    EXPECT_EQ(beam.eval("ok = sys:suspend(D), R = sys:change_code(D, demo_plugin, {down, \"1\"}, "
                        "[]), ok = sys:resume(D), R"),
              "ok");
    EXPECT_EQ(beam.eval("{gen_server:call(D, version), sys:get_state(D), "
                        "gen_server:call(D, {add, 1})}"),
              "{1,6,7}");
    EXPECT_EQ(beam.eval("{status, Pid3, _, _} = sys:get_status(D), Pid3 =:= Pid"), "true");
}
