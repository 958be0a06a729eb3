// The cluster services on a running erl::node: global_server and pg_scope cores served by
// processes of the node, through the node's public API only. Each core has one process (a
// mailbox and a thread receiving from it) and one mutex; every input (a message, a node event,
// a monitor DOWN, a timer, a call's reply, the node's own API) is fed to the core under that
// mutex, and the actions it returns are executed at once, in order.
//
// Node events and timers reach the core as control messages in the service's own mailbox
// ({'$erlcpp_cluster', Secret, ...}, Secret being a reference no peer knows), so that they are
// ordered with the traffic of the connection they concern: the node reports a nodeup before it
// delivers the connection's first message, and a nodedown after its last one and after the
// noconnection DOWNs of monitors on that node (docs/global.md, "What a runtime must provide").
#pragma once

#include <erl/cluster.hpp>
#include <erl/global.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "cluster/global_server.hpp"
#include "cluster/pg_scope.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace erl::cluster {
namespace detail {

inline atom A(const char* s) {
    return atom(s);
}

inline const atom& ctl_atom() {
    static const atom a("$erlcpp_cluster");
    return a;
}

// The reference in a [alias|Alias] or [[alias|Alias] | _] tag (gen.erl reply/2), if any.
inline std::optional<term> alias_of_tag(const term& tag, bool nested = true) {
    if (!tag.is_list() || tag.is_nil()) return std::nullopt;
    auto lv = tag.as_list();
    if (lv.elements.size() == 1 && lv.elements[0].is_atom(atom("alias")) && lv.tail.is_reference())
        return lv.tail;
    if (nested) return alias_of_tag(lv.elements[0], false);
    return std::nullopt;
}

// gen:reply/2: a tag holding an alias is answered to the alias, any other to the pid.
inline void reply_from(const mailbox& mb, const term& from, const term& value) {
    if (!from.is_tuple(2) || !from[0].is_pid()) return;
    const term& tag = from[1];
    if (auto alias = alias_of_tag(tag))
        mb.send_alias(alias->as_reference(), tuple(tag, value));
    else
        mb.send(from[0].as_pid(), tuple(tag, value));
}

// One core served by one process: what the actions of cluster_actions.hpp need.
class service_base {
  public:
    service_base(node& n, mailbox mb) : node_(n), mb_(std::move(mb)), secret_(n.make_ref()) {}
    virtual ~service_base() = default;

    const mailbox& mb() const { return mb_; }
    node& owner() { return node_; }
    std::mutex mu;

    // Runs the receive loop on a thread of its own until the process exits.
    void run() {
        thread_ = std::thread([this] {
            while (auto msg = mb_.receive()) {
                std::vector<std::function<void()>> after;
                {
                    std::lock_guard lk(mu);
                    dispatch(*msg, after);
                }
                for (auto& f : after)
                    f();
            }
        });
    }
    void stop() {
        {
            std::lock_guard lk(mu);
            for (auto& [id, t] : timers_)
                t->cancel();
            timers_.clear();
        }
        mb_.exit(term(A("shutdown")));
        if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    }

    // A control message to this service, ordered with its other messages.
    void post(std::vector<term> rest) {
        rest.insert(rest.begin(), term(secret_));
        rest.insert(rest.begin(), term(ctl_atom()));
        node_.send(mb_.self(), make_tuple(std::move(rest)));
    }

    // Called with mu held.
    void execute(actions& out) {
        for (std::size_t i = 0; i < out.size(); ++i)
            std::visit([this](auto& a) { exec(a); }, out[i]);
        out.clear();
    }

  protected:
    virtual void on_message(const term& msg, std::vector<std::function<void()>>& after) = 0;
    virtual void on_control(std::span<const term> ctl,
                            std::vector<std::function<void()>>& after) = 0;
    virtual void on_down(monitor_id id, std::vector<std::function<void()>>& after) = 0;
    virtual void on_timer(timer_id id) {}
    virtual void on_call_result(call_id id, std::optional<term> reply) {}
    virtual void on_op_done(std::uint64_t op, const term& result) {}
    virtual void on_connect_failed(atom peer) {}

