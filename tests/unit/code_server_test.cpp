// erl::code::server between two erlcpp nodes: the `code` answers, two versions of a real
// module (tests/unit/modules, built as v1 and v2), pinning, soft_purge, purge killing a call and
// the shared object being closed once the last call on it has returned.
#include <erl/code.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "node_test_support.hpp"

using namespace std::chrono_literals;

namespace {

const std::string mod_dir = ERLCPP_TEST_MODULE_DIR;
const std::string v1_dir = mod_dir + "/v1", v2_dir = mod_dir + "/v2", bad_dir = mod_dir + "/bad";

std::string file_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string md5_hex(const std::string& bytes) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), out, &len, EVP_md5(), nullptr);
    std::string s = "<<";
    for (unsigned i = 0; i < len; ++i)
        s += (i ? "," : "") + std::to_string(out[i]);
    return s + ">>";
}

// Lines of /proc/self/maps that map a file under dir: the private copies of loaded modules.
std::size_t mappings_under(const std::string& dir) {
    std::ifstream in("/proc/self/maps");
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line))
        if (line.find(dir) != std::string::npos) ++n;
    return n;
}

erl::node_options opts(std::uint16_t epmd_port) {
    return erl::test::local_node_options("codeunit", "code_unit_cookie", epmd_port);
}

struct CodeServer : ::testing::Test {
    std::uint16_t port = erl::test::free_port();
    erl::node a{opts(port)};
    erl::node b{opts(port)};
    std::unique_ptr<erl::rpc::server> rpc;
    std::unique_ptr<erl::code::server> code;
    std::string tmp;
    const erl::atom mod{"code_test_mod"};

    void SetUp() override {
        ASSERT_FALSE(a.start());
        ASSERT_FALSE(b.start());
        tmp = std::filesystem::temp_directory_path() /
              ("erlcpp-code-unit-" + std::to_string(::getpid()) + "-" + std::to_string(port));
        std::filesystem::create_directories(tmp);
        rpc = std::make_unique<erl::rpc::server>(b);
        start_code({v1_dir}, true);
    }
    void start_code(std::vector<std::string> path, bool allow_binary) {
        code.reset();
        code = std::make_unique<erl::code::server>(
            b, *rpc,
            erl::code::options{
                .code_path = std::move(path), .allow_load_binary = allow_binary, .temp_dir = tmp});
    }
    void TearDown() override {
        code.reset();
        rpc.reset();
        a.stop();
        b.stop();
        std::filesystem::remove_all(tmp);
    }
    erl::rpc::call_result raw(const char* m, const char* f, erl::term args,
                              std::chrono::milliseconds t = 10s) {
        return erl::rpc::call(a, b.name(), m, f, std::move(args), t);
    }
    std::string call(const char* m, const char* f, erl::term args = erl::term()) {
        return raw(m, f, std::move(args)).to_rpc_term().to_string();
    }
    std::string code_call(const char* f, erl::term args = erl::term()) {
        return call("code", f, std::move(args));
    }
    std::string charlist_text(const std::string& s) { return erl::charlist(s).to_string(); }

    // A call of code_test_mod:block/1 held inside the module: `entered` is the
    // {entered, Pid, Version} it sent to `mb`, `result` its outcome once Pid is sent go.
    struct held_call {
        erl::mailbox mb;
        std::future<erl::rpc::call_result> result;
        erl::term entered;
    };
    // Loads code_test_mod from the path, then starts a held call on another thread.
    void hold_call(held_call& h) {
        auto mb = a.spawn_mailbox();
        ASSERT_TRUE(mb);
        h.mb = std::move(*mb);
        ASSERT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
        h.result = std::async(std::launch::async, [this, self = h.mb.self()] {
            return raw("code_test_mod", "block", erl::list(self));
        });
        auto entered = h.mb.receive(10s);
        ASSERT_TRUE(entered);
        h.entered = *entered;
    }
};

