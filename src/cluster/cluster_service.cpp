// The cluster services as runtime service processes (see cluster_service.hpp), and
// erl::cluster::start, which registers them on a node and feeds them its node events.
#include "cluster/cluster_service.hpp"

#include <boost/asio/post.hpp>

#include <string>

namespace erl::cluster {
namespace detail {

// ---- the queue and the drain -------------------------------------------------------------

error_code service_base::spawn(std::optional<atom> name) {
    std::weak_ptr<service_base> weak = weak_from_this();
    auto p = rt::spawn_service(
        node_,
        [weak](term msg) {
            if (auto s = weak.lock()) s->enqueue(item(std::move(msg)));
        },
        [weak, name](const term& reason) {
            // Ended by someone else (exit(Pid, kill) from a peer): nothing more runs, and the
            // node's log says so. stop() marks the service stopped before it ends the process;
            // a node that is stopping ends every process, its services' too, with `shutdown`.
            auto s = weak.lock();
            if (!s || s->stopped_.exchange(true) || reason.is_atom(A("normal"))) return;
            if (s->node_.stopping.load()) return;
            s->node_.log(log_level::error, log_kind::service, {}, {},
                         "cluster: service " + std::string(name ? name->str() : "process") +
                             " exited: " + reason.to_string());
        },
        name);
    if (!p) return p.error();
    proc_ = *p;
    return {};
}

void service_base::enqueue(item it) {
    bool start;
    {
        std::lock_guard lk(q_mu_);
        if (stopped_.load(std::memory_order_relaxed)) return;
        q_.push_back(std::move(it));
        start = !scheduled_;
        scheduled_ = true;
    }
    if (start) schedule_drain();
}

void service_base::schedule_drain() {
    boost::asio::post(node_.ioc(), [weak = weak_from_this()] {
        if (auto s = weak.lock()) s->drain();
    });
}

void service_base::drain() {
    // A bounded batch, then the rest after the io_context's other handlers (connections'
    // readers and writers) have had their turn.
    for (int n = 0; n < 64; ++n) {
        item it;
        {
            std::lock_guard lk(q_mu_);
            if (q_.empty() || stopped_) {
                scheduled_ = false;
                return;
            }
            it = std::move(q_.front());
            q_.pop_front();
        }
        after_list after;
        {
            std::lock_guard lk(mu);
            if (stopped_) continue;
            if (auto* msg = std::get_if<term>(&it))
                dispatch(*msg);
            else
                std::get<job>(it)();
            after.swap(after_);
        }
        for (auto& f : after)
            f();
    }
    schedule_drain();
}

void service_base::stop() {
    after_list after;
    {
        std::lock_guard lk(mu);
        {
            std::lock_guard qlk(q_mu_);
            q_.clear();
        }
        for (auto& [id, t] : timers_)
            t->cancel();
        timers_.clear();
        on_stop();
        bool was_stopped = stopped_.exchange(true);
        if (!was_stopped && proc_) rt::exit(proc_, term(A("shutdown")));
        after.swap(after_);
    }
    // The completions of abandoned operations ("stopped"), on the stopping thread.
    for (auto& f : after)
        f();
}

// ---- what arrives at the process ---------------------------------------------------------

namespace {
// The reference in a [alias|Alias] reply tag (gen.erl do_call/4 with an alias), if any.
std::optional<term> alias_of_tag(const term& tag) {
    if (!tag.is_list() || tag.is_nil()) return std::nullopt;
    auto lv = tag.as_list();
    if (lv.elements.size() == 1 && lv.elements[0].is_atom(A("alias")) && lv.tail.is_reference())
        return lv.tail;
    return std::nullopt;
}

// rpc:call's result for the exit reason of erpc:execute_call/4 (erpc.erl result/4, rpc.erl
// call/4's {badrpc, Reason}).
term rpc_result(const term& res, const term& reason) {
    if (reason.is_tuple() && reason.size() >= 3 && reason[0] == res) {
        const term& cls = reason[1];
        if (reason.size() == 3 && (cls.is_atom(A("return")) || cls.is_atom(A("throw"))))
            return reason[2];
        if (reason.size() == 3 && cls.is_atom(A("exit")))
            return tuple(A("badrpc"), tuple(A("EXIT"), reason[2]));
        if (reason.size() == 4 && cls.is_atom(A("error")))
            return tuple(A("badrpc"), tuple(A("EXIT"), tuple(reason[2], reason[3])));
    }
    if (reason.is_atom(A("noconnection"))) return tuple(A("badrpc"), A("nodedown"));
    return tuple(A("badrpc"), tuple(A("EXIT"), reason));
}
}  // namespace

void service_base::dispatch(const term& msg) {
    // {'DOWN', Ref, process, Object, Reason}: a core's monitor, a call's or an rpc's
    if (msg.is_tuple(5) && msg[0].is_atom(A("DOWN")) && msg[1].is_reference()) {
        if (auto it = monitors_.find(msg[1]); it != monitors_.end()) {
            monitor_id id = it->second;
            monitor_refs_.erase(id);
            monitors_.erase(it);
            on_down(id);
            return;
        }
        if (auto it = call_monitors_.find(msg[1]); it != call_monitors_.end()) {
            finish_call(it->second, std::nullopt);
            return;
        }
        if (auto it = rpcs_.find(msg[1]); it != rpcs_.end()) {
            finish_rpc(msg[1], rpc_result(it->second.res, msg[4]));
            return;
        }
    }
    // {spawn_reply, ReqId, ok | error, Pid | Reason} of an rpc's spawn request
    if (msg.is_tuple(4) && msg[0].is_atom(A("spawn_reply"))) {
        if (rpcs_.count(msg[1]) && !msg[2].is_atom(A("ok")))
            finish_rpc(msg[1], tuple(A("badrpc"), msg[3]));
        return;
    }
    // An io request from an rpc's process (we are its group leader): io.erl waits for a reply.
    if (msg.is_tuple(4) && msg[0].is_atom(A("io_request")) && msg[1].is_pid()) {
        rt::send(*proc_, msg[1].as_pid(), tuple(A("io_reply"), msg[2], A("ok")));
        return;
    }
    // {nodedown, Node} of monitor_node: a connection a send asked for could not be made
    if (msg.is_tuple(2) && msg[0].is_atom(A("nodedown")) && msg[1].is_atom()) {
        atom peer = msg[1].as_atom();
        if (awaiting_connection_.erase(peer) && !rt::is_connected(node_, peer)) {
            rt::monitor_node(node_, proc_, peer, false);
            on_connect_failed(peer);
        }
        return;
    }
    // {[alias|Alias], Reply}: the answer to a call_server
    if (msg.is_tuple(2)) {
        if (auto alias = alias_of_tag(msg[0])) {
            if (auto it = call_aliases_.find(*alias); it != call_aliases_.end()) {
                finish_call(it->second, msg[1]);
                return;
            }
        }
    }
    on_message(msg);
}

void service_base::finish_call(call_id id, std::optional<term> reply) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    rt::remove_alias(proc_, it->second.alias);
    rt::demonitor(node_, proc_, it->second.mon, true);
    call_aliases_.erase(term(it->second.alias));
    call_monitors_.erase(term(it->second.mon));
    calls_.erase(it);
    on_call_result(id, std::move(reply));
}

void service_base::finish_rpc(const term& req, term result) {
    auto it = rpcs_.find(req);
    if (it == rpcs_.end()) return;
    call_id id = it->second.id;
    rpcs_.erase(it);
    if (req.is_reference()) rt::demonitor(node_, proc_, req.as_reference(), true);
    on_call_result(id, std::move(result));
}

// ---- the actions ---------------------------------------------------------------------------

void service_base::execute(actions& out) {
    for (std::size_t i = 0; i < out.size(); ++i)
        std::visit([this](auto& a) { exec(a); }, out[i]);
    out.clear();
}

bool service_base::may_send(const term& to, bool noconnect, atom& remote) const {
    // noconnect sends are made only over a live connection.
    remote = atom();
    if (to.is_pid()) {
        if (to.as_pid().node != node_.name) remote = to.as_pid().node;
    } else if (to.is_tuple(2) && to[1].is_atom()) {
        if (to[1].as_atom() != node_.name) remote = to[1].as_atom();
    }
    return remote.empty() || !noconnect || rt::is_connected(node_, remote);
}

void service_base::exec(send_to& a) {
    atom remote;
    if (!may_send(a.to, a.noconnect, remote)) return;
    if (!remote.empty() && !a.noconnect && !rt::is_connected(node_, remote) &&
        awaiting_connection_.insert(remote).second)
        rt::monitor_node(node_, proc_, remote, true);
    if (a.to.is_pid())
        rt::send(*proc_, a.to.as_pid(), std::move(a.message));
    else if (a.to.is_atom())
        rt::send(*proc_, a.to.as_atom(), node_.name, std::move(a.message));
    else if (a.to.is_tuple(2) && a.to[0].is_atom() && a.to[1].is_atom())
        rt::send(*proc_, a.to[0].as_atom(), a.to[1].as_atom(), std::move(a.message));
}

void service_base::exec(monitor_pid& a) {
    if (!a.pid.is_pid()) return;
    reference ref = rt::monitor(node_, proc_, a.pid);
    monitors_[term(ref)] = a.id;
    monitor_refs_[a.id] = ref;
}

void service_base::exec(demonitor_pid& a) {
    auto it = monitor_refs_.find(a.id);
    if (it == monitor_refs_.end()) return;
    rt::demonitor(node_, proc_, it->second, true);
    monitors_.erase(term(it->second));
    monitor_refs_.erase(it);
}

void service_base::exec(timer_start& a) {
    auto t = std::make_shared<boost::asio::steady_timer>(node_.ioc(), a.after);
    timers_[a.id] = t;
    // The expiry is queued like a message (erlang:start_timer); a cancelled timer queues
    // nothing, and a late expiry of a cancelled id finds no timer and is dropped.
    t->async_wait([weak = weak_from_this(), id = a.id](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto s = weak.lock())
            s->post([raw = s.get(), id] {
                if (raw->timers_.erase(id)) raw->on_timer(id);
            });
    });
}

