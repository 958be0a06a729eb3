// rpc and gen_server between C++ nodes in one process (no BEAM): the registry's conversions,
// the exit-reason shapes erpc expects, rex, the client's mapping of failures, gen_server calls
// with timeouts leaving no monitor behind.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "node/test_access.hpp"

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include "node_test_support.hpp"

#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;

erl::node_options opts(std::uint16_t epmd_port) {
    return erl::test::local_node_options("rpcunit", "rpc_unit_cookie", epmd_port);
}

void register_test_functions(erl::rpc::server& r) {
    r.add("t", "add", [](std::int64_t a, std::int64_t b) { return a + b; });
    r.add("t", "len", [](const std::vector<std::int64_t>& v) { return v.size(); });
    r.add("t", "hello", [](const std::string& who) { return "hello " + who; });
    r.add("t", "nothing", [] {});
    r.add("t", "err", [](const erl::term& t) -> erl::term { erl::rpc::raise_error(t); });
    r.add("t", "ex", [](const erl::term& t) -> erl::term { erl::rpc::raise_exit(t); });
    r.add("t", "thr", [](const erl::term& t) -> erl::term { erl::rpc::raise_throw(t); });
    r.add("t", "nap",
          [](erl::rpc::call_context& ctx, std::int64_t ms) -> boost::asio::awaitable<std::string> {
              boost::asio::steady_timer tm(ctx.executor(), std::chrono::milliseconds(ms));
              co_await tm.async_wait(boost::asio::use_awaitable);
              co_return "rested";
          });
    r.add_raw(erl::atom("t"), erl::atom("raw"), 2,
              [](erl::rpc::call_context&, std::span<const erl::term> a) {
                  return erl::make_tuple({a[1], a[0]});
              });
}

struct RpcServer : ::testing::Test {
    std::uint16_t port = free_port();
    erl::node a{opts(port)};
    erl::node b{opts(port)};
    std::unique_ptr<erl::rpc::server> rb;
    void SetUp() override {
        ASSERT_FALSE(a.start());
        ASSERT_FALSE(b.start());
        rb = std::make_unique<erl::rpc::server>(b);
        register_test_functions(*rb);
    }
    void TearDown() override {
        rb.reset();
        a.stop();
        b.stop();
    }
    std::string call(const char* m, const char* f, erl::term args,
                     std::chrono::milliseconds t = 5s) {
        return erl::rpc::call(a, b.name(), m, f, std::move(args), t).to_term().to_string();
    }
};

}  // namespace

TEST_F(RpcServer, typed_handlers_convert_arguments_and_results) {
    EXPECT_EQ(call("t", "add", erl::list(40, 2)), "{ok,42}");
    EXPECT_EQ(call("t", "len", erl::list(erl::list(1, 2, 3))), "{ok,3}");
    EXPECT_EQ(call("t", "hello", erl::list(erl::binary("you"))),
              erl::tuple(erl::atoms::ok(), erl::binary("hello you")).to_string());
    EXPECT_EQ(call("t", "hello", erl::list(erl::charlist("me"))),
              erl::tuple(erl::atoms::ok(), erl::binary("hello me")).to_string());
    EXPECT_EQ(call("t", "nothing", erl::term()), "{ok,ok}");
    EXPECT_EQ(call("t", "raw", erl::list(1, 2)), "{ok,{2,1}}");
    EXPECT_EQ(call("t", "nap", erl::list(5)),
              erl::tuple(erl::atoms::ok(), erl::binary("rested")).to_string());
}