    // noconnect sends are made only over a live connection.
    bool may_send(const term& to, bool noconnect, atom& remote) {
        remote = atom();
        if (to.is_pid()) {
            if (to.as_pid().node != node_.name()) remote = to.as_pid().node;
        } else if (to.is_tuple(2) && to[1].is_atom()) {
            if (to[1].as_atom() != node_.name()) remote = to[1].as_atom();
        }
        return remote.empty() || !noconnect || node_.is_connected(remote);
    }

    std::set<atom> awaiting_connection_;  // sends that set up a connection, see on_nodeup

  private:
    void dispatch(const term& msg, std::vector<std::function<void()>>& after) {
        if (msg.is_tuple() && msg.size() >= 3 && msg[0].is_atom(ctl_atom()) &&
            msg[1] == term(secret_)) {
            auto all = msg.as_tuple();
            auto rest = all.subspan(2);
            if (rest[0].is_atom(A("timer")) && rest.size() == 2) {
                timer_id id = static_cast<timer_id>(rest[1].as_int64());
                if (timers_.erase(id)) on_timer(id);
                return;
            }
            on_control(rest, after);
            return;
        }
        // {'DOWN', Ref, process, Object, Reason}
        if (msg.is_tuple(5) && msg[0].is_atom(A("DOWN")) && msg[1].is_reference()) {
            if (auto it = monitors_.find(msg[1]); it != monitors_.end()) {
                monitor_id id = it->second;
                monitor_refs_.erase(id);
                monitors_.erase(it);
                on_down(id, after);
                return;
            }
            if (auto it = call_monitors_.find(msg[1]); it != call_monitors_.end()) {
                call_id id = it->second;
                finish_call(id, std::nullopt);
                return;
            }
        }
        // {nodedown, Node} of monitor_node: a connection a send asked for could not be made
        if (msg.is_tuple(2) && msg[0].is_atom(A("nodedown")) && msg[1].is_atom()) {
            atom peer = msg[1].as_atom();
            if (awaiting_connection_.erase(peer) && !node_.is_connected(peer)) {
                mb_.monitor_node(peer, false);
                on_connect_failed(peer);
            }
            return;
        }
        // {[alias|Alias], Reply}: the answer to a call_server
        if (msg.is_tuple(2)) {
            if (auto alias = alias_of_tag(msg[0], false)) {
                if (auto it = call_aliases_.find(*alias); it != call_aliases_.end()) {
                    finish_call(it->second, msg[1]);
                    return;
                }
            }
        }
        on_message(msg, after);
    }

    void finish_call(call_id id, std::optional<term> reply) {
        auto it = calls_.find(id);
        if (it == calls_.end()) return;
        mb_.remove_alias(it->second.alias.as_reference());
        mb_.demonitor(it->second.mon.as_reference(), true);
        call_aliases_.erase(it->second.alias);
        call_monitors_.erase(it->second.mon);
        calls_.erase(it);
        on_call_result(id, std::move(reply));
    }

