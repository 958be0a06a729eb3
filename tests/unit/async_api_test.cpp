// The completion-token forms of connect, ping, receive, rpc::call/multicall and
// gen_server::call between C++ nodes in one process: each token kind (callback, use_future,
// awaitable), per-operation cancellation leaving no monitor or alias behind, receive telling a
// timeout from an exited process, a node on the caller's io_context, and a coroutine process
// awaiting an rpc call on a node with a single I/O thread while messages keep flowing.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "completion_future.hpp"
#include "node/test_access.hpp"
#include "node_test_support.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using erl::infinity;
using erl::test::free_port;
using erl::test::tuple_future;
using erl::test::wait_until;

erl::atom A(const char* s) {
    return erl::atom(s);
}

// A function that does not return until released: the call it serves is one that "never
// returns" for as long as the test wants.
struct gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int entered = 0;
    std::optional<erl::pid> runner;  // the process serving the last call

    erl::term pass(erl::rpc::call_context& ctx) {
        std::unique_lock lk(mu);
        ++entered;
        runner = ctx.self();
        cv.notify_all();
        cv.wait(lk, [&] { return open; });
        return erl::term(A("released"));
    }
    bool wait_entered(int n) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, 10s, [&] { return entered >= n; });
    }
    void release() {
        std::lock_guard lk(mu);
        open = true;
        cv.notify_all();
    }
};

// A gen_server that never answers (the reply "never comes").
struct silent : erl::gen_server::server {
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req == erl::term(A("ping"))) return erl::term(A("pong"));
        return std::nullopt;
    }
};

struct AsyncFixture : ::testing::Test {
    std::uint16_t port = free_port();
    erl::node a{erl::test::local_node_options("asynca", port)};
    erl::node b{erl::test::local_node_options("asyncb", port)};
    gate g;
    std::unique_ptr<erl::rpc::server> rb;

    void SetUp() override {
        ASSERT_FALSE(a.start());
        ASSERT_FALSE(b.start());
        rb = std::make_unique<erl::rpc::server>(b);
        rb->add("t", "echo", [](const erl::term& t) { return t; });
        rb->add("t", "hang", [this](erl::rpc::call_context& ctx) { return g.pass(ctx); });
    }
    void TearDown() override {
        g.release();
        rb.reset();
    }
    // Processes on `n` monitoring the process `p` of `n` (0 if it is gone).
    static std::size_t watchers(erl::node& n, const erl::pid& p) {
        auto proc = erl::test::core_of(n).find_process(p);
        return proc ? erl::test::watcher_count(*proc) : 0;
    }
    static std::size_t processes(erl::node& n) { return erl::test::core_of(n).table.size(); }
};

using NodeAsync = AsyncFixture;
using RpcAsync = AsyncFixture;

// --- receive --------------------------------------------------------------------------------

TEST_F(NodeAsync, receive_tells_timeout_from_exit) {
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    auto r = mb->receive(1ms);
    EXPECT_FALSE(r);
    EXPECT_TRUE(r.timed_out());
    EXPECT_EQ(r.error(), erl::errc::timeout);
    mb->send(mb->self(), erl::term(1));
    mb->exit(erl::term(A("done")));
    // A message queued before the exit is not received after it (the queue goes with the
    // process): exited, with the reason.
    r = mb->receive(5s);
    EXPECT_FALSE(r);
    EXPECT_TRUE(r.exited());
    EXPECT_EQ(r.error(), erl::errc::exited);
    EXPECT_EQ(mb->exit_reason(), erl::term(A("done")));
    // Existing callers read it as the optional it extends.
    std::optional<erl::term> old = mb->receive(1ms);
    EXPECT_EQ(old, std::nullopt);
}

TEST_F(NodeAsync, async_receive_with_each_token) {
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    // Callback.
    std::promise<std::pair<erl::error_code, erl::term>> got;
    mb->async_receive(5s, [&](erl::error_code ec, erl::term t) {
        got.set_value({ec, std::move(t)});
    });
    b.send(mb->self(), erl::term(1));
    auto [ec1, t1] = got.get_future().get();
    EXPECT_FALSE(ec1);
    EXPECT_EQ(t1, erl::term(1));
    // use_future.
    auto f = mb->async_receive(5s, asio::use_future);
    b.send(mb->self(), erl::term(2));
    EXPECT_EQ(f.get(), erl::term(2));
    // Awaitable, on a strand of the node's executor.
    b.send(mb->self(), erl::term(3));
    auto c = asio::co_spawn(
        asio::make_strand(a.executor()),
        [&]() -> asio::awaitable<erl::term> {
            co_return co_await mb->async_receive(5s, asio::use_awaitable);
        },
        asio::use_future);
    EXPECT_EQ(c.get(), erl::term(3));
}

TEST_F(NodeAsync, async_receive_if_is_selective) {
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    mb->send(mb->self(), erl::tuple(A("other"), 1));
    auto f =
        mb->async_receive_if([](const erl::term& t) { return t.is_tuple(2) && t[0] == A("want"); },
                             5s, asio::use_future);
    b.send(mb->self(), erl::tuple(A("other"), 2));
    b.send(mb->self(), erl::tuple(A("want"), 3));
    EXPECT_EQ(f.get(), erl::tuple(A("want"), 3));
    // The others stay queued, in order.
    EXPECT_EQ(*mb->receive(1s), erl::tuple(A("other"), 1));
    EXPECT_EQ(*mb->receive(1s), erl::tuple(A("other"), 2));
}