TEST_F(CodeServer, LoadsAModuleFromThePathAndAnswersLikeBeam) {
    const std::string file = v1_dir + "/code_test_mod.so";
    EXPECT_EQ(code_call("is_loaded", erl::list(mod)), "false");
    EXPECT_EQ(code_call("which", erl::list(mod)), charlist_text(file));
    EXPECT_EQ(code_call("which", erl::list(erl::atom("no_such_mod"))), "non_existing");
    EXPECT_EQ(code_call("module_md5", erl::list(mod)), "undefined");
    EXPECT_EQ(call("code_test_mod", "version"),
              "{badrpc,{'EXIT',{undef,[{code_test_mod,version,[],[]}]}}}");

    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(call("code_test_mod", "version"), "1");
    EXPECT_EQ(call("code_test_mod", "nap", erl::list(1)), "1");  // a coroutine function
    EXPECT_EQ(code_call("is_loaded", erl::list(mod)), "{file," + charlist_text(file) + "}");
    EXPECT_EQ(code_call("which", erl::list(mod)), charlist_text(file));
    EXPECT_EQ(code_call("all_loaded"), "[{code_test_mod," + charlist_text(file) + "}]");
    EXPECT_EQ(code_call("module_md5", erl::list(mod)), md5_hex(file_bytes(file)));
    // code:module_md5/1 of the object code itself, as BEAM computes it for a .beam binary.
    EXPECT_EQ(code_call("module_md5", erl::list(erl::binary(file_bytes(file)))),
              md5_hex(file_bytes(file)));
    EXPECT_EQ(code_call("ensure_loaded", erl::list(mod)), "{module,code_test_mod}");

    // Failures of module functions reach the caller as they would from a BEAM module.
    EXPECT_EQ(call("code_test_mod", "fail", erl::list(0)),
              "{badrpc,{'EXIT',{zero,[{code_test_mod,fail,1,[]}]}}}");
    EXPECT_EQ(call("code_test_mod", "fail", erl::list(1)),
              "{badrpc,{'EXIT',{{cpp_exception," + erl::binary("not zero: 1").to_string() +
                  "},[{code_test_mod,fail,1,[]}]}}}");
    EXPECT_EQ(call("code_test_mod", "fail", erl::list(erl::atom("x"))),
              "{badrpc,{'EXIT',{badarg,[{code_test_mod,fail,[x],[]}]}}}");
}

TEST_F(CodeServer, RefusesMissingForeignAndMisnamedObjects) {
    EXPECT_EQ(code_call("load_file", erl::list(erl::atom("no_such_mod"))), "{error,nofile}");
    EXPECT_EQ(code_call("ensure_loaded", erl::list(erl::atom("no_such_mod"))), "{error,nofile}");
    EXPECT_EQ(code_call("add_pathz", erl::list(erl::charlist(bad_dir))), "true");
    // Another ABI number: refused before its init function runs (it would abort).
    EXPECT_EQ(code_call("load_file", erl::list(erl::atom("code_test_bad_abi"))), "{error,badfile}");
    // Declares code_test_other, found as code_test_misnamed.so.
    EXPECT_EQ(code_call("load_file", erl::list(erl::atom("code_test_misnamed"))),
              "{error,badfile}");
    // Not a shared object at all.
    EXPECT_EQ(code_call("load_binary", erl::list(mod, erl::charlist("x.so"), erl::binary("junk"))),
              "{error,badfile}");
    EXPECT_EQ(code_call("is_loaded", erl::list(erl::atom("code_test_bad_abi"))), "false");
    EXPECT_EQ(code_call("all_loaded"), "[]");
    EXPECT_EQ(mappings_under(tmp), 0u);
}

TEST_F(CodeServer, PathFunctions) {
    EXPECT_EQ(code_call("get_path"), "[" + charlist_text(v1_dir) + "]");
    EXPECT_EQ(code_call("add_patha", erl::list(erl::charlist(v2_dir))), "true");
    EXPECT_EQ(code_call("add_pathz", erl::list(erl::charlist(bad_dir))), "true");
    EXPECT_EQ(code_call("get_path"), "[" + charlist_text(v2_dir) + "," + charlist_text(v1_dir) +
                                         "," + charlist_text(bad_dir) + "]");
    EXPECT_EQ(code_call("add_patha", erl::list(erl::charlist(mod_dir + "/missing"))),
              "{error,bad_directory}");
    EXPECT_EQ(code_call("which", erl::list(mod)), charlist_text(v2_dir + "/code_test_mod.so"));
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(call("code_test_mod", "version"), "2");
}

