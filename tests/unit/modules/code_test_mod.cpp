// A C++ module for the code server's tests, built in several versions (CODE_TEST_MOD_VERSION).
// Version 3 declares a name that differs from its file name (code_test_misnamed.so).
#include <erl/mailbox.hpp>
#include <erl/module.hpp>
#include <erl/node.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#if CODE_TEST_MOD_VERSION == 3
#define CODE_TEST_MOD_NAME code_test_other
#else
#define CODE_TEST_MOD_NAME code_test_mod
#endif

namespace {
// Static data of this version: each loaded version has its own copy.
int calls_served = 0;
}  // namespace

#define CODE_TEST_STR2(x) #x
#define CODE_TEST_STR(x) CODE_TEST_STR2(x)

ERLCPP_MODULE(CODE_TEST_MOD_NAME, CODE_TEST_STR(CODE_TEST_MOD_VERSION)) {
    r.add("version", [] { return CODE_TEST_MOD_VERSION; });
    r.add("count", [] { return ++calls_served; });
    r.add("fail", [](std::int64_t n) -> std::int64_t {
        if (n == 0) erl::rpc::raise_error(erl::atom("zero"));
        throw std::runtime_error("not zero: " + std::to_string(n));
    });
#if CODE_TEST_MOD_VERSION == 1
    // Only in version 1: after loading version 2, new calls are undef.
    r.add("only_v1", [] { return erl::atom("yes"); });
#endif
    // Tells `who` {entered, P, Version} from a fresh process P, then waits until P receives a
    // message (returns Version) or the call is cancelled (purge killed it; returns `cancelled`,
    // which the caller never sees).
    r.add("block", [](erl::rpc::call_context& ctx, const erl::term& who) -> erl::term {
        auto mb = ctx.node().spawn_mailbox();
        if (!mb || !who.is_pid()) erl::rpc::raise_error(erl::atom("badarg"));
        mb->send(who.as_pid(),
                 erl::tuple(erl::atom("entered"), mb->self(), std::int64_t{CODE_TEST_MOD_VERSION}));
        while (!ctx.cancelled())
            if (mb->receive(std::chrono::milliseconds(20)))
                return erl::term(std::int64_t{CODE_TEST_MOD_VERSION});
        return erl::term(erl::atom("cancelled"));
    });
    r.add("nap",
          [](erl::rpc::call_context& ctx, std::int64_t ms) -> boost::asio::awaitable<std::int64_t> {
              boost::asio::steady_timer t(ctx.executor(), std::chrono::milliseconds(ms));
              co_await t.async_wait(boost::asio::use_awaitable);
              co_return CODE_TEST_MOD_VERSION;
          });
}
