// demo_plugin: an example C++ module for erl::code::server, built twice
// (build/plugins/v1/demo_plugin.so and build/plugins/v2/demo_plugin.so, DEMO_PLUGIN_VERSION).
//
//     %% in erl, against erlcpp-demo --code-path build/plugins/v1:
//     rpc:call(N, demo_plugin, version, [])                       -> 1
//     rpc:call(N, code, add_patha, ["build/plugins/v2"]),
//     rpc:call(N, code, load_file, [demo_plugin])                 -> {module, demo_plugin}
//     rpc:call(N, demo_plugin, version, [])                       -> 2
//
// It also holds the gen_server `demo_plugin_server`, a counter whose state each version keeps
// differently: version 1 an integer Count, version 2 a map #{count => Count, history => Adds}
// (the amounts added since the upgrade, newest first). Upgrading the running server
// (docs/hot-code.md):
//
//     sys:suspend({demo_plugin_server, N}),
//     rpc:call(N, code, load_file, [demo_plugin]),                    %% version 2 on the path
//     ok = sys:change_code({demo_plugin_server, N}, demo_plugin, "1", []),
//     sys:resume({demo_plugin_server, N}),
//     sys:get_state({demo_plugin_server, N})                          -> #{count => C, history =>
//     []}
//
// and back with OldVsn {down, "1"} once version 1 is current again.
#include <erl/module.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#define DEMO_PLUGIN_STR2(x) #x
#define DEMO_PLUGIN_STR(x) DEMO_PLUGIN_STR2(x)

namespace {

// gen_server:call({demo_plugin_server, N}, Request):
//   get -> Count;  {add, K} -> the new Count;  version -> 1 or 2;  history (version 2) -> Adds
struct plugin_server : erl::gen_server::server {
    std::int64_t count = 0;
#if DEMO_PLUGIN_VERSION != 1
    std::vector<std::int64_t> history;  // newest last
#endif

    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_atom(erl::atom("get"))) return erl::term(count);
        if (req.is_atom(erl::atom("version"))) return erl::term(DEMO_PLUGIN_VERSION);
        if (req.is_tuple(2) && req[0].is_atom(erl::atom("add")) && req[1].is_small()) {
            count += req[1].as_int64();
#if DEMO_PLUGIN_VERSION != 1
            history.push_back(req[1].as_int64());
#endif
            return erl::term(count);
        }
#if DEMO_PLUGIN_VERSION != 1
        if (req.is_atom(erl::atom("history"))) return history_term();
#endif
        return erl::tuple(erl::atoms::error(), erl::tuple(erl::atom("unknown_call"), req));
    }

#if DEMO_PLUGIN_VERSION == 1
    std::optional<erl::term> state() const override {
        return erl::term(count);
    }

    // From version 2 (a downgrade, OldVsn {down, Vsn}): keeps the count, drops the history.
    // In place (no other version loaded), an integer state is already ours.
    std::optional<erl::term> code_change(const erl::term& old_vsn, const erl::term& state,
                                         const erl::term&) override {
        if (old_vsn.is_tuple(2) && old_vsn[0].is_atom(erl::atom("down")) && state.is_map()) {
            const erl::term* c = state.find(erl::term(erl::atom("count")));
            if (!c || !c->is_small()) return erl::tuple(erl::atom("bad_state"), state);
            count = c->as_int64();
            return std::nullopt;
        }
        if (state.is_small()) {
            count = state.as_int64();
            return std::nullopt;
        }
        return erl::tuple(erl::atom("unsupported_vsn"), old_vsn);
    }
#else
    erl::term history_term() const {
        std::vector<erl::term> h;
        for (auto it = history.rbegin(); it != history.rend(); ++it)
            h.emplace_back(*it);
        return erl::make_list(std::move(h));
    }
    std::optional<erl::term> state() const override {
        return erl::map({{erl::term(erl::atom("count")), erl::term(count)},
                         {erl::term(erl::atom("history")), history_term()}});
    }

    // From version 1 (OldVsn "1", the state an integer count): #{count => Count, history => []}.
    // In place, a map state is already ours. Any other old version is refused, and the server
    // keeps running the code it has.
    std::optional<erl::term> code_change(const erl::term& old_vsn, const erl::term& state,
                                         const erl::term&) override {
        if (old_vsn == erl::charlist("1") && state.is_small()) {
            count = state.as_int64();
            history.clear();
            return std::nullopt;
        }
        if (state.is_map()) {
            const erl::term* c = state.find(erl::term(erl::atom("count")));
            const erl::term* h = state.find(erl::term(erl::atom("history")));
            if (!c || !c->is_small() || !h || !h->is_list())
                return erl::tuple(erl::atom("bad_state"), state);
            count = c->as_int64();
            history.clear();
            auto l = h->as_list();
            for (auto it = l.elements.rbegin(); it != l.elements.rend(); ++it)
                if (it->is_small()) history.push_back(it->as_int64());
            return std::nullopt;
        }
        return erl::tuple(erl::atom("unsupported_vsn"), old_vsn);
    }
#endif
};

}  // namespace

ERLCPP_MODULE(demo_plugin, DEMO_PLUGIN_STR(DEMO_PLUGIN_VERSION)) {
    r.add("version", [] { return DEMO_PLUGIN_VERSION; });
    r.add_server("demo_plugin_server", [] { return std::make_shared<plugin_server>(); });
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
