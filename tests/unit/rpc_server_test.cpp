// rpc and gen_server between C++ nodes in one process (no BEAM): the registry's conversions,
// the exit-reason shapes erpc expects, rex, the client's mapping of failures, gen_server calls
// with timeouts leaving no monitor behind.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "node/node_core.hpp"

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>
#include <atomic>
#include <thread>

using namespace std::chrono_literals;

namespace {

std::uint16_t free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

erl::node_options opts(std::uint16_t epmd_port) {
    static std::atomic<int> n{0};
    erl::node_options o;
    o.name = "rpcunit_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "@127.0.0.1";
    o.cookie = "rpc_unit_cookie";
    o.epmd_port = epmd_port;
    o.epmd = erl::epmd_mode::in_process;
    o.threads = 2;
    o.log = [](std::string_view) {};
    return o;
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
    auto proc = b.internals().find_name(erl::atom("slow"));
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
