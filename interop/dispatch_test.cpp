// Interop: erl::dispatch over mixed clusters of real erl nodes and erlcpp nodes — fair round
// robin, least loaded around a slowed target, failover when a BEAM target is killed with
// SIGKILL, targets from pg groups (a node joining mid-run) and from registered names, per-target
// counters — and the BEAM side: examples/erlang/erlcpp_pool.erl and examples/elixir/
// erlcpp_pool.ex dispatching over C++ gen_servers found through pg.
#include <erl/cluster.hpp>
#include <erl/dispatch.hpp>
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <future>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::quote_atom;
namespace dispatch = erl::dispatch;

namespace {

erl::atom A(std::string_view s) {
    return erl::atom(s);
}

// pool_worker: {work, X} -> {node(), 2 * X}; whoami -> node().
struct pool_worker : erl::gen_server::server {
    erl::atom node;
    explicit pool_worker(erl::atom n) : node(n) {}
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_tuple(2) && req[0].is_atom(A("work")) && req[1].is_small())
            return erl::tuple(node, erl::term(2 * req[1].as_int64()));
        return erl::term(node);
    }
};

// An erlcpp target: rpc (erlang:node/0 built in, work:run/0 sleeping `delay` first), and on
// demand the cluster services, a registered pool_worker and its pg membership.
struct target_node : cpp_node {
    std::unique_ptr<erl::rpc::server> rpc;
    erl::cluster::running cluster;
    std::unique_ptr<erl::gen_server::running> worker;
    std::atomic<int> delay_ms{0};

    explicit target_node(options o) : cpp_node(std::move(o)) {
        rpc = std::make_unique<erl::rpc::server>(*node, erl::rpc::server_options{.threads = 8});
        rpc->add("work", "run", [this]() {
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
            return node->name();
        });
        rpc->add("work", "tell",
                 [this](const erl::pid& to, const erl::term& msg) { node->send(to, msg); });
    }
    void start_worker(bool join_pool) {
        if (join_pool) cluster = std::move(erl::cluster::start(*node, {.rpc = rpc.get()}).value());
        worker = std::move(erl::gen_server::start(
                               *node, std::make_shared<pool_worker>(node->name()), A("pool_worker"))
                               .value());
        if (join_pool) {
            ASSERT_FALSE(erl::pg::join(*node, erl::term(A("erlcpp_pool")), worker->self()));
        }
    }
    ~target_node() {
        worker.reset();
        cluster.stop();
        rpc.reset();
    }
};

// work:run/0 on a BEAM node: sleeps `delay_ms`, returns node().
void load_work(beam_node& b, int delay_ms) {
    b.eval(
        "WorkForms = [begin {ok, WT, _} = erl_scan:string(WS), {ok, WF} = "
        "erl_parse:parse_form(WT), WF end || WS <- [\"-module(work).\", "
        "\"-export([run/0]).\", \"run() -> timer:sleep(" +
        std::to_string(delay_ms) +
        "), node().\"]], {ok, work, WorkBin} = compile:forms(WorkForms), "
        "{module, work} = code:load_binary(work, \"work.erl\", WorkBin)");
}

erl::atom node_of(const beam_node& b) {
    return erl::atom(b.node_name());
}

// Runs `calls` dispatched calls from `threads` threads; counts the answers (a node name) and
// the failures.
struct tally {
    std::mutex mu;
    std::map<erl::atom, int> by_node;
    int failed = 0;
    std::vector<erl::rpc::call_result> failures;
    int retried = 0;
    void add(const dispatch::reply& r) {
        std::lock_guard lk(mu);
        if (r.attempts > 1) retried += static_cast<int>(r.attempts) - 1;
        const erl::term* v = r.result.ok() ? &r.result.value() : nullptr;
        if (v && v->is_atom())
            ++by_node[v->as_atom()];
        else if (v && v->is_tuple(2) && (*v)[0].is_atom())
            ++by_node[(*v)[0].as_atom()];
        else {
            ++failed;
            failures.push_back(r.result);
        }
    }
    int count(erl::atom n) {
        std::lock_guard lk(mu);
        return by_node[n];
    }
    int total() {
        std::lock_guard lk(mu);
        int t = failed;
        for (auto& [k, v] : by_node)
            t += v;
        return t;
    }
};

void run_calls(int threads, int calls, const std::function<dispatch::reply()>& one, tally& t) {
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i)
        ts.emplace_back([&] {
            while (next.fetch_add(1) < calls)
                t.add(one());
        });
    for (auto& th : ts)
        th.join();
}

