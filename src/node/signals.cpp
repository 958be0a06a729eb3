// Link, exit and monitor signals between processes (erl_dist_protocol "Protocol between
// connected nodes"; Erlang reference manual "Processes": links, exit signals, monitors).
#include "node/signals.hpp"
#include "node/connection.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "proto/dist_codec.hpp"
#include "proto/dist_flags.hpp"

#include <optional>
#include <stdexcept>

namespace erl::detail {

namespace dop = proto::dop;

namespace {
// The Object of a 'DOWN' message: the pid, or {Name, Node} for a monitor by name.
term down_ident(const std::shared_ptr<connection>& c, const term& from) {
    if (from.is_atom()) return make_tuple({from, term(c->peer())});
    return from;
}
}  // namespace

namespace {

// UNLINK_ID ids are integers in [1, 2^64-1]; ours stay small, a peer's may be a bignum.
std::optional<std::uint64_t> id_value(const term& t) {
    if (t.is_small()) {
        const auto v = t.as_int64();
        if (v > 0) return static_cast<std::uint64_t>(v);
        return std::nullopt;
    }
    if (t.is_bignum()) {
        const auto b = t.as_big();
        if (b.negative || b.limbs.empty() || b.limbs.size() > 2) return std::nullopt;
        std::uint64_t v = b.limbs[0];
        if (b.limbs.size() == 2) v |= std::uint64_t(b.limbs[1]) << 32;
        return v;
    }
    return std::nullopt;
}

// Runs `on_fail` once if the connection to `peer` closes without coming up, so links and
// monitors that were waiting for it fire `noconnection` as in Erlang (an established connection
// that goes down is handled by on_node_down_signals instead). A connection superseded by a
// simultaneous connect hands over to its successor, which is then watched instead.
void when_setup_fails(const std::weak_ptr<node_core>& core, atom peer,
                      const std::shared_ptr<connection>& c, std::function<void()> on_fail) {
    c->when_settled([core, peer, c = std::weak_ptr<connection>(c),
                     on_fail = std::move(on_fail)](bool up) mutable {
        if (up) return;
        auto n = core.lock();
        if (!n) return;
        auto next = n->connections.connection_to(peer, false);
        if (next && next != c.lock()) {
            when_setup_fails(core, peer, next, std::move(on_fail));
            return;
        }
        on_fail();
    });
}

// Sends a control message to `to_node`, connecting on demand. When the node cannot be reached
// `on_fail` runs (now, or once set-up fails). It must hold no strong reference to a process
// or the node (it may sit in the io_context's queue).
void send_control(node_core& n, atom to_node, const term& control, const term* payload,
                  std::function<void()> on_fail) {
    auto c = n.connections.connection_to(to_node, true);
    if (!c) {
        if (on_fail) on_fail();
        return;
    }
    c->send(control, payload);
    if (on_fail && !c->is_up())
        when_setup_fails(n.weak_from_this(), to_node, c, std::move(on_fail));
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Sending side

void node_core::send_exit_signal(const term& from, const term& to, const term& reason) {
    if (!to.is_pid()) return;
    const pid& tp = to.as_pid();
    if (tp.node == name) {
        if (auto p = find_process(tp)) exit_signal(p, from, reason, true);
        return;
    }
    auto c = connections.connection_to(tp.node, false);
    if (!c || c->is_closed()) return;
    if (c->flags() & proto::dflag::exit_payload) {
        term r = reason;
        c->send(make_tuple({term(dop::payload_exit), from, to}), &r);
    } else {
        c->send(make_tuple({term(dop::exit), from, to, reason}), nullptr);
    }
}

void send_exit2(node_core& n, const term& from, const pid& to, const term& reason) {
    if (to.node == n.name) {
        if (auto p = n.find_process(to)) n.exit_signal(p, from, reason, false);
        return;
    }
    auto c = n.connections.connection_to(to.node, true);
    if (!c) return;
    if (c->flags() & proto::dflag::exit_payload) {
        term r = reason;
        c->send(make_tuple({term(dop::payload_exit2), from, term(to)}), &r);
    } else {
        c->send(make_tuple({term(dop::exit2), from, term(to), reason}), nullptr);
    }
}

void link(node_core& n, const std::shared_ptr<process>& self, const pid& other) {
    const term ot(other);
    if (ot == self->self_term) return;  // linking to oneself does nothing
    {
        std::lock_guard lk(self->mu);
        if (self->exited) return;
        if (!self->links.link_sent(ot)) return;  // already actively linked
    }
    if (other.node == n.name) {
        recv_link(n, self->self_term, other);
        return;
    }
    std::weak_ptr<process> w = self;
    send_control(n, other.node, make_tuple({term(dop::link), self->self_term, ot}), nullptr,
                 [w, ot] {
                     if (auto p = w.lock())
                         p->node->exit_signal(p, ot, term(A().noconnection), true);
                 });
}

void unlink(node_core& n, const std::shared_ptr<process>& self, const pid& other) {
    const term ot(other);
    const bool local = other.node == n.name;
    std::shared_ptr<connection> c;
    bool old_protocol = false;
    if (!local) {
        c = n.connections.connection_to(other.node, false);
        // A peer without DFLAG_UNLINK_ID (before OTP 23.3) gets the old one-way UNLINK.
        old_protocol = c && c->is_up() && !(c->flags() & proto::dflag::unlink_id);
    }
    std::uint64_t id = 0;
    {
        std::lock_guard lk(self->mu);
        if (self->exited) return;
        if (!local && (!c || c->is_closed() || old_protocol)) {
            self->links.remove(ot);
            if (!old_protocol) return;  // no connection: nothing to tell
        } else {
            id = self->next_unlink_id++;
            if (!self->links.unlink_sent(ot, id)) return;  // not actively linked
        }
    }
    if (local) {
        recv_unlink_id(n, term(static_cast<unsigned long long>(id)), self->self_term, other);
    } else if (old_protocol) {
        c->send(make_tuple({term(dop::unlink), self->self_term, ot}), nullptr);
    } else {
        c->send(make_tuple({term(dop::unlink_id), term(static_cast<unsigned long long>(id)),
                            self->self_term, ot}),
                nullptr);
    }
}

reference monitor(node_core& n, const std::shared_ptr<process>& self, const term& target) {
    // Normalise: what the target's node looks up (pid or name atom), the node, and the Object
    // of the eventual 'DOWN' ({Name, Node} for monitors by name, as erlang:monitor/2 gives).
    term lookup;
    atom node;
    term ident;
    if (target.is_pid()) {
        lookup = target;
        node = target.as_pid().node;
        ident = target;
    } else if (target.is_atom()) {
        lookup = target;
        node = n.name;
        ident = make_tuple({target, term(n.name)});
    } else if (target.is_tuple(2) && target[0].is_atom() && target[1].is_atom()) {
        lookup = target[0];
        node = target[1].as_atom();
        ident = target;
    } else {
        throw std::invalid_argument("erl::monitor: target must be a pid, a name or {Name, Node}");
    }
    const reference ref = n.make_ref();
    {
        std::lock_guard lk(self->mu);
        if (self->exited) return ref;
        self->monitors.push_back({ref, lookup, node});
    }
    if (node == n.name) {
        recv_monitor(n, self->self_term, lookup, ref);
        return ref;
    }
    std::weak_ptr<process> w = self;
    send_control(n, node, make_tuple({term(dop::monitor_p), self->self_term, lookup, term(ref)}),
                 nullptr, [w, ident, ref] {
                     if (auto p = w.lock())
                         p->node->send_monitor_down(ident, p->self_term, ref,
                                                    term(A().noconnection));
                 });
    return ref;
}

bool demonitor(node_core& n, const std::shared_ptr<process>& self, const reference& ref,
               bool flush) {
    std::optional<process::watched> m;
    {
        std::lock_guard lk(self->mu);
        auto it = std::find_if(self->monitors.begin(), self->monitors.end(),
                               [&](const process::watched& w) { return w.ref == ref; });
        if (it != self->monitors.end()) {
            m = *it;
            self->monitors.erase(it);
        }
        if (flush) {
            self->queue.erase_if([&](const term& msg) {
                return msg.is_tuple(5) && msg[0].is_atom(A().down) && msg[1].is_reference() &&
                       msg[1].as_reference() == ref;
            });
            ++self->queue_epoch;
        }
    }
    if (m) n.remove_monitor_remote(self->self_term, *m);
    return m.has_value();
}

void monitor_node(node_core& n, const std::shared_ptr<process>& self, atom node, bool on) {
    {
        std::lock_guard lk(self->mu);
        if (self->exited) return;
        if (!on) {
            self->drop_node_watch_locked(node);
            return;
        }
        self->more_locked().node_watches.push_back(node);
    }
    if (node == n.name) return;  // our own node never goes down under us
    std::weak_ptr<process> w = self;
    auto fail = [w, node] {
        auto p = w.lock();
        if (!p) return;
        {
            std::lock_guard lk(p->mu);
            if (!p->drop_node_watch_locked(node)) return;
        }
        p->deliver(make_tuple({term(A().nodedown), term(node)}));
    };
    auto c = n.connections.connection_to(node, true);
    if (!c) {
        fail();
    } else if (!c->is_up()) {
        when_setup_fails(n.weak_from_this(), node, c, std::move(fail));
    }
}

void node_core::send_monitor_down(const term& ident, const term& watcher, const reference& ref,
                                  const term& reason) {
    if (!watcher.is_pid()) return;
    const pid& wp = watcher.as_pid();
    if (wp.node == name) {
        auto p = find_process(wp);
        if (!p) return;
        // A local watcher of a local name sees {Name, node()}.
        const term object = ident.is_atom() ? make_tuple({ident, term(name)}) : ident;
        term msg = make_tuple({term(A().down), term(ref), term(A().process), object, reason});
        p->deliver_if(std::move(msg), [&] {
            auto it = std::find_if(p->monitors.begin(), p->monitors.end(),
                                   [&](const process::watched& w) { return w.ref == ref; });
            if (it == p->monitors.end()) return false;  // demonitored meanwhile
            p->monitors.erase(it);
            return true;
        });
        return;
    }
    auto c = connections.connection_to(wp.node, false);
    if (!c || c->is_closed()) return;
    if (c->flags() & proto::dflag::exit_payload) {
        term r = reason;
        c->send(make_tuple({term(dop::payload_monitor_p_exit), ident, watcher, term(ref)}), &r);
    } else {
        c->send(make_tuple({term(dop::monitor_p_exit), ident, watcher, term(ref), reason}),
                nullptr);
    }
}

void node_core::remove_monitor_remote(const term& watcher, const process::watched& m) {
    // A spawn_request monitor whose reply has not come: no pid to demonitor yet
    // (recv_spawn_reply removes the monitor the peer set up once the reply names the pid).
    if (!m.target.is_pid() && !m.target.is_atom()) return;
    if (m.node == name) {
        recv_demonitor(*this, m.target, m.ref);
        return;
    }
    auto c = connections.connection_to(m.node, false);
    if (!c || c->is_closed()) return;
    term target = m.target;
    if (target.is_tuple(2)) target = target[0];  // {Name, Node} -> Name
    c->send(make_tuple({term(dop::demonitor_p), watcher, target, term(m.ref)}), nullptr);
}

void node_core::send_alias(const term& from, const reference& alias, term msg) {
    if (alias.node == name) {
        if (auto p = table.find_alias(alias)) p->deliver(std::move(msg));
        return;
    }
    auto c = connections.connection_to(alias.node, true);
    if (!c) return;
    // ALIAS_SEND exists only between nodes that negotiated DFLAG_ALIAS; without it the
    // message is dropped, as OTP does.
    if (c->flags() & proto::dflag::alias)
        c->send(make_tuple({term(dop::alias_send), from, term(alias)}), &msg);
}

// ------------------------------------------------------------------------------------------
// SPAWN_REQUEST / SPAWN_REPLY (erl_dist_protocol; erlang:spawn_request/5)

term send_control(const term& from, const pid& to, bool send_sender) {
    return send_sender ? make_tuple({term(dop::send_sender), from, term(to)})
                       : make_tuple({term(dop::send), term(atom()), term(to)});
}

term reg_send_control(const term& from, atom to_name) {
    return make_tuple({term(dop::reg_send), from, term(atom()), term(to_name)});
}

namespace runtime {

bool supports_spawn(node_core& n, atom node) {
    auto c = n.connections.connection_to(node, false);
    return c && c->is_up() && (c->flags() & proto::dflag::spawn) != 0;
}

reference spawn_request(const std::shared_ptr<process>& self, atom node, atom m, atom f,
                        const term& args, const term& group_leader, spawn_request_opts opts) {
    node_core& n = *self->node;
    const reference req = n.make_ref();
    const bool tracked = opts.reply || opts.monitor || opts.link;
    {
        std::lock_guard lk(self->mu);
        if (self->exited) return req;
        if (tracked)
            self->more_locked().spawn_requests.push_back({req, node, opts.reply, opts.link});
        // Target unknown until SPAWN_REPLY; recv_spawn_reply fills it in.
        if (opts.monitor) self->monitors.push_back({req, term(), node});
    }
    const std::size_t arity = args.is_list() ? args.as_list().elements.size() : 0;
    // erl_dist_protocol SPAWN_REQUEST OptList: the options the spawning node acts on (link,
    // monitor); `reply` is local to the requester (erlang.erl spawn_request/5).
    std::vector<term> optv;
    if (opts.link) optv.emplace_back(A().link);
    if (opts.monitor) optv.emplace_back(A().monitor);
    std::function<void()> on_fail;
    if (tracked) {
        std::weak_ptr<process> w = self;
        on_fail = [w, req] {
            if (auto p = w.lock())
                recv_spawn_reply(*p->node, req, p->self, 0, term(A().noconnection));
        };
    }
    // {29, ReqId, From, GroupLeader, {M, F, Arity}, OptList} + ArgList.
    send_control(n, node,
                 make_tuple({term(dop::spawn_request), term(req), self->self_term, group_leader,
                             make_tuple({term(m), term(f), term(static_cast<long long>(arity))}),
                             make_list(std::move(optv))}),
                 &args, std::move(on_fail));
    return req;
}

bool spawn_request_abandon(const std::shared_ptr<process>& self, const reference& req) {
    bool found = false;
    {
        std::lock_guard lk(self->mu);
        found = self->take_spawn_request_locked(req).has_value();
        auto m = std::find_if(self->monitors.begin(), self->monitors.end(),
                              [&](const process::watched& w) { return w.ref == req; });
        if (m != self->monitors.end() && !m->target.is_pid() && !m->target.is_atom())
            self->monitors.erase(m);
    }
    return found;
}

std::shared_ptr<process> accept_spawn(node_core& n, const std::shared_ptr<connection>& c,
                                      const term& req_id, const term& from, accept_opts opts) {
    auto p = n.new_process();
    {
        std::lock_guard lk(p->mu);
        if (opts.monitor) p->watchers.push_back({from, req_id.as_reference(), p->self_term});
        if (opts.link) p->links.link_received(from);
    }
    // SPAWN_REPLY goes out on this strand before anything the new process sends, so the
    // caller always learns the pid before the DOWN (erl_dist_protocol: signal order).
    const int flags = (opts.link ? 1 : 0) | (opts.monitor ? 2 : 0);
    c->send(make_tuple({term(dop::spawn_reply), req_id, from, term(flags), p->self_term}), nullptr);
    return p;
}

}  // namespace runtime

void recv_spawn_reply(node_core& n, const reference& req, const pid& to, std::int64_t flags,
                      const term& result) {
    const bool ok = result.is_pid();
    auto p = n.find_process(to);
    bool alive = false;      // the requester is a live process
    bool answered = false;   // ... and this answered one of its pending requests
    bool repeated = false;   // ... or one answered before (a repeated reply: nothing to undo)
    bool monitored = false;  // the requester now holds the monitor the peer set up
    if (p) {
        term msg =
            make_tuple({term(A().spawn_reply), term(req), term(ok ? A().ok : A().error), result});
        p->deliver_if(std::move(msg), [&] {
            alive = true;
            auto m = std::find_if(p->monitors.begin(), p->monitors.end(),
                                  [&](const process::watched& w) { return w.ref == req; });
            const auto request = p->take_spawn_request_locked(req);
            if (!request) {
                // Abandoned (spawn_request_abandon), or answered already: its monitor then
                // holds the pid.
                repeated = m != p->monitors.end();
                return false;
            }
            answered = true;
            // erlang:spawn_link/4: the link exists from the reply on, before the new process's
            // exit (sent after the reply on the same connection) can arrive.
            if (ok && request->link && (flags & 1)) p->links.link_received(result);
            if (m != p->monitors.end() && !m->target.is_pid() && !m->target.is_atom()) {
                if (ok) {
                    m->target = result;  // monitor the new process from now on
                    monitored = true;
                } else {
                    p->monitors.erase(m);  // nothing was spawned: no DOWN will come
                }
            }
            return request->reply;
        });
    }
    if (!ok || repeated) return;
    // What the peer set up for a requester that no longer wants it — the request was
    // abandoned (erlang:spawn_request_abandon/1), its monitor removed by demonitor before the
    // reply, or the requester is gone — is undone as BEAM does: the monitor is removed on the
    // new process's node, and a link ends with an exit signal (abandoned, or noproc for a
    // requester that does not exist) that also removes it there.
    const pid& child = result.as_pid();
    if ((flags & 2) && !monitored) n.remove_monitor_remote(term(to), {req, result, child.node});
    if ((flags & 1) && !answered)
        n.send_exit_signal(term(to), result, term(alive ? A().abandoned : A().noproc));
}

// ------------------------------------------------------------------------------------------
// Receiving side (control messages and local signals alike)

void recv_link(node_core& n, const term& from, const pid& to) {
    auto p = n.find_process(to);
    bool linked = false;
    if (p) {
        std::lock_guard lk(p->mu);
        if (!p->exited) {
            p->links.link_received(from);
            linked = true;
        }
    }
    // Linking to a process that does not exist gives the linker an exit signal noproc.
    if (!linked) n.send_exit_signal(term(to), from, term(A().noproc));
}

void recv_unlink_id(node_core& n, const term& id, const term& from, const pid& to) {
    if (auto p = n.find_process(to)) {
        std::lock_guard lk(p->mu);
        p->links.unlink_id_received(from);
    }
    // erl_dist_protocol: UNLINK_ID_ACK {36, Id, FromPid, ToPid}, sender and receiver swapped,
    // sent before any other signal from this process to the unlinker. Remotely we are on the
    // connection's strand, so it is queued before anything this process sends later.
    if (!from.is_pid()) return;
    const pid& fp = from.as_pid();
    if (fp.node == n.name) {
        recv_unlink_id_ack(n, id, term(to), fp);
        return;
    }
    if (auto c = n.connections.connection_to(fp.node, false))
        c->send(make_tuple({term(dop::unlink_id_ack), id, term(to), from}), nullptr);
}

void recv_unlink_id_ack(node_core& n, const term& id, const term& from, const pid& to) {
    auto v = id_value(id);
    if (!v) return;
    if (auto p = n.find_process(to)) {
        std::lock_guard lk(p->mu);
        p->links.unlink_ack_received(from, *v);
    }
}

void recv_monitor(node_core& n, const term& from, const term& target, const reference& ref) {
    std::shared_ptr<process> p;
    if (target.is_pid())
        p = n.find_process(target.as_pid());
    else if (target.is_atom())
        p = n.find_name(target.as_atom());
    bool ok = false;
    if (p) {
        std::lock_guard lk(p->mu);
        if (!p->exited) {
            p->watchers.push_back({from, ref, target});
            ok = true;
        }
    }
    if (!ok) n.send_monitor_down(target, from, ref, term(A().noproc));
}

void recv_demonitor(node_core& n, const term& target, const reference& ref) {
    std::shared_ptr<process> p;
    if (target.is_pid())
        p = n.find_process(target.as_pid());
    else if (target.is_atom())
        p = n.find_name(target.as_atom());
    else if (target.is_tuple(2) && target[0].is_atom())
        p = n.find_name(target[0].as_atom());
    if (!p) return;
    std::lock_guard lk(p->mu);
    std::erase_if(p->watchers, [&](const process::watcher& w) { return w.ref == ref; });
}

void node_core::exit_signal(const std::shared_ptr<process>& to, const term& from,
                            const term& reason, bool linked) {
    // Erlang reference manual, "Receiving Exit Signals": kill (sent with exit/2) is
    // untrappable and gives `killed`; a trapping process gets {'EXIT', From, Reason}; otherwise
    // `normal` is ignored (except exit(self(), normal)) and anything else kills with Reason.
    bool die = false;
    term die_reason = reason;
    process::wake_list wake;
    bool via_handler = false;
    term msg;
    {
        std::lock_guard lk(to->mu);
        if (to->exited) return;
        // A link exit counts only while the link is active: an unlink (ours, not yet
        // acknowledged, or theirs) that crossed the exit in flight makes it void.
        if (linked && !to->links.exit_received(from)) return;
        const bool is_kill = !linked && reason.is_atom(A().kill);
        if (is_kill) {
            die = true;
            die_reason = term(A().killed);
        } else if (to->trap_exit) {
            msg = make_tuple({term(A().exit_tag), from, reason});
            if (to->handler)
                via_handler = true;
            else
                to->push_locked(msg, wake);
        } else if (reason.is_atom(atoms::normal())) {
            if (linked || from != to->self_term) return;
            die = true;  // exit(self(), normal) ends the caller
        } else {
            die = true;
        }
    }
    if (die) {
        process_exit(to, die_reason);
    } else if (via_handler) {
        to->deliver(std::move(msg));
    } else {
        to->notify(wake);
    }
}

void node_core::on_signal(const std::shared_ptr<connection>& c, const term& control,
                          term* payload) {
    const auto op = control[0].as_int64();
    const std::size_t n = control.size();
    auto bad = [&] {
        c->close(make_error_code(errc::bad_control_message),
                 "malformed control message " + control.to_string());
    };
    switch (op) {
        case dop::link:  // {1, FromPid, ToPid}
            if (n != 3 || !control[1].is_pid() || !control[2].is_pid()) return bad();
            recv_link(*this, control[1], control[2].as_pid());
            return;
        case dop::unlink_id:  // {35, Id, FromPid, ToPid}
            if (n != 4 || !control[1].is_integer() || !control[2].is_pid() || !control[3].is_pid())
                return bad();
            recv_unlink_id(*this, control[1], control[2], control[3].as_pid());
            return;
        case dop::unlink_id_ack:  // {36, Id, FromPid, ToPid}
            if (n != 4 || !control[1].is_integer() || !control[2].is_pid() || !control[3].is_pid())
                return bad();
            recv_unlink_id_ack(*this, control[1], control[2], control[3].as_pid());
            return;
        case dop::unlink: {  // {4, FromPid, ToPid}: old protocol, removes the link at once
            if (n != 3 || !control[1].is_pid() || !control[2].is_pid()) return bad();
            if (auto p = find_process(control[2].as_pid())) {
                std::lock_guard lk(p->mu);
                p->links.remove(control[1]);
            }
            return;
        }
        case dop::exit:
        case dop::exit_tt:
        case dop::exit2:
        case dop::exit2_tt: {  // {3, From, To, Reason} / {13, From, To, Token, Reason}
            const bool tt = op == dop::exit_tt || op == dop::exit2_tt;
            if (n != (tt ? 5u : 4u) || !control[2].is_pid()) return bad();
            if (auto p = find_process(control[2].as_pid()))
                exit_signal(p, control[1], control[tt ? 4 : 3],
                            op == dop::exit || op == dop::exit_tt);
            return;
        }
        case dop::payload_exit:
        case dop::payload_exit_tt:
        case dop::payload_exit2:
        case dop::payload_exit2_tt: {  // {24, From, To} + Reason
            if (n < 3 || !control[2].is_pid() || !payload) return bad();
            if (auto p = find_process(control[2].as_pid()))
                exit_signal(p, control[1], *payload,
                            op == dop::payload_exit || op == dop::payload_exit_tt);
            return;
        }
        case dop::monitor_p:  // {19, FromPid, ToProc, Ref}; ToProc: pid or name
            if (n != 4 || !control[1].is_pid() || !control[3].is_reference() ||
                !(control[2].is_pid() || control[2].is_atom()))
                return bad();
            recv_monitor(*this, control[1], control[2], control[3].as_reference());
            return;
        case dop::demonitor_p:  // {20, FromPid, ToProc, Ref}
            if (n != 4 || !control[3].is_reference()) return bad();
            recv_demonitor(*this, control[2], control[3].as_reference());
            return;
        case dop::monitor_p_exit: {  // {21, FromProc, ToPid, Ref, Reason}
            if (n != 5 || !control[2].is_pid() || !control[3].is_reference()) return bad();
            send_monitor_down(down_ident(c, control[1]), control[2], control[3].as_reference(),
                              control[4]);
            return;
        }
        case dop::payload_monitor_p_exit: {  // {28, FromProc, ToPid, Ref} + Reason
            if (n != 4 || !control[2].is_pid() || !control[3].is_reference() || !payload)
                return bad();
            send_monitor_down(down_ident(c, control[1]), control[2], control[3].as_reference(),
                              *payload);
            return;
        }
        case dop::spawn_request:
        case dop::spawn_request_tt: {  // {29, ReqId, From, GL, {M,F,A}, Opts} + Args
            if (n < 6 || !control[2].is_pid()) return bad();
            if (serve_spawnable(*this, c, control, payload)) return;
            if (auto h = spawn_handler(); h && h(c, control, payload)) return;
            // No spawn service for this function: answer, never leave the caller hanging.
            c->send(make_tuple({term(dop::spawn_reply), control[1], control[2], term(0),
                                term(A().notsup)}),
                    nullptr);
            return;
        }
        case dop::spawn_reply:
        case dop::spawn_reply_tt:  // {31, ReqId, To, Flags, Result} (+ Token for 32)
            if (n < 5 || !control[1].is_reference() || !control[2].is_pid() ||
                !control[3].is_small())
                return bad();
            recv_spawn_reply(*this, control[1].as_reference(), control[2].as_pid(),
                             control[3].as_int64(), control[4]);
            return;
        case dop::group_leader:
            return;  // not used by this runtime; harmless to ignore
        default:
            c->close(make_error_code(errc::bad_control_message),
                     "unknown control message " + control.to_string());
            return;
    }
}

void node_core::on_node_down_signals(atom peer) {
    // Every link and monitor across the lost connection fires with `noconnection`; every
    // monitor_node on it gives {nodedown, Node}.
    const auto all = table.snapshot();
    const term reason(A().noconnection);
    for (auto& p : all) {
        std::vector<term> dead_links;
        std::vector<process::watched> downs;
        std::vector<reference> unanswered;
        std::size_t nodedowns = 0;
        {
            std::lock_guard lk(p->mu);
            if (p->exited) continue;
            dead_links = p->links.on_node_down(peer);
            std::erase_if(p->watchers, [&](const process::watcher& w) {
                return w.pid.is_pid() && w.pid.as_pid().node == peer;
            });
            // A monitor of an unanswered spawn request is no monitor yet: the request fails
            // with noconnection below instead (erlang:spawn_request/5).
            for (auto& m : p->monitors)
                if (m.node == peer && (m.target.is_pid() || m.target.is_atom())) downs.push_back(m);
            if (p->more) {
                for (auto& r : p->more->spawn_requests)
                    if (r.node == peer) unanswered.push_back(r.ref);
                nodedowns = static_cast<std::size_t>(std::erase(p->more->node_watches, peer));
            }
        }
        for (auto& r : unanswered)
            recv_spawn_reply(*this, r, p->self, 0, reason);
        for (auto& m : downs) {
            const term ident = m.target.is_atom() ? make_tuple({m.target, term(peer)}) : m.target;
            send_monitor_down(ident, p->self_term, m.ref, reason);
        }
        for (std::size_t i = 0; i < nodedowns; ++i)
            p->deliver(make_tuple({term(A().nodedown), term(peer)}));
        for (auto& l : dead_links)
            exit_signal(p, l, reason, true);
    }
}

}  // namespace erl::detail
