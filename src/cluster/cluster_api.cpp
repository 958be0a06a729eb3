// erl::global and erl::pg: the node's own operations on the cores that erl::cluster::start
// serves (global.erl's and pg.erl's client functions).
#include "cluster/cluster_service.hpp"

#include <algorithm>

namespace erl {
namespace {

using cluster::detail::A;
using cluster::detail::find;
using cluster::detail::global_service;
using cluster::detail::pg_service;

global_service* global_of(const std::shared_ptr<cluster::detail::cluster_state>& st) {
    return st ? st->global.get() : nullptr;
}

pg_service* scope_of(const std::shared_ptr<cluster::detail::cluster_state>& st, atom scope) {
    if (!st) return nullptr;
    auto it = st->scopes.find(scope);
    return it == st->scopes.end() ? nullptr : it->second.get();
}

// global:register_name/2's default method, fun global:random_exit_name/3.
result<bool> failed(errc e) {
    return result<bool>(boost::system::in_place_error, make_error_code(e));
}

term random_exit_name() {
    return term(export_fun{A("global"), A("random_exit_name"), 3});
}

// global.erl's default node set [node() | nodes()]: this node and its visible peers.
std::vector<atom> lock_nodes(node& n, global_service& g, std::vector<atom> nodes) {
    if (!nodes.empty()) return nodes;
    std::lock_guard lk(g.mu);
    nodes.push_back(n.name());
    for (atom p : g.peers().up)
        nodes.push_back(p);
    return nodes;
}

std::vector<pid> pids_of(const std::vector<term>& ts) {
    std::vector<pid> out;
    for (auto& t : ts)
        if (t.is_pid()) out.push_back(t.as_pid());
    return out;
}

term pid_list(const std::vector<pid>& pids) {
    std::vector<term> ts;
    for (auto& p : pids)
        ts.emplace_back(p);
    return make_list(std::move(ts));
}

}  // namespace

namespace global {

result<bool> register_name(node& n, const term& name, const pid& p,
                           std::chrono::milliseconds timeout) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return failed(errc::noproc);
    term pt(p);
    auto r = g->run_op(
        [&](cluster::actions& out) {
            return g->core().register_name(name, pt, random_exit_name(), out);
        },
        timeout);
    if (!r) return failed(errc::timeout);
    return r->is_atom(A("yes"));
}

error_code re_register_name(node& n, const term& name, const pid& p,
                            std::chrono::milliseconds timeout) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return make_error_code(errc::noproc);
    term pt(p);
    auto r = g->run_op(
        [&](cluster::actions& out) {
            return g->core().re_register_name(name, pt, random_exit_name(), out);
        },
        timeout);
    return r ? error_code{} : make_error_code(errc::timeout);
}

error_code unregister_name(node& n, const term& name, std::chrono::milliseconds timeout) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return make_error_code(errc::noproc);
    auto r = g->run_op([&](cluster::actions& out) { return g->core().unregister_name(name, out); },
                       timeout);
    return r ? error_code{} : make_error_code(errc::timeout);
}

std::optional<pid> whereis_name(node& n, const term& name) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return std::nullopt;
    std::lock_guard lk(g->mu);
    auto p = g->core().whereis(name);
    if (!p || !p->is_pid()) return std::nullopt;
    return p->as_pid();
}

error_code send(node& n, const term& name, term msg) {
    auto p = whereis_name(n, name);
    if (!p) return make_error_code(errc::noproc);
    n.send(*p, std::move(msg));
    return {};
}

std::vector<term> registered_names(node& n) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return {};
    std::lock_guard lk(g->mu);
    return g->core().names().names();
}

std::vector<atom> known_nodes(node& n) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return {};
    std::lock_guard lk(g->mu);
    return g->core().known();
}

result<bool> set_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes,
                      int retries, std::chrono::milliseconds timeout) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return failed(errc::noproc);
    nodes = lock_nodes(n, *g, std::move(nodes));
    term h(holder);
    auto r = g->run_op(
        [&](cluster::actions& out) { return g->core().set_lock(id, h, nodes, retries, out); },
        timeout);
    if (!r) return failed(errc::timeout);
    return r->is_atom(A("true"));
}

error_code del_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes,
                    std::chrono::milliseconds timeout) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return make_error_code(errc::noproc);
    nodes = lock_nodes(n, *g, std::move(nodes));
    term h(holder);
    auto r = g->run_op([&](cluster::actions& out) { return g->core().del_lock(id, h, nodes, out); },
                       timeout);
    return r ? error_code{} : make_error_code(errc::timeout);
}