    void exec(send_to& a) {
        atom remote;
        if (!may_send(a.to, a.noconnect, remote)) return;
        if (!remote.empty() && !a.noconnect && !node_.is_connected(remote) &&
            awaiting_connection_.insert(remote).second)
            mb_.monitor_node(remote, true);
        if (a.to.is_pid())
            mb_.send(a.to.as_pid(), std::move(a.message));
        else if (a.to.is_atom())
            mb_.send(a.to.as_atom(), std::move(a.message));
        else if (a.to.is_tuple(2) && a.to[0].is_atom() && a.to[1].is_atom()) {
            if (a.to[1].as_atom() == node_.name())
                mb_.send(a.to[0].as_atom(), std::move(a.message));
            else
                mb_.send(a.to[0].as_atom(), a.to[1].as_atom(), std::move(a.message));
        }
    }
    void exec(monitor_pid& a) {
        if (!a.pid.is_pid()) return;
        term ref(mb_.monitor(a.pid.as_pid()));
        monitors_[ref] = a.id;
        monitor_refs_[a.id] = ref;
    }
    void exec(demonitor_pid& a) {
        auto it = monitor_refs_.find(a.id);
        if (it == monitor_refs_.end()) return;
        mb_.demonitor(it->second.as_reference(), true);
        monitors_.erase(it->second);
        monitor_refs_.erase(it);
    }
    void exec(timer_start& a) {
        auto t = std::make_shared<boost::asio::steady_timer>(node_.executor(), a.after);
        timers_[a.id] = t;
        term secret(secret_);
        node* n = &node_;
        pid self = mb_.self();
        timer_id id = a.id;
        // The timer holds only what it needs to post the expiry; a cancelled timer posts
        // nothing, and a late expiry of a cancelled id is dropped by dispatch.
        t->async_wait([t, n, self, secret, id](const boost::system::error_code& ec) {
            if (ec) return;
            n->send(self, tuple(ctl_atom(), secret, A("timer"), static_cast<std::int64_t>(id)));
        });
    }
    void exec(timer_cancel& a) {
        if (auto it = timers_.find(a.id); it != timers_.end()) {
            it->second->cancel();
            timers_.erase(it);
        }
    }
    void exec(call_server& a) {
        // gen:do_call/4 with an alias tag: the request names the caller as From's pid (the
        // server holds locks and names for it), the alias is ours, so the reply reaches this
        // service; the monitor ends the call when the server or its node goes.
        reference alias = mb_.make_alias();
        term mon;
        if (a.to.is_pid())
            mon = term(mb_.monitor(a.to.as_pid()));
        else if (a.to.is_tuple(2) && a.to[0].is_atom() && a.to[1].is_atom())
            mon = term(mb_.monitor(a.to[0].as_atom(), a.to[1].as_atom()));
        else
            return;
        term tag = make_list({term(A("alias"))}, term(alias));
        calls_[a.id] = pending_call{term(alias), mon};
        call_aliases_[term(alias)] = a.id;
        call_monitors_[mon] = a.id;
        send_to s{a.to, tuple(A("$gen_call"), tuple(a.caller, tag), a.request), false};
        exec(s);
    }
    void exec(reply_to& a) { reply_from(mb_, a.from, a.value); }
    void exec(exit_pid& a) {
        if (a.pid.is_pid()) mb_.exit(a.pid.as_pid(), a.reason);
    }
    void exec(disconnect_node& a) { node_.disconnect(a.node); }
    void exec(rpc_call& a) {
        // erpc:call blocks: it runs in a process of its own and posts the outcome back.
        node* n = &node_;
        pid self = mb_.self();
        term secret(secret_);
        call_id id = a.id;
        atom peer = a.node, mod = a.module, fun = a.function;
        term args = a.args;
        auto r = erl::spawn(node_, [n, self, secret, id, peer, mod, fun, args](mailbox&) {
            auto res = erl::rpc::call(*n, peer, mod, fun, args, std::chrono::minutes(1));
            n->send(self, tuple(ctl_atom(), secret, A("rpc_result"), static_cast<std::int64_t>(id),
                                res.to_rpc_term()));
        });
        if (!r) on_call_result(id, tuple(A("badrpc"), A("nodedown")));
    }
    void exec(op_done& a) { on_op_done(a.op, a.result); }
    void exec(log_line& a) {
        static constexpr log_level levels[] = {log_level::info, log_level::warning,
                                               log_level::error};
        node_.log({levels[static_cast<int>(a.severity)],
                   log_kind::service,
                   {},
                   {},
                   {},
                   "cluster: " + a.text});
    }

    struct pending_call {
        term alias;
        term mon;
    };

