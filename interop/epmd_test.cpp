// EPMD interop: real erl/elixir nodes against erlcpp-epmd, our client against OTP's epmd, and
// the command line compared with OTP's `epmd`. Private ports only, never 4369.
#include <gtest/gtest.h>

#include <erl/epmd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "harness/harness.hpp"

namespace erl::interop {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using flavor = epmd_instance::flavor;

std::string our_epmd() {
    return bin_dir() + "/erlcpp-epmd";
}

// Replaces every run of digits after "port " so outputs of two daemons on different ports and
// with different node ports can be compared line by line.
std::string mask_ports(const std::string& s) {
    return std::regex_replace(s, std::regex("port [0-9]+"), "port N");
}

// Registers through our client on its own io_context; the registration stays alive with it.
struct our_registration {
    asio::io_context io;
    std::optional<erl::result<epmd::registration>> reg;
    our_registration(std::uint16_t epmd_port, std::string name, std::uint16_t port) {
        epmd::node_info info{.name = std::move(name), .port = port};
        asio::co_spawn(
            io,
            [&, info]() -> asio::awaitable<void> {
                reg.emplace(co_await epmd::async_register("127.0.0.1", epmd_port, info, 5s));
            },
            asio::detached);
        io.run();
    }
    bool ok() const { return reg && reg->has_value(); }
};

// Asynchronous state changes (a name gone, a daemon up) get 10 s.
bool eventually(const std::function<bool()>& pred) {
    return wait_until(pred, 10s);
}

bool names_contain(std::uint16_t port, const std::string& name) {
    auto r = epmd::names("127.0.0.1", port, 2s);
    if (!r) return false;
    for (auto& [n, p] : *r)
        if (n == name) return true;
    return false;
}

std::string short_part(const std::string& node) {
    return node.substr(0, node.find('@'));
}

TEST(EpmdInterop, erl_nodes_register_with_erlcpp_epmd_and_ping_by_name) {
    epmd_instance e(flavor::erlcpp);
    std::string cookie = random_cookie();
    beam_node a({.name_prefix = "epa", .cookie = cookie, .epmd_port = e.port()});
    beam_node b({.name_prefix = "epb", .cookie = cookie, .epmd_port = e.port()});
    EXPECT_EQ(a.eval("net_adm:ping('" + b.node_name() + "')"), "pong");
    EXPECT_EQ(b.eval("lists:member('" + a.node_name() + "', nodes())"), "true");
    // net_adm:names() goes through erl_epmd's NAMES request.
    auto listed = a.eval("{ok, N} = net_adm:names(), lists:sort([X || {X, _} <- N])");
    std::string sa = short_part(a.node_name()), sb = short_part(b.node_name());
    EXPECT_EQ(listed, "[\"" + std::min(sa, sb) + "\",\"" + std::max(sa, sb) + "\"]");
    // OTP's own `epmd -names` lists both through our daemon.
    auto otp = process::run({"epmd", "-port", std::to_string(e.port()), "-names"});
    EXPECT_EQ(otp.exit_code, 0);
    EXPECT_NE(otp.out.find("name " + sa + " at port "), std::string::npos) << otp.out;
    EXPECT_NE(otp.out.find("name " + sb + " at port "), std::string::npos) << otp.out;
    // The creation a node got from our daemon is a 32-bit OTP-style creation.
    auto creation = std::stoull(a.eval("erlang:system_info(creation)"));
    EXPECT_GE(creation, 4u);
}

TEST(EpmdInterop, elixir_node_registers_with_erlcpp_epmd) {
    epmd_instance e(flavor::erlcpp);
    std::string cookie = random_cookie();
    beam_node ex({.name_prefix = "epx", .cookie = cookie, .epmd_port = e.port(), .elixir = true});
    beam_node er({.name_prefix = "epe", .cookie = cookie, .epmd_port = e.port()});
    EXPECT_EQ(ex.eval("Node.ping(:\"" + er.node_name() + "\")"), ":pong");
    EXPECT_TRUE(names_contain(e.port(), short_part(ex.node_name())));
}

TEST(EpmdInterop, our_client_registers_with_otp_epmd_and_otp_lists_it) {
    epmd_instance e(flavor::otp);
    std::string name = unique_name("cpp");
    our_registration r(e.port(), name, 23456);
    ASSERT_TRUE(r.ok()) << r.reg->error().message();
    EXPECT_GE(r.reg->value().creation(), 4u);  // OTP's 'v' reply
    auto otp = process::run({"epmd", "-port", std::to_string(e.port()), "-names"});
    EXPECT_EQ(otp.exit_code, 0);
    EXPECT_NE(otp.out.find("name " + name + " at port 23456\n"), std::string::npos) << otp.out;
    auto info = epmd::port_please("127.0.0.1", e.port(), name, 2s);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->port, 23456);
    // A real node sees it too, through erl_epmd.
    beam_node n({.name_prefix = "epo", .epmd_port = e.port()});
    EXPECT_EQ(n.eval("{ok, N} = net_adm:names(), proplists:get_value(\"" + name + "\", N)"),
              "23456");
    EXPECT_EQ(n.eval("erl_epmd:port_please(\"" + name + "\", \"127.0.0.1\")"), "{port,23456,6}");
    // Closing the registration unregisters.
    r.reg->value().close();
    EXPECT_TRUE(eventually([&] { return !names_contain(e.port(), name); }));
}