void service_base::exec(timer_cancel& a) {
    if (auto it = timers_.find(a.id); it != timers_.end()) {
        it->second->cancel();
        timers_.erase(it);
    }
}

void service_base::exec(call_server& a) {
    // gen:do_call/4 with an alias tag: the request names the caller as From's pid (the server
    // holds locks and names for it), the alias is ours, so the reply reaches this service; the
    // monitor ends the call when the server or its node goes.
    if (!a.to.is_pid() && !(a.to.is_tuple(2) && a.to[0].is_atom() && a.to[1].is_atom())) return;
    reference alias = rt::make_alias(proc_);
    reference mon = rt::monitor(node_, proc_, a.to);
    calls_[a.id] = pending_call{alias, mon};
    call_aliases_[term(alias)] = a.id;
    call_monitors_[term(mon)] = a.id;
    term tag = make_list({term(A("alias"))}, term(alias));
    send_to s{a.to, tuple(A("$gen_call"), tuple(a.caller, tag), a.request), false};
    exec(s);
}

void service_base::exec(reply_to& a) {
    rt::reply(node_, a.from, a.value);
}

void service_base::exec(exit_pid& a) {
    if (a.pid.is_pid()) rt::send_exit2(node_, proc_->self_term, a.pid.as_pid(), a.reason);
}