    node& node_;
    mailbox mb_;
    reference secret_;
    std::thread thread_;
    std::map<term, monitor_id> monitors_;
    std::map<monitor_id, term> monitor_refs_;
    std::map<timer_id, std::shared_ptr<boost::asio::steady_timer>> timers_;
    std::map<call_id, pending_call> calls_;
    std::map<term, call_id> call_aliases_;
    std::map<term, call_id> call_monitors_;
};

// Tracks the visible peers a service has been told about: a nodeup for a peer already up or a
// nodedown for one not up changes nothing (the start-up snapshot may repeat an event).
struct peer_set {
    std::set<atom> up;
    bool add(atom n) { return up.insert(n).second; }
    bool remove(atom n) { return up.erase(n) != 0; }
};

class global_service final : public service_base {
  public:
    global_service(node& n, mailbox mb, mailbox locker, mailbox registrar)
        : service_base(n, std::move(mb)),
          locker_(std::move(locker)),
          registrar_(std::move(registrar)),
          core_(config(n)) {}

    global_server& core() { return core_; }
    const peer_set& peers() const { return peers_; }
    const mailbox& registrar() const { return registrar_; }

    // Starts op (under mu) and waits for its op_done.
    std::optional<term> run_op(const std::function<std::uint64_t(actions&)>& start,
                               std::chrono::milliseconds timeout) {
        auto p = std::make_shared<std::promise<term>>();
        auto f = p->get_future();
        {
            std::lock_guard lk(mu);
            actions out;
            std::uint64_t op = start(out);
            waiters_[op] = p;
            execute(out);
        }
        if (timeout == infinity)
            f.wait();
        else if (f.wait_for(timeout) != std::future_status::ready)
            return std::nullopt;
        return f.get();
    }

    void stop_service() {
        stop();
        locker_.exit(term(A("shutdown")));
        registrar_.exit(term(A("shutdown")));
    }

  protected:
    void on_message(const term& msg, std::vector<std::function<void()>>&) override {
        actions out;
        core_.message(msg, out);
        execute(out);
    }
    void on_control(std::span<const term> c, std::vector<std::function<void()>>&) override {
        actions out;
        if (c.size() == 2 && c[0].is_atom(A("nodeup")) && c[1].is_atom()) {
            atom peer = c[1].as_atom();
            if (awaiting_connection_.erase(peer)) mb().monitor_node(peer, false);
            if (!peers_.add(peer)) return;
            core_.node_up(peer, next_connection_id_++, out);
        } else if (c.size() == 2 && c[0].is_atom(A("nodedown")) && c[1].is_atom()) {
            if (!peers_.remove(c[1].as_atom())) return;
            core_.node_down(c[1].as_atom(), out);
        } else if (c.size() == 3 && c[0].is_atom(A("rpc_result")) && c[1].is_small()) {
            core_.call_result(static_cast<call_id>(c[1].as_int64()), c[2], out);
        }
        execute(out);
    }
    void on_down(monitor_id id, std::vector<std::function<void()>>&) override {
        actions out;
        core_.down(id, out);
        execute(out);
    }
    void on_timer(timer_id id) override {
        actions out;
        core_.timer_fired(id, out);
        execute(out);
    }
    void on_call_result(call_id id, std::optional<term> reply) override {
        actions out;
        core_.call_result(id, std::move(reply), out);
        execute(out);
    }
    void on_connect_failed(atom peer) override {
        actions out;
        core_.connect_failed(peer, out);
        execute(out);
    }
    void on_op_done(std::uint64_t op, const term& result) override {
        if (auto it = waiters_.find(op); it != waiters_.end()) {
            it->second->set_value(result);
            waiters_.erase(it);
        }
    }