TEST_F(RpcServer, failures_have_erpc_shapes) {
    EXPECT_EQ(call("t", "add", erl::list(1, erl::atom("x"))),
              "{error,{exception,badarg,[{t,add,[1,x],[]}]}}");
    EXPECT_EQ(call("t", "add", erl::list(1)), "{error,{exception,undef,[{t,add,[1],[]}]}}");
    EXPECT_EQ(call("t", "err", erl::list(erl::atom("boom"))),
              "{error,{exception,boom,[{t,err,1,[]}]}}");
    EXPECT_EQ(call("t", "ex", erl::list(erl::atom("bye"))), "{exit,{exception,bye}}");
    EXPECT_EQ(call("t", "thr", erl::list(erl::atom("ball"))), "{throw,ball}");
    auto r = erl::rpc::call(a, b.name(), "t", "nap", erl::list(2000), 50ms);
    EXPECT_EQ(r.to_term().to_string(), "{error,{erpc,timeout}}");
    EXPECT_EQ(r.error().code, make_error_code(erl::errc::timeout));
    EXPECT_EQ(r.to_rpc_term().to_string(), "{badrpc,timeout}");
}

TEST_F(RpcServer, rpc_call_forms_match_rpc_erl) {
    auto r = erl::rpc::call(a, b.name(), "t", "err", erl::list(erl::atom("boom")));
    EXPECT_EQ(r.to_rpc_term().to_string(), "{badrpc,{'EXIT',{boom,[{t,err,1,[]}]}}}");
    r = erl::rpc::call(a, b.name(), "t", "ex", erl::list(erl::atom("bye")));
    EXPECT_EQ(r.to_rpc_term().to_string(), "{badrpc,{'EXIT',bye}}");
    r = erl::rpc::call(a, b.name(), "t", "thr", erl::list(erl::atom("v")));
    EXPECT_EQ(r.to_rpc_term().to_string(), "v");
    EXPECT_THROW((void)r.value(), erl::rpc::erlang_exception);
}

TEST_F(RpcServer, multicall_local_and_remote_and_builtins) {
    auto rs = erl::rpc::multicall(a, {b.name(), a.name()}, erl::atom("erlang"), erl::atom("node"),
                                  erl::term());
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].to_term(), erl::tuple(erl::atoms::ok(), b.name()));
    // `a` has no rpc server: a call to itself is undef, as on a node without the module.
    EXPECT_EQ(rs[1].to_rpc_term().to_string(), "{badrpc,{'EXIT',{undef,[{erlang,node,[],[]}]}}}");
    EXPECT_FALSE(erl::rpc::cast(a, b.name(), erl::atom("t"), erl::atom("nothing"), erl::term()));
}

TEST_F(RpcServer, rex_answers_plain_and_gen_call_forms) {
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    const erl::atom rex("rex"), user("user");
    mb->send(rex, b.name(),
             erl::tuple(mb->self_term(), erl::tuple(erl::atom("call"), erl::atom("t"),
                                                    erl::atom("add"), erl::list(1, 2), user)));
    auto m = mb->receive(5s);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->to_string(), "{rex,3}");
    const auto ref = a.make_ref();
    mb->send(rex, b.name(),
             erl::tuple(erl::atom("$gen_call"), erl::tuple(mb->self_term(), ref),
                        erl::tuple(erl::atom("call"), erl::atom("t"), erl::atom("err"),
                                   erl::list(erl::atom("x")), user)));
    m = mb->receive(5s);
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->is_tuple(2));
    EXPECT_EQ((*m)[0], erl::term(ref));
    EXPECT_EQ((*m)[1].to_string(), "{badrpc,{'EXIT',{x,[{t,err,1,[]}]}}}");
}

namespace {
struct slow_server : erl::gen_server::server {
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_small()) std::this_thread::sleep_for(std::chrono::milliseconds(req.as_int64()));
        return erl::tuple(erl::atom("echo"), req);
    }
};
}  // namespace