void service_base::exec(disconnect_node& a) {
    // Closing the connection runs the node's event callbacks and fires monitors on this
    // thread; done after the current item, so none of them runs with mu held.
    boost::asio::post(node_.ioc(), [core = node_.shared_from_this(), peer = a.node] {
        rt::disconnect(*core, peer);
    });
}

void service_base::exec(rpc_call& a) {
    // rpc:call(Node, M, F, A) as erpc:call makes it: spawn_request(Node, erpc, execute_call,
    // [Res, M, F, A], [monitor]); the result is in the DOWN's reason (erpc.erl call/5).
    term res(rt::make_ref(node_));
    term args = make_list({res, term(a.module), term(a.function), a.args});
    reference req = rt::spawn_request(proc_, a.node, A("erpc"), A("execute_call"), args,
                                      proc_->self_term, {.monitor = true});
    rpcs_[term(req)] = pending_rpc{a.id, res};
}

void service_base::exec(log_line& a) {
    static constexpr log_level levels[] = {log_level::info, log_level::warning, log_level::error};
    node_.log(levels[static_cast<int>(a.severity)], log_kind::service, {}, {},
              "cluster: " + a.text);
}

// ---- global --------------------------------------------------------------------------------

error_code global_service::start() {
    // Held until the core exists: a peer may send to the name as soon as it is registered,
    // and the drain waits for mu.
    std::lock_guard lk(mu);
    if (auto ec = spawn(A("global_name_server"))) return ec;
    // The locker and the registrar are processes in whose name the core takes locks (peers
    // monitor them as lock holders); nothing is ever sent to them.
    auto locker = rt::spawn_service(node_, [](term) {});
    auto registrar = rt::spawn_service(node_, [](term) {});
    if (!locker || !registrar) return locker ? registrar.error() : locker.error();
    locker_ = *locker;
    registrar_ = *registrar;
    core_ = std::make_unique<global_server>(config());
    return {};
}

global_config global_service::config() {
    std::random_device rd;
    rng_.seed((std::uint64_t{rd()} << 32) | rd());
    global_config c;
    c.node = node_.name;
    c.server = proc_->self_term;
    c.locker = locker_->self_term;
    c.registrar = registrar_->self_term;
    // global.erl: creation_extension = rand:uniform(3000000000) - 1 at init
    c.creation_extension = static_cast<std::int64_t>(rng_() % 3000000000u);
    c.unique_integer = [this] { return unique_++; };
    c.random = [this] { return rng_(); };
    return c;
}

