// Demo node: a full member of the cluster's `global` and `pg` (see docs/global.md, docs/pg.md).
//
//   global:whereis_name({erlcpp_demo, Demo})  -> the pid of the demo's `counter` gen_server
//   pg:get_members(pg, erlcpp_demo_workers)   -> [the demo's supervised `worker`] (re-joined
//                                                after every restart)
//   rpc:call(Demo, demo, locked_add, [LockId, CounterPid, Times]) -> ok: Times times, take the
//       global lock LockId ({ResourceId, LockRequesterId}), get the counter's value V, set it
//       to V + 1 ({set, V + 1}), release the lock
//   rpc:call(Demo, demo, global_whereis, [Name]) -> what the demo's global says (pid | undefined)
//   rpc:call(Demo, demo, pg_members, [Scope, Group]) -> the members the demo's scope knows
#pragma once

#include <erl/cluster.hpp>
#include <erl/gen_server.hpp>
#include <erl/global.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>
#include <erl/rpc.hpp>

#include <iostream>
#include <memory>
#include <thread>

namespace demo_cluster {

struct services {
    erl::cluster::running cluster;
    erl::mailbox keeper;  // keeps the worker in its group
    std::thread keeper_thread;
    ~services() {
        keeper.exit();
        if (keeper_thread.joinable()) keeper_thread.join();
        cluster.stop();
    }
};

// Keeps the registered process `worker` a member of erlcpp_demo_workers: joins every new
// incarnation the supervisor starts, noticed through the DOWN of the previous one.
inline void keep_worker_joined(erl::mailbox m) {
    erl::node& node = m.owner();
    const erl::atom worker("worker"), group("erlcpp_demo_workers");
    std::optional<erl::pid> current;
    while (!m.exited()) {
        auto p = node.whereis(worker);
        if (p && p != current) {
            current = p;
            (void)erl::pg::join(node, erl::term(group), *p);
            m.monitor(*p);
        }
        // The DOWN of the current worker, or a new look once the restart had time to register
        // the name again.
        auto msg = m.receive(p ? erl::infinity : std::chrono::milliseconds(100));
        if (!msg && m.exited()) return;
    }
}

// Runs the cluster services on `node` (visible nodes take part in global and pg; hidden
// ones keep them local), registers the demo's counter globally as {erlcpp_demo, Node}, keeps
// the worker in erlcpp_demo_workers and adds the demo functions to `rpc`.
inline std::unique_ptr<services> start(erl::node& node, erl::rpc::server& rpc) {
    auto s = std::make_unique<services>();
    auto c = erl::cluster::start(node, {.rpc = &rpc});
    if (!c) {
        std::cerr << "erlcpp-demo: cluster services: " << c.error().message() << "\n";
        return s;
    }
    s->cluster = std::move(*c);
    const erl::atom erlcpp_demo("erlcpp_demo");
    if (auto counter = node.whereis(erl::atom("counter")))
        (void)erl::global::register_name(node, erl::tuple(erlcpp_demo, node.name()), *counter);
    if (auto keeper = node.spawn_mailbox()) {
        s->keeper = *keeper;
        s->keeper_thread = std::thread(keep_worker_joined, *keeper);
    }

    rpc.add("demo", "locked_add",
            [&node](const erl::term& lock_id, const erl::pid& counter, std::int64_t times) {
                // The lock is held by a process of its own, alive for the whole call.
                auto holder = node.spawn_mailbox();
                if (!holder) erl::rpc::raise_error(erl::term(erl::atom("system_limit")));
                const erl::atom get("get"), set("set");
                for (std::int64_t i = 0; i < times; ++i) {
                    auto locked =
                        erl::global::set_lock(node, lock_id, holder->self(), {}, -1, erl::infinity);
                    if (!locked || !*locked) erl::rpc::raise_error(erl::term(erl::atom("nolock")));
                    auto v = erl::gen_server::call(node, counter, erl::term(get));
                    std::optional<erl::term> r;
                    if (v) {
                        if (auto sum = erl::add(v.value(), erl::term(1))) r = *sum;
                    }
                    if (r) v = erl::gen_server::call(node, counter, erl::tuple(set, *r));
                    (void)erl::global::del_lock(node, lock_id, holder->self(), {}, erl::infinity);
                    if (!v) erl::rpc::raise_exit(v.error().reason);
                    if (!r) erl::rpc::raise_error(erl::term(erl::atom("badarith")));
                }
                holder->exit();
                return erl::atom("ok");
            });
    rpc.add("demo", "global_whereis", [&node](const erl::term& name) -> erl::term {
        auto p = erl::global::whereis_name(node, name);
        return p ? erl::term(*p) : erl::term(erl::atom("undefined"));
    });
    rpc.add("demo", "pg_members", [&node](erl::atom scope, const erl::term& group) {
        std::vector<erl::term> out;
        for (auto& p : erl::pg::get_members(node, scope, group))
            out.emplace_back(p);
        return erl::make_list(std::move(out));
    });
    return s;
}

}  // namespace demo_cluster