TEST_F(CodeServer, TwoVersionsNotPurgedSoftPurgeAndDelete) {
    ASSERT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(call("code_test_mod", "count"), "1");
    EXPECT_EQ(call("code_test_mod", "only_v1"), "yes");
    ASSERT_EQ(code_call("add_patha", erl::list(erl::charlist(v2_dir))), "true");
    ASSERT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(code->resident_versions(mod), 2u);
    EXPECT_EQ(call("code_test_mod", "version"), "2");
    // Each version has its own static data.
    EXPECT_EQ(call("code_test_mod", "count"), "1");
    EXPECT_EQ(call("code_test_mod", "only_v1"),
              "{badrpc,{'EXIT',{undef,[{code_test_mod,only_v1,[],[]}]}}}");
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{error,not_purged}");
    EXPECT_EQ(code_call("soft_purge", erl::list(mod)), "true");
    EXPECT_EQ(code->resident_versions(mod), 1u);
    EXPECT_EQ(mappings_under(tmp) > 0, true);
    // Nothing to purge: purge/1 is false (erts_code_purger: no process was killed).
    EXPECT_EQ(code_call("purge", erl::list(mod)), "false");
    EXPECT_EQ(code_call("soft_purge", erl::list(mod)), "true");

    // delete/1: current becomes old; the module is no longer loaded or callable.
    EXPECT_EQ(code_call("delete", erl::list(mod)), "true");
    EXPECT_EQ(code_call("is_loaded", erl::list(mod)), "false");
    EXPECT_EQ(call("code_test_mod", "version"),
              "{badrpc,{'EXIT',{undef,[{code_test_mod,version,[],[]}]}}}");
    EXPECT_EQ(code_call("delete", erl::list(mod)), "false");
    EXPECT_EQ(code_call("purge", erl::list(mod)), "false");
    EXPECT_EQ(code->resident_versions(mod), 0u);
    EXPECT_EQ(mappings_under(tmp), 0u);  // dlclose really unmapped both versions
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(call("code_test_mod", "version"), "2");
    // Without current code, a load goes in beside old code (erts' loader does the same).
    EXPECT_EQ(code_call("delete", erl::list(mod)), "true");
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(code->resident_versions(mod), 2u);
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{error,not_purged}");
}

TEST_F(CodeServer, RunningCallFinishesOnItsVersionAndPinsIt) {
    held_call h;
    ASSERT_NO_FATAL_FAILURE(hold_call(h));
    ASSERT_EQ(h.entered.as_tuple().size(), 3u);
    EXPECT_EQ(h.entered.as_tuple()[2].to_string(), "1");

    ASSERT_EQ(code_call("add_patha", erl::list(erl::charlist(v2_dir))), "true");
    ASSERT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    EXPECT_EQ(call("code_test_mod", "version"), "2");
    EXPECT_EQ(code_call("soft_purge", erl::list(mod)), "false");  // v1 still runs the call
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{error,not_purged}");
    EXPECT_EQ(code->resident_versions(mod), 2u);

    h.mb.send(h.entered.as_tuple()[1].as_pid(), erl::atom("go"));
    EXPECT_EQ(h.result.get().to_rpc_term().to_string(), "1");  // started on v1, finished on v1
    EXPECT_EQ(code_call("soft_purge", erl::list(mod)), "true");
    EXPECT_EQ(code->resident_versions(mod), 1u);
}

TEST_F(CodeServer, PurgeKillsCallsOnOldCodeAndClosesItWhenTheyReturn) {
    held_call h;
    ASSERT_NO_FATAL_FAILURE(hold_call(h));
    ASSERT_EQ(code_call("add_patha", erl::list(erl::charlist(v2_dir))), "true");
    ASSERT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
    const auto maps_with_both = mappings_under(tmp);

    EXPECT_EQ(code_call("purge", erl::list(mod)), "true");
    auto r = h.result.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().to_term().to_string(), "{exit,{signal,killed}}");
    EXPECT_EQ(r.to_rpc_term().to_string(), "{badrpc,{'EXIT',killed}}");
    // The C++ function saw the kill (call_context::cancelled) and returned; only then is v1
    // closed.
    EXPECT_TRUE(erl::test::wait_until([&] { return code->resident_versions(mod) == 1; }));
    EXPECT_LT(mappings_under(tmp), maps_with_both);
    EXPECT_EQ(call("code_test_mod", "version"), "2");
    EXPECT_EQ(code_call("load_file", erl::list(mod)), "{module,code_test_mod}");
}

