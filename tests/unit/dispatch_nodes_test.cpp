// erl::dispatch and remote spawn between erlcpp nodes of one process: the blocking and the
// completion-token forms (callback, use_future, awaitable) of dispatched calls and casts,
// failover of an idempotent asynchronous call whose node stops under it, cancellation leaving
// the counters straight, pg membership reaching the dispatcher as events, and
// async_spawn / async_spawn_link / async_spawn_monitor with their errors. Built to run under
// ThreadSanitizer as well (scripts/test).
#include <erl/cluster.hpp>
#include <erl/dispatch.hpp>
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "node_test_support.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <set>
#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace dispatch = erl::dispatch;

namespace {

using erl::test::free_port;
using erl::test::wait_until;

erl::atom A(const char* s) {
    return erl::atom(s);
}

// A call that does not return until released; the first one to enter is reported.
struct gate {
    std::promise<void> opened;
    std::shared_future<void> open = opened.get_future().share();
    std::promise<void> first;
    std::atomic<bool> entered{false}, released{false};
    void pass() {
        if (!entered.exchange(true)) first.set_value();
        open.wait();
    }
    bool wait_entered() { return first.get_future().wait_for(10s) == std::future_status::ready; }
    void release() {
        if (!released.exchange(true)) opened.set_value();
    }
};

// who -> the node's name; {work, X} -> {node, 2X}.
struct named_server : erl::gen_server::server {
    erl::atom node;
    explicit named_server(erl::atom n) : node(n) {}
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_tuple(2) && req[1].is_small())
            return erl::tuple(node, erl::term(2 * req[1].as_int64()));
        return erl::term(node);
    }
    void handle_cast(const erl::term& req) override {
        // {tell, Pid}: Pid ! {cast_seen, node}
        if (req.is_tuple(2) && req[1].is_pid())
            self_node->send(req[1].as_pid(), erl::tuple(A("cast_seen"), node));
    }
    erl::node* self_node = nullptr;
};

struct target {
    std::unique_ptr<erl::node> node;
    std::unique_ptr<erl::rpc::server> rpc;
    std::unique_ptr<erl::gen_server::running> srv;
};

class DispatchNodes : public ::testing::Test {
  protected:
    std::uint16_t port = free_port();
    erl::node a{erl::test::local_node_options("dispa", port)};
    target b, c;
    gate g;

    void start_target(target& t, const char* prefix) {
        t.node = std::make_unique<erl::node>(erl::test::local_node_options(prefix, port));
        ASSERT_FALSE(t.node->start());
        t.rpc = std::make_unique<erl::rpc::server>(*t.node, erl::rpc::server_options{.threads = 4});
        erl::node* n = t.node.get();
        t.rpc->add("t", "who", [n]() { return n->name(); });
        t.rpc->add("t", "tell", [n](const erl::pid& to, const erl::term& msg) {
            n->send(to, erl::tuple(msg, n->name()));
        });
        auto s = std::make_shared<named_server>(n->name());
        s->self_node = n;
        t.srv = std::move(erl::gen_server::start(*n, s, A("named")).value());
    }
    void SetUp() override {
        ASSERT_FALSE(a.start());
        start_target(b, "dispb");
        start_target(c, "dispc");
        // On c, t:slow waits for the gate; on b it answers at once.
        c.rpc->add("t", "slow", [this]() {
            g.pass();
            return c.node->name();
        });
        b.rpc->add("t", "slow", [this]() { return b.node->name(); });
        b.rpc->add("t", "hang", [this]() {
            g.pass();
            return b.node->name();
        });
    }
    void TearDown() override {
        g.release();
        for (auto* t : {&b, &c}) {
            t->srv.reset();
            t->rpc.reset();
            if (t->node) t->node->stop();
        }
        a.stop();
    }
    static erl::atom answer_node(const dispatch::reply& r) {
        const auto& v = r.result.value();
        return v.is_atom() ? v.as_atom() : v[0].as_atom();
    }
};

}  // namespace