TEST_F(NodeAsync, async_receive_timeout_exit_and_cancel) {
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    auto [h, f0] = tuple_future<erl::error_code, erl::term>();
    mb->async_receive(1ms, h);
    EXPECT_EQ(std::get<0>(f0.get()), erl::errc::timeout);
    // Timed-out receives leave no wake-up entry behind in the process.
    for (int i = 0; i < 50; ++i)
        mb->async_receive(0ms, asio::use_future).wait();
    {
        auto& p = *erl::test::process_of(*mb);
        std::lock_guard lk(p.mu);
        EXPECT_TRUE(!p.more || p.more->waiters.empty());
    }
    // Cancelled: operation_aborted, and nothing is consumed. The signal is emitted on the
    // strand the handler runs on, as Asio requires of per-operation cancellation.
    auto strand = asio::make_strand(a.executor());
    asio::cancellation_signal sig;
    std::promise<erl::error_code> cancelled;
    mb->async_receive(
        infinity, asio::bind_cancellation_slot(
                      sig.slot(), asio::bind_executor(strand, [&](erl::error_code e, erl::term) {
                          cancelled.set_value(e);
                      })));
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    EXPECT_EQ(cancelled.get_future().get(), asio::error::operation_aborted);
    b.send(mb->self(), erl::term(7));
    EXPECT_EQ(*mb->receive(5s), erl::term(7));
    // Exit while waiting: errc::exited.
    auto [he, fe] = tuple_future<erl::error_code, erl::term>();
    mb->async_receive(infinity, he);
    mb->exit(erl::term(A("bye")));
    EXPECT_EQ(std::get<0>(fe.get()), erl::errc::exited);
}

// --- connect / ping -------------------------------------------------------------------------

TEST_F(NodeAsync, connect_and_ping_with_each_token) {
    std::promise<erl::error_code> cb;
    a.async_connect(b.name(), 10s, [&](erl::error_code ec) { cb.set_value(ec); });
    EXPECT_FALSE(cb.get_future().get());
    EXPECT_TRUE(a.is_connected(b.name()));
    EXPECT_NO_THROW(a.async_ping(b.name(), 10s, asio::use_future).get());
    auto c = asio::co_spawn(
        a.executor(),
        [&]() -> asio::awaitable<void> {
            co_await b.async_connect(a.name(), 10s, asio::use_awaitable);
            co_await b.async_ping(a.name(), 10s, asio::use_awaitable);
            co_await b.async_ping(b.name(), 10s, asio::use_awaitable);  // itself
        },
        asio::use_future);
    EXPECT_NO_THROW(c.get());
    EXPECT_TRUE(a.ping(b.name()));
}

TEST_F(NodeAsync, connect_and_ping_failures_say_why) {
    const erl::atom nobody("nobody_here@127.0.0.1");
    auto [hc, fc] = tuple_future<erl::error_code>();
    a.async_connect(nobody, 10s, hc);
    auto [ec] = fc.get();
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, erl::errc::timeout);
    auto [hp, fp] = tuple_future<erl::error_code>();
    a.async_ping(nobody, 10s, hp);
    auto [pec] = fp.get();
    EXPECT_EQ(pec, ec);
    EXPECT_FALSE(a.ping(nobody));
    EXPECT_EQ(a.connect(erl::atom("no_at_sign")), erl::errc::bad_node_name);
    erl::node idle(erl::test::local_node_options("asyncidle", port));
    EXPECT_EQ(idle.connect(a.name()), erl::errc::not_alive);
    // A peer with another cookie: the handshake's reason reaches the caller.
    erl::node other(erl::test::local_node_options("asyncother", port, "another_cookie"));
    ASSERT_FALSE(other.start());
    auto [ho, fo] = tuple_future<erl::error_code>();
    other.async_connect(a.name(), 10s, ho);
    auto [cec] = fo.get();
    EXPECT_TRUE(cec);
    EXPECT_FALSE(other.ping(a.name()));
}

TEST_F(NodeAsync, start_diagnostics_name_the_cookie_file) {
    auto o = erl::test::local_node_options("asyncdiag", port);
    o.cookie.clear();
    o.cookie_env.clear();
    o.cookie_file = "/nonexistent-dir/for/erlcpp/.erlang.cookie";
    erl::node n(o);
    erl::diagnostics diag;
    EXPECT_EQ(n.start(diag), erl::errc::cookie_file_error);
    EXPECT_NE(diag.message().find("/nonexistent-dir/for/erlcpp/.erlang.cookie"), std::string::npos)
        << diag.message();
    EXPECT_FALSE(a.start(diag));  // running already: success clears it
    EXPECT_TRUE(diag.message().empty());
}

// --- a node on the caller's io_context -------------------------------------------------------