TEST_F(CodeServer, LoadBinaryAndItsRefusal) {
    const auto bytes = file_bytes(v2_dir + "/code_test_mod.so");
    EXPECT_EQ(code_call("load_binary", erl::list(mod, erl::charlist("/remote/code_test_mod.so"),
                                                 erl::binary(bytes))),
              "{module,code_test_mod}");
    EXPECT_EQ(call("code_test_mod", "version"), "2");
    EXPECT_EQ(code_call("is_loaded", erl::list(mod)),
              "{file," + charlist_text("/remote/code_test_mod.so") + "}");
    EXPECT_EQ(code_call("module_md5", erl::list(mod)), md5_hex(bytes));
    EXPECT_EQ(call("code", "load_binary", erl::list(mod, 1, erl::binary(bytes))).substr(0, 33),
              "{badrpc,{'EXIT',{function_clause,");

    start_code({v1_dir}, false);
    EXPECT_EQ(code_call("load_binary", erl::list(mod, erl::charlist("x.so"), erl::binary(bytes))),
              "{error,sticky_directory}");
    EXPECT_EQ(code_call("is_loaded", erl::list(mod)), "false");
}

}  // namespace

// A module's gen_server: started by the load, upgraded by OTP's sequence (sys:suspend,
// code:load_file, sys:change_code, sys:resume) with its state converted by the new version,
// a refused or throwing code_change leaving the old version serving, and back down.
struct ModuleServer : CodeServer {
    const erl::atom srv_mod{"code_test_srv"};
    const erl::atom srv{"code_test_srv"};
    erl::mailbox me;
    int next_tag = 0;
    void SetUp() override {
        CodeServer::SetUp();
        auto mb = b.spawn_mailbox();
        ASSERT_TRUE(mb);
        me = std::move(*mb);
    }
    void TearDown() override {
        me.exit();
        CodeServer::TearDown();
    }
    // Sends {Kind, {Me, Tag}, Request} to the server and returns the reply.
    std::string ask(const char* kind, erl::term request) {
        erl::term tag(++next_tag);
        me.send(srv, erl::make_tuple({erl::term(erl::atom(kind)),
                                      erl::make_tuple({me.self_term(), tag}), std::move(request)}));
        auto m =
            me.receive_if([&](const erl::term& t) { return t.is_tuple(2) && t[0] == tag; }, 10s);
        return m ? (*m)[1].to_string() : "no reply";
    }
    std::string gen_call(const char* req) { return ask("$gen_call", erl::atom(req)); }
    std::string sys(erl::term req) { return ask("system", std::move(req)); }
    std::string change_code(erl::term vsn, const char* extra) {
        return sys(erl::tuple(erl::atom("change_code"), srv_mod, std::move(vsn), erl::atom(extra)));
    }
};