bool has_target(const std::vector<dispatch::target>& ts, erl::atom node) {
    return std::any_of(ts.begin(), ts.end(),
                       [&](const dispatch::target& t) { return t.node == node; });
}

}  // namespace

class DispatchInterop : public erl::interop::cluster_test {
  protected:
    DispatchInterop() : cluster_test("cppdisp", "beamdisp") {}
};

TEST_F(DispatchInterop, round_robin_spreads_50k_calls_within_5_percent) {
    cpp_node client(cpp_opts());
    target_node c1(cpp_opts());
    beam_node b1(beam_opts()), b2(beam_opts());
    const std::vector<erl::atom> nodes{node_of(b1), node_of(b2), c1.node->name()};
    dispatch::dispatcher d(*client.node, dispatch::targets::nodes(nodes));
    tally t;
    constexpr int calls = 50000;
    run_calls(
        4, calls, [&] { return d.call("erlang", "node", erl::list(), {.idempotent = true}); }, t);
    EXPECT_EQ(t.failed, 0);
    const double fair = calls / 3.0;
    for (auto n : nodes) {
        EXPECT_GT(t.count(n), fair * 0.95) << n.str();
        EXPECT_LT(t.count(n), fair * 1.05) << n.str();
    }
    // Per-target counters agree with what the targets answered.
    auto stats = d.stats();
    ASSERT_EQ(stats.size(), 3u);
    for (auto& s : stats) {
        EXPECT_EQ(s.calls, static_cast<std::uint64_t>(t.count(s.target.node)))
            << s.target.node.str();
        EXPECT_EQ(s.failures, 0u);
        EXPECT_EQ(s.in_flight, 0u);
        EXPECT_GT(s.mean_latency().count(), 0);
        EXPECT_GE(s.latency_max, s.mean_latency());
    }
}

TEST_F(DispatchInterop, least_loaded_sends_a_10x_slower_target_under_a_third_of_its_share) {
    cpp_node client(cpp_opts());
    target_node c1(cpp_opts());
    // 10 ms against 100 ms: long enough that the scheduling delays of a loaded machine (a few
    // ms per call) leave the slow target about ten times slower.
    c1.delay_ms = 10;
    beam_node fast(beam_opts()), slow(beam_opts());
    load_work(fast, 10);
    load_work(slow, 100);
    const std::vector<erl::atom> nodes{node_of(fast), node_of(slow), c1.node->name()};
    dispatch::dispatcher d(*client.node, dispatch::targets::nodes(nodes),
                           {.how = dispatch::strategy::least_loaded});
    tally t;
    constexpr int calls = 900;
    run_calls(
        8, calls, [&] { return d.call("work", "run", erl::list(), {}); }, t);
    EXPECT_EQ(t.failed, 0);
    const double fair = calls / 3.0;
    EXPECT_LT(t.count(node_of(slow)), fair / 3) << "slow got " << t.count(node_of(slow));
    EXPECT_GT(t.count(node_of(fast)) + t.count(c1.node->name()), 2 * fair);

    // The in-flight cap: with one call allowed per target, a second concurrent one is refused
    // at once with the overload error, and nothing is queued.
    dispatch::dispatcher capped(*client.node, dispatch::targets::nodes({node_of(slow)}),
                                {.max_in_flight = 1});
    std::thread busy([&] {
        auto r = capped.call("timer", "sleep", erl::list(erl::term(3000)));
        EXPECT_TRUE(r.result.ok());
    });
    ASSERT_TRUE(
        erl::interop::wait_until([&] { return capped.stats().at(0).in_flight == 1; }, 10s, 5ms));
    auto over = capped.call("erlang", "node", erl::list());
    ASSERT_FALSE(over.result.ok());
    EXPECT_EQ(over.result.error().code, erl::make_error_code(erl::errc::overloaded));
    EXPECT_EQ(over.result.error().reason.to_string(), "{dispatch,overloaded}");
    EXPECT_EQ(over.attempts, 0u);
    busy.join();
    EXPECT_GE(capped.stats().at(0).overloads, 1u);
}

