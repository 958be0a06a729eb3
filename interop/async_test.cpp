// Interop: the completion-token forms against real erl nodes: async connect and ping
// (net_adm:ping's is_auth), erpc:call and gen_server:call awaited by a coroutine process of a
// node with one I/O thread while messages from BEAM keep reaching another process, and a
// cancelled erpc call leaving no monitor on the BEAM side; async sends that wait for room while
// a BEAM node is stopped (SIGSTOP) and complete, every message arriving in order, once it runs.
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

#include <atomic>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using erl::infinity;
using erl::interop::beam_node;
using erl::interop::continue_on_exit;
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

// A stopped BEAM node reads nothing: the C++ node's async sends to it complete at once until its
// connection is busy (output_busy_limit), then wait without a thread; after SIGCONT the waiting
// ones complete and the BEAM process sees every message, in the order sent.
TEST_F(AsyncInterop, async_send_waits_while_beam_is_stopped_and_all_arrive_in_order) {
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.output_busy_limit = 256 * 1024; }));
    beam_node beam(beam_opts());
    const erl::atom b(beam.node_name());
    // `col` keeps the sequence numbers it receives; {len, From} and {seqs, From} report them.
    ASSERT_EQ(beam.eval("register(col, spawn(fun() -> Loop = fun L(Acc) -> receive "
                        "{len, From} -> From ! {len, length(Acc)}, L(Acc); "
                        "{seqs, From} -> From ! {seqs, lists:reverse(Acc)}, L(Acc); "
                        "{S, Bin} when is_integer(S), is_binary(Bin) -> L([S | Acc]) end end, "
                        "Loop([]) end)), ok"),
              "ok");
    ASSERT_TRUE(cpp.node->ping(b));
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    const erl::term chunk = erl::binary(std::vector<std::uint8_t>(64 * 1024, 7));
    auto queued = [&] {
        for (const auto& c : cpp.node->stats().connections)
            if (c.peer == b) return c.send_queue_bytes;
        return std::size_t{0};
    };

    continue_on_exit resume{beam.os_pid()};
    ASSERT_EQ(::kill(beam.os_pid(), SIGSTOP), 0);
    // While there is room each send completes by itself; once the queue holds the busy limit
    // (the kernel's buffers full), the next ones wait.
    std::int64_t seq = 0;
    while (queued() < 256 * 1024 && seq < 4000) {
        auto [h, f] = tuple_future<erl::error_code>();
        mb->async_send(erl::atom("col"), b, erl::tuple(erl::term(seq++), chunk), h);
        ASSERT_EQ(f.wait_for(30s), std::future_status::ready) << seq;
        ASSERT_EQ(std::get<0>(f.get()), erl::error_code());
    }
    ASSERT_GE(queued(), 256u * 1024) << "not busy after " << seq << " messages";
    constexpr int waiting = 3;
    std::mutex mu;
    std::vector<erl::error_code> outcomes;
    std::atomic<int> completed{0};
    for (int i = 0; i < waiting; ++i)
        mb->async_send(erl::atom("col"), b, erl::tuple(erl::term(seq++), chunk),
                       [&](erl::error_code ec) {
                           std::lock_guard lk(mu);
                           outcomes.push_back(ec);
                           ++completed;
                       });
    EXPECT_EQ(completed.load(), 0);
    EXPECT_EQ(mb->try_send(erl::atom("col"), b, erl::term(-1)), erl::errc::would_block);

    ASSERT_EQ(::kill(beam.os_pid(), SIGCONT), 0);
    EXPECT_TRUE(erl::interop::wait_until([&] { return completed.load() == waiting; }, 30s))
        << completed.load();
    {
        std::lock_guard lk(mu);
        EXPECT_EQ(outcomes, std::vector<erl::error_code>(waiting));
    }
    // From the BEAM side: every message, in order. Bindings persist between evals, so each
    // round's variable has a name of its own.
    int round = 0;
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            const std::string v = "N" + std::to_string(++round);
            return beam.eval("col ! {len, self()}, receive {len, " + v + "} -> " + v +
                             " after 5000 -> -1 end") == std::to_string(seq);
        },
        30s, 100ms));
    EXPECT_EQ(beam.eval("col ! {seqs, self()}, receive {seqs, Seqs} -> Seqs =:= lists:seq(0, " +
                        std::to_string(seq - 1) + ") after 5000 -> timeout end"),
              "true");
}
