// Interop: the completion-token forms against real erl nodes: async connect and ping
// (net_adm:ping's is_auth), erpc:call and gen_server:call awaited by a coroutine process of a
// node with one I/O thread while messages from BEAM keep reaching another process, and a
// cancelled erpc call leaving no monitor on the BEAM side.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "completion_future.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <random>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using erl::infinity;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::test::tuple_future;

namespace {

erl::atom A(const char* s) {
    return erl::atom(s);
}

// A process `gate` on the BEAM node speaking the gen_server call protocol: it tells the C++
// node's `sink` that a call is waiting, and answers `released` once it gets `release`.
void start_gate(beam_node& beam, const std::string& cpp_node_quoted) {
    EXPECT_EQ(beam.eval("Cpp = " + cpp_node_quoted +
                        ", Loop = fun L() -> receive {'$gen_call', From, wait} -> "
                        "{sink, Cpp} ! waiting, receive release -> "
                        "gen_server:reply(From, released) end, L() end end, "
                        "register(gate, spawn(Loop)), ok"),
              "ok");
}

// Monitors held on BEAM processes by processes of other nodes.
const char* remote_monitors =
    "lists:sum([length([M || M <- element(2, process_info(P, monitored_by)), is_pid(M), "
    "node(M) =/= node()]) || P <- processes(), process_info(P, monitored_by) =/= undefined])";

}  // namespace

class AsyncInterop : public erl::interop::cluster_test {};

TEST_F(AsyncInterop, async_connect_and_net_adm_ping_pong) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    const erl::atom b(beam.node_name());
    auto c = asio::co_spawn(
        cpp.node->executor(),
        [&]() -> asio::awaitable<void> {
            co_await cpp.node->async_connect(b, 10s, asio::use_awaitable);
            co_await cpp.node->async_ping(b, 10s, asio::use_awaitable);
        },
        asio::use_future);
    EXPECT_NO_THROW(c.get());
    EXPECT_EQ(beam.eval("lists:member(" + cpp.quoted_name() + ", nodes())"), "true");
    // A name the private EPMD does not know: pang with a reason.
    auto [hp, fp] = tuple_future<erl::error_code>();
    cpp.node->async_ping(erl::atom("nobody@127.0.0.1"), 10s, hp);
    auto [ec] = fp.get();
    EXPECT_TRUE(ec);
    // A BEAM node with another cookie refuses the handshake: the caller hears bad_cookie-like
    // failure, not a timeout.
    auto o = beam_opts();
    o.cookie = "some_other_cookie";
    beam_node stranger(o);
    auto [hc, fc] = tuple_future<erl::error_code>();
    cpp.node->async_connect(erl::atom(stranger.node_name()), 10s, hc);
    auto [sec] = fc.get();
    EXPECT_TRUE(sec);
    EXPECT_NE(sec, erl::errc::timeout);
}

// The node has one I/O thread. A coroutine process awaits erpc:call(gen_server, call,
// [gate, wait, infinity]) on BEAM, which does not return until released; meanwhile BEAM sends
// 100 messages to the C++ process `sink`, which receives them all on that same thread's reads.
TEST_F(AsyncInterop, coroutine_awaits_erpc_call_on_one_io_thread_while_messages_flow) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.threads = 1; }));
    beam_node beam(beam_opts());
    const erl::atom b(beam.node_name());
    auto& n = *cpp.node;
    auto sink = n.spawn_mailbox(A("sink"));
    auto results = n.spawn_mailbox();
    ASSERT_TRUE(sink && results);
    start_gate(beam, cpp.quoted_name());
    const erl::pid to = results->self();
    // Built outside the coroutine (GCC 12 cannot keep an initializer_list across co_await).
    const erl::term call_args =
        erl::make_list({erl::term(A("gate")), erl::term(A("wait")), erl::term(A("infinity"))});
    auto caller = erl::spawn(n, [&](erl::process_context& ctx) -> asio::awaitable<void> {
        auto r = co_await erl::rpc::async_call(n, b, A("gen_server"), A("call"), call_args,
                                               infinity, asio::use_awaitable);
        ctx.send(to, r.ok() ? r.value() : r.error().to_term());
        // And a gen_server:call of the gate, from the coroutine as well.
        auto g = co_await erl::gen_server::async_call(n, erl::gen_server::dest(A("gate"), b),
                                                      erl::term(A("wait")), infinity,
                                                      asio::use_awaitable);
        ctx.send(to, g.ok() ? g.value() : g.error().to_term());
    });
    ASSERT_TRUE(caller);
    auto w = sink->receive(20s);
    ASSERT_TRUE(w) << w.error().message();
    EXPECT_EQ(*w, erl::term(A("waiting")));
    EXPECT_EQ(
        beam.eval("[{sink, " + cpp.quoted_name() + "} ! {n, I} || I <- lists:seq(1, 100)], ok"),
        "ok");
    for (int i = 1; i <= 100; ++i) {
        auto m = sink->receive(20s);
        ASSERT_TRUE(m) << "message " << i << ": " << m.error().message();
        EXPECT_EQ(*m, erl::tuple(A("n"), i));
    }
    EXPECT_EQ(results->pending(), 0u);  // the call is still outstanding
    EXPECT_EQ(beam.eval("gate ! release, ok"), "ok");
    EXPECT_EQ(*results->receive(20s), erl::term(A("released")));
    // The gen_server:call: waiting again, then released.
    EXPECT_EQ(*sink->receive(20s), erl::term(A("waiting")));
    EXPECT_EQ(beam.eval("gate ! release, ok"), "ok");
    EXPECT_EQ(*results->receive(20s), erl::term(A("released")));
}