TEST_F(RpcServer, gen_server_call_timeout_leaves_no_monitor) {
    auto srv = erl::gen_server::start(b, std::make_shared<slow_server>(), erl::atom("slow"));
    ASSERT_TRUE(srv);
    const erl::gen_server::dest d(erl::atom("slow"), b.name());
    auto r = erl::gen_server::call(a, d, erl::atom("hi"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value().to_string(), "{echo,hi}");
    r = erl::gen_server::call(a, d, erl::term(300), 50ms);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, make_error_code(erl::errc::timeout));
    std::this_thread::sleep_for(400ms);
    auto proc = erl::test::core_of(b).find_name(erl::atom("slow"));
    ASSERT_TRUE(proc);
    {
        std::lock_guard lk(proc->mu);
        EXPECT_TRUE(proc->watchers.empty());
    }
    r = erl::gen_server::call(a, d, erl::atom("again"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value().to_string(), "{echo,again}");
    r = erl::gen_server::call(a, erl::gen_server::dest(erl::atom("none"), b.name()),
                              erl::atom("x"));
    EXPECT_EQ(r.error().code, make_error_code(erl::errc::noproc));
}

// --- run_on::io_thread: inline handlers give exactly the pool's answers -----------------------

namespace {

// The same functions as module `t` (pool), registered as module `ti` running inline.
void register_inline_functions(erl::rpc::server& r) {
    const erl::rpc::function_options io{.run = erl::rpc::run_on::io_thread};
    r.add(
        "ti", "add", [](std::int64_t a, std::int64_t b) { return a + b; }, io);
    r.add(
        "ti", "len", [](const std::vector<std::int64_t>& v) { return v.size(); }, io);
    r.add(
        "ti", "hello", [](const std::string& who) { return "hello " + who; }, io);
    r.add(
        "ti", "nothing", [] {}, io);
    r.add(
        "ti", "err", [](const erl::term& t) -> erl::term { erl::rpc::raise_error(t); }, io);
    r.add(
        "ti", "ex", [](const erl::term& t) -> erl::term { erl::rpc::raise_exit(t); }, io);
    r.add(
        "ti", "thr", [](const erl::term& t) -> erl::term { erl::rpc::raise_throw(t); }, io);
    r.add_raw(
        erl::atom("ti"), erl::atom("raw"), 2,
        [](erl::rpc::call_context&, std::span<const erl::term> a) {
            return erl::make_tuple({a[1], a[0]});
        },
        io);
    r.add("t", "cpp", []() -> erl::term { throw std::runtime_error("plain failure"); });
    r.add(
        "ti", "cpp", []() -> erl::term { throw std::runtime_error("plain failure"); }, io);
    r.add("t", "who", [](erl::rpc::call_context& ctx) {
        return erl::tuple(erl::atom(ctx.module()), erl::atom(ctx.function()), ctx.args(),
                          ctx.caller().is_pid(), ctx.self().node, ctx.cancelled());
    });
    r.add(
        "ti", "who",
        [](erl::rpc::call_context& ctx) {
            return erl::tuple(erl::atom("t"), erl::atom(ctx.function()), ctx.args(),
                              ctx.caller().is_pid(), ctx.self().node, ctx.cancelled());
        },
        io);
}

// Replaces module `ti` by `t` so inline and pool answers (stacks name the module) compare.
std::string as_t(std::string s) {
    for (std::size_t i = 0; (i = s.find("{ti,", i)) != std::string::npos;)
        s.replace(i, 4, "{t,");
    return s;
}

}  // namespace

TEST_F(RpcServer, inline_handlers_answer_exactly_as_pool_handlers) {
    register_inline_functions(*rb);
    struct c {
        const char* f;
        erl::term args;
    };
    const std::vector<c> calls = {
        {"add", erl::list(40, 2)},
        {"add", erl::list(1, erl::atom("x"))},                  // badarg
        {"add", erl::list(1)},                                  // undef (no add/1)
        {"add", erl::make_list({erl::term(1)}, erl::term(2))},  // improper list: badarg
        {"len", erl::list(erl::list(1, 2, 3))},
        {"hello", erl::list(erl::binary("you"))},
        {"nothing", erl::term()},
        {"err", erl::list(erl::atom("boom"))},
        {"ex", erl::list(erl::atom("bye"))},
        {"thr", erl::list(erl::atom("ball"))},
        {"raw", erl::list(1, 2)},
        {"cpp", erl::term()},
        {"who", erl::term()},
        {"nosuch", erl::list(1)},
    };
    for (const auto& x : calls) {
        SCOPED_TRACE(std::string(x.f) + " " + x.args.to_string());
        auto pool = erl::rpc::call(a, b.name(), erl::atom("t"), erl::atom(x.f), x.args, 5s);
        auto io = erl::rpc::call(a, b.name(), erl::atom("ti"), erl::atom(x.f), x.args, 5s);
        EXPECT_EQ(as_t(io.to_term().to_string()), pool.to_term().to_string());
        EXPECT_EQ(as_t(io.to_rpc_term().to_string()), pool.to_rpc_term().to_string());
        EXPECT_NE(io.to_term().to_string(), "{error,{erpc,timeout}}");
    }
    EXPECT_EQ(call("ti", "add", erl::list(40, 2)), "{ok,42}");
    EXPECT_EQ(call("ti", "err", erl::list(erl::atom("boom"))),
              "{error,{exception,boom,[{ti,err,1,[]}]}}");
    // erpc:cast and rex reach inline functions too.
    EXPECT_FALSE(erl::rpc::cast(a, b.name(), erl::atom("ti"), erl::atom("nothing"), erl::term()));
    auto mb = a.spawn_mailbox();
    ASSERT_TRUE(mb);
    const erl::atom rex("rex"), user("user");
    for (const char* mod : {"t", "ti"}) {
        mb->send(rex, b.name(),
                 erl::tuple(mb->self_term(),
                            erl::tuple(erl::atom("call"), erl::atom(mod), erl::atom("err"),
                                       erl::list(erl::atom("x")), user)));
        auto m = mb->receive(5s);
        ASSERT_TRUE(m);
        EXPECT_EQ(as_t(m->to_string()), "{rex,{badrpc,{'EXIT',{x,[{t,err,1,[]}]}}}}");
    }
}

TEST_F(RpcServer, coroutine_handlers_cannot_run_inline) {
    EXPECT_THROW(rb->add("t", "co", []() -> boost::asio::awaitable<int> { co_return 1; },
                         {.run = erl::rpc::run_on::io_thread}),
                 std::invalid_argument);
    EXPECT_FALSE(rb->contains(erl::atom("t"), erl::atom("co"), 0));
}

TEST_F(RpcServer, blocked_pool_handler_does_not_stall_inline_calls) {
    register_inline_functions(*rb);
    // A pool handler that blocks until the inline calls below have all been answered: if
    // either path waited for the other this would deadlock (and the calls time out).
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, release = false;
    rb->add("t", "gate", [&] {
        std::unique_lock lk(mu);
        entered = true;
        cv.notify_all();
        cv.wait(lk, [&] { return release; });
        return erl::atom("opened");
    });
    std::thread blocked([&] {
        auto r = erl::rpc::call(a, b.name(), "t", "gate", erl::term(), 20s);
        EXPECT_EQ(r.to_term().to_string(), "{ok,opened}");
    });
    {
        std::unique_lock lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return entered; }));
    }
    for (int i = 0; i < 50; ++i)
        EXPECT_EQ(call("ti", "add", erl::list(i, 1), 5s), "{ok," + std::to_string(i + 1) + "}");
    {
        std::lock_guard lk(mu);
        release = true;
    }
    cv.notify_all();
    blocked.join();
}

