// Demo node: balanced dispatch from C++ (erl::dispatch, docs/distribution.md).
//
//   rpc:call(Demo, demo, dispatch, [Targets, Strategy, N])
//       -> #{ok => [{Node, Count}], failed => FailedCount}
//   N idempotent calls of erlang:node/0, spread by the demo over Targets — a list of nodes or
//   {pg, Scope, Group} (the group's members, by their nodes) — with Strategy round_robin,
//   least_loaded or random. Four C++ threads make the calls, so least_loaded sees calls in
//   flight; a target that dies meanwhile costs no call (they are retried elsewhere).
#pragma once

#include <erl/dispatch.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace demo_dispatch {

inline erl::dispatch::targets targets_of(const erl::term& t) {
    if (t.is_tuple(3) && t[0].is_atom(erl::atom("pg")) && t[1].is_atom())
        return erl::dispatch::targets::pg_group(t[1].as_atom(), t[2]);
    std::vector<erl::atom> nodes;
    if (t.is_list() && t.is_proper_list())
        for (const auto& e : t.as_list().elements)
            if (e.is_atom()) nodes.push_back(e.as_atom());
    if (nodes.empty() || (t.is_list() && nodes.size() != t.as_list().elements.size()))
        erl::rpc::raise_error(erl::term(erl::atom("badarg")));
    return erl::dispatch::targets::nodes(std::move(nodes));
}

inline erl::dispatch::strategy strategy_of(erl::atom s) {
    if (s == erl::atom("round_robin")) return erl::dispatch::strategy::round_robin;
    if (s == erl::atom("least_loaded")) return erl::dispatch::strategy::least_loaded;
    if (s == erl::atom("random")) return erl::dispatch::strategy::random;
    erl::rpc::raise_error(erl::term(erl::atom("badarg")));
}

inline erl::term run(erl::node& node, const erl::term& targets, erl::atom strategy,
                     std::int64_t n) {
    if (n < 0) erl::rpc::raise_error(erl::term(erl::atom("badarg")));
    std::optional<erl::dispatch::dispatcher> d;
    try {
        d.emplace(node, targets_of(targets), erl::dispatch::options{.how = strategy_of(strategy)});
    } catch (const boost::system::system_error&) {
        erl::rpc::raise_error(erl::term(erl::atom("noproc")));  // the pg scope is not running
    }
    std::mutex mu;
    std::map<erl::atom, std::int64_t> counts;
    std::int64_t failed = 0;
    std::atomic<std::int64_t> next{0};
    auto worker = [&] {
        while (next.fetch_add(1) < n) {
            auto r = d->call("erlang", "node", erl::list(), {.idempotent = true});
            std::lock_guard lk(mu);
            if (r.result.ok() && r.result.value().is_atom())
                ++counts[r.result.value().as_atom()];
            else
                ++failed;
        }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back(worker);
    for (auto& t : threads)
        t.join();
    std::vector<erl::term> ok;
    for (auto& [k, v] : counts)
        ok.push_back(erl::tuple(k, erl::term(v)));
    return erl::map({{erl::term(erl::atom("ok")), erl::make_list(std::move(ok))},
                     {erl::term(erl::atom("failed")), erl::term(failed)}});
}

inline void add_functions(erl::node& node, erl::rpc::server& rpc) {
    rpc.add("demo", "dispatch",
            [&node](const erl::term& targets, erl::atom strategy, std::int64_t n) {
                return run(node, targets, strategy, n);
            });
}

}  // namespace demo_dispatch