TEST_F(DispatchInterop, kill9_of_a_beam_target_mid_run_loses_no_idempotent_call) {
    cpp_node client(cpp_opts());
    target_node c1(cpp_opts());
    beam_node b1(beam_opts()), victim(beam_opts());
    const erl::atom dead = node_of(victim);
    dispatch::dispatcher d(*client.node,
                           dispatch::targets::nodes({node_of(b1), dead, c1.node->name()}));
    // Calls that must not run twice, in flight on the victim when it dies.
    dispatch::dispatcher pinned(*client.node, dispatch::targets::nodes({dead}));
    std::vector<dispatch::reply> pinned_replies(3);
    std::vector<std::thread> pinned_threads;
    for (auto& r : pinned_replies)
        pinned_threads.emplace_back([&] {
            r = pinned.call("timer", "sleep", erl::list(erl::term(60000)), {.timeout = 30s});
        });

    tally t;
    std::atomic<bool> killed{false};
    std::thread killer([&] {
        // Mid-run: once a quarter of the calls are done and the pinned ones are in flight.
        erl::interop::wait_until([&] { return t.total() >= 1000; }, 60s, 1ms);
        erl::interop::wait_until([&] { return pinned.stats().at(0).in_flight == 3; }, 10s, 1ms);
        victim.kill9();
        killed = true;
    });
    run_calls(
        4, 4000, [&] { return d.call("erlang", "node", erl::list(), {.idempotent = true}); }, t);
    killer.join();
    ASSERT_TRUE(killed);
    EXPECT_EQ(t.failed, 0) << (t.failures.empty() ? "" : t.failures[0].error().to_string());
    EXPECT_EQ(t.total(), 4000);
    EXPECT_GT(t.count(node_of(b1)), 1000);
    EXPECT_GT(t.count(c1.node->name()), 1000);
    // The victim is no target any more.
    EXPECT_TRUE(d.wait_targets([&](const auto& ts) { return !has_target(ts, dead); }, 10s));
    // Calls that failed on it were retried (and counted as its failures).
    for (auto& s : d.stats())
        if (s.target.node == dead) {
            EXPECT_EQ(s.failures, static_cast<std::uint64_t>(t.retried));
        }

    // The non-idempotent calls end with noconnection, long before their 30 s deadline.
    for (auto& th : pinned_threads)
        th.join();
    for (auto& r : pinned_replies) {
        ASSERT_FALSE(r.result.ok());
        EXPECT_EQ(r.result.error().code, erl::make_error_code(erl::errc::noconnection))
            << r.result.error().to_string();
        EXPECT_EQ(r.attempts, 1u);
    }
    // With no live target left, a call fails at once.
    auto none = pinned.call("erlang", "node", erl::list(), {.idempotent = true});
    EXPECT_EQ(none.result.error().code, erl::make_error_code(erl::errc::no_target));
}