TEST_F(RpcServer, server_destructor_waits_for_inline_handler) {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, release = false, finished = false;
    rb->add("t", "hold",
            [&] {
                std::unique_lock lk(mu);
                entered = true;
                cv.notify_all();
                cv.wait(lk, [&] { return release; });
                finished = true;
                return 1;
            },
            {.run = erl::rpc::run_on::io_thread});
    std::thread caller([&] { (void)erl::rpc::call(a, b.name(), "t", "hold", erl::term(), 10s); });
    {
        std::unique_lock lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return entered; }));
    }
    std::atomic<bool> destroyed{false};
    std::thread killer([&] {
        rb.reset();
        destroyed = true;
        std::lock_guard lk(mu);
        EXPECT_TRUE(finished);  // the handler (and what it captured) is done before ~server ends
    });
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(destroyed.load());
    {
        std::lock_guard lk(mu);
        release = true;
    }
    cv.notify_all();
    killer.join();
    caller.join();
    EXPECT_TRUE(destroyed.load());
}

// --- gen_server start_options::run_inline: the threaded server's answers, no thread ------------

namespace {
struct recording_server : erl::gen_server::server {
    std::shared_ptr<std::atomic<int>> terminated = std::make_shared<std::atomic<int>>(0);
    std::shared_ptr<erl::term> last_reason = std::make_shared<erl::term>();
    std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
    erl::term n{0};
    bool inited = false;
    void init() override { inited = true; }
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_atom(erl::atom("get"))) return n;
        if (req.is_atom(erl::atom("inited"))) return erl::term(inited);
        if (req.is_atom(erl::atom("crash"))) erl::rpc::raise_error(erl::atom("crashed"));
        if (req.is_atom(erl::atom("quit"))) {
            stop(erl::atom("quitting"));
            return erl::atom("bye");
        }
        if (req.is_tuple(2) && req[0].is_atom(erl::atom("add"))) return n = *erl::add(n, req[1]);
        return std::nullopt;  // never answered: the caller times out
    }
    void handle_cast(const erl::term& req) override {
        if (req.is_atom(erl::atom("reset"))) n = erl::term(0);
    }
    void handle_info(const erl::term& msg) override { n = erl::tuple(erl::atom("info"), msg); }
    void terminate(const erl::term& reason) override {
        std::lock_guard lk(*mu);
        *last_reason = reason;
        ++*terminated;
    }
};

