// erl::dispatch::dispatcher (include/erl/dispatch.hpp): the target set kept current from node
// up/down events, pg joins/leaves (pg.erl monitor_scope) and monitors on registered names; each
// call picks a target (src/dist/balancer.hpp), runs the blocking erl::rpc / erl::gen_server
// call on the caller's thread, and retries idempotent calls that were not delivered.
#include <erl/dispatch.hpp>
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>

#include "dist/balancer.hpp"
#include "node/access.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"

#include <boost/system/system_error.hpp>

#include <condition_variable>
#include <mutex>

namespace erl::dispatch {

targets targets::nodes(std::vector<atom> list) {
    targets t;
    t.kind_ = kind::nodes;
    t.nodes_ = std::move(list);
    return t;
}

targets targets::pg_group(atom scope, term group) {
    targets t;
    t.kind_ = kind::pg_group;
    t.scope_ = scope;
    t.group_ = std::move(group);
    return t;
}

targets targets::registered(atom name) {
    targets t;
    t.kind_ = kind::registered;
    t.name_ = name;
    return t;
}

namespace detail {

namespace runtime = erl::detail::runtime;

namespace {

const atom& dispatch_atom() {
    static const atom a("dispatch");
    return a;
}

rpc::call_result dispatch_failure(errc e) {
    // error {dispatch, overloaded | no_target}
    const atom what(to_string(e));
    return rpc::call_result(rpc::exception_info{erl::detail::A().error,
                                                make_tuple({term(dispatch_atom()), term(what)}),
                                                term(), make_error_code(e)});
}

}  // namespace

struct dispatcher_state : std::enable_shared_from_this<dispatcher_state> {
    dispatcher_state(erl::node& node, targets t, options o)
        : n(node), src(std::move(t)), opts(o), bal(o.how, o.max_in_flight, 100, o.seed) {}

    erl::node& n;
    const targets src;
    const options opts;

    mutable std::mutex mu;
    std::condition_variable changed;  // the target set changed
    balancer bal;                     // guarded by mu

    std::uint64_t node_sub = 0;
    std::uint64_t pg_sub = 0;
    // registered(Name): the process holding the monitors on {Name, Node}.
    std::shared_ptr<erl::detail::process> watcher;

    template <class F>
    void update(F&& f) {
        {
            std::lock_guard lk(mu);
            f(bal);
        }
        changed.notify_all();
    }

    void on_node(const node_event& ev) {
        if (ev.hidden) return;  // as pg and global, hidden peers are not part of the cluster
        switch (src.source()) {
            case targets::kind::nodes:
                update([&](balancer& b) { b.set_up(ev.node, ev.up); });
                return;
            case targets::kind::pg_group:
                // The scope reports the members' leave later; no call goes there meanwhile.
                if (!ev.up) update([&](balancer& b) { b.set_up(ev.node, false); });
                return;
            case targets::kind::registered:
                if (ev.up)
                    watch_name(ev.node);
                else
                    update([&](balancer& b) { b.remove(target{ev.node, std::nullopt}); });
                return;
        }
    }

    // A node that came up is a target until the monitor on {Name, Node} says the name is not
    // there (DOWN noproc at once) or its process ended.
    void watch_name(atom node) {
        update([&](balancer& b) { b.add(target{node, std::nullopt}); });
        runtime::monitor(erl::detail::access::core(n), watcher,
                         make_tuple({term(src.name()), term(node)}));
    }

    void on_watcher_message(const term& msg) {
        // {'DOWN', Ref, process, {Name, Node}, Reason}
        if (!msg.is_tuple(5) || !msg[0].is_atom(erl::detail::A().down)) return;
        const term& obj = msg[3];
        if (!obj.is_tuple(2) || !obj[1].is_atom()) return;
        update([&](balancer& b) { b.remove(target{obj[1].as_atom(), std::nullopt}); });
    }