TEST(EpmdInterop, second_registration_of_a_name_is_refused) {
    for (auto f : {flavor::otp, flavor::erlcpp}) {
        epmd_instance e(f);
        std::string name = unique_name("dup");
        our_registration first(e.port(), name, 1111);
        ASSERT_TRUE(first.ok());
        our_registration second(e.port(), name, 2222);
        ASSERT_FALSE(second.ok());
        EXPECT_EQ(second.reg->error(), erl::errc::epmd_name_taken);
        // A real erl node with that name is refused as well and does not start.
        auto r = process::run({"erl", "-noshell", "-start_epmd", "false", "-name",
                               name + "@127.0.0.1", "-eval", "halt()."},
                              {{"ERL_EPMD_PORT", std::to_string(e.port())}}, 30s);
        EXPECT_NE(r.exit_code, 0);
        EXPECT_NE((r.out + r.err).find("in use"), std::string::npos) << r.out << r.err;
    }
}

TEST(EpmdInterop, killing_a_registered_node_frees_its_name) {
    epmd_instance e(flavor::erlcpp);
    beam_node n({.name_prefix = "epk", .epmd_port = e.port()});
    std::string name = short_part(n.node_name());
    ASSERT_TRUE(names_contain(e.port(), name));
    auto old_creation = std::stoull(n.eval("erlang:system_info(creation)"));
    n.kill9();
    EXPECT_TRUE(eventually([&] { return !names_contain(e.port(), name); }));
    our_registration again(e.port(), name, 3333);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.reg->value().creation(), old_creation + 1);  // reused name: next creation
}

TEST(EpmdInterop, names_output_matches_otp_byte_for_byte) {
    epmd_instance otp(flavor::otp), ours(flavor::erlcpp);
    std::string a = unique_name("na"), b = unique_name("nb");
    // Same registrations, same order, in both daemons.
    our_registration oa(otp.port(), a, 4001), ob(otp.port(), b, 4002);
    our_registration ca(ours.port(), a, 4001), cb(ours.port(), b, 4002);
    ASSERT_TRUE(oa.ok() && ob.ok() && ca.ok() && cb.ok());
    auto otp_out = process::run({"epmd", "-port", std::to_string(otp.port()), "-names"});
    auto our_out = process::run({our_epmd(), "-port", std::to_string(ours.port()), "-names"});
    auto cross = process::run({"epmd", "-port", std::to_string(ours.port()), "-names"});
    EXPECT_EQ(otp_out.exit_code, 0);
    EXPECT_EQ(our_out.exit_code, 0);
    EXPECT_EQ(mask_ports(our_out.out), mask_ports(otp_out.out));
    EXPECT_EQ(mask_ports(cross.out), mask_ports(otp_out.out));
    // Exact text, including the node ports, after the header line.
    auto body = [](const std::string& s) { return s.substr(s.find('\n') + 1); };
    EXPECT_EQ(body(our_out.out), body(otp_out.out));
    EXPECT_EQ(body(otp_out.out), "name " + b + " at port 4002\nname " + a + " at port 4001\n");
    EXPECT_EQ(our_out.out.substr(0, our_out.out.find('\n')),
              "epmd: up and running on port " + std::to_string(ours.port()) + " with data:");
}