TEST_F(ModuleServer, UpgradeMigratesStateAndFailuresKeepTheOldVersion) {
    ASSERT_EQ(code_call("load_file", erl::list(srv_mod)), "{module,code_test_srv}");
    ASSERT_TRUE(b.whereis(srv));
    const auto pid = *b.whereis(srv);
    EXPECT_EQ(gen_call("inc"), "1");
    EXPECT_EQ(gen_call("inc"), "2");
    EXPECT_EQ(sys(erl::atom("get_state")), "2");

    EXPECT_EQ(sys(erl::atom("suspend")), "ok");
    ASSERT_EQ(code_call("add_patha", erl::list(erl::charlist(v2_dir))), "true");
    ASSERT_EQ(code_call("load_file", erl::list(srv_mod)), "{module,code_test_srv}");
    EXPECT_EQ(call("code_test_srv", "version"), "2");
    // The server is no process running old code between callbacks, but keeps v1 in memory.
    EXPECT_EQ(code_call("soft_purge", erl::list(srv_mod)), "true");
    EXPECT_EQ(code->resident_versions(srv_mod), 2u);
    // Refused and throwing code_change: the error sys:change_code returns, nothing changed.
    EXPECT_EQ(change_code(erl::charlist("1"), "fail"), "{error,{refused,[49]}}");
    EXPECT_EQ(change_code(erl::charlist("1"), "throw"),
              "{error,{'EXIT',{{cpp_exception," + erl::binary("code_change threw").to_string() +
                  "},[]}}}");
    EXPECT_EQ(change_code(erl::charlist("0"), "none"), "{error,{unsupported_vsn,[48]}}");
    EXPECT_EQ(sys(erl::atom("get_state")), "2");
    EXPECT_EQ(sys(erl::atom("resume")), "ok");
    EXPECT_EQ(gen_call("version"), "1");
    EXPECT_EQ(gen_call("label"), erl::binary("code_test_srv version 1").to_string());

    // The upgrade: same process, state converted by version 2, v1 closed once it is let go.
    const erl::term c1 =
        erl::tuple(erl::atom("$gen_call"), erl::tuple(me.self_term(), 100), erl::atom("inc"));
    EXPECT_EQ(sys(erl::atom("suspend")), "ok");
    me.send(srv, c1);  // answered after resume, by version 2
    EXPECT_EQ(change_code(erl::charlist("1"), "none"), "ok");
    EXPECT_EQ(code->resident_versions(srv_mod), 1u);
    EXPECT_EQ(sys(erl::atom("get_state")), "{v2,2}");
    EXPECT_EQ(sys(erl::atom("resume")), "ok");
    auto late = me.receive_if(
        [](const erl::term& t) { return t.is_tuple(2) && t[0] == erl::term(100); }, 10s);
    ASSERT_TRUE(late);
    EXPECT_EQ((*late)[1], erl::term(3));
    EXPECT_EQ(gen_call("version"), "2");
    EXPECT_EQ(gen_call("label"), erl::binary("code_test_srv version 2").to_string());
    EXPECT_EQ(*b.whereis(srv), pid);

    // And down again: v1 current, {down, "1"} converts {v2, N} back to N.
    ASSERT_EQ(code_call("add_patha", erl::list(erl::charlist(v1_dir))), "true");
    ASSERT_EQ(code_call("load_file", erl::list(srv_mod)), "{module,code_test_srv}");
    EXPECT_EQ(sys(erl::atom("suspend")), "ok");
    EXPECT_EQ(change_code(erl::tuple(erl::atom("down"), erl::charlist("1")), "none"), "ok");
    EXPECT_EQ(sys(erl::atom("resume")), "ok");
    EXPECT_EQ(gen_call("version"), "1");
    EXPECT_EQ(sys(erl::atom("get_state")), "3");
    EXPECT_EQ(code_call("soft_purge", erl::list(srv_mod)), "true");
    EXPECT_EQ(code->resident_versions(srv_mod), 1u);
}

TEST_F(ModuleServer, ServerEndsWithTheCodeServerAndRestartsOnTheNextLoad) {
    ASSERT_EQ(code_call("load_file", erl::list(srv_mod)), "{module,code_test_srv}");
    EXPECT_EQ(gen_call("inc"), "1");
    // sys:terminate ends it; the next load starts a fresh one from the current version.
    EXPECT_EQ(sys(erl::tuple(erl::atom("terminate"), erl::atom("normal"))), "ok");
    EXPECT_TRUE(erl::test::wait_until([&] { return !b.whereis(srv); }));
    EXPECT_TRUE(erl::test::wait_until([&] { return code->resident_versions(srv_mod) == 1; }));
    ASSERT_EQ(code_call("add_patha", erl::list(erl::charlist(v2_dir))), "true");
    ASSERT_EQ(code_call("load_file", erl::list(srv_mod)), "{module,code_test_srv}");
    ASSERT_TRUE(b.whereis(srv));
    EXPECT_EQ(gen_call("version"), "2");
    EXPECT_EQ(gen_call("get"), "0");
    code.reset();  // stops the server (terminate on its code) before closing the objects
    EXPECT_FALSE(b.whereis(srv));
}
