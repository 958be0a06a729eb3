// erl::global and erl::pg: the node's own operations on the cores that erl::cluster::start
// serves (global.erl's and pg.erl's client functions).
#include "cluster/cluster_service.hpp"

#include <algorithm>
#include <future>

namespace erl {
namespace {

using cluster::detail::A;
using cluster::detail::find;
using cluster::detail::global_service;
using cluster::detail::pg_service;

pg_service* scope_of(const std::shared_ptr<cluster::detail::cluster_state>& st, atom scope) {
    if (!st) return nullptr;
    auto it = st->scopes.find(scope);
    return it == st->scopes.end() ? nullptr : it->second.get();
}

result<bool> failed(errc e) {
    return result<bool>(boost::system::in_place_error, make_error_code(e));
}

// global:register_name/2's default method, fun global:random_exit_name/3.
term random_exit_name() {
    return term(export_fun{A("global"), A("random_exit_name"), 3});
}

// global.erl's default node set [node() | nodes()]: this node and its visible peers, as the
// service sees them when the operation starts (with the service's mutex held).
std::vector<atom> lock_nodes(global_service& g, std::vector<atom> nodes) {
    if (!nodes.empty()) return nodes;
    nodes.push_back(g.core().name);
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

namespace detail {

void start_op(node& n, op_kind kind, op_args args, std::chrono::milliseconds timeout,
              op_handler done) {
    auto st = find(n);
    auto g = st ? st->global : nullptr;
    if (!g) return done(make_error_code(errc::noproc), term());
    g->run_op(
        [g = g.get(), kind, a = std::move(args)](cluster::actions& out) -> std::uint64_t {
            auto& core = g->server();
            const term p(a.p);
            switch (kind) {
                case op_kind::register_name:
                    return core.register_name(a.name, p, random_exit_name(), out);
                case op_kind::re_register_name:
                    return core.re_register_name(a.name, p, random_exit_name(), out);
                case op_kind::unregister_name:
                    return core.unregister_name(a.name, out);
                case op_kind::set_lock:
                    return core.set_lock(a.name, p, lock_nodes(*g, a.nodes), a.retries, out);
                case op_kind::del_lock:
                    return core.del_lock(a.name, p, lock_nodes(*g, a.nodes), out);
                case op_kind::sync:
                    break;
            }
            std::vector<atom> peers(g->peers().up.begin(), g->peers().up.end());
            return core.sync(std::move(peers), out);
        },
        timeout, [done = std::move(done)](error_code ec, term r) { done(ec, r); });
}

}  // namespace detail

namespace {
using detail::op_args;
using detail::op_kind;

// The blocking form of an operation: waits for its completion (at most `timeout`: the
// service's own timer completes it then; this bound only covers a node whose threads have
// stopped).
result<term> wait_op(node& n, op_kind kind, op_args args, std::chrono::milliseconds timeout) {
    auto p = std::make_shared<std::promise<result<term>>>();
    auto f = p->get_future();
    detail::start_op(n, kind, std::move(args), timeout, [p](error_code ec, const term& r) {
        if (ec)
            p->set_value(result<term>(boost::system::in_place_error, ec));
        else
            p->set_value(r);
    });
    if (timeout == infinity)
        f.wait();
    else if (f.wait_for(timeout + std::chrono::seconds(1)) != std::future_status::ready)
        return result<term>(boost::system::in_place_error, make_error_code(errc::timeout));
    return f.get();
}

result<bool> is_atom(const result<term>& r, const char* yes) {
    if (!r) return result<bool>(boost::system::in_place_error, r.error());
    return r->is_atom(A(yes));
}

error_code ok(const result<term>& r) {
    return r ? error_code{} : r.error();
}

template <class F>
auto with_global(node& n, F&& f) -> decltype(f(std::declval<global_service&>())) {
    auto st = find(n);
    auto g = st ? st->global : nullptr;
    if (!g) return {};
    std::lock_guard lk(g->mu);
    return f(*g);
}
}  // namespace

result<bool> register_name(node& n, const term& name, const pid& p,
                           std::chrono::milliseconds timeout) {
    return is_atom(wait_op(n, op_kind::register_name, {name, p, {}, -1}, timeout), "yes");
}

error_code re_register_name(node& n, const term& name, const pid& p,
                            std::chrono::milliseconds timeout) {
    return ok(wait_op(n, op_kind::re_register_name, {name, p, {}, -1}, timeout));
}

error_code unregister_name(node& n, const term& name, std::chrono::milliseconds timeout) {
    return ok(wait_op(n, op_kind::unregister_name, {name, pid{}, {}, -1}, timeout));
}

std::optional<pid> whereis_name(node& n, const term& name) {
    return with_global(n, [&](global_service& g) -> std::optional<pid> {
        auto p = g.server().whereis(name);
        if (!p || !p->is_pid()) return std::nullopt;
        return p->as_pid();
    });
}

error_code send(node& n, const term& name, term msg) {
    auto p = whereis_name(n, name);
    if (!p) return make_error_code(errc::noproc);
    n.send(*p, std::move(msg));
    return {};
}

std::vector<term> registered_names(node& n) {
    return with_global(n, [](global_service& g) { return g.server().names().names(); });
}

std::vector<atom> known_nodes(node& n) {
    return with_global(n, [](global_service& g) { return g.server().known(); });
}

result<bool> set_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes,
                      int retries, std::chrono::milliseconds timeout) {
    return is_atom(wait_op(n, op_kind::set_lock, {id, holder, std::move(nodes), retries}, timeout),
                   "true");
}

error_code del_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes,
                    std::chrono::milliseconds timeout) {
    return ok(wait_op(n, op_kind::del_lock, {id, holder, std::move(nodes), -1}, timeout));
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
    return ok(wait_op(n, op_kind::sync, {}, timeout));
}

}  // namespace global

namespace pg {

namespace {
// pg:join/3 or pg:leave/3 on the local scope, at once on the calling thread (as the scope's
// gen_server:call would have it done on return); the subscribers hear of it on the drain.
result<bool> change(node& n, atom scope, const term& group, const std::vector<pid>& pids,
                    bool joining) {
    auto st = find(n);
    auto* s = scope_of(st, scope);
    if (!s) return failed(errc::noproc);
    std::lock_guard lk(s->mu);
    cluster::actions out;
    std::vector<cluster::pg_change> changes;
    bool ok = joining ? s->scope().join(group, pid_list(pids), out, changes)
                      : s->scope().leave(group, pid_list(pids), out, changes);
    s->execute(out);
    s->publish(changes);
    s->kick();
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
    return with_scope(n, scope, [&](pg_service& s) { return pids_of(s.scope().members(group)); });
}
std::vector<pid> get_members(node& n, const term& group) {
    return get_members(n, default_scope(), group);
}
std::vector<pid> get_local_members(node& n, atom scope, const term& group) {
    return with_scope(n, scope,
                      [&](pg_service& s) { return pids_of(s.scope().local_members(group)); });
}
std::vector<pid> get_local_members(node& n, const term& group) {
    return get_local_members(n, default_scope(), group);
}
std::vector<term> which_groups(node& n, atom scope) {
    return with_scope(n, scope, [&](pg_service& s) { return s.scope().which_groups(); });
}
std::vector<term> which_groups(node& n) {
    return which_groups(n, default_scope());
}
std::vector<term> which_local_groups(node& n, atom scope) {
    return with_scope(n, scope, [&](pg_service& s) { return s.scope().which_local_groups(); });
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