result<bool> trans(node& n, const term& id, const pid& holder, const std::function<void()>& fn,
                   std::vector<atom> nodes, int retries, std::chrono::milliseconds timeout) {
    auto got = set_lock(n, id, holder, nodes, retries, timeout);
    if (!got || !*got) return got;
    struct release {
        node& n;
        const term& id;
        const pid& holder;
        std::vector<atom>& nodes;
        std::chrono::milliseconds timeout;
        ~release() { (void)del_lock(n, id, holder, nodes, timeout); }
    } r{n, id, holder, nodes, timeout};
    fn();
    return true;
}

error_code sync(node& n, std::chrono::milliseconds timeout) {
    auto st = find(n);
    auto* g = global_of(st);
    if (!g) return make_error_code(errc::noproc);
    auto r = g->run_op(
        [&](cluster::actions& out) {
            std::vector<atom> peers(g->peers().up.begin(), g->peers().up.end());
            return g->core().sync(std::move(peers), out);
        },
        timeout);
    return r ? error_code{} : make_error_code(errc::timeout);
}

}  // namespace global

namespace pg {

namespace {
// pg:join/3 or pg:leave/3 on the local scope; the subscribers hear of it after the lock.
result<bool> change(node& n, atom scope, const term& group, const std::vector<pid>& pids,
                    bool joining) {
    auto st = find(n);
    auto* s = scope_of(st, scope);
    if (!s) return failed(errc::noproc);
    std::vector<std::function<void()>> after;
    bool ok;
    {
        std::lock_guard lk(s->mu);
        cluster::actions out;
        std::vector<cluster::pg_change> changes;
        ok = joining ? s->core().join(group, pid_list(pids), out, changes)
                     : s->core().leave(group, pid_list(pids), out, changes);
        s->execute(out);
        s->publish(changes, after);
    }
    for (auto& f : after)
        f();
    return ok;
}
}  // namespace

error_code join(node& n, atom scope, const term& group, const std::vector<pid>& pids) {
    auto r = change(n, scope, group, pids, true);
    if (!r) return r.error();
    return *r ? error_code{} : make_error_code(errc::type_mismatch);
}

error_code join(node& n, const term& group, const pid& p) {
    return join(n, default_scope(), group, std::vector<pid>{p});
}

result<bool> leave(node& n, atom scope, const term& group, const std::vector<pid>& pids) {
    return change(n, scope, group, pids, false);
}

result<bool> leave(node& n, const term& group, const pid& p) {
    return leave(n, default_scope(), group, std::vector<pid>{p});
}

namespace {
template <class F>
auto with_scope(node& n, atom scope, F&& f) -> decltype(f(std::declval<pg_service&>())) {
    auto st = find(n);
    auto* s = scope_of(st, scope);
    if (!s) return {};
    std::lock_guard lk(s->mu);
    return f(*s);
}
}  // namespace

std::vector<pid> get_members(node& n, atom scope, const term& group) {
    return with_scope(n, scope, [&](pg_service& s) { return pids_of(s.core().members(group)); });
}
std::vector<pid> get_members(node& n, const term& group) {
    return get_members(n, default_scope(), group);
}
std::vector<pid> get_local_members(node& n, atom scope, const term& group) {
    return with_scope(n, scope,
                      [&](pg_service& s) { return pids_of(s.core().local_members(group)); });
}
std::vector<pid> get_local_members(node& n, const term& group) {
    return get_local_members(n, default_scope(), group);
}
std::vector<term> which_groups(node& n, atom scope) {
    return with_scope(n, scope, [&](pg_service& s) { return s.core().which_groups(); });
}
std::vector<term> which_groups(node& n) {
    return which_groups(n, default_scope());
}
std::vector<term> which_local_groups(node& n, atom scope) {
    return with_scope(n, scope, [&](pg_service& s) { return s.core().which_local_groups(); });
}
std::vector<atom> which_scopes(node& n) {
    auto st = find(n);
    std::vector<atom> out;
    if (st)
        for (auto& [scope, s] : st->scopes)
            out.push_back(scope);
    return out;
}

std::uint64_t subscribe(node& n, atom scope, std::function<void(const event&)> cb) {
    return with_scope(n, scope, [&](pg_service& s) { return s.subscribe(std::move(cb)); });
}
void unsubscribe(node& n, atom scope, std::uint64_t id) {
    auto st = find(n);
    auto* s = scope_of(st, scope);
    if (!s) return;
    std::lock_guard lk(s->mu);
    s->unsubscribe(id);
}

}  // namespace pg
}  // namespace erl