// erpc:call(timer, sleep, [infinity]) cancelled: operation_aborted at once, and BEAM's process
// running the call is no longer monitored from the C++ node (erpc.erl's abandon on timeout),
// whether the cancellation came before BEAM spawned it, while its SPAWN_REPLY was on the way
// (the reply then makes the C++ node remove the monitor BEAM set up) or after. Each call is
// cancelled at a random point and checked on BEAM after a ping: BEAM handles the SPAWN_REQUEST
// before the ping that followed it on the same connection, so the process and its monitor
// exist by then, and a monitor left behind would stay (the process sleeps forever).
TEST_F(AsyncInterop, cancelled_erpc_call_leaves_no_monitor_on_beam) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    const erl::atom b(beam.node_name());
    auto& n = *cpp.node;
    ASSERT_TRUE(n.ping(b));
    EXPECT_EQ(beam.eval(remote_monitors), "0");
    auto strand = asio::make_strand(n.executor());
    const auto seed = std::random_device{}();
    SCOPED_TRACE("random seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const erl::term sleep_args = erl::make_list({erl::term(A("infinity"))});
    for (int i = 0; i < 40; ++i) {
        // Mostly within a loopback round trip (where the cancellation crosses the reply),
        // every fourth call up to a few round trips: before, during and after the spawn.
        const std::chrono::microseconds after(rng() % (i % 4 == 3 ? 3000 : 300));
        SCOPED_TRACE("call " + std::to_string(i) + " cancelled after " +
                     std::to_string(after.count()) + " us");
        asio::cancellation_signal sig;
        auto [h, f] = tuple_future<erl::error_code, erl::rpc::call_result>();
        erl::rpc::async_call(
            n, b, A("timer"), A("sleep"), sleep_args, infinity,
            asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(strand, h)));
        // The cancellation point is a timer on the call's strand; this thread waits for the
        // call's completion.
        asio::steady_timer cancel_at(strand, after);
        cancel_at.async_wait([&](erl::error_code ec) {
            if (!ec) sig.emit(asio::cancellation_type::terminal);  // not when the test ends first
        });
        ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
        EXPECT_EQ(std::get<0>(f.get()), asio::error::operation_aborted);
        ASSERT_TRUE(n.ping(b));
        ASSERT_TRUE(
            erl::interop::wait_until([&] { return beam.eval(remote_monitors) == "0"; }, 20s))
            << beam.eval(remote_monitors) << " monitors left";
    }
    // The calls' processes run on, unmonitored.
    EXPECT_EQ(beam.eval("length([P || P <- processes(), process_info(P, current_function) == "
                        "{current_function, {timer, sleep, 1}}]) >= 40"),
              "true");
    // A gen_server:call cancelled the same way leaves no monitor on the server either.
    start_gate(beam, cpp.quoted_name());
    auto sink = n.spawn_mailbox(A("sink"));
    ASSERT_TRUE(sink);
    asio::cancellation_signal sig2;
    auto [h2, g] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::gen_server::async_call(
        n, erl::gen_server::dest(A("gate"), b), erl::term(A("wait")), infinity,
        asio::bind_cancellation_slot(sig2.slot(), asio::bind_executor(strand, h2)));
    EXPECT_EQ(*sink->receive(20s), erl::term(A("waiting")));
    EXPECT_EQ(beam.eval(remote_monitors), "1");
    asio::post(strand, [&] { sig2.emit(asio::cancellation_type::terminal); });
    EXPECT_EQ(std::get<0>(g.get()), asio::error::operation_aborted);
    EXPECT_TRUE(erl::interop::wait_until([&] { return beam.eval(remote_monitors) == "0"; }, 20s));
}
