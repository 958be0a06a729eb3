// Link, exit and monitor signals between processes (erl_dist_protocol "Protocol between
// connected nodes"; Erlang reference manual "Processes": links, exit signals, monitors).
#include "node/connection.hpp"
#include "node/node_core.hpp"
#include "proto/dist_codec.hpp"
#include "proto/dist_flags.hpp"

namespace erl::detail {

namespace dop = proto::dop;

namespace {
atom at_noproc() {
    static const atom x("noproc");
    return x;
}
atom at_noconnection() {
    static const atom x("noconnection");
    return x;
}
atom at_kill() {
    static const atom x("kill");
    return x;
}
atom at_killed() {
    static const atom x("killed");
    return x;
}
atom at_exit_tag() {
    static const atom x("EXIT");
    return x;
}
atom at_down() {
    static const atom x("DOWN");
    return x;
}
atom at_process() {
    static const atom x("process");
    return x;
}
atom at_notsup() {
    static const atom x("notsup");
    return x;
}
// The Object of a 'DOWN' message: the pid, or {Name, Node} for a monitor by name.
term down_ident(const std::shared_ptr<connection>& c, const term& from) {
    if (from.is_atom()) return make_tuple({from, term(c->peer())});
    return from;
}
}  // namespace

void node_core::send_exit_signal(const term& from, const term& to, const term& reason) {
    if (!to.is_pid()) return;
    const pid& tp = to.as_pid();
    if (tp.node == name) {
        if (auto p = find_process(tp)) exit_signal(p, from, reason, true);
        return;
    }
    auto c = connection_to(tp.node, false);
    if (!c || !c->is_up()) return;
    if (c->flags() & proto::dflag::exit_payload) {
        term r = reason;
        c->send(make_tuple({term(dop::payload_exit), from, to}), &r);
    } else {
        c->send(make_tuple({term(dop::exit), from, to, reason}), nullptr);
    }
}

void node_core::send_monitor_down(const term& ident, const term& watcher, const reference& ref,
                                  const term& reason) {
    if (!watcher.is_pid()) return;
    const pid& wp = watcher.as_pid();
    if (wp.node == name) {
        auto p = find_process(wp);
        if (!p) return;
        bool found = false;
        {
            std::lock_guard lk(p->mu);
            auto it = std::find_if(p->monitors.begin(), p->monitors.end(),
                                   [&](const process::watched& w) { return w.ref == ref; });
            if (it != p->monitors.end()) {
                p->monitors.erase(it);
                found = true;
            }
        }
        if (found)
            p->deliver(make_tuple({term(at_down()), term(ref), term(at_process()), ident, reason}));
        return;
    }
    auto c = connection_to(wp.node, false);
    if (!c || !c->is_up()) return;
    if (c->flags() & proto::dflag::exit_payload) {
        term r = reason;
        c->send(make_tuple({term(dop::payload_monitor_p_exit), ident, watcher, term(ref)}), &r);
    } else {
        c->send(make_tuple({term(dop::monitor_p_exit), ident, watcher, term(ref), reason}),
                nullptr);
    }
}

void node_core::remove_monitor_remote(const term& watcher, const process::watched& m) {
    if (m.node == name) {
        std::shared_ptr<process> t = m.target.is_pid()    ? find_process(m.target.as_pid())
                                     : m.target.is_atom() ? find_name(m.target.as_atom())
                                                          : nullptr;
        if (!t) return;
        std::lock_guard lk(t->mu);
        std::erase_if(t->watchers, [&](const process::watcher& w) { return w.ref == m.ref; });
        return;
    }
    auto c = connection_to(m.node, false);
    if (!c || !c->is_up()) return;
    term target = m.target;
    if (target.is_tuple(2)) target = target[0];  // {Name, Node} -> Name
    c->send(make_tuple({term(dop::demonitor_p), watcher, target, term(m.ref)}), nullptr);
}

void node_core::exit_signal(const std::shared_ptr<process>& to, const term& from,
                            const term& reason, bool linked) {
    bool die = false;
    term die_reason = reason;
    {
        std::lock_guard lk(to->mu);
        if (to->exited) return;
        if (linked) {
            // A link exit only counts while the link exists (it may have been removed by an
            // unlink that crossed the exit in flight).
            auto it = std::find(to->links.begin(), to->links.end(), from);
            if (it == to->links.end()) return;
            to->links.erase(it);
        }
        const bool is_kill = !linked && reason.is_atom(at_kill());
        if (is_kill) {
            die = true;
            die_reason = term(at_killed());
        } else if (to->trap_exit) {
            // Delivered as a message below.
        } else if (reason.is_atom(atoms::normal())) {
            return;  // normal exits are ignored by non-trapping processes
        } else {
            die = true;
        }
    }
    if (die) {
        process_exit(to, die_reason);
    } else {
        to->deliver(make_tuple({term(at_exit_tag()), from, reason}));
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
        case dop::link: {  // {1, FromPid, ToPid}
            if (n != 3 || !control[1].is_pid() || !control[2].is_pid()) return bad();
            auto p = find_process(control[2].as_pid());
            bool linked = false;
            if (p) {
                std::lock_guard lk(p->mu);
                if (!p->exited) {
                    if (std::find(p->links.begin(), p->links.end(), control[1]) == p->links.end())
                        p->links.push_back(control[1]);
                    linked = true;
                }
            }
            // Linking to a process that does not exist gives the linker an exit signal noproc.
            if (!linked) send_exit_signal(control[2], control[1], term(at_noproc()));
            return;
        }
        case dop::unlink_id: {  // {35, Id, FromPid, ToPid}
            if (n != 4 || !control[2].is_pid() || !control[3].is_pid()) return bad();
            if (auto p = find_process(control[3].as_pid())) {
                std::lock_guard lk(p->mu);
                std::erase(p->links, control[2]);
            }
            // erl_dist_protocol: UNLINK_ID_ACK {36, Id, FromPid, ToPid}, sender and receiver
            // swapped, sent before any other signal from this process to the unlinker.
            c->send(make_tuple({term(dop::unlink_id_ack), control[1], control[3], control[2]}),
                    nullptr);
            return;
        }
        case dop::unlink_id_ack:
            return;  // our unlinks complete immediately on our side
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
        case dop::monitor_p: {  // {19, FromPid, ToProc, Ref}; ToProc: pid or name
            if (n != 4 || !control[1].is_pid() || !control[3].is_reference()) return bad();
            std::shared_ptr<process> p;
            if (control[2].is_pid())
                p = find_process(control[2].as_pid());
            else if (control[2].is_atom())
                p = find_name(control[2].as_atom());
            else
                return bad();
            bool ok = false;
            if (p) {
                std::lock_guard lk(p->mu);
                if (!p->exited) {
                    p->watchers.push_back({control[1], control[3].as_reference(), control[2]});
                    ok = true;
                }
            }
            if (!ok)
                send_monitor_down(control[2], control[1], control[3].as_reference(),
                                  term(at_noproc()));
            return;
        }
        case dop::demonitor_p: {  // {20, FromPid, ToProc, Ref}
            if (n != 4 || !control[3].is_reference()) return bad();
            std::shared_ptr<process> p;
            if (control[2].is_pid())
                p = find_process(control[2].as_pid());
            else if (control[2].is_atom())
                p = find_name(control[2].as_atom());
            if (p) {
                std::lock_guard lk(p->mu);
                const auto& ref = control[3].as_reference();
                std::erase_if(p->watchers, [&](const process::watcher& w) { return w.ref == ref; });
            }
            return;
        }
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
            if (spawn_handler && spawn_handler(c, control, payload)) return;
            // No spawn service for this function: answer, never leave the caller hanging.
            c->send(make_tuple({term(dop::spawn_reply), control[1], control[2], term(0),
                                term(at_notsup())}),
                    nullptr);
            return;
        }
        case dop::spawn_reply:
        case dop::spawn_reply_tt:
        case dop::group_leader:
        case dop::unlink:
            return;  // not used by this runtime; harmless to ignore
        default:
            c->close(make_error_code(errc::bad_control_message),
                     "unknown control message " + control.to_string());
            return;
    }
}

void node_core::on_node_down_signals(atom peer) {
    // Every link and monitor across the lost connection fires with `noconnection`.
    std::vector<std::shared_ptr<process>> all;
    {
        std::shared_lock lk(proc_mu);
        all.reserve(procs.size());
        for (auto& [k, p] : procs)
            all.push_back(p);
    }
    const term reason(at_noconnection());
    for (auto& p : all) {
        std::vector<term> dead_links;
        std::vector<process::watched> downs;
        {
            std::lock_guard lk(p->mu);
            if (p->exited) continue;
            for (auto& l : p->links)
                if (l.as_pid().node == peer) dead_links.push_back(l);
            std::erase_if(p->watchers,
                          [&](const process::watcher& w) { return w.pid.as_pid().node == peer; });
            for (auto& m : p->monitors)
                if (m.node == peer) downs.push_back(m);
        }
        for (auto& m : downs)
            send_monitor_down(m.target, p->self_term, m.ref, reason);
        for (auto& l : dead_links)
            exit_signal(p, l, reason, true);
    }
}

}  // namespace erl::detail