// A BEAM node joining the group mid-run gets calls at once: the dispatcher learns of the
// member from the pg sync that follows the nodeup (events, no polling), and the next call
// picks it. Printed: the time from the nodeup on the client (the node became reachable) and
// from the join reaching the dispatcher (target_stats::up_since) to the first answer of the
// new node; only the generous deadline fails the test.
TEST_F(DispatchInterop, pg_group_member_joining_mid_run_gets_calls) {
    cpp_node client(cpp_opts());
    auto client_cluster = erl::cluster::start(*client.node).value();
    target_node c1(cpp_opts());
    c1.start_worker(true);
    beam_node b1(beam_opts());
    const std::string cn = client.quoted_name();
    const std::string join =
        "{ok, _} = pg:start(pg), "
        "spawn(fun() -> pg:join(pg, erlcpp_pool, self()), "
        "receive stop -> ok end end), net_kernel:connect_node(" +
        cn + ")";
    b1.eval(join);
    ASSERT_TRUE(client.node->connect(c1.node->name()) == erl::error_code());
    dispatch::dispatcher d(*client.node,
                           dispatch::targets::pg_group(A("pg"), erl::term(A("erlcpp_pool"))));
    ASSERT_TRUE(d.wait_targets([](const auto& ts) { return ts.size() == 2; }, 20s));

    using clock = std::chrono::steady_clock;
    std::mutex up_mu;
    std::map<erl::atom, clock::time_point> nodeup_at;
    const auto sub = client.node->monitor_nodes([&](const erl::node_event& ev) {
        if (!ev.up) return;
        std::lock_guard lk(up_mu);
        nodeup_at.emplace(ev.node, clock::now());
    });
    std::atomic<bool> stop{false};
    std::optional<erl::atom> late_name;     // set before the new node exists
    std::atomic<clock::rep> first_late{0};  // the first answer of the new node arrived
    clock::time_point first_sent{};         // the call that got it started (under late_mu)
    tally t;
    std::mutex late_mu;
    std::thread caller([&] {
        while (!stop) {
            const auto sent = clock::now();
            auto r = d.call("erlang", "node", erl::list(), {.idempotent = true});
            const auto at = clock::now();
            t.add(r);
            std::lock_guard lk(late_mu);
            if (late_name && r.result.ok() && r.result.value() == erl::term(*late_name) &&
                first_late == 0) {
                first_sent = sent;
                first_late = at.time_since_epoch().count();
            }
        }
    });
    beam_node b2(beam_opts());
    const erl::atom late = node_of(b2);
    {
        std::lock_guard lk(late_mu);
        late_name = late;
    }
    b2.eval(join);
    EXPECT_TRUE(d.wait_targets([&](const auto& ts) { return has_target(ts, late); }, 20s));
    ASSERT_TRUE(erl::interop::wait_until([&] { return first_late != 0; }, 10s, 1ms))
        << "the joined node got no call within 10 s";
    const clock::time_point served{clock::duration(first_late.load())};
    clock::time_point joined{}, up{};
    for (const auto& s : d.stats())
        if (s.target.node == late) joined = s.up_since;
    {
        std::lock_guard lk(up_mu);
        up = nodeup_at.at(late);
    }
    client.node->demonitor_nodes(sub);
    auto us = [](clock::duration x) {
        return std::chrono::duration_cast<std::chrono::microseconds>(x).count();
    };
    clock::time_point sent;
    {
        std::lock_guard lk(late_mu);
        sent = first_sent;
    }
    // The call that reached the new node may have started before the join was seen (the pick
    // happens inside the call): "started" is then negative.
    std::printf(
        "[ latency ] nodeup -> first call served: %lld us; join seen by the dispatcher "
        "-> first call served: %lld us (nodeup -> join seen: %lld us; the serving call "
        "started %lld us after the join was seen and took %lld us)\n",
        static_cast<long long>(us(served - up)), static_cast<long long>(us(served - joined)),
        static_cast<long long>(us(joined - up)), static_cast<long long>(us(sent - joined)),
        static_cast<long long>(us(served - sent)));
    RecordProperty("nodeup_to_first_call_us", std::to_string(us(served - up)));
    RecordProperty("join_to_first_call_us", std::to_string(us(served - joined)));
    EXPECT_LE(up, joined);
    EXPECT_LE(joined, served);
    // The member leaving (its process ends) takes it out again.
    b1.eval("[P ! stop || P <- pg:get_local_members(pg, erlcpp_pool)], ok");
    EXPECT_TRUE(d.wait_targets([&](const auto& ts) { return !has_target(ts, node_of(b1)); }, 20s));
    stop = true;
    caller.join();
    EXPECT_EQ(t.failed, 0);
    EXPECT_GT(t.count(c1.node->name()), 0);
    EXPECT_GT(t.count(node_of(b1)), 0);
    EXPECT_GT(t.count(late), 0);
}