void global_service::run_op(std::function<std::uint64_t(actions&)> start,
                            std::chrono::milliseconds timeout, op_completion done) {
    if (stopped()) return done(make_error_code(errc::noproc), term());
    post([this, start = std::move(start), timeout, done = std::move(done)]() mutable {
        actions out;
        std::uint64_t op = start(out);
        waiter w{std::move(done), nullptr};
        if (timeout != infinity) {
            // The caller gives up; the operation carries on in the core, as a gen_server call
            // abandoned by its caller does.
            w.timer = std::make_shared<boost::asio::steady_timer>(node_.ioc(), timeout);
            w.timer->async_wait(
                [weak = weak_from_this(), raw = this, op](const boost::system::error_code& ec) {
                    if (ec) return;
                    if (auto s = weak.lock())
                        s->post([raw, op] {
                            auto it = raw->waiters_.find(op);
                            if (it == raw->waiters_.end()) return;
                            raw->run_after([d = std::move(it->second.done)] {
                                d(make_error_code(errc::timeout), term());
                            });
                            raw->waiters_.erase(it);
                        });
                });
        }
        waiters_[op] = std::move(w);
        execute(out);
    });
}

void global_service::on_op_done(std::uint64_t op, const term& result) {
    auto it = waiters_.find(op);
    if (it == waiters_.end()) return;
    if (it->second.timer) it->second.timer->cancel();
    run_after([d = std::move(it->second.done), result] { d({}, result); });
    waiters_.erase(it);
}

void global_service::on_stop() {
    for (auto& [op, w] : waiters_) {
        if (w.timer) w.timer->cancel();
        run_after([d = std::move(w.done)] { d(make_error_code(errc::noproc), term()); });
    }
    waiters_.clear();
    if (locker_) rt::exit(locker_, term(A("shutdown")));
    if (registrar_) rt::exit(registrar_, term(A("shutdown")));
}

void global_service::on_message(const term& msg) {
    feed([&](actions& out) { core_->message(msg, out); });
}

void global_service::on_nodeup(atom peer) {
    if (!peers_.add(peer)) return;
    feed([&](actions& out) { core_->node_up(peer, next_connection_id_++, out); });
}

void global_service::on_nodedown(atom peer) {
    if (!peers_.remove(peer)) return;
    feed([&](actions& out) { core_->node_down(peer, out); });
}

void global_service::on_down(monitor_id id) {
    feed([&](actions& out) { core_->down(id, out); });
}

void global_service::on_timer(timer_id id) {
    feed([&](actions& out) { core_->timer_fired(id, out); });
}

void global_service::on_call_result(call_id id, std::optional<term> reply) {
    feed([&](actions& out) { core_->call_result(id, std::move(reply), out); });
}

void global_service::on_connect_failed(atom peer) {
    feed([&](actions& out) { core_->connect_failed(peer, out); });
}

// ---- pg ------------------------------------------------------------------------------------

error_code pg_service::start() {
    std::lock_guard lk(mu);  // as in global_service::start
    if (auto ec = spawn(scope_)) return ec;
    core_ = std::make_unique<pg_scope>(scope_, proc_->self_term);
    feed([&](actions& out) { core_->start({}, out); });
    return {};
}

void pg_service::publish(std::vector<pg_change>& changes) {
    if (changes.empty() || subscribers_.empty()) return;
    std::vector<erl::pg::event> evs;
    for (auto& c : changes) {
        erl::pg::event e;
        e.scope = scope_;
        e.group = c.group;
        auto& dst = c.joined ? e.joined : e.left;
        for (auto& p : c.pids)
            if (p.is_pid()) dst.push_back(p.as_pid());
        evs.push_back(std::move(e));
    }
    run_after([subs = subscribers_, evs = std::move(evs)] {
        for (auto& e : evs)
            for (auto& [id, cb] : subs)
                cb(e);
    });
}

std::uint64_t pg_service::subscribe(std::function<void(const erl::pg::event&)> cb) {
    auto id = next_sub_++;
    subscribers_[id] = std::move(cb);
    return id;
}

void pg_service::unsubscribe(std::uint64_t id) {
    subscribers_.erase(id);
}

void pg_service::on_message(const term& msg) {
    actions out;
    std::vector<pg_change> changes;
    core_->message(msg, out, changes);
    execute(out);
    publish(changes);
}