TEST_F(NodeAsync, node_runs_on_the_callers_io_context) {
    asio::io_context ioc;
    auto work = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    {
        erl::node n(erl::test::local_node_options("asyncuser", port), ioc);
        erl::diagnostics diag;
        auto sec = n.start(diag);
        EXPECT_FALSE(sec) << sec.message() << ": " << diag.message();
        EXPECT_TRUE(n.alive());
        EXPECT_TRUE(n.executor() == asio::any_io_executor(ioc.get_executor()));
        EXPECT_TRUE(n.ping(b.name()));
        auto r = erl::rpc::call(n, b.name(), A("t"), A("echo"), erl::make_list({erl::term(5)}));
        ASSERT_TRUE(r.ok()) << r.error().to_string();
        EXPECT_EQ(r.value(), erl::term(5));
        // Its handlers run on the caller's thread.
        std::promise<std::pair<erl::error_code, std::thread::id>> on;
        n.async_ping(b.name(), 10s, [&](erl::error_code ec) {
            on.set_value({ec, std::this_thread::get_id()});
        });
        auto [pec, tid] = on.get_future().get();
        EXPECT_FALSE(pec);
        EXPECT_EQ(tid, runner.get_id());
        n.stop();
        EXPECT_FALSE(n.alive());
        EXPECT_TRUE(wait_until([&] { return !b.is_connected(n.name()); }));
        // The caller's io_context still runs.
        EXPECT_FALSE(ioc.stopped());
        std::promise<void> ran;
        asio::post(ioc, [&] { ran.set_value(); });
        EXPECT_EQ(ran.get_future().wait_for(10s), std::future_status::ready);
        // And the node starts again on it (once the EPMD has seen the old registration's
        // socket close, which it learns on its own thread: until then the name is taken).
        EXPECT_TRUE(wait_until([&] {
            sec = n.start(diag);
            return !sec;
        })) << sec.message()
            << ": " << diag.message();
        EXPECT_TRUE(n.ping(b.name()));
    }
    work.reset();
    runner.join();  // the node left nothing behind on ioc: run() returns
}

TEST_F(NodeAsync, async_start_on_the_one_thread_that_runs_the_callers_io_context) {
    asio::io_context ioc;
    erl::node n(erl::test::local_node_options("asyncstart", port), ioc);
    erl::diagnostics diag;
    std::optional<erl::error_code> first, second, pinged;
    std::thread::id ran_on;
    // Started before run(): nothing runs until this thread runs ioc.
    n.async_start(diag, [&](erl::error_code ec) {
        first = ec;
        ran_on = std::this_thread::get_id();
        EXPECT_TRUE(n.alive());
        n.async_ping(b.name(), 10s, [&](erl::error_code pec) {
            pinged = pec;
            n.stop();  // on the thread running ioc: starts the stop and returns
        });
    });
    // A second start while the first is in progress completes with its outcome.
    n.async_start([&](erl::error_code ec) { second = ec; });
    EXPECT_FALSE(n.alive());
    ioc.run_for(30s);  // returns once the node has left nothing on ioc
    ASSERT_TRUE(first && second && pinged);
    EXPECT_FALSE(*first) << first->message() << ": " << diag.message();
    EXPECT_FALSE(*second);
    EXPECT_FALSE(*pinged) << pinged->message();
    EXPECT_EQ(ran_on, std::this_thread::get_id());
    EXPECT_TRUE(ioc.stopped());  // ran out of work, not out of time
    EXPECT_FALSE(n.alive());
}

TEST_F(NodeAsync, async_start_reports_a_failure_with_its_diagnostics) {
    auto o = erl::test::local_node_options("asyncstartfail", port);
    o.name = a.name().str();  // taken: EPMD refuses the registration
    erl::node n(o);
    erl::diagnostics diag;
    auto start = [&](erl::diagnostics& d) {
        auto [h, f] = erl::test::tuple_future<erl::error_code>();
        n.async_start(d, h);
        return std::get<0>(f.get());
    };
    EXPECT_EQ(start(diag), erl::errc::epmd_name_taken);
    EXPECT_NE(diag.message().find("EPMD"), std::string::npos) << diag.message();
    EXPECT_FALSE(n.alive());
    // Stopped again, not wedged: a second attempt fails the same way.
    erl::diagnostics again;
    EXPECT_EQ(start(again), erl::errc::epmd_name_taken);
    // On a started node: success at once, and use_future's future<void> does not throw.
    EXPECT_NO_THROW(a.async_start(asio::use_future).get());
}

TEST_F(NodeAsync, failed_async_start_on_the_callers_io_context_completes_after_the_tear_down) {
    // The failure completes (on Asio's system executor) only once the node has closed its
    // listener and is stopped: the port is free and another start may begin at once.
    auto o = erl::test::local_node_options("asyncfailuser", port);
    o.name = a.name().str();  // taken: EPMD refuses the registration
    o.listen_port = free_port();
    asio::io_context ioc;
    erl::node n(o, ioc);
    std::promise<erl::error_code> second;
    std::optional<erl::error_code> first;
    erl::error_code bind_ec;
    n.async_start([&](erl::error_code ec) {
        first = ec;
        asio::io_context probe_ioc;
        asio::ip::tcp::acceptor probe(probe_ioc);
        const asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), o.listen_port);
        probe.open(at.protocol());
        probe.set_option(asio::socket_base::reuse_address(true));
        probe.bind(at, bind_ec);
        probe.close();
        n.async_start([&](erl::error_code ec2) { second.set_value(ec2); });
    });
    auto outcome = second.get_future();
    auto work = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    const auto status = outcome.wait_for(30s);
    work.reset();
    runner.join();
    ASSERT_EQ(status, std::future_status::ready);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, erl::errc::epmd_name_taken);
    EXPECT_FALSE(bind_ec) << "listener still open when the start completed: " << bind_ec.message();
    EXPECT_EQ(outcome.get(), erl::errc::epmd_name_taken);
    EXPECT_FALSE(n.alive());
}