TEST_F(DispatchNodes, blocking_and_async_calls_take_each_target_in_turn) {
    dispatch::dispatcher d(a, dispatch::targets::nodes({b.node->name(), c.node->name()}));
    // Blocking.
    auto r1 = d.call("t", "who", erl::list());
    auto r2 = d.call("t", "who", erl::list());
    ASSERT_TRUE(r1.result.ok()) << r1.result.error().to_string();
    ASSERT_TRUE(r2.result.ok()) << r2.result.error().to_string();
    EXPECT_EQ(answer_node(r1), b.node->name());
    EXPECT_EQ(answer_node(r2), c.node->name());
    EXPECT_EQ(r1.target->node, b.node->name());
    // Callback: runs on the node's executor, never inline on the calling thread.
    std::promise<std::pair<erl::error_code, dispatch::reply>> cb;
    const auto caller = std::this_thread::get_id();
    d.async_call(A("t"), A("who"), erl::list(), {}, [&](erl::error_code ec, dispatch::reply r) {
        EXPECT_NE(std::this_thread::get_id(), caller);
        cb.set_value({ec, std::move(r)});
    });
    auto [ec3, r3] = cb.get_future().get();
    EXPECT_FALSE(ec3);
    EXPECT_EQ(answer_node(r3), b.node->name());
    // use_future.
    auto r4 = d.async_call(A("t"), A("who"), erl::list(), {}, asio::use_future).get();
    EXPECT_EQ(answer_node(r4), c.node->name());
    // Awaitable, from a coroutine on the node's executor.
    auto f5 = asio::co_spawn(
        a.executor(),
        [&]() -> asio::awaitable<dispatch::reply> {
            auto [ec, r] = co_await d.async_call(A("t"), A("who"), erl::list(), {},
                                                 asio::as_tuple(asio::use_awaitable));
            EXPECT_FALSE(ec);
            co_return r;
        },
        asio::use_future);
    EXPECT_EQ(answer_node(f5.get()), b.node->name());
    // Failures are outcomes: undef on the target.
    auto r6 = d.async_call(A("t"), A("missing"), erl::list(), {}, asio::use_future).get();
    ASSERT_FALSE(r6.result.ok());
    EXPECT_EQ(r6.result.error().class_, A("error"));
    EXPECT_EQ(r6.attempts, 1u);
    std::uint64_t calls = 0;
    for (auto& s : d.stats()) {
        calls += s.calls;
        EXPECT_EQ(s.in_flight, 0u);
    }
    EXPECT_EQ(calls, 6u);
}

TEST_F(DispatchNodes, async_gen_call_and_casts_reach_the_servers) {
    dispatch::dispatcher d(a, dispatch::targets::nodes({b.node->name(), c.node->name()}),
                           {.server = A("named")});
    auto r = d.async_gen_call(erl::tuple(A("work"), erl::term(21)), {}, asio::use_future).get();
    ASSERT_TRUE(r.result.ok()) << r.result.error().to_string();
    EXPECT_EQ(r.result.value(), erl::tuple(b.node->name(), erl::term(42)));
    auto mb = a.spawn_mailbox().value();
    // erpc cast: t:tell(Self, seen) -> {seen, Node}, and a gen_server cast -> {cast_seen, Node}.
    std::promise<erl::error_code> cast_done;
    d.async_cast(A("t"), A("tell"), erl::list(mb.self(), A("seen")), {},
                 [&](erl::error_code ec) { cast_done.set_value(ec); });
    EXPECT_FALSE(cast_done.get_future().get());
    std::promise<erl::error_code> gen_cast_done;
    d.async_gen_cast(erl::tuple(A("tell"), mb.self()), {},
                     [&](erl::error_code ec) { gen_cast_done.set_value(ec); });
    EXPECT_FALSE(gen_cast_done.get_future().get());
    std::set<erl::term> got;
    for (int i = 0; i < 2; ++i) {
        auto m = mb.receive(10s);
        ASSERT_TRUE(m);
        got.insert(*m);
    }
    // Round robin: the gen_call went to b, the cast to c, the gen_cast to b.
    EXPECT_TRUE(got.count(erl::tuple(A("seen"), c.node->name())));
    EXPECT_TRUE(got.count(erl::tuple(A("cast_seen"), b.node->name())));
    // A cast to a node that cannot be reached fails with noconnection.
    dispatch::dispatcher nowhere(a, dispatch::targets::nodes({A("nobody_here@127.0.0.1")}));
    std::promise<erl::error_code> lost;
    nowhere.async_cast(A("t"), A("tell"), erl::list(mb.self(), A("x")), {.timeout = 2s},
                       [&](erl::error_code ec) { lost.set_value(ec); });
    EXPECT_EQ(lost.get_future().get(), erl::errc::noconnection);
    // That failure marked the node down until its next nodeup: nobody is left to try.
    EXPECT_EQ(nowhere.cast(A("t"), A("tell"), erl::list(mb.self(), A("x")), {.timeout = 2s}),
              erl::errc::no_target);
}

