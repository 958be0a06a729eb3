// erl::cluster::start: the cluster services registered on a node and fed its node events.
#include "cluster/cluster_service.hpp"

namespace erl::cluster {
namespace detail {

namespace {

std::mutex registry_mu;
std::map<const node*, std::weak_ptr<cluster_state>>& registry() {
    static std::map<const node*, std::weak_ptr<cluster_state>> r;
    return r;
}

}  // namespace

std::shared_ptr<cluster_state> find(const node& n) {
    std::lock_guard lk(registry_mu);
    auto it = registry().find(&n);
    return it == registry().end() ? nullptr : it->second.lock();
}

void cluster_state::stop() {
    if (stopped.exchange(true)) return;
    n->demonitor_nodes(node_monitor);
    if (rpc && global) rpc->remove(A("global"), A("resolve_it"), 4);
    for (auto& [scope, s] : scopes)
        s->stop();
    if (global) global->stop_service();
    own_rpc.reset();
    std::lock_guard lk(registry_mu);
    auto it = registry().find(n);
    if (it != registry().end() && it->second.expired()) registry().erase(it);
}

}  // namespace detail

running& running::operator=(running&& o) noexcept {
    if (this != &o) {
        stop();
        st_ = std::move(o.st_);
    }
    return *this;
}

running::~running() {
    stop();
}

void running::stop() {
    if (!st_) return;
    auto st = std::move(st_);
    st->stop();
    std::lock_guard lk(detail::registry_mu);
    auto it = detail::registry().find(st->n);
    if (it != detail::registry().end() && it->second.lock() == st) detail::registry().erase(it);
}

result<running> start(node& n, options o) {
    using namespace detail;
    if (!n.alive()) return make_error_code(errc::not_alive);
    if (find(n)) return make_error_code(errc::name_taken);
    auto st = std::make_shared<cluster_state>();
    st->n = &n;
    auto fail = [&](error_code ec) -> result<running> {
        st->stop();
        return ec;
    };
    if (o.global) {
        auto mb = n.spawn_mailbox(A("global_name_server"));
        if (!mb) return fail(mb.error());
        auto locker = n.spawn_mailbox();
        auto registrar = n.spawn_mailbox();
        if (!locker || !registrar) return fail(locker ? registrar.error() : locker.error());
        st->global = std::make_unique<global_service>(n, std::move(*mb), std::move(*locker),
                                                      std::move(*registrar));
    }
    for (atom scope : o.pg_scopes) {
        auto mb = n.spawn_mailbox(scope);
        if (!mb) return fail(mb.error());
        st->scopes[scope] = std::make_unique<pg_service>(n, std::move(*mb), scope);
    }
    if (st->global) {
        if (o.rpc) {
            st->rpc = o.rpc;
        } else {
            st->own_rpc = std::make_unique<erl::rpc::server>(n);
            st->rpc = st->own_rpc.get();
        }
        global_service* g = st->global.get();
        // global:resolve_it/4, called by a BEAM resolver over rpc when our pid is in a clash
        // (global.erl exchange_names/4); it runs the method here, as `catch Method(...)`.
        st->rpc->add_raw(A("global"), A("resolve_it"), 4,
                         [g](erl::rpc::call_context&, std::span<const term> args) -> term {
                             std::lock_guard lk(g->mu);
                             actions out;
                             auto r = global_server::resolve_locally(args[0], args[1], args[2],
                                                                     args[3], out);
                             g->execute(out);
                             return r ? *r : tuple(A("EXIT"), A("undef"));
                         });
    }
    // Only visible peers take part (global.erl and pg.erl watch nodeup/nodedown of visible
    // nodes); a hidden node serves its own processes only.
    if (!n.options().hidden) {
        std::weak_ptr<cluster_state> weak = st;
        st->node_monitor = n.monitor_nodes([weak](const node_event& ev) {
            auto s = weak.lock();
            if (!s || s->stopped || ev.hidden) return;
            std::vector<term> msg{term(A(ev.up ? "nodeup" : "nodedown")), term(ev.node)};
            if (s->global) s->global->post(msg);
            for (auto& [scope, svc] : s->scopes)
                svc->post(msg);
        });
        // Peers connected before start: their nodeup, after which the events carry on.
        for (atom peer : n.nodes(node_type::visible)) {
            std::vector<term> msg{term(A("nodeup")), term(peer)};
            if (st->global) st->global->post(msg);
            for (auto& [scope, svc] : st->scopes)
                svc->post(msg);
        }
    }
    if (st->global) st->global->run();
    for (auto& [scope, svc] : st->scopes)
        svc->run();
    {
        std::lock_guard lk(registry_mu);
        registry()[&n] = st;
    }
    return running(std::move(st));
}

}  // namespace erl::cluster