    void on_pg(const pg::event& ev) {
        if (ev.group != src.group()) return;
        update([&](balancer& b) {
            for (auto& p : ev.joined)
                b.add(target{p.node, p});
            if (ev.left.empty()) return;
            // A pid that joined twice stays a member until it left as often.
            const auto still = pg::get_members(n, src.scope(), src.group());
            for (auto& p : ev.left)
                if (std::find(still.begin(), still.end(), p) == still.end())
                    b.remove(target{p.node, p});
        });
    }

    // One dispatched operation: `op(target, time left)` on chosen targets until it succeeds,
    // fails in a way that must not be retried, or the deadline passes.
    template <class Op>
    reply run(const call_options& co, bool gen, Op&& op) {
        const auto timeout = co.timeout.value_or(opts.timeout);
        const bool infinite = timeout == infinity;
        const auto start = std::chrono::steady_clock::now();
        const auto deadline =
            infinite ? std::chrono::steady_clock::time_point::max() : start + timeout;
        std::vector<std::shared_ptr<target_state>> tried;
        reply r;
        for (;;) {
            balancer::choice c;
            {
                std::lock_guard lk(mu);
                c = bal.pick(co.key, tried);
            }
            if (!c.target) {
                // A retry finding nobody left returns the failure that made it retry.
                if (!r.target) r.result = dispatch_failure(c.error);
                return r;
            }
            const auto t0 = std::chrono::steady_clock::now();
            auto left = infinite
                            ? infinity
                            : std::chrono::duration_cast<std::chrono::milliseconds>(deadline - t0);
            if (!infinite && left.count() < 1) left = std::chrono::milliseconds(1);
            rpc::call_result res = op(c.target->id, left);
            const auto lat = std::chrono::steady_clock::now() - t0;
            const error_code code = res.ok() ? error_code() : res.error().code;
            const bool lost = code == make_error_code(errc::noconnection);
            const bool undelivered =
                lost || (gen && code == make_error_code(errc::noproc) && !c.target->id.process);
            update([&](balancer& b) {
                b.finish(c.target, lat, !res.ok());
                if (lost) b.set_up(c.target->id.node, false);  // until its next nodeup
            });
            r.result = std::move(res);
            r.target = c.target->id;
            ++r.attempts;
            if (!(co.idempotent && undelivered)) return r;
            if (!infinite && std::chrono::steady_clock::now() >= deadline) return r;
            tried.push_back(std::move(c.target));
        }
    }