void pg_service::on_nodeup(atom peer) {
    if (!peers_.add(peer)) return;
    feed([&](actions& out) { core_->node_up(peer, out); });
}

void pg_service::on_nodedown(atom peer) {
    if (!peers_.remove(peer)) return;
    feed([&](actions& out) { core_->node_down(peer, out); });
}

void pg_service::on_down(monitor_id id) {
    actions out;
    std::vector<pg_change> changes;
    core_->down(id, out, changes);
    execute(out);
    publish(changes);
}

// ---- the node's services -------------------------------------------------------------------

namespace {
// Per-node service state: the cluster services running on the node.
struct cluster_slot {
    std::mutex mu;
    std::weak_ptr<cluster_state> st;  // guarded by mu
};
}  // namespace

std::shared_ptr<cluster_state> find(node& n) {
    auto slot = erl::detail::access::core(n).service_state<cluster_slot>();
    std::lock_guard lk(slot->mu);
    return slot->st.lock();
}

void cluster_state::stop() {
    if (stopped.exchange(true)) return;
    auto& core = erl::detail::access::core(*n);
    if (node_monitor) rt::demonitor_nodes(core, *node_monitor);
    if (rpc && global) rpc->remove(A("global"), A("resolve_it"), 4);
    for (auto& [scope, s] : scopes)
        s->stop();
    if (global) global->stop();
    own_rpc.reset();
    auto slot = core.service_state<cluster_slot>();
    std::lock_guard lk(slot->mu);
    if (slot->st.expired() || slot->st.lock().get() == this) slot->st.reset();
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
}

result<running> start(node& n, options o) {
    using namespace detail;
    if (!n.alive()) return make_error_code(errc::not_alive);
    auto& core = erl::detail::access::core(n);
    auto slot = core.service_state<cluster_slot>();
    auto st = std::make_shared<cluster_state>();
    st->n = &n;
    {
        std::lock_guard lk(slot->mu);
        if (!slot->st.expired()) return make_error_code(errc::name_taken);
        slot->st = st;
    }
    auto fail = [&](error_code ec) -> result<running> {
        st->stop();
        return ec;
    };
    if (o.global) {
        st->global = std::make_shared<global_service>(core);
        if (auto ec = st->global->start()) return fail(ec);
    }
    for (atom scope : o.pg_scopes) {
        auto s = std::make_shared<pg_service>(core, scope);
        st->scopes[scope] = s;
        if (auto ec = s->start()) return fail(ec);
    }
    if (st->global) {
        if (o.rpc) {
            st->rpc = o.rpc;
        } else {
            st->own_rpc = std::make_unique<erl::rpc::server>(n);
            st->rpc = st->own_rpc.get();
        }
        std::weak_ptr<global_service> weak = st->global;
        // global:resolve_it/4, called by a BEAM resolver over rpc when our pid is in a clash
        // (global.erl exchange_names/4); it runs the method here, as `catch Method(...)`.
        st->rpc->add_raw(A("global"), A("resolve_it"), 4,
                         [weak](erl::rpc::call_context&, std::span<const term> args) -> term {
                             auto g = weak.lock();
                             if (!g) return tuple(A("EXIT"), A("noproc"));
                             std::lock_guard lk(g->mu);
                             actions out;
                             auto r = global_server::resolve_locally(args[0], args[1], args[2],
                                                                     args[3], out);
                             g->execute(out);
                             return r ? *r : tuple(A("EXIT"), A("undef"));
                         });
    }
    // Only visible peers take part (global.erl and pg.erl watch nodeup/nodedown of visible
    // nodes: net_kernel:monitor_nodes(true) without {node_type, all}); a hidden node serves
    // its own processes only and no peer ever hears from its services.
    if (!n.options().hidden) {
        std::weak_ptr<cluster_state> weak = st;
        // The events are queued at once, on the thread that reports them, so each service sees
        // them in the order of the node_event contract relative to the messages it is sent.
        st->node_monitor = rt::monitor_nodes(core, [weak](const node_event& ev) {
            auto s = weak.lock();
            if (!s || s->stopped || ev.hidden) return;
            if (s->global) s->global->node_event(ev.up, ev.node);
            for (auto& [scope, svc] : s->scopes)
                svc->node_event(ev.up, ev.node);
        });
        // Peers connected before start: their nodeup, after which the events carry on (a
        // repeated one changes nothing, see peer_set).
        for (atom peer : core.connections.connected_nodes(node_type::visible)) {
            if (st->global) st->global->node_event(true, peer);
            for (auto& [scope, svc] : st->scopes)
                svc->node_event(true, peer);
        }
    }
    return running(std::move(st));
}

}  // namespace erl::cluster
