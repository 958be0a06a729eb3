// pg scope state machine; each handler cites the pg.erl (kernel 8.5, OTP 25) clause it follows.
#include "cluster/pg_scope.hpp"

#include "cluster/map_keys.hpp"

#include <algorithm>

namespace erl::cluster {

namespace {

// The atoms of pg's messages, made once.
struct message_atoms {
    atom discover{"discover"};
    atom join{"join"};
    atom leave{"leave"};
    atom sync{"sync"};
    atom gen_cast{"$gen_cast"};
};

const message_atoms& A() {
    static const message_atoms a;
    return a;
}

// The pids of `pid_or_pids` (a pid or a proper list of pids), or nullopt.
std::optional<std::vector<term>> pid_list(const term& pid_or_pids) {
    if (pid_or_pids.is_pid()) return std::vector<term>{pid_or_pids};
    if (!pid_or_pids.is_proper_list()) return std::nullopt;
    auto lv = pid_or_pids.as_list();
    std::vector<term> out(lv.elements.begin(), lv.elements.end());
    for (const auto& p : out)
        if (!p.is_pid()) return std::nullopt;
    return out;
}

// lists:delete/2: removes the first occurrence.
bool erase_first(std::vector<term>& v, const term& x) {
    auto it = std::find(v.begin(), v.end(), x);
    if (it == v.end()) return false;
    v.erase(it);
    return true;
}

// A -- B.
std::vector<term> subtract(std::vector<term> a, const std::vector<term>& b) {
    for (const auto& x : b)
        erase_first(a, x);
    return a;
}

}  // namespace

pg_scope::pg_scope(atom scope, term self)
    : scope_(scope), self_(std::move(self)), node_(self_.as_pid().node) {}

bool pg_scope::is_local_pid(const term& t) const {
    return t.is_pid() && t.as_pid().node == node_;
}

std::optional<std::vector<term>> pg_scope::local_pids(const term& pid_or_pids) const {
    auto pids = pid_list(pid_or_pids);
    if (!pids) return std::nullopt;
    for (const auto& p : *pids)
        if (!is_local_pid(p)) return std::nullopt;  // pg:ensure_local -> {nolocal, Bad}
    return pids;
}

// pg:broadcast/2 over maps:keys(Remote): erlang:send(Dest, Msg, [noconnect]).
void pg_scope::broadcast(const term& msg, actions& out) const {
    for (const auto& [peer, entry] : remote_)
        out.push_back(send_to{peer, msg, true});
}

// pg:init/1: broadcast {discover, self()} to {Scope, Node} for every node in nodes().
void pg_scope::start(const std::vector<atom>& nodes, actions& out) {
    for (auto n : nodes)
        if (n != node_) out.push_back(send_to{tuple(scope_, n), tuple(A().discover, self_), true});
}

// handle_info({nodeup, Node}): ask Node's scope to discover us. OTP 26 sends it noconnect;
// the connection exists at nodeup, so that changes nothing on the wire.
void pg_scope::node_up(atom node, actions& out) {
    if (node == node_) return;
    out.push_back(send_to{tuple(scope_, node), tuple(A().discover, self_), true});
}

// handle_info({nodedown, _}): ignored; the peer scope's monitor DOWN cleans up.
void pg_scope::node_down(atom, actions&) {}

// all_local_pids/1: [{Group, Pids}] over the local map. pg.erl folds a map keyed by pid and
// collects into a map keyed by group, so (for the small maps pg holds per group) groups come
// out in term order and each group's pids in descending pid order.
term pg_scope::local_sync_groups() const {
    std::map<term, std::vector<term>> acc;
    for (const auto& [pid, entry] : local_)
        for (const auto& g : entry.groups) {
            auto& v = acc[g];
            v.insert(v.begin(), pid);
        }
    std::vector<term> out;
    out.reserve(acc.size());
    for (auto& [g, pids] : acc)
        out.push_back(tuple(g, make_list(std::move(pids))));
    return make_list(std::move(out));
}

// handle_info({discover, Peer}) (and OTP 26's {discover, Peer, ProtocolVersion}): answer with
// our local members; monitor and discover back a peer we did not know.
void pg_scope::discover(const term& peer, actions& out) {
    out.push_back(send_to{peer, tuple(A().gen_cast, tuple(A().sync, self_, local_sync_groups()))});
    if (remote_.count(peer)) return;
    auto id = next_monitor_++;
    out.push_back(monitor_pid{id, peer});
    monitors_[id] = peer;
    out.push_back(send_to{peer, tuple(A().discover, self_), true});
    remote_[peer] = remote_entry{id, {}};
}

void pg_scope::add_members(const term& group, const std::vector<term>& pids, bool local,
                           std::vector<pg_change>& changes) {
    auto& e = groups_[group];
    e.all.insert(e.all.begin(), pids.begin(), pids.end());
    if (local) e.local.insert(e.local.begin(), pids.begin(), pids.end());
    changes.push_back(pg_change{true, group, pids});
}

// leave_local_update_ets / leave_remote_update_ets: `All -- Pids` (and `Local -- Pids` for
// local members); the group disappears with its last member. pg.erl notifies the pids it was
// asked to remove whenever the group exists.
void pg_scope::remove_members(const term& group, const std::vector<term>& pids, bool local,
                              std::vector<pg_change>& changes) {
    auto it = groups_.find(group);
    if (it == groups_.end()) return;
    it->second.all = subtract(std::move(it->second.all), pids);
    if (local) it->second.local = subtract(std::move(it->second.local), pids);
    if (it->second.all.empty() && it->second.local.empty()) groups_.erase(it);
    changes.push_back(pg_change{false, group, pids});
}

// handle_sync/6 + sync_groups/5: the peer's list replaces all we knew of its members.
void pg_scope::handle_sync(const term& peer, const term& groups, std::vector<pg_change>& changes,
                           actions& out) {
    std::vector<std::pair<term, std::vector<term>>> incoming;
    for (const auto& g : groups.as_list().elements)
        incoming.emplace_back(g[0], *pid_list(g[1]));
    auto it = remote_.find(peer);
    if (it == remote_.end()) {
        auto id = next_monitor_++;
        out.push_back(monitor_pid{id, peer});
        monitors_[id] = peer;
        it = remote_.emplace(peer, remote_entry{id, {}}).first;
    }
    auto old = std::move(it->second.groups);
    std::map<term, std::vector<term>> now;
    for (auto& [group, pids] : incoming) {
        auto o = old.find(group);
        if (o == old.end()) {
            add_members(group, pids, false, changes);
        } else {
            if (o->second != pids) {
                // pg.erl rewrites the row as Pids ++ AllOld -- Old without notifying; the
                // subscribers here are told what actually changed.
                auto left = subtract(o->second, pids);
                auto joined = subtract(pids, o->second);
                if (!left.empty()) remove_members(group, left, false, changes);
                if (!joined.empty()) add_members(group, joined, false, changes);
            }
            old.erase(o);
        }
        now[group] = pids;
    }
    for (auto& [group, pids] : old)
        remove_members(group, pids, false, changes);
    it->second.groups = std::move(now);
}

pg_scope::handled pg_scope::message(const term& msg, actions& out,
                                    std::vector<pg_change>& changes) {
    if (!msg.is_tuple() || msg.size() < 2 || !msg[0].is_atom()) return handled::ignored;
    auto tag = msg[0].as_atom();
    if (tag == A().discover && (msg.size() == 2 || msg.size() == 3) && msg[1].is_pid()) {
        discover(msg[1], out);
        return handled::ok;
    }
    if (tag == A().gen_cast && msg.size() == 2 && msg[1].is_tuple(3) &&
        msg[1][0].is_atom(A().sync) && msg[1][1].is_pid() && msg[1][2].is_proper_list()) {
        for (const auto& g : msg[1][2].as_list().elements)
            if (!g.is_tuple(2) || !pid_list(g[1])) return handled::ignored;
        handle_sync(msg[1][1], msg[1][2], changes, out);
        return handled::ok;
    }
    if (tag == A().join && msg.size() == 4 && msg[1].is_pid()) {
        // handle_info({join, Peer, Group, PidOrPids}): only from a peer scope we know; a late
        // join from a peer that already went down is dropped.
        auto pids = pid_list(msg[3]);
        if (!pids) return handled::ignored;
        auto it = remote_.find(msg[1]);
        if (it == remote_.end()) return handled::ok;
        add_members(msg[2], *pids, false, changes);
        auto& v = it->second.groups[msg[2]];
        v.insert(v.begin(), pids->begin(), pids->end());
        return handled::ok;
    }
    if (tag == A().leave && msg.size() == 4 && msg[1].is_pid() && msg[3].is_proper_list()) {
        // handle_info({leave, Peer, PidOrPids, Groups}).
        auto pids = pid_list(msg[2]);
        if (!pids) return handled::ignored;
        auto it = remote_.find(msg[1]);
        if (it == remote_.end()) return handled::ok;
        for (const auto& group : msg[3].as_list().elements) {
            remove_members(group, *pids, false, changes);
            auto g = it->second.groups.find(group);
            if (g == it->second.groups.end()) continue;  // pg.erl would crash (badkey)
            g->second = subtract(std::move(g->second), *pids);
            if (g->second.empty()) it->second.groups.erase(g);
        }
        return handled::ok;
    }
    return handled::ignored;
}

// handle_info({'DOWN', MRef, process, Pid, _}): a local member exited (leave all its groups
// and tell the peers), or a peer scope went away (forget all its members).
void pg_scope::down(monitor_id id, actions& out, std::vector<pg_change>& changes) {
    auto m = monitors_.find(id);
    if (m == monitors_.end()) return;
    term pid = m->second;
    monitors_.erase(m);
    if (auto l = local_.find(pid); l != local_.end() && l->second.mon == id) {
        auto groups = std::move(l->second.groups);
        local_.erase(l);
        for (const auto& g : groups)
            remove_members(g, {pid}, true, changes);
        broadcast(tuple(A().leave, self_, pid, make_list(groups)), out);
        return;
    }
    if (auto r = remote_.find(pid); r != remote_.end() && r->second.mon == id) {
        auto groups = std::move(r->second.groups);
        remote_.erase(r);
        for (const auto& [g, pids] : groups)
            remove_members(g, pids, false, changes);
    }
}

// handle_call({join_local, Group, PidOrPids}).
bool pg_scope::join(const term& group, const term& pid_or_pids, actions& out,
                    std::vector<pg_change>& changes) {
    auto pids = local_pids(pid_or_pids);
    if (!pids) return false;
    for (const auto& p : *pids) {
        auto it = local_.find(p);
        if (it != local_.end()) {
            it->second.groups.insert(it->second.groups.begin(), group);
        } else {
            auto id = next_monitor_++;
            out.push_back(monitor_pid{id, p});
            monitors_[id] = p;
            local_[p] = local_entry{id, {group}};
        }
    }
    add_members(group, *pids, true, changes);
    broadcast(tuple(A().join, self_, group, pid_or_pids), out);
    return true;
}

// handle_call({leave_local, Group, PidOrPids}): not_joined when nothing changed.
bool pg_scope::leave(const term& group, const term& pid_or_pids, actions& out,
                     std::vector<pg_change>& changes) {
    auto pids = local_pids(pid_or_pids);
    if (!pids) return false;
    bool changed = false;
    for (const auto& p : *pids) {
        auto it = local_.find(p);
        if (it == local_.end()) continue;
        auto& gs = it->second.groups;
        if (gs.size() == 1 && gs.front() == group) {
            out.push_back(demonitor_pid{it->second.mon});
            monitors_.erase(it->second.mon);
            local_.erase(it);
            changed = true;
        } else if (erase_first(gs, group)) {
            changed = true;
        }
    }
    if (!changed) return false;
    remove_members(group, *pids, true, changes);
    broadcast(tuple(A().leave, self_, pid_or_pids, list(group)), out);
    return true;
}

std::vector<term> pg_scope::members(const term& group) const {
    auto it = groups_.find(group);
    return it == groups_.end() ? std::vector<term>{} : it->second.all;
}

std::vector<term> pg_scope::local_members(const term& group) const {
    auto it = groups_.find(group);
    return it == groups_.end() ? std::vector<term>{} : it->second.local;
}

std::vector<term> pg_scope::which_groups() const {
    return keys_of(groups_);
}

std::vector<term> pg_scope::which_local_groups() const {
    std::vector<term> out;
    for (const auto& [g, e] : groups_)
        if (!e.local.empty()) out.push_back(g);
    return out;
}

std::vector<term> pg_scope::peers() const {
    return keys_of(remote_);
}

}  // namespace erl::cluster