  private:
    global_config config(node& n) {
        std::random_device rd;
        rng_.seed((std::uint64_t{rd()} << 32) | rd());
        global_config c;
        c.node = n.name();
        c.server = mb().self_term();
        c.locker = locker_.self_term();
        c.registrar = registrar_.self_term();
        // global.erl: creation_extension = rand:uniform(3000000000) - 1 at init
        c.creation_extension = static_cast<std::int64_t>(rng_() % 3000000000u);
        c.unique_integer = [this] { return unique_++; };
        c.random = [this] { return rng_(); };
        return c;
    }

    mailbox locker_, registrar_;
    std::mt19937_64 rng_;
    std::int64_t unique_ = 1;
    std::int64_t next_connection_id_ = 1;
    peer_set peers_;
    std::map<std::uint64_t, std::shared_ptr<std::promise<term>>> waiters_;
    global_server core_;  // last: its config refers to the members above
};

class pg_service final : public service_base {
  public:
    pg_service(node& n, mailbox mb, atom scope)
        : service_base(n, std::move(mb)), core_(scope, this->mb().self_term()) {
        actions out;
        core_.start({}, out);
        execute(out);
    }

    pg_scope& core() { return core_; }

    // Called with mu held; the events go to subscribers through `after` (outside mu).
    void publish(std::vector<pg_change>& changes, std::vector<std::function<void()>>& after) {
        if (changes.empty() || subscribers_.empty()) return;
        auto subs = subscribers_;
        std::vector<erl::pg::event> evs;
        for (auto& c : changes) {
            erl::pg::event e;
            e.scope = core_.scope();
            e.group = c.group;
            auto& dst = c.joined ? e.joined : e.left;
            for (auto& p : c.pids)
                if (p.is_pid()) dst.push_back(p.as_pid());
            evs.push_back(std::move(e));
        }
        after.push_back([subs = std::move(subs), evs = std::move(evs)] {
            for (auto& e : evs)
                for (auto& [id, cb] : subs)
                    cb(e);
        });
    }
    std::uint64_t subscribe(std::function<void(const erl::pg::event&)> cb) {
        auto id = next_sub_++;
        subscribers_[id] = std::move(cb);
        return id;
    }
    void unsubscribe(std::uint64_t id) { subscribers_.erase(id); }

  protected:
    void on_message(const term& msg, std::vector<std::function<void()>>& after) override {
        actions out;
        std::vector<pg_change> changes;
        core_.message(msg, out, changes);
        execute(out);
        publish(changes, after);
    }
    void on_control(std::span<const term> c, std::vector<std::function<void()>>&) override {
        actions out;
        if (c.size() == 2 && c[0].is_atom(A("nodeup")) && c[1].is_atom()) {
            if (!peers_.add(c[1].as_atom())) return;
            core_.node_up(c[1].as_atom(), out);
        } else if (c.size() == 2 && c[0].is_atom(A("nodedown")) && c[1].is_atom()) {
            if (!peers_.remove(c[1].as_atom())) return;
            core_.node_down(c[1].as_atom(), out);
        }
        execute(out);
    }
    void on_down(monitor_id id, std::vector<std::function<void()>>& after) override {
        actions out;
        std::vector<pg_change> changes;
        core_.down(id, out, changes);
        execute(out);
        publish(changes, after);
    }

  private:
    pg_scope core_;
    peer_set peers_;
    std::map<std::uint64_t, std::function<void(const erl::pg::event&)>> subscribers_;
    std::uint64_t next_sub_ = 1;
};

struct cluster_state {
    node* n = nullptr;
    std::unique_ptr<erl::rpc::server> own_rpc;
    erl::rpc::server* rpc = nullptr;
    std::unique_ptr<global_service> global;
    std::map<atom, std::unique_ptr<pg_service>> scopes;
    std::uint64_t node_monitor = 0;
    std::atomic<bool> stopped{false};  // read by the node-event callback on I/O threads

    void stop();
};

// The services running on n, if any.
std::shared_ptr<cluster_state> find(const node& n);

}  // namespace detail
}  // namespace erl::cluster