TEST_F(DispatchNodes, idempotent_async_call_moves_off_a_node_that_stops_under_it) {
    dispatch::dispatcher d(a, dispatch::targets::nodes({c.node->name(), b.node->name()}));
    auto f = d.async_call(A("t"), A("slow"), erl::list(), {.idempotent = true, .timeout = 30s},
                          asio::use_future);
    ASSERT_TRUE(g.wait_entered());  // in flight on c
    c.node->stop();
    auto r = f.get();
    ASSERT_TRUE(r.result.ok()) << r.result.error().to_string();
    EXPECT_EQ(answer_node(r), b.node->name());
    EXPECT_EQ(r.attempts, 2u);
    EXPECT_EQ(r.target->node, b.node->name());
    for (auto& s : d.stats()) {
        EXPECT_EQ(s.in_flight, 0u);
        if (s.target.node == c.node->name()) {
            EXPECT_EQ(s.failures, 1u);
        }
    }
    // c is down from here on: the next call goes to b without an attempt on c.
    auto next = d.call("t", "who", erl::list());
    EXPECT_EQ(answer_node(next), b.node->name());
    EXPECT_EQ(next.attempts, 1u);
}

TEST_F(DispatchNodes, cancelled_async_call_completes_aborted_and_tries_nobody_else) {
    dispatch::dispatcher d(a, dispatch::targets::nodes({b.node->name(), c.node->name()}));
    auto strand = asio::make_strand(a.executor());
    asio::cancellation_signal sig;
    std::promise<std::pair<erl::error_code, dispatch::reply>> p;
    d.async_call(
        A("t"), A("hang"), erl::list(), {.idempotent = true, .timeout = erl::infinity},
        asio::bind_cancellation_slot(
            sig.slot(), asio::bind_executor(strand, [&](erl::error_code ec, dispatch::reply r) {
                p.set_value({ec, std::move(r)});
            })));
    ASSERT_TRUE(g.wait_entered());
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    auto fut = p.get_future();
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
    auto [ec, r] = fut.get();
    EXPECT_EQ(ec, asio::error::operation_aborted);
    EXPECT_EQ(r.attempts, 0u);
    for (auto& s : d.stats()) {
        EXPECT_EQ(s.in_flight, 0u);
        EXPECT_EQ(s.calls, s.target.node == b.node->name() ? 1u : 0u);
    }
    g.release();
}

TEST_F(DispatchNodes, pg_members_come_and_go_as_events) {
    auto ca = erl::cluster::start(a).value();
    auto cb = erl::cluster::start(*b.node, {.rpc = b.rpc.get()}).value();
    ASSERT_FALSE(a.connect(b.node->name()));
    dispatch::dispatcher d(a, dispatch::targets::pg_group(A("pg"), erl::term(A("pool"))));
    EXPECT_TRUE(d.live_targets().empty());
    EXPECT_EQ(
        d.async_call(A("t"), A("who"), erl::list(), {}, asio::use_future).get().result.error().code,
        erl::errc::no_target);
    ASSERT_FALSE(erl::pg::join(*b.node, erl::term(A("pool")), b.srv->self()));
    ASSERT_TRUE(d.wait_targets([](const auto& ts) { return ts.size() == 1; }, 10s));
    auto r = d.async_gen_call(erl::tuple(A("work"), erl::term(1)), {}, asio::use_future).get();
    ASSERT_TRUE(r.result.ok()) << r.result.error().to_string();
    EXPECT_EQ(r.target->process, std::optional<erl::pid>(b.srv->self()));
    auto left = erl::pg::leave(*b.node, A("pg"), erl::term(A("pool")), {b.srv->self()});
    ASSERT_TRUE(left && *left);
    EXPECT_TRUE(d.wait_targets([](const auto& ts) { return ts.empty(); }, 10s));
    cb.stop();
    ca.stop();
}

// --- remote spawn -------------------------------------------------------------------------

namespace {

class RemoteSpawn : public DispatchNodes {
  protected:
    void SetUp() override {
        DispatchNodes::SetUp();
        // k:run(Parent, Reason): tells Parent {running, self()}, waits for go, exits Reason.
        erl::add_spawnable(*b.node, A("k"), A("run"), 2,
                           [](erl::mailbox& m, std::vector<erl::term> args) {
                               m.send(args[0].as_pid(), erl::tuple(A("running"), m.self()));
                               while (auto msg = m.receive()) {
                                   if (msg->is_atom(A("go"))) throw erl::exit_exception(args[1]);
                               }
                           });
    }
};

}  // namespace