bool wait_for(const std::function<bool()>& f, std::chrono::milliseconds t = 5s) {
    const auto end = std::chrono::steady_clock::now() + t;
    while (!f()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}
}  // namespace

TEST_F(RpcServer, inline_gen_server_answers_as_threaded_one) {
    std::vector<std::string> answers[2];
    for (int variant = 0; variant < 2; ++variant) {
        SCOPED_TRACE(variant ? "inline" : "threaded");
        auto impl = std::make_shared<recording_server>();
        const erl::atom name("ctr");  // the same name: failure reasons quote it
        auto srv = erl::gen_server::start(b, impl, name, {.run_inline = variant == 1});
        ASSERT_TRUE(srv);
        auto& out = answers[variant];
        const erl::gen_server::dest remote(name, b.name());
        auto call = [&](erl::term req, std::chrono::milliseconds t = 5s) {
            return erl::gen_server::call(a, remote, std::move(req), t).to_term().to_string();
        };
        out.push_back(call(erl::atom("inited")));
        out.push_back(call(erl::tuple(erl::atom("add"), 5)));
        out.push_back(call(erl::tuple(erl::atom("add"), 2)));
        // Local callers (same node) too: the message is handled on the caller's thread.
        out.push_back(erl::gen_server::call(b, erl::gen_server::dest(name), erl::atom("get"))
                          .to_term()
                          .to_string());
        erl::gen_server::cast(a, remote, erl::atom("reset"));
        out.push_back(call(erl::atom("get")));  // the cast came first on the same connection
        auto mb = a.spawn_mailbox();
        ASSERT_TRUE(mb);
        mb->send(name, b.name(), erl::atom("ping"));
        out.push_back(call(erl::atom("get")));
        auto late = erl::gen_server::call(a, remote, erl::atom("unknown"), 50ms);
        EXPECT_EQ(late.error().code, make_error_code(erl::errc::timeout));
        // Taken names fail for both.
        auto dup = erl::gen_server::start(b, std::make_shared<recording_server>(), name,
                                          {.run_inline = variant == 1});
        EXPECT_FALSE(dup);
        if (!dup) EXPECT_EQ(dup.error(), make_error_code(erl::errc::name_taken));
        // A callback that raises ends the server: terminate gets the reason, callers see it.
        out.push_back(call(erl::atom("crash")));
        EXPECT_TRUE(wait_for([&] { return impl->terminated->load() == 1; }));
        {
            std::lock_guard lk(*impl->mu);
            out.push_back(impl->last_reason->to_string());
        }
        EXPECT_TRUE(wait_for([&] { return !(*srv)->alive(); }));
        srv->reset();
        EXPECT_EQ(impl->terminated->load(), 1);  // once
    }
    EXPECT_EQ(answers[1], answers[0]);
    ASSERT_EQ(answers[0].size(), 8u);
    EXPECT_EQ(answers[0][0], "{ok,true}");
    EXPECT_EQ(answers[0][1], "{ok,5}");
    EXPECT_EQ(answers[0][2], "{ok,7}");
    EXPECT_EQ(answers[0][3], "{ok,7}");
    EXPECT_EQ(answers[0][4], "{ok,0}");
    EXPECT_EQ(answers[0][5], "{ok,{info,ping}}");
    EXPECT_EQ(answers[0][7], "{crashed,[]}");
}

