// demo_plugin: an example C++ module for erl::code::server, built twice
// (build/plugins/v1/demo_plugin.so and build/plugins/v2/demo_plugin.so, DEMO_PLUGIN_VERSION).
//
//     %% in erl, against erlcpp-demo --code-path build/plugins/v1:
//     rpc:call(N, demo_plugin, version, [])                       -> 1
//     rpc:call(N, code, add_patha, ["build/plugins/v2"]),
//     rpc:call(N, code, load_file, [demo_plugin])                 -> {module, demo_plugin}
//     rpc:call(N, demo_plugin, version, [])                       -> 2
#include <erl/module.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#define DEMO_PLUGIN_STR2(x) #x
#define DEMO_PLUGIN_STR(x) DEMO_PLUGIN_STR2(x)

ERLCPP_MODULE(demo_plugin, DEMO_PLUGIN_STR(DEMO_PLUGIN_VERSION)) {
    r.add("version", [] { return DEMO_PLUGIN_VERSION; });
    // Version 2 greets differently: the text shows which code answered.
    r.add("greet", [](const std::string& who) {
#if DEMO_PLUGIN_VERSION == 1
        return "hello " + who;
#else
        return "hello " + who + ", from version 2";
#endif
    });
    // Waits Ms milliseconds without holding a pool thread, then returns the version that ran
    // the call: a call started before an upgrade answers with the old version.
    r.add("slow_version",
          [](erl::rpc::call_context& ctx, std::int64_t ms) -> boost::asio::awaitable<std::int64_t> {
              boost::asio::steady_timer t(ctx.executor(), std::chrono::milliseconds(ms));
              co_await t.async_wait(boost::asio::use_awaitable);
              co_return DEMO_PLUGIN_VERSION;
          });
}