// --- rpc::call / multicall --------------------------------------------------------------------

TEST_F(RpcAsync, async_call_with_each_token) {
    const auto args = erl::make_list({erl::term(42)});
    std::promise<erl::rpc::call_result> cb;
    erl::rpc::async_call(a, b.name(), A("t"), A("echo"), args, 10s,
                         [&](erl::error_code ec, erl::rpc::call_result r) {
                             EXPECT_FALSE(ec);
                             cb.set_value(std::move(r));
                         });
    auto r = cb.get_future().get();
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r.value(), erl::term(42));
    r = erl::rpc::async_call(a, b.name(), A("t"), A("echo"), args, 10s, asio::use_future).get();
    EXPECT_EQ(r.value(), erl::term(42));
    auto c = asio::co_spawn(
        a.executor(),
        [&]() -> asio::awaitable<erl::rpc::call_result> {
            co_return co_await erl::rpc::async_call(a, b.name(), A("t"), A("echo"), args, 10s,
                                                    asio::use_awaitable);
        },
        asio::use_future);
    EXPECT_EQ(c.get().value(), erl::term(42));
    // Failures are outcomes, not errors: undef, and a timeout with its code.
    r = erl::rpc::async_call(a, b.name(), A("t"), A("missing"), erl::term(), 10s, asio::use_future)
            .get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().class_, A("error"));
    r = erl::rpc::async_call(a, b.name(), A("t"), A("hang"), erl::term(), 1ms, asio::use_future)
            .get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, erl::errc::timeout);
}

TEST_F(RpcAsync, async_multicall_keeps_target_order) {
    const erl::atom nobody("nobody_here@127.0.0.1");
    auto rs = erl::rpc::async_multicall(a, {b.name(), nobody, a.name()}, A("t"), A("echo"),
                                        erl::make_list({erl::term(1)}), 10s, asio::use_future)
                  .get();
    ASSERT_EQ(rs.size(), 3u);
    ASSERT_TRUE(rs[0].ok()) << rs[0].error().to_string();
    EXPECT_EQ(rs[0].value(), erl::term(1));
    ASSERT_FALSE(rs[1].ok());
    EXPECT_EQ(rs[1].error().code, erl::errc::noconnection);
    ASSERT_FALSE(rs[2].ok());  // no rpc server on a: undef
    EXPECT_EQ(rs[2].error().to_term()[0], erl::term(A("error")));
    // Blocking form, same answers.
    auto bs = erl::rpc::multicall(a, {b.name(), nobody}, A("t"), A("echo"),
                                  erl::make_list({erl::term(1)}));
    ASSERT_EQ(bs.size(), 2u);
    EXPECT_EQ(bs[0].value(), erl::term(1));
    EXPECT_EQ(bs[1].error().code, erl::errc::noconnection);
}

TEST_F(RpcAsync, cancelled_call_completes_aborted_and_leaves_no_monitor) {
    // Warm up: the connection and the rpc client's group leader exist before counting.
    ASSERT_TRUE(erl::rpc::call(a, b.name(), A("t"), A("echo"), erl::make_list({erl::term(0)})));
    const auto before = processes(a);
    auto strand = asio::make_strand(a.executor());
    asio::cancellation_signal sig;
    auto [h, f] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::rpc::async_call(a, b.name(), A("t"), A("hang"), erl::term(), infinity,
                         asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(strand, h)));
    ASSERT_TRUE(g.wait_entered(1));
    erl::pid runner;
    {
        std::lock_guard lk(g.mu);
        runner = *g.runner;
    }
    EXPECT_EQ(watchers(b, runner), 1u);  // the caller's monitor on the process serving it
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    auto [ec, r] = f.get();
    EXPECT_EQ(ec, asio::error::operation_aborted);
    // The monitor is gone on the serving node, and the calling process on ours.
    EXPECT_TRUE(wait_until([&] { return watchers(b, runner) == 0; }));
    EXPECT_TRUE(wait_until([&] { return processes(a) == before; }));
    // The function, released, finds nobody to answer: nothing arrives anywhere.
    g.release();
    EXPECT_TRUE(erl::rpc::call(a, b.name(), A("t"), A("echo"), erl::make_list({erl::term(1)})));
}

// A node with one I/O thread that the test can hold: while held, nothing it is sent is read,
// so a request reaches it only once released (its answer then crosses whatever the requester
// did meanwhile).
struct held_node {
    erl::node n;
    std::promise<void> release_;
    explicit held_node(std::uint16_t port) : n(one_thread(port)) {}
    static erl::node_options one_thread(std::uint16_t port) {
        auto o = erl::test::local_node_options("asyncheld", port);
        o.threads = 1;
        return o;
    }
    // Returns once the node's thread is held.
    void hold() {
        release_ = {};
        std::promise<void> holding;
        asio::post(n.executor(), [&holding, released = release_.get_future()]() mutable {
            holding.set_value();
            released.wait();
        });
        holding.get_future().wait();
    }
    void release() { release_.set_value(); }
};