TEST_F(RemoteSpawn, async_spawn_forms_with_each_token) {
    auto mb = a.spawn_mailbox().value();
    mb.trap_exit(true);
    const erl::atom where = b.node->name();
    // async_spawn, callback.
    std::promise<std::pair<erl::error_code, erl::pid>> p1;
    erl::async_spawn(a, where, A("k"), A("run"), erl::list(mb.self(), A("normal")), 10s,
                     [&](erl::error_code ec, erl::pid p) {
                         p1.set_value({ec, p});
                     });
    auto [ec1, pid1] = p1.get_future().get();
    ASSERT_FALSE(ec1) << ec1.message();
    EXPECT_EQ(pid1.node, where);
    auto m1 = mb.receive(10s);
    ASSERT_TRUE(m1);
    EXPECT_EQ(*m1, erl::tuple(A("running"), pid1));
    // async_spawn_link, use_future: the link exists before the process runs.
    auto pid2 = erl::async_spawn_link(mb, where, A("k"), A("run"), erl::list(mb.self(), A("boom")),
                                      10s, asio::use_future)
                    .get();
    ASSERT_EQ(mb.receive(10s), std::optional<erl::term>(erl::tuple(A("running"), pid2)));
    mb.send(pid2, erl::term(A("go")));
    auto exit2 = mb.receive(10s);
    ASSERT_TRUE(exit2);
    EXPECT_EQ(*exit2, erl::tuple(A("EXIT"), pid2, A("boom")));
    // async_spawn_monitor, awaited by a coroutine process with its own handle as the parent.
    std::promise<erl::term> down;
    ASSERT_TRUE(erl::spawn(a, [&, where](erl::process_context& ctx) -> asio::awaitable<void> {
        auto [ec, s] = co_await erl::async_spawn_monitor(ctx.handle(), where, A("k"), A("run"),
                                                         erl::list(ctx.self(), A("bye")), 10s,
                                                         asio::as_tuple(asio::use_awaitable));
        if (ec) {
            down.set_value(erl::term(A("spawn_failed")));
            co_return;
        }
        auto running = co_await ctx.async_receive(10s);
        if (!running) {
            down.set_value(erl::term(A("no_running")));
            co_return;
        }
        ctx.send(s.pid, erl::term(A("go")));
        auto d = co_await ctx.async_receive(10s);
        // {'DOWN', Ref, process, Pid, bye} with the request id as Ref.
        if (d && d->is_tuple(5) && (*d)[1] == erl::term(s.monitor) && (*d)[3] == erl::term(s.pid))
            down.set_value((*d)[4]);
        else
            down.set_value(d ? *d : erl::term(A("no_down")));
    }));
    auto df = down.get_future();
    ASSERT_EQ(df.wait_for(20s), std::future_status::ready);
    EXPECT_EQ(df.get(), erl::term(A("bye")));
}

TEST_F(RemoteSpawn, errors_are_values_in_both_forms) {
    auto mb = a.spawn_mailbox().value();
    const erl::atom where = b.node->name();
    // No such kind on an erlcpp node: notsup.
    auto r = erl::spawn(a, where, A("k"), A("nothing"), erl::list());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), erl::errc::notsup);
    std::promise<erl::error_code> p;
    erl::async_spawn_link(mb, where, A("k"), A("nothing"), erl::list(), 10s,
                          [&](erl::error_code ec, erl::pid) { p.set_value(ec); });
    EXPECT_EQ(p.get_future().get(), erl::errc::notsup);
    // Not a proper list: badarg, before anything is sent.
    std::promise<erl::error_code> bad;
    erl::async_spawn_monitor(mb, where, A("k"), A("run"), erl::term(A("x")), 10s,
                             [&](erl::error_code ec, erl::spawned) { bad.set_value(ec); });
    EXPECT_EQ(bad.get_future().get(), erl::errc::badarg);
    EXPECT_EQ(erl::spawn_monitor(mb, where, A("k"), A("run"), erl::term(A("x"))).error(),
              erl::errc::badarg);
    // A node that is not there: noconnection.
    std::promise<erl::error_code> q;
    erl::async_spawn(a, A("nobody_here@127.0.0.1"), A("k"), A("run"), erl::list(), 5s,
                     [&](erl::error_code ec, erl::pid) { q.set_value(ec); });
    EXPECT_EQ(q.get_future().get(), erl::errc::noconnection);
    // On the own node the local kind is started.
    erl::add_spawnable(a, A("k"), A("here"), 0, [](erl::mailbox&, std::vector<erl::term>) {});
    auto own =
        erl::async_spawn(a, a.name(), A("k"), A("here"), erl::list(), 5s, asio::use_future).get();
    EXPECT_EQ(own.node, a.name());
}
