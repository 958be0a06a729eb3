// Interop: gen_server both ways. Erlang's gen_server:call/cast and Elixir's
// GenServer.call/cast against a C++ gen_server; C++ calling a BEAM gen_server with timeouts
// (monitor + alias: no monitor left behind, late replies dropped).
#include <erl/gen_server.hpp>
#include <erl/node.hpp>

#include "call_checks.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;

namespace {

// The shared counter_server, and `later`: the reply comes from another thread after
// handle_call has returned.
struct counter : erl::interop::counter_server {
    std::optional<erl::term> handle_call(const erl::term& req, const from& f) override {
        if (req.is_atom(erl::atom("later"))) {
            std::thread([this, f] { reply(f, erl::atom("late_ok")); }).detach();
            return std::nullopt;
        }
        return counter_server::handle_call(req, f);
    }
};

// A BEAM gen_server `slow` answering {sleep, Ms} after Ms and anything else with {echo, X}.
void start_slow_server(beam_node& b) {
    b.eval(R"ERL(Src = "-module(slow).\n-behaviour(gen_server).\n"
           "-export([init/1, handle_call/3, handle_cast/2]).\n"
           "init(S) -> {ok, S}.\n"
           "handle_call({sleep, T}, _F, S) -> timer:sleep(T), {reply, slept, S};\n"
           "handle_call(R, _F, S) -> {reply, {echo, R}, S}.\n"
           "handle_cast({store, X}, _S) -> {noreply, X}.\n",
    Dir = filename:basedir(user_cache, "erlcpp_gs_" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    F = filename:join(Dir, "slow.erl"),
    ok = file:write_file(F, Src),
    {ok, slow, Bin} = compile:file(F, [binary]),
    {module, slow} = code:load_binary(slow, F, Bin),
    {ok, SlowPid} = gen_server:start({local, slow}, slow, none, []), ok)ERL");
}

}  // namespace

class GenServerInterop : public erl::interop::cluster_test {};

TEST_F(GenServerInterop, erlang_gen_server_call_and_cast_reach_cpp_server) {
    cpp_node cpp(cpp_opts());
    auto srv = erl::gen_server::start(*cpp.node, std::make_shared<counter>(), erl::atom("counter"));
    ASSERT_TRUE(srv);
    beam_node beam(beam_opts());
    const std::string d = "{counter, " + cpp.quoted_name() + "}";
    erl::interop::expect_counter_gen_server(beam, d);
    // A reply sent later from another thread.
    EXPECT_EQ(beam.eval("gen_server:call(" + d + ", later)"), "late_ok");
    // A server that stops: callers see the exit as from a BEAM gen_server.
    erl::interop::expect_counter_stops(beam, cpp.quoted_name());
}

TEST_F(GenServerInterop, elixir_genserver_call_and_cast) {
    cpp_node cpp(cpp_opts());
    auto srv = erl::gen_server::start(*cpp.node, std::make_shared<counter>(), erl::atom("counter"));
    ASSERT_TRUE(srv);
    beam_node ex(beam_opts(/*elixir=*/true));
    erl::interop::expect_elixir_counter(ex, cpp.name());
}

TEST_F(GenServerInterop, cpp_calls_beam_gen_server_with_timeouts) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    start_slow_server(beam);
    const erl::atom b(beam.node_name());
    const erl::gen_server::dest slow(erl::atom("slow"), b);
    auto r = erl::gen_server::call(*cpp.node, slow, erl::atom("hello"));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r.value().to_string(), "{echo,hello}");
    // Timeout: the exit gen_server:call raises, as data.
    r = erl::gen_server::call(*cpp.node, slow, erl::tuple(erl::atom("sleep"), 1000), 100ms);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, erl::make_error_code(erl::errc::timeout));
    EXPECT_EQ(r.error().class_, erl::atom("exit"));
    EXPECT_EQ(r.error().reason.to_string(),
              "{timeout,{gen_server,call,[{slow,'" + beam.node_name() + "'},{sleep,1000},100]}}");
    // After the late reply would have come: no monitor left on the server, and the next call
    // gets its own answer (the late one was dropped at the removed alias).
    std::this_thread::sleep_for(1200ms);
    EXPECT_EQ(beam.eval("{monitored_by, M} = process_info(whereis(slow), monitored_by), M"), "[]");
    r = erl::gen_server::call(*cpp.node, slow, erl::atom("again"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value().to_string(), "{echo,again}");
    // Cast.
    erl::gen_server::cast(*cpp.node, slow, erl::tuple(erl::atom("store"), 7));
    EXPECT_EQ(beam.eval("timer:sleep(200), sys:get_state(slow)"), "7");
    // A name nobody registered: noproc.
    r = erl::gen_server::call(*cpp.node, erl::gen_server::dest(erl::atom("nobody"), b),
                              erl::atom("x"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, erl::make_error_code(erl::errc::noproc));
    // A server that dies while we wait: its exit reason.
    EXPECT_EQ(beam.eval("spawn(fun() -> timer:sleep(300), exit(whereis(slow), kill) end), ok"),
              "ok");
    r = erl::gen_server::call(*cpp.node, slow, erl::tuple(erl::atom("sleep"), 3000), 5s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().reason[0], erl::term(erl::atom("killed")));
}

TEST_F(GenServerInterop, cpp_calls_cpp_gen_server_locally_and_remotely) {
    cpp_node a(cpp_opts());
    cpp_node b(cpp_opts());
    auto srv = erl::gen_server::start(*b.node, std::make_shared<counter>(), erl::atom("counter"));
    ASSERT_TRUE(srv);
    auto r =
        erl::gen_server::call(*a.node, erl::gen_server::dest(erl::atom("counter"), b.node->name()),
                              erl::tuple(erl::atom("add"), 2));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r.value(), erl::term(2));
    r = erl::gen_server::call(*b.node, erl::atom("counter"), erl::atom("get"));  // local
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), erl::term(2));
    r = erl::gen_server::call(*b.node, (*srv)->self(), erl::atom("get"));  // by pid
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), erl::term(2));
}