// The request reaches the serving node only after the call was cancelled and its calling
// process has ended: when the SPAWN_REPLY then names the new process, the monitor the serving
// node set up for the gone caller is removed there (the process itself runs on).
TEST_F(RpcAsync, call_cancelled_before_the_spawn_reply_leaves_no_monitor) {
    held_node slow(port);
    ASSERT_FALSE(slow.n.start());
    gate hold_calls;
    erl::rpc::server rs(slow.n);
    rs.add("t", "echo", [](const erl::term& t) { return t; });
    rs.add("t", "hang", [&](erl::rpc::call_context& ctx) { return hold_calls.pass(ctx); });
    ASSERT_TRUE(
        erl::rpc::call(a, slow.n.name(), A("t"), A("echo"), erl::make_list({erl::term(0)})));
    const auto before = processes(a);
    slow.hold();
    auto strand = asio::make_strand(a.executor());
    asio::cancellation_signal sig;
    auto [h, f] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::rpc::async_call(a, slow.n.name(), A("t"), A("hang"), erl::term(), infinity,
                         asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(strand, h)));
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    EXPECT_EQ(std::get<0>(f.get()), asio::error::operation_aborted);
    EXPECT_TRUE(wait_until([&] { return processes(a) == before; }));  // the caller is gone
    slow.release();
    ASSERT_TRUE(hold_calls.wait_entered(1));
    erl::pid runner;
    {
        std::lock_guard lk(hold_calls.mu);
        runner = *hold_calls.runner;
    }
    EXPECT_TRUE(wait_until([&] { return watchers(slow.n, runner) == 0; }));
    EXPECT_NE(erl::test::core_of(slow.n).find_process(runner), nullptr);
    hold_calls.release();
}

// erlang:spawn_request_abandon/1 from a live requester whose reply is still to come: no reply
// and no 'DOWN' reach it, the peer's monitor is removed, and a linked new process gets the link
// exit `abandoned` (which ends the link on its side too).
TEST_F(NodeAsync, abandoned_spawn_request_undoes_the_peers_monitor_and_link) {
    held_node slow(port);
    ASSERT_FALSE(slow.n.start());
    struct started {
        std::mutex mu;
        std::condition_variable cv;
        std::vector<erl::pid> pids;
        // What each one received first ({exited, Reason} if killed first), and its links then.
        std::vector<erl::term> got;
    } st;
    erl::add_spawnable(
        slow.n, A("t"), A("idle"), 0, [&st](erl::mailbox& mb, std::vector<erl::term>) {
            mb.trap_exit(true);
            {
                std::lock_guard lk(st.mu);
                st.pids.push_back(mb.self());
                st.cv.notify_all();
            }
            auto m = mb.receive(infinity);
            std::lock_guard lk(st.mu);
            const erl::term what = m ? *m : erl::tuple(A("exited"), mb.exit_reason());
            st.got.push_back(erl::tuple(what, static_cast<long long>(mb.links().size())));
            st.cv.notify_all();
        });
    auto wait_for = [&](auto pred) {
        std::unique_lock lk(st.mu);
        return st.cv.wait_for(lk, 10s, pred);
    };
    ASSERT_TRUE(a.ping(slow.n.name()));
    auto parent = a.spawn_mailbox();
    ASSERT_TRUE(parent);
    // The request times out while the node is held; its reply comes once released.
    auto times_out_held = [&](auto spawn) {
        slow.hold();
        auto r = spawn();
        slow.release();
        return !r && r.error() == erl::errc::timeout;
    };
    // Monitor.
    EXPECT_TRUE(times_out_held([&] {
        return erl::spawn_monitor(*parent, slow.n.name(), A("t"), A("idle"), erl::term(), 50ms);
    }));
    ASSERT_TRUE(wait_for([&] { return st.pids.size() == 1; }));
    const erl::pid monitored = st.pids[0];
    EXPECT_TRUE(wait_until([&] { return watchers(slow.n, monitored) == 0; }));
    // The reply arrived before the demonitor left: it would be queued by now.
    EXPECT_EQ(parent->pending(), 0u);
    // Link: the new process gets the link exit `abandoned`, which removes the link: trapping,
    // it receives {'EXIT', Parent, abandoned} and holds no link; if the signal came before it
    // trapped, it exited `abandoned`.
    EXPECT_TRUE(times_out_held([&] {
        return erl::spawn_link(*parent, slow.n.name(), A("t"), A("idle"), erl::term(), 50ms);
    }));
    ASSERT_TRUE(wait_for([&] { return st.got.size() == 1; }));
    const erl::term trapped = erl::tuple(erl::tuple(A("EXIT"), parent->self(), A("abandoned")), 0);
    const erl::term killed = erl::tuple(erl::tuple(A("exited"), A("abandoned")), 0);
    EXPECT_TRUE(st.got[0] == trapped || st.got[0] == killed) << st.got[0].to_string();
    EXPECT_TRUE(parent->links().empty());
    EXPECT_EQ(parent->pending(), 0u);
    {
        std::lock_guard lk(st.mu);
        ASSERT_EQ(st.pids.size(), 2u);
    }
    slow.n.stop();
    EXPECT_TRUE(erl::join_processes(slow.n, 10s));
}

