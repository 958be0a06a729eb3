// Self-tests of the shared interop harness: private epmd, real erl/elixir nodes, eval, ping.
#include <gtest/gtest.h>

#include <unistd.h>

#include <csignal>

#include "harness/harness.hpp"

namespace erl::interop {
namespace {

TEST(HarnessSelftest, free_tcp_port_and_unique_names) {
    EXPECT_NE(free_tcp_port(), 0);
    auto a = unique_name("x"), b = unique_name("x");
    EXPECT_NE(a, b);
    EXPECT_EQ(random_cookie().size(), 20u);
}

TEST(HarnessSelftest, quote_atom_and_wait_until) {
    EXPECT_EQ(quote_atom("a@127.0.0.1"), "'a@127.0.0.1'");
    int calls = 0;
    EXPECT_TRUE(wait_until([&] { return ++calls == 3; }, std::chrono::seconds(5),
                           std::chrono::milliseconds(1)));
    EXPECT_EQ(calls, 3);
    EXPECT_FALSE(wait_until([] { return false; }, std::chrono::milliseconds(50)));
}

TEST(HarnessSelftest, temp_dir_is_removed_even_with_unreadable_content) {
    std::string path;
    {
        temp_dir d("selftest");
        path = d.path();
        auto r = process::run({"sh", "-c",
                               "echo x > '" + d.path("f") + "' && chmod 0 '" + d.path("f") +
                                   "' && chmod 0500 '" + path + "'"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(read_text_file(path + "/missing"), "");
    }
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

TEST(HarnessSelftest, process_run_captures_output_and_exit_code) {
    auto r = process::run({"sh", "-c", "echo out; echo err >&2; exit 3"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
}

TEST(HarnessSelftest, process_kill_reports_signal) {
    process p({.args = {"sleep", "30"}});
    EXPECT_TRUE(p.running());
    p.kill(SIGKILL);
    EXPECT_EQ(p.wait(), 128 + SIGKILL);
}

TEST(HarnessSelftest, otp_epmd_instance_answers_and_dies) {
    std::uint16_t port = 0;
    {
        epmd_instance e;
        port = e.port();
        EXPECT_NE(port, 4369);
        EXPECT_TRUE(epmd_answers(port));
    }
    EXPECT_FALSE(epmd_answers(port));
}

TEST(HarnessSelftest, erl_nodes_eval_and_ping_each_other) {
    epmd_instance e;
    std::string cookie = random_cookie();
    beam_node a({.name_prefix = "ha", .cookie = cookie, .epmd_port = e.port()});
    beam_node b({.name_prefix = "hb", .cookie = cookie, .epmd_port = e.port()});
    EXPECT_EQ(a.eval("1 + 2"), "3");
    EXPECT_EQ(a.eval("X = 20,\nX * 2"), "40");
    EXPECT_EQ(a.eval("X + 1"), "21");  // bindings persist
    EXPECT_EQ(a.eval("{ok, \"text\", <<1,2>>, 'A b'}"), "{ok,\"text\",<<1,2>>,'A b'}");
    EXPECT_EQ(a.eval("io:format(\"noise~n\"), done"), "done");
    EXPECT_EQ(a.eval("atom_to_list(node())"), "\"" + a.node_name() + "\"");
    EXPECT_EQ(a.eval("net_adm:ping('" + b.node_name() + "')"), "pong");
    auto bad = a.try_eval("1 = 2");
    EXPECT_FALSE(bad.ok);
    EXPECT_NE(bad.value.find("badmatch"), std::string::npos);
    EXPECT_THROW(a.eval("erlang:error(boom)"), std::runtime_error);
    EXPECT_EQ(a.eval("ok"), "ok");  // still usable after an error
    EXPECT_EQ(a.eval("os:getpid()"), "\"" + std::to_string(a.os_pid()) + "\"");
}

TEST(HarnessSelftest, kill9_stops_the_node) {
    epmd_instance e;
    beam_node a({.name_prefix = "hk", .epmd_port = e.port()});
    a.kill9();
    EXPECT_FALSE(a.running());
}

TEST(HarnessSelftest, elixir_node_evals_and_pings_erl) {
    epmd_instance e;
    std::string cookie = random_cookie();
    beam_node ex({.name_prefix = "hex", .cookie = cookie, .epmd_port = e.port(), .elixir = true});
    beam_node er({.name_prefix = "her", .cookie = cookie, .epmd_port = e.port()});
    EXPECT_EQ(ex.eval("1 + 2"), "3");
    EXPECT_EQ(ex.eval("x = [1, 2]\nEnum.map(x, &(&1 * 2))"), "[2, 4]");
    EXPECT_EQ(ex.eval("Node.ping(:\"" + er.node_name() + "\")"), ":pong");
    EXPECT_FALSE(ex.try_eval("raise \"boom\"").ok);
}

}  // namespace
}  // namespace erl::interop