    std::optional<gen_server::dest> gen_dest(const target& t) const {
        if (t.process) return gen_server::dest(*t.process);
        if (src.source() == targets::kind::registered) return gen_server::dest(src.name(), t.node);
        if (opts.server) return gen_server::dest(*opts.server, t.node);
        return std::nullopt;
    }
};

}  // namespace detail

dispatcher::dispatcher(erl::node& n, targets t, options o)
    : st_(std::make_shared<detail::dispatcher_state>(n, std::move(t), o)) {
    auto& st = *st_;
    std::weak_ptr<detail::dispatcher_state> w = st_;
    if (st.src.source() == targets::kind::registered) {
        auto& core = erl::detail::access::core(n);
        auto p = erl::detail::runtime::spawn_service(core, [w](term msg) {
            if (auto s = w.lock()) s->on_watcher_message(msg);
        });
        if (!p) throw boost::system::system_error(p.error(), "erl::dispatch::dispatcher");
        st.watcher = *p;
    }
    // Subscribe before reading the current state, so no change falls in between (a change
    // seen twice is harmless: add and remove are idempotent).
    st.node_sub = n.monitor_nodes([w](const node_event& ev) {
        if (auto s = w.lock()) s->on_node(ev);
    });
    switch (st.src.source()) {
        case targets::kind::nodes: {
            std::vector<target> ts;
            for (auto a : st.src.node_list())
                ts.push_back(target{a, std::nullopt});
            st.update([&](detail::balancer& b) { b.assign(ts); });
            break;
        }
        case targets::kind::pg_group: {
            st.pg_sub = pg::subscribe(n, st.src.scope(), [w](const pg::event& ev) {
                if (auto s = w.lock()) s->on_pg(ev);
            });
            if (st.pg_sub == 0) {
                n.demonitor_nodes(st.node_sub);
                throw boost::system::system_error(make_error_code(errc::noproc),
                                                  "erl::dispatch::dispatcher: pg scope");
            }
            const auto members = pg::get_members(n, st.src.scope(), st.src.group());
            st.update([&](detail::balancer& b) {
                for (auto& p : members)
                    b.add(target{p.node, p});
            });
            break;
        }
        case targets::kind::registered: {
            // This node too, if the name is registered here.
            std::vector<atom> ns = n.nodes(node_type::visible);
            ns.push_back(n.name());
            for (auto a : ns)
                st.watch_name(a);
            break;
        }
    }
}

dispatcher::~dispatcher() {
    st_->n.demonitor_nodes(st_->node_sub);
    if (st_->pg_sub) pg::unsubscribe(st_->n, st_->src.scope(), st_->pg_sub);
    if (st_->watcher) erl::detail::runtime::exit(st_->watcher, term(erl::detail::A().normal));
}

reply dispatcher::call(atom module, atom function, term args, call_options co) {
    return st_->run(co, false, [&](const target& t, std::chrono::milliseconds left) {
        return rpc::call(st_->n, t.node, module, function, args, left);
    });
}

reply dispatcher::call(std::string_view module, std::string_view function, term args,
                       call_options co) {
    return call(atom(module), atom(function), std::move(args), std::move(co));
}

reply dispatcher::gen_call(term request, call_options co) {
    return st_->run(co, true, [&](const target& t, std::chrono::milliseconds left) {
        auto d = st_->gen_dest(t);
        if (!d)
            return rpc::call_result(rpc::exception_info{erl::detail::A().error,
                                                        term(erl::detail::A().badarg), term(),
                                                        make_error_code(errc::badarg)});
        return gen_server::call(st_->n, *d, request, left);
    });
}

error_code dispatcher::cast(atom module, atom function, term args, call_options co) {
    auto r = st_->run(co, false, [&](const target& t, std::chrono::milliseconds) {
        if (auto ec = rpc::cast(st_->n, t.node, module, function, args))
            return rpc::call_result(rpc::exception_info{
                erl::detail::A().error,
                make_tuple({term(erl::detail::A().erpc), term(erl::detail::A().noconnection)}),
                term(), ec});
        return rpc::call_result(term(erl::detail::A().ok));
    });
    return r.result.ok() ? error_code() : r.result.error().code;
}

error_code dispatcher::gen_cast(term request, call_options co) {
    auto r = st_->run(co, true, [&](const target& t, std::chrono::milliseconds) {
        auto d = st_->gen_dest(t);
        if (!d)
            return rpc::call_result(rpc::exception_info{erl::detail::A().error,
                                                        term(erl::detail::A().badarg), term(),
                                                        make_error_code(errc::badarg)});
        gen_server::cast(st_->n, *d, request);
        return rpc::call_result(term(erl::detail::A().ok));
    });
    return r.result.ok() ? error_code() : r.result.error().code;
}

void dispatcher::report_load(atom node, double load) {
    st_->update([&](detail::balancer& b) { b.report_load(node, load); });
}

std::vector<target_stats> dispatcher::stats() const {
    std::lock_guard lk(st_->mu);
    return st_->bal.stats();
}

std::vector<target> dispatcher::live_targets() const {
    std::lock_guard lk(st_->mu);
    return st_->bal.targets(true);
}

bool dispatcher::wait_targets(const std::function<bool(const std::vector<target>&)>& pred,
                              std::chrono::milliseconds timeout) {
    std::unique_lock lk(st_->mu);
    auto ok = [&] { return pred(st_->bal.targets(true)); };
    if (timeout == infinity) {
        st_->changed.wait(lk, ok);
        return true;
    }
    return st_->changed.wait_for(lk, timeout, ok);
}

}  // namespace erl::dispatch