// Operations that would wait forever when the node stops: each completes with
// errc::shutting_down before stop() returns — a receive, an rpc call and a gen_server call
// with infinite timeouts, a connect and a ping to a node that does not answer the handshake,
// and the blocking rpc::call on another thread (its result says so too).
TEST_F(NodeAsync, operations_pending_at_stop_end_with_shutting_down_before_stop_returns) {
    held_node slow(port);
    ASSERT_FALSE(slow.n.start());
    erl::node c(erl::test::local_node_options("asyncstop", port));
    ASSERT_FALSE(c.start());
    auto srv = erl::gen_server::start(b, std::make_shared<silent>(), A("silent"));
    ASSERT_TRUE(srv);
    ASSERT_TRUE(c.ping(b.name()));
    auto mb = c.spawn_mailbox();
    ASSERT_TRUE(mb);
    auto strand = asio::make_strand(c.executor());
    auto [hr, fr] = tuple_future<erl::error_code, erl::term>();
    mb->async_receive(infinity, asio::bind_executor(strand, hr));
    auto [hc, fc] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::rpc::async_call(c, b.name(), A("t"), A("hang"), erl::term(), infinity, hc);
    auto blocking = std::async(std::launch::async, [&] {
        return erl::rpc::call(c, b.name(), A("t"), A("hang"), erl::term(), infinity);
    });
    auto [hg, fg] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::gen_server::async_call(c, erl::gen_server::dest(A("silent"), b.name()),
                                erl::term(A("wait")), infinity, hg);
    slow.hold();
    auto [hn, fn] = tuple_future<erl::error_code>();
    c.async_connect(slow.n.name(), infinity, hn);
    auto [hp, fp] = tuple_future<erl::error_code>();
    c.async_ping(slow.n.name(), infinity, asio::bind_executor(strand, hp));
    // All of them wait: both calls run on b, the server holds the gen_server call.
    ASSERT_TRUE(g.wait_entered(2));
    ASSERT_TRUE(wait_until([&] { return watchers(b, (*srv)->self()) == 1; }));
    EXPECT_EQ(fr.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(fn.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(fp.wait_for(0s), std::future_status::timeout);
    c.stop();
    const auto shutting_down = erl::make_error_code(erl::errc::shutting_down);
    ASSERT_EQ(fr.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(fr.get()), shutting_down);
    ASSERT_EQ(fc.wait_for(0s), std::future_status::ready);
    auto [cec, cr] = fc.get();
    EXPECT_EQ(cec, shutting_down);
    ASSERT_FALSE(cr.ok());
    EXPECT_EQ(cr.error().code, shutting_down);
    ASSERT_EQ(fg.wait_for(0s), std::future_status::ready);
    auto [gec, gr] = fg.get();
    EXPECT_EQ(gec, shutting_down);
    ASSERT_FALSE(gr.ok());
    EXPECT_EQ(gr.error().code, shutting_down);
    ASSERT_EQ(fn.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(fn.get()), shutting_down);
    ASSERT_EQ(fp.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(fp.get()), shutting_down);
    ASSERT_EQ(blocking.wait_for(10s), std::future_status::ready);
    auto br = blocking.get();
    ASSERT_FALSE(br.ok());
    EXPECT_EQ(br.error().code, shutting_down);
    slow.release();
}

// A handler that records the thread it ran on, then fills its future.
template <class... Args>
struct thread_recording {
    erl::test::future_handler<Args...> h;
    std::shared_ptr<std::thread::id> ran_on = std::make_shared<std::thread::id>();
    void operator()(Args... a) const {
        *ran_on = std::this_thread::get_id();
        h(std::move(a)...);
    }
};
template <class... Args>
std::pair<thread_recording<Args...>, std::future<std::tuple<Args...>>> recording_future() {
    auto [h, f] = tuple_future<Args...>();
    return {thread_recording<Args...>{h}, std::move(f)};
}
// The result of an operation that must complete, not on this thread (nullopt, with a failure,
// if it has not completed within 10 s).
template <class... Args>
std::optional<std::tuple<Args...>> completed(std::future<std::tuple<Args...>>& f,
                                             const thread_recording<Args...>& h) {
    if (f.wait_for(10s) != std::future_status::ready) {
        ADD_FAILURE() << "the operation did not complete";
        return std::nullopt;
    }
    auto t = f.get();
    EXPECT_NE(*h.ran_on, std::this_thread::get_id());
    return t;
}
// The error code of a call that completed, and the code its call_result carries.
std::pair<erl::error_code, erl::error_code> call_codes(
    std::future<std::tuple<erl::error_code, erl::rpc::call_result>>& f,
    const thread_recording<erl::error_code, erl::rpc::call_result>& h) {
    auto r = completed(f, h);
    if (!r) return {};
    auto& [ec, res] = *r;
    return {ec, res.ok() ? erl::error_code() : res.error().code};
}

// Operations started on a stopped node (its I/O threads gone, its io_context shut down) end at
// once with errc::shutting_down: connect, ping, receive, rpc::call and gen_server::call, with
// handlers that have no executor of their own or one bound to a strand of the stopped node's
// executor. Their completions still never run inside the initiating call. The blocking forms
// say the same, and the node starts, connects and stops again afterwards.
TEST_F(NodeAsync, operations_started_after_stop_end_at_once_with_shutting_down) {
    erl::node c(erl::test::local_node_options("asyncafter", port));
    ASSERT_FALSE(c.start());
    ASSERT_TRUE(c.ping(b.name()));
    auto mb = c.spawn_mailbox();
    ASSERT_TRUE(mb);
    auto strand = asio::make_strand(c.executor());
    c.stop();
    const auto shutting_down = erl::make_error_code(erl::errc::shutting_down);

    auto [hn, fn] = recording_future<erl::error_code>();
    c.async_connect(b.name(), infinity, hn);
    auto [hp, fp] = recording_future<erl::error_code>();
    c.async_ping(b.name(), infinity, asio::bind_executor(strand, hp));
    auto [hr, fr] = recording_future<erl::error_code, erl::term>();
    mb->async_receive(infinity, hr);
    auto [hc, fc] = recording_future<erl::error_code, erl::rpc::call_result>();
    erl::rpc::async_call(c, b.name(), A("t"), A("echo"), erl::term(1), infinity, hc);
    auto [hg, fg] = recording_future<erl::error_code, erl::rpc::call_result>();
    erl::gen_server::async_call(c, erl::gen_server::dest(A("anyone"), b.name()),
                                erl::term(A("req")), infinity, hg);

    auto rn = completed(fn, hn);
    ASSERT_TRUE(rn);
    EXPECT_EQ(std::get<0>(*rn), shutting_down);
    auto rp = completed(fp, hp);
    ASSERT_TRUE(rp);
    EXPECT_EQ(std::get<0>(*rp), shutting_down);
    auto rr = completed(fr, hr);
    ASSERT_TRUE(rr);
    EXPECT_EQ(std::get<0>(*rr), shutting_down);
    const std::pair both{shutting_down, shutting_down};
    EXPECT_EQ(call_codes(fc, hc), both);
    EXPECT_EQ(call_codes(fg, hg), both);

    EXPECT_EQ(c.connect(b.name(), 5s), shutting_down);
    EXPECT_FALSE(c.ping(b.name(), 5s));
    auto br = erl::rpc::call(c, b.name(), A("t"), A("echo"), erl::term(1), 5s);
    ASSERT_FALSE(br.ok());
    EXPECT_EQ(br.error().code, shutting_down);

    // Started again, the node's operations complete on its new io_context, and it stops
    // again (stop() waits for no completion left over from before).
    ASSERT_FALSE(c.start());
    auto [hn2, fn2] = tuple_future<erl::error_code>();
    c.async_connect(b.name(), 10s, hn2);
    ASSERT_EQ(fn2.wait_for(10s), std::future_status::ready);
    EXPECT_FALSE(std::get<0>(fn2.get()));
    c.stop();
}

// A node that was never started: its operations complete with not_alive, on a thread of
// their own (no thread runs the node's io_context yet), not inside the initiating call.
TEST_F(NodeAsync, operations_on_a_node_never_started_complete_with_not_alive) {
    erl::node idle(erl::test::local_node_options("asyncnever", port));
    auto [hn, fn] = recording_future<erl::error_code>();
    idle.async_connect(b.name(), infinity, hn);
    auto [hc, fc] = recording_future<erl::error_code, erl::rpc::call_result>();
    erl::rpc::async_call(idle, b.name(), A("t"), A("echo"), erl::term(1), infinity, hc);
    auto rn = completed(fn, hn);
    ASSERT_TRUE(rn);
    EXPECT_EQ(std::get<0>(*rn), erl::errc::not_alive);
    EXPECT_TRUE(completed(fc, hc));
}

// The cancellation types each operation acts on: a receive any (it has taken nothing), a call
// terminal and partial but not total (its request has been sent: total is ignored and the call
// goes on).
TEST_F(RpcAsync, each_operation_acts_on_the_cancellation_types_it_supports) {
    auto strand = asio::make_strand(a.executor());
    // Runs fn on the strand and returns once it has run (and so has any emit before it).
    auto on_strand = [&](auto fn) {
        std::promise<void> ran;
        asio::post(strand, [&] {
            fn();
            ran.set_value();
        });
        ran.get_future().wait();
    };
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    for (auto type : {asio::cancellation_type::total, asio::cancellation_type::partial,
                      asio::cancellation_type::terminal}) {
        asio::cancellation_signal sig;
        auto [h, f] = tuple_future<erl::error_code, erl::term>();
        mb->async_receive(infinity,
                          asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(strand, h)));
        on_strand([&] { sig.emit(type); });
        ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
        EXPECT_EQ(std::get<0>(f.get()), asio::error::operation_aborted);
    }
    b.send(mb->self(), erl::term(1));  // nothing was consumed
    EXPECT_EQ(*mb->receive(5s), erl::term(1));
    EXPECT_EQ(mb->pending(), 0u);
    // rpc: total is ignored, partial cancels.
    asio::cancellation_signal sig;
    auto [h, f] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::rpc::async_call(a, b.name(), A("t"), A("hang"), erl::term(), infinity,
                         asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(strand, h)));
    ASSERT_TRUE(g.wait_entered(1));
    on_strand([&] { sig.emit(asio::cancellation_type::total); });
    EXPECT_EQ(f.wait_for(0s), std::future_status::timeout);
    on_strand([&] { sig.emit(asio::cancellation_type::partial); });
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(f.get()), asio::error::operation_aborted);
    // gen_server: the same.
    auto srv = erl::gen_server::start(b, std::make_shared<silent>(), A("silent"));
    ASSERT_TRUE(srv);
    asio::cancellation_signal gsig;
    auto [gh, gf] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::gen_server::async_call(
        a, erl::gen_server::dest(A("silent"), b.name()), erl::term(A("wait")), infinity,
        asio::bind_cancellation_slot(gsig.slot(), asio::bind_executor(strand, gh)));
    ASSERT_TRUE(wait_until([&] { return watchers(b, (*srv)->self()) == 1; }));
    on_strand([&] { gsig.emit(asio::cancellation_type::total); });
    EXPECT_EQ(gf.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(watchers(b, (*srv)->self()), 1u);
    on_strand([&] { gsig.emit(asio::cancellation_type::partial); });
    ASSERT_EQ(gf.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(std::get<0>(gf.get()), asio::error::operation_aborted);
    EXPECT_TRUE(wait_until([&] { return watchers(b, (*srv)->self()) == 0; }));
}

TEST_F(RpcAsync, gen_server_async_call_each_token_and_cancel) {
    auto srv = erl::gen_server::start(b, std::make_shared<silent>(), A("silent"));
    ASSERT_TRUE(srv);
    const erl::gen_server::dest to(A("silent"), b.name());
    std::promise<erl::rpc::call_result> cb;
    erl::gen_server::async_call(
        a, to, erl::term(A("ping")), 10s,
        [&](erl::error_code, erl::rpc::call_result r) { cb.set_value(std::move(r)); });
    EXPECT_EQ(cb.get_future().get().value(), erl::term(A("pong")));
    EXPECT_EQ(erl::gen_server::async_call(a, to, erl::term(A("ping")), 10s, asio::use_future)
                  .get()
                  .value(),
              erl::term(A("pong")));
    auto c = asio::co_spawn(
        a.executor(),
        [&]() -> asio::awaitable<erl::rpc::call_result> {
            co_return co_await erl::gen_server::async_call(a, to, erl::term(A("ping")), 10s,
                                                           asio::use_awaitable);
        },
        asio::use_future);
    EXPECT_EQ(c.get().value(), erl::term(A("pong")));
    // Timeout: the exit gen_server:call raises.
    auto r = erl::gen_server::async_call(a, to, erl::term(A("wait")), 1ms, asio::use_future).get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, erl::errc::timeout);
    EXPECT_TRUE(wait_until([&] { return watchers(b, (*srv)->self()) == 0; }));
    // Cancelled while the server holds the call: no monitor left on the server.
    auto strand = asio::make_strand(a.executor());
    asio::cancellation_signal sig;
    auto [h, f] = tuple_future<erl::error_code, erl::rpc::call_result>();
    erl::gen_server::async_call(
        a, to, erl::term(A("wait")), infinity,
        asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(strand, h)));
    ASSERT_TRUE(wait_until([&] { return watchers(b, (*srv)->self()) == 1; }));
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    EXPECT_EQ(std::get<0>(f.get()), asio::error::operation_aborted);
    EXPECT_TRUE(wait_until([&] { return watchers(b, (*srv)->self()) == 0; }));
    // A name nobody registered: noproc.
    r = erl::gen_server::async_call(a, erl::gen_server::dest(A("nobody"), b.name()),
                                    erl::term(A("x")), 10s, asio::use_future)
            .get();
    EXPECT_EQ(r.error().code, erl::errc::noproc);
}