// The completion-token forms over a BEAM node and an erlcpp node: a coroutine process on a
// client with one I/O thread keeps 64 dispatched calls in flight at once (nothing blocks that
// thread), then awaits a gen_server call ({pool_worker, Node}); a callback gives an erpc cast
// to BEAM (erlang:send/2 runs there).
TEST_F(DispatchInterop, async_calls_and_casts_over_beam_and_cpp_targets) {
    cpp_node client(cpp_opts([](erl::node_options& o) { o.threads = 1; }));
    target_node c1(cpp_opts());
    c1.start_worker(false);
    beam_node b1(beam_opts());
    b1.eval(
        "register(pool_worker, spawn(fun Loop() -> receive {'$gen_call', From, {work, X}} -> "
        "gen:reply(From, {node(), 2 * X}), Loop() end end))");
    dispatch::dispatcher d(*client.node, dispatch::targets::nodes({node_of(b1), c1.node->name()}),
                           {.server = A("pool_worker")});
    std::promise<std::map<erl::atom, int>> done;
    ASSERT_TRUE(
        erl::spawn(*client.node, [&](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            std::map<erl::atom, int> by_node;
            constexpr int n = 64;
            int left = n;
            // All in flight together; the completions come back as messages to this process.
            for (int i = 0; i < n; ++i)
                d.async_call(A("erlang"), A("node"), erl::list(), {.idempotent = true},
                             [c = ctx](erl::error_code ec, dispatch::reply r) {
                                 c.send(c.self(), ec || !r.result.ok() ? erl::term(A("failed"))
                                                                       : r.result.value());
                             });
            while (left > 0) {
                auto m = co_await ctx.async_receive(20s);
                if (!m) break;
                --left;
                if (m->is_atom()) ++by_node[m->as_atom()];
            }
            // And one awaited in place.
            auto [ec, r] =
                co_await d.async_gen_call(erl::tuple(A("work"), erl::term(21)), {},
                                          boost::asio::as_tuple(boost::asio::use_awaitable));
            if (!ec && r.result.ok() && r.result.value().is_tuple(2))
                ++by_node[r.result.value()[0].as_atom()];
            done.set_value(std::move(by_node));
        }));
    auto f = done.get_future();
    ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
    auto by_node = f.get();
    EXPECT_EQ(by_node[A("failed")], 0);
    EXPECT_EQ(by_node[node_of(b1)] + by_node[c1.node->name()], 65);
    EXPECT_GE(by_node[node_of(b1)], 32);
    EXPECT_GE(by_node[c1.node->name()], 32);

    // erpc:cast to BEAM: erlang:send/2 runs there.
    auto inbox = client.node->spawn_mailbox(A("inbox")).value();
    dispatch::dispatcher beam_only(*client.node, dispatch::targets::nodes({node_of(b1)}));
    std::promise<erl::error_code> cast;
    beam_only.async_cast(A("erlang"), A("send"),
                         erl::list(erl::tuple(A("inbox"), client.node->name()), A("cast_ran")), {},
                         [&](erl::error_code ec) { cast.set_value(ec); });
    EXPECT_FALSE(cast.get_future().get());
    auto m = inbox.receive(10s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, erl::term(A("cast_ran")));
}

TEST_F(DispatchInterop, registered_name_targets_take_gen_server_calls_and_casts) {
    cpp_node client(cpp_opts());
    target_node c1(cpp_opts()), c2(cpp_opts());
    c1.start_worker(false);
    c2.start_worker(false);
    beam_node b1(beam_opts());  // connected, but pool_worker is not registered there
    for (auto n : {c1.node->name(), c2.node->name(), node_of(b1)})
        ASSERT_FALSE(client.node->connect(n));
    dispatch::dispatcher d(*client.node, dispatch::targets::registered(A("pool_worker")),
                           {.how = dispatch::strategy::random, .seed = 7});
    ASSERT_TRUE(d.wait_targets(
        [&](const auto& ts) {
            return ts.size() == 2 && has_target(ts, c1.node->name()) &&
                   has_target(ts, c2.node->name());
        },
        20s));
    tally t;
    run_calls(
        2, 200,
        [&] { return d.gen_call(erl::tuple(A("work"), erl::term(21)), {.idempotent = true}); }, t);
    EXPECT_EQ(t.failed, 0);
    EXPECT_GT(t.count(c1.node->name()), 50);
    EXPECT_GT(t.count(c2.node->name()), 50);
    // gen_server:cast and erpc:cast go out on a target each.
    auto inbox = client.node->spawn_mailbox(A("inbox")).value();
    for (int i = 0; i < 10; ++i) {
        EXPECT_FALSE(d.gen_cast(erl::term(A("ignored"))));
        EXPECT_FALSE(
            d.cast(A("work"), A("tell"), erl::list(erl::term(inbox.self()), erl::term(i))));
    }
    for (int i = 0; i < 10; ++i)
        EXPECT_TRUE(inbox.receive(10s)) << i;
    // The name going away on c2 drops it (the monitor on {pool_worker, c2} fires).
    c2.worker.reset();
    ASSERT_TRUE(d.wait_targets([&](const auto& ts) { return ts.size() == 1; }, 10s));
    auto r = d.gen_call(erl::term(A("whoami")));
    ASSERT_TRUE(r.result.ok());
    EXPECT_EQ(r.result.value(), erl::term(c1.node->name()));

    // Consistent hashing: one key, one target, every time.
    dispatch::dispatcher h(
        *client.node, dispatch::targets::nodes({c1.node->name(), c2.node->name(), node_of(b1)}),
        {.how = dispatch::strategy::consistent_hash});
    for (int k = 0; k < 5; ++k) {
        std::set<erl::term> seen;
        for (int i = 0; i < 5; ++i) {
            auto x = h.call("erlang", "node", erl::list(), {.key = erl::term(k)});
            ASSERT_TRUE(x.result.ok());
            seen.insert(x.result.value());
        }
        EXPECT_EQ(seen.size(), 1u) << k;
    }
}