TEST(EpmdInterop, cli_kill_matches_otp) {
    for (auto f : {flavor::otp, flavor::erlcpp}) {
        epmd_instance e(f);
        std::string port = std::to_string(e.port());
        {
            our_registration r(e.port(), unique_name("kl"), 5000);
            ASSERT_TRUE(r.ok());
            // Refused while a node is alive (no -relaxed_command_check), by both CLIs.
            for (auto prog : {std::string("epmd"), our_epmd()}) {
                auto k = process::run({prog, "-port", port, "-kill"});
                EXPECT_EQ(k.exit_code, 1) << prog;
                EXPECT_EQ(k.out, "Killing not allowed - living nodes in database.\n") << prog;
            }
        }
        ASSERT_TRUE(eventually([&] {
            auto r = epmd::names("127.0.0.1", e.port(), 1s);
            return r && r->empty();
        }));
        auto k = process::run({our_epmd(), "-port", port, "-kill"});
        EXPECT_EQ(k.exit_code, 0);
        EXPECT_EQ(k.out, "Killed\n");
        EXPECT_EQ(e.proc().wait(5s), 0) << "daemon exits normally after KILL";
        // Nothing answers any more: both CLIs say so the same way.
        for (auto prog : {std::string("epmd"), our_epmd()}) {
            auto n = process::run({prog, "-port", port, "-names"});
            EXPECT_EQ(n.exit_code, 1) << prog;
            EXPECT_EQ(n.err, "epmd: Cannot connect to local epmd\n") << prog;
        }
    }
}

TEST(EpmdInterop, relaxed_command_check_allows_kill_and_stop) {
    epmd_instance e(flavor::erlcpp, {"-relaxed_command_check"});
    std::string port = std::to_string(e.port());
    std::string name = unique_name("st");
    our_registration r(e.port(), name, 5001);
    ASSERT_TRUE(r.ok());
    auto stop = process::run({"epmd", "-port", port, "-stop", name});
    EXPECT_EQ(stop.exit_code, 0);
    EXPECT_EQ(stop.out, "STOPPED\n");
    EXPECT_FALSE(names_contain(e.port(), name));
    auto none = process::run({our_epmd(), "-port", port, "-stop", name});
    EXPECT_EQ(none.out, "NOEXIST\n");
    our_registration r2(e.port(), unique_name("st"), 5002);
    ASSERT_TRUE(r2.ok());
    auto k = process::run({"epmd", "-port", port, "-kill"});
    EXPECT_EQ(k.exit_code, 0);
    EXPECT_EQ(k.out, "Killed\n");
    EXPECT_EQ(e.proc().wait(5s), 0);
}

TEST(EpmdInterop, daemon_honours_erl_epmd_port) {
    auto port = free_tcp_port();
    std::vector<std::pair<std::string, std::string>> env = {
        {"ERL_EPMD_PORT", std::to_string(port)}};
    process d({.args = {our_epmd()}, .env = env});
    ASSERT_TRUE(eventually([&] { return epmd_answers(port); })) << d.error_output();
    auto n = process::run({our_epmd(), "-names"}, env);
    EXPECT_EQ(n.exit_code, 0);
    EXPECT_EQ(n.out, "epmd: up and running on port " + std::to_string(port) + " with data:\n");
    auto k = process::run({"epmd", "-kill"}, env);
    EXPECT_EQ(k.out, "Killed\n");
    EXPECT_EQ(d.wait(5s), 0);
}