TEST_F(RpcServer, inline_gen_server_stop_and_kill_run_terminate_once) {
    // stop() from the owner, and a stop requested by a callback.
    auto impl = std::make_shared<recording_server>();
    auto srv = erl::gen_server::start(b, impl, erl::atom("ctr_stop"), {.run_inline = true});
    ASSERT_TRUE(srv);
    (*srv)->stop(erl::atom("shutdown"));
    EXPECT_EQ(impl->terminated->load(), 1);
    EXPECT_EQ(impl->last_reason->to_string(), "shutdown");
    EXPECT_FALSE((*srv)->alive());
    EXPECT_FALSE(erl::test::core_of(b).find_name(erl::atom("ctr_stop")));
    srv->reset();
    EXPECT_EQ(impl->terminated->load(), 1);

    impl = std::make_shared<recording_server>();
    srv = erl::gen_server::start(b, impl, erl::atom("ctr_quit"), {.run_inline = true});
    ASSERT_TRUE(srv);
    auto r = erl::gen_server::call(a, erl::gen_server::dest(erl::atom("ctr_quit"), b.name()),
                                   erl::atom("quit"));
    EXPECT_EQ(r.to_term().to_string(), "{ok,bye}");
    EXPECT_TRUE(wait_for([&] { return impl->terminated->load() == 1; }));
    EXPECT_EQ(impl->last_reason->to_string(), "quitting");
    srv->reset();
    EXPECT_EQ(impl->terminated->load(), 1);

    // Killed by an exit signal from another node.
    impl = std::make_shared<recording_server>();
    srv = erl::gen_server::start(b, impl, erl::atom("ctr_kill"), {.run_inline = true});
    ASSERT_TRUE(srv);
    auto killer = a.spawn_mailbox();
    ASSERT_TRUE(killer);
    killer->exit((*srv)->self(), erl::atom("kill"));
    EXPECT_TRUE(wait_for([&] { return impl->terminated->load() == 1; }));
    EXPECT_EQ(impl->last_reason->to_string(), "killed");
    srv->reset();
    EXPECT_EQ(impl->terminated->load(), 1);
}

TEST_F(RpcServer, erpc_cast_spawn_replies_are_dropped_not_queued) {
    // erpc:cast asks for no reply ({reply, no}); the SPAWN_REPLY b sends anyway must not pile
    // up in the queue of the process that cast (the node's own process here).
    for (int i = 0; i < 20; ++i)
        ASSERT_FALSE(erl::rpc::cast(a, b.name(), erl::atom("t"), erl::atom("add"),
                                    erl::make_list({erl::term(1), erl::term(2)})));
    // b answers requests on one connection in order: once this call's result is back, every
    // SPAWN_REPLY of the casts above has reached a.
    EXPECT_EQ(call("t", "add", erl::make_list({erl::term(2), erl::term(3)})), "{ok,5}");
    const auto& np = erl::test::core_of(a).node_process;
    std::lock_guard lk(np->mu);
    EXPECT_TRUE(np->queue.empty()) << np->queue.size() << " messages queued";
}

TEST_F(RpcServer, calls_without_a_deadline_complete) {
    // erl::infinity: the connection set-up has its own deadline; no clock arithmetic overflows.
    auto r = erl::rpc::call(a, b.name(), erl::atom("t"), erl::atom("add"),
                            erl::make_list({erl::term(1), erl::term(2)}), erl::infinity);
    EXPECT_EQ(r.to_term().to_string(), "{ok,3}");
}