TEST_F(DispatchInterop, erlang_and_elixir_pools_dispatch_over_cpp_workers_in_pg) {
    target_node c1(cpp_opts()), c2(cpp_opts());
    c1.start_worker(true);
    c2.start_worker(true);
    const std::string src = ERLCPP_SOURCE_DIR;
    const std::string c1n = c1.quoted_name(), c2n = c2.quoted_name();
    const std::string expected = "[" + std::min(c1n, c2n) + "," + std::max(c1n, c2n) + "]";

    beam_node erl(beam_opts());
    erl.eval("{ok, _} = pg:start(pg), {ok, erlcpp_pool, PoolBin} = compile:file(\"" + src +
             "/examples/erlang/erlcpp_pool.erl\", [binary, return_errors]), "
             "{module, _} = code:load_binary(erlcpp_pool, \"erlcpp_pool.erl\", PoolBin), "
             "net_kernel:connect_node(" +
             c1n + "), net_kernel:connect_node(" + c2n + ")");
    ASSERT_EQ(erl.eval("Wait = fun W(0) -> timeout; W(K) -> case length(pg:get_members(pg, "
                       "erlcpp_pool)) of 2 -> ok; _ -> receive after 20 -> W(K - 1) end end "
                       "end, Wait(500)"),
              "ok");
    EXPECT_EQ(erl.eval("Rs = [erlcpp_pool:call(pg, erlcpp_pool, {work, 21}, 5000) || "
                       "_ <- lists:seq(1, 20)], "
                       "{lists:usort([V || {ok, {_, V}} <- Rs]) =:= [42], "
                       "lists:usort([N || {ok, {N, _}} <- Rs])}"),
              "{true," + expected + "}");
    // A worker's node going away: the calls move to the other one.
    c2.worker.reset();
    c2.node->stop();
    EXPECT_EQ(erl.eval("lists:usort([element(1, element(2, erlcpp_pool:call(pg, erlcpp_pool, "
                       "{work, 1}, 5000))) || _ <- lists:seq(1, 10)]) -- [" +
                       c1n + "]"),
              "[]");

    beam_node ex(beam_opts(true));
    ex.eval(":pg.start(:pg); Code.compile_file(\"" + src +
                "/examples/elixir/erlcpp_pool.ex\"); Node.connect(:\"" + c1.name() + "\")",
            90s);  // compiling Elixir is slow on a loaded machine
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return ex.eval("length(:pg.get_members(:pg, :erlcpp_pool))") == "1"; }, 10s));
    EXPECT_EQ(ex.eval("ErlcppPool.call(:pg, :erlcpp_pool, {:work, 4}, 5000)"),
              "{:ok, {:\"" + c1.name() + "\", 8}}");
}

TEST_F(DispatchInterop, demo_dispatch_spreads_over_a_node_list_and_a_pg_group) {
    erl::interop::demo_child demo(epmd.port(), cookie);
    beam_node b1(beam_opts()), b2(beam_opts());
    const std::string d = demo.quoted_name();
    const std::string n1 = quote_atom(b1.node_name()), n2 = quote_atom(b2.node_name());
    EXPECT_EQ(
        b1.eval("rpc:call(" + d + ", demo, dispatch, [[" + n1 + ", " + n2 +
                "], round_robin, 1000], 60000)"),
        "#{failed => 0,ok => [{" + std::min(n1, n2) + ",500},{" + std::max(n1, n2) + ",500}]}");
    // {pg, Scope, Group}: the demo runs the scope pg; b2 joins a member once it knows the demo.
    b2.eval("{ok, _} = pg:start(pg), net_kernel:connect_node(" + d +
            "), spawn(fun() -> pg:join(pg, dispatch_demo, self()), receive stop -> ok end end)");
    EXPECT_EQ(b1.eval("Members = fun M(0) -> timeout; M(K) -> case rpc:call(" + d +
                      ", demo, pg_members, [pg, dispatch_demo]) of [_] -> ok; _ -> receive after "
                      "20 -> M(K - 1) end end end, Members(500)"),
              "ok");
    for (const char* how : {"least_loaded", "random"})
        EXPECT_EQ(b1.eval("rpc:call(" + d + ", demo, dispatch, [{pg, pg, dispatch_demo}, " + how +
                          ", 200], 60000)"),
                  "#{failed => 0,ok => [{" + n2 + ",200}]}")
            << how;
    EXPECT_EQ(b1.eval("element(1, rpc:call(" + d + ", demo, dispatch, [[], random, 1]))"),
              "badrpc");
}