// epmd::async_ensure_epmd run to completion on an io_context of its own.
std::optional<erl::result<std::unique_ptr<epmd::server>>> ensure_epmd(
    std::uint16_t port, epmd::startup_mode mode, std::string daemon_path = {}) {
    asio::io_context io;
    std::optional<erl::result<std::unique_ptr<epmd::server>>> r;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            r.emplace(co_await epmd::async_ensure_epmd(port, mode, daemon_path));
        },
        asio::detached);
    io.run();
    return r;
}

TEST(EpmdInterop, spawn_daemon_startup_outlives_the_starter) {
    auto port = free_tcp_port();
    ASSERT_FALSE(epmd_answers(port));
    {
        auto r = ensure_epmd(port, epmd::startup_mode::spawn_daemon, our_epmd());
        ASSERT_TRUE(r && r->has_value()) << (r ? r->error().message() : "no result");
        EXPECT_EQ(r->value(), nullptr);  // a separate daemon, nothing in process
    }
    // The daemon is detached from us and keeps answering; a real node registers with it.
    EXPECT_TRUE(epmd_answers(port));
    {
        beam_node n({.name_prefix = "eps", .epmd_port = port});
        EXPECT_TRUE(names_contain(port, short_part(n.node_name())));
    }
    // Clean up the daemon the way a user would.
    ASSERT_TRUE(eventually([&] {
        auto r = epmd::names("127.0.0.1", port, 1s);
        return r && r->empty();
    }));
    auto k = process::run({our_epmd(), "-port", std::to_string(port), "-kill"});
    EXPECT_EQ(k.out, "Killed\n");
    EXPECT_TRUE(eventually([&] { return !epmd_answers(port); }));
}

// The inode of a socket descriptor, as /proc/<pid>/fd shows it ("socket:[12345]").
std::string fd_link(const std::string& path) {
    std::error_code ec;
    auto t = std::filesystem::read_symlink(path, ec);
    return ec ? std::string() : t.string();
}

TEST(EpmdInterop, spawned_daemon_keeps_no_descriptor_of_its_starter) {
    auto port = free_tcp_port();
    ASSERT_FALSE(epmd_answers(port));
    asio::io_context io;
    // A listening socket of ours, as a node has when it starts its EPMD.
    asio::ip::tcp::acceptor ours(io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto our_socket = fd_link("/proc/self/fd/" + std::to_string(ours.native_handle()));
    ASSERT_EQ(our_socket.rfind("socket:[", 0), 0u) << our_socket;
    auto r = ensure_epmd(port, epmd::startup_mode::spawn_daemon, our_epmd());
    ASSERT_TRUE(r && r->has_value()) << (r ? r->error().message() : "no result");
    // Find the daemon by its command line and look at every descriptor it holds.
    const std::string want_port = std::to_string(port);
    pid_t daemon = -1;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        std::ifstream in(e.path() / "cmdline");
        std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::vector<std::string> args;
        for (std::size_t b = 0, z; b < cmd.size(); b = z + 1) {
            z = cmd.find('\0', b);
            if (z == std::string::npos) z = cmd.size();
            args.push_back(cmd.substr(b, z - b));
        }
        if (args.size() >= 4 && args[0] == our_epmd() && args[1] == "-daemon" &&
            args[2] == "-port" && args[3] == want_port) {
            daemon = std::stoi(e.path().filename().string());
        }
    }
    ASSERT_GT(daemon, 0) << "daemon for port " << port << " not found";
    std::vector<std::string> held;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(daemon) + "/fd"))
        held.push_back(fd_link(e.path().string()));
    EXPECT_EQ(std::count(held.begin(), held.end(), our_socket), 0)
        << "the daemon holds the starter's listening socket " << our_socket;
    auto k = process::run({our_epmd(), "-port", want_port, "-kill"});
    EXPECT_EQ(k.out, "Killed\n");
    EXPECT_TRUE(eventually([&] { return !epmd_answers(port); }));
}

TEST(EpmdInterop, require_running_fails_without_epmd) {
    auto port = free_tcp_port();
    auto r = ensure_epmd(port, epmd::startup_mode::require_running);
    ASSERT_TRUE(r && !r->has_value());
    EXPECT_EQ(r->error(), erl::errc::epmd_unreachable);
}

}  // namespace
}  // namespace erl::interop