// A coroutine process on a node with one I/O thread awaits an rpc call that does not return
// yet; meanwhile messages from another node keep reaching a second process of the same node
// (they are read by that one thread). The call's answer arrives once released.
TEST_F(RpcAsync, coroutine_awaits_call_on_single_io_thread_while_messages_flow) {
    auto o = erl::test::local_node_options("asyncone", port);
    o.threads = 1;
    erl::node one(o);
    ASSERT_FALSE(one.start());
    auto sink = one.spawn_mailbox();
    auto results = one.spawn_mailbox();
    ASSERT_TRUE(sink && results);
    const erl::pid to = results->self();
    auto spawned = erl::spawn(one, [&, to](erl::process_context& ctx) -> asio::awaitable<void> {
        auto r = co_await erl::rpc::async_call(one, b.name(), A("t"), A("hang"), erl::term(),
                                               infinity, asio::use_awaitable);
        ctx.send(to, r.ok() ? r.value() : r.error().to_term());
    });
    ASSERT_TRUE(spawned);
    ASSERT_TRUE(g.wait_entered(1));
    for (int i = 0; i < 100; ++i) {
        b.send(sink->self(), erl::term(i));
        auto m = sink->receive(10s);
        ASSERT_TRUE(m) << "message " << i << ": " << m.error().message();
        EXPECT_EQ(*m, erl::term(i));
    }
    EXPECT_EQ(results->pending(), 0u);  // the call is still outstanding
    g.release();
    EXPECT_EQ(*results->receive(10s), erl::term(A("released")));
    one.stop();
}

}  // namespace
