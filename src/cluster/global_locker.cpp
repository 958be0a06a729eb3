// The locker of global_server: global.erl's the_locker process (loop_the_locker/1,
// the_locker_message/2, select_node/1, lock_nodes_safely/3, lock_is_set/5,
// wait_cancel_lock/6, delete_global_lock/2), and the multi-calls it and the node's own
// operations make on the servers of a set of nodes.
//
// The BEAM locker blocks in gen_server:multi_call and in selective receives; here those are
// states, and the messages the BEAM locker would leave in its mailbox wait in lk_queue_ until
// the state accepts them, so they are handled in the same order.
#include "cluster/global_server.hpp"
#include "cluster/global_terms.hpp"

#include <algorithm>
#include <memory>

namespace erl::cluster {

using namespace detail;

namespace {

std::string_view host_of(atom node) {
    auto s = node.str();
    auto at = s.find('@');
    return at == std::string_view::npos ? std::string_view{} : s.substr(at + 1);
}

std::vector<atom> minus(std::vector<atom> a, const std::vector<atom>& b) {
    for (auto x : b) {
        auto it = std::find(a.begin(), a.end(), x);
        if (it != a.end()) a.erase(it);
    }
    return a;
}

// delete_nonode/1
std::vector<atom> delete_nonode(std::vector<atom> v) {
    return minus(std::move(v), {atom("nonode@nohost")});
}

term atom_list(const std::vector<atom>& v) {
    std::vector<term> out(v.begin(), v.end());
    return make_list(std::move(out));
}

}  // namespace

term global_server::locker_lock_id(const term& his_locker) const {
    // locker_lock_id/2: both lockers use the same requester id, the sorted pair.
    std::vector<term> pair{cfg_.locker, his_locker};
    std::sort(pair.begin(), pair.end());
    return tuple(A("global"), make_list(std::move(pair)));
}

void global_server::to_locker(locker_msg m, actions&) {
    lk_queue_.push_back(std::move(m));
}

bool global_server::locker_accepts(const locker_msg& m) const {
    switch (lk_state_) {
        case lk_state::idle:
            return true;
        case lk_state::locking:
            return false;
        case lk_state::lock_is_set:
            if (m.what == locker_msg::kind::lock_set) return m.node == lk_him_.node;
            return m.what == locker_msg::kind::cancel && m.node == lk_him_.node && m.tag &&
                   *m.tag == lk_him_.my_tag;
        case lk_state::wait_cancel:
            return m.what == locker_msg::kind::cancel && m.node == lk_him_.node && m.tag &&
                   *m.tag == lk_him_.my_tag;
    }
    return false;
}

void global_server::locker_pump(actions& out) {
    if (lk_pumping_) return;  // handlers below may feed the queue again; this loop takes it
    lk_pumping_ = true;
    bool processed = false;
    for (;;) {
        auto it = std::find_if(lk_queue_.begin(), lk_queue_.end(),
                               [&](const locker_msg& m) { return locker_accepts(m); });
        if (it == lk_queue_.end()) break;
        locker_msg m = std::move(*it);
        lk_queue_.erase(it);
        locker_message(std::move(m), out);
        processed = true;
    }
    if (processed || !lk_timer_) locker_arm(out);
    lk_pumping_ = false;
}

// loop_the_locker/1: with sessions waiting, try to lock after a pause (none right after a
// success, 200 ms when alone, else 1 s + 100 ms per known node, at most 3 s); every message
// starts the pause again.
void global_server::locker_arm(actions& out) {
    if (lk_state_ != lk_state::idle) return;
    if (lk_timer_) {
        out.push_back(timer_cancel{*lk_timer_});
        timers_.erase(*lk_timer_);
        lk_timer_.reset();
    }
    if (lk_local_.empty() && lk_remote_.empty()) return;
    std::int64_t ms = lk_just_synced_ ? 0
                      : lk_known_.empty()
                          ? 200
                          : std::min<std::int64_t>(
                                1000 + 100 * static_cast<std::int64_t>(lk_known_.size()), 3000);
    lk_just_synced_ = false;
    auto t = next_timer_++;
    lk_timer_ = t;
    out.push_back(timer_start{t, std::chrono::milliseconds(ms)});
    timers_[t] = [this, t](actions& o) {
        if (lk_timer_ != t) return;
        lk_timer_.reset();
        if (lk_state_ != lk_state::idle) return;
        if (locks_.is_set(A("global")))
            locker_arm(o);
        else
            locker_select_node(o);
    };
}

// update_locker_known/2: {add, Nodes} prepends, {remove, Node} deletes; the boss follows.
void global_server::locker_update_known(const locker_msg& m) {
    if (m.what == locker_msg::kind::add_to_known) {
        lk_known_.insert(lk_known_.begin(), m.nodes.begin(), m.nodes.end());
    } else {
        for (auto n : m.nodes) {
            auto it = std::find(lk_known_.begin(), lk_known_.end(), n);
            if (it != lk_known_.end()) lk_known_.erase(it);
        }
    }
    std::vector<atom> all = lk_known_;
    all.insert(all.begin(), cfg_.node);
    lk_boss_ = max_node(all);
}

void global_server::send_lock_set(bool is_set, const term& his_locker, int vsn, const term& his_tag,
                                  actions& out) {
    term msg = vsn < 8 ? tuple(A("lock_set"), cfg_.locker, is_set, atom_list(lk_known_))
                       : tuple(A("lock_set"), cfg_.locker, is_set, atom_list(lk_known_), his_tag);
    if (vsn < 6)
        out.push_back(send_to{his_locker, msg});
    else
        out.push_back(send_to{gns(his_locker.as_pid().node), tuple(A("$gen_cast"), msg)});
}

void global_server::locker_message(locker_msg m, actions& out) {
    using k = locker_msg::kind;
    auto remove_node = [&](atom node, std::int64_t tag) {
        for (auto* l : {&lk_local_, &lk_remote_})
            for (auto it = l->begin(); it != l->end(); ++it)
                if (it->node == node && it->my_tag == tag) {
                    l->erase(it);
                    break;
                }
    };
    if (lk_state_ == lk_state::wait_cancel) {
        // wait_cancel_lock/6: the server is done with the session; release the lock.
        for (auto& s : m.fun)
            out.push_back(s);
        delete_global_lock(lk_lock_id_, lk_hold_known_, cfg_.locker, {}, out);
        lk_state_ = lk_state::idle;
        lk_just_synced_ = true;
        remove_node(lk_him_.node, lk_him_.my_tag);
        return;
    }
    if (lk_state_ == lk_state::lock_is_set) {
        // lock_is_set/5: waiting for the peer's locker to say whether it locked its side.
        if (m.what == k::cancel) {
            for (auto& s : m.fun)
                out.push_back(s);
            delete_global_lock(lk_lock_id_, lk_hold_known_, cfg_.locker, {}, out);
            lk_state_ = lk_state::idle;
            remove_node(m.node, *m.tag);
            return;
        }
        bool current = !m.lock_set_has_tag || (m.tag && *m.tag == lk_him_.my_tag);
        if (!current) return;  // from an older session: dropped
        if (m.set) {
            // lock_is_set_true_received/6
            lock_is_set(lk_him_.node, lk_him_.my_tag, lk_lock_id_, out);
            lk_state_ = lk_state::wait_cancel;
        } else {
            delete_global_lock(lk_lock_id_, lk_hold_known_, cfg_.locker, {}, out);
            lk_state_ = lk_state::idle;
        }
        return;
    }
    switch (m.what) {
        case k::his_the_locker: {
            him h{m.pid.as_pid().node, m.pid, m.vsn, *m.tag, m.his_tag};
            auto& l = host_of(h.node) == host_of(cfg_.node) ? lk_local_ : lk_remote_;
            l.insert(l.begin(), h);
            return;
        }
        case k::cancel:
            // An undefined tag may be an old nodedown's; it cancels nothing. A cancel carrying a
            // fun is only expected while holding a lock.
            if (m.tag && !m.has_fun) remove_node(m.node, *m.tag);
            return;
        case k::add_to_known:
        case k::remove_from_known:
            locker_update_known(m);
            return;
        case k::lock_set:
            break;
    }
    if (!m.set) return;  // a spurious false
    const him* found = nullptr;
    for (auto* l : {&lk_local_, &lk_remote_})
        for (auto& h : *l)
            if (!found && h.node == m.node) found = &h;
    if (!found || (m.lock_set_has_tag && m.tag && found->my_tag != *m.tag)) {
        send_lock_set(false, m.pid, 5, term(0), out);
        return;
    }
    // The peer locked its side first: lock ours (without its node) and answer.
    him h = *found;
    term lock_id = locker_lock_id(m.pid);
    lk_state_ = lk_state::locking;
    lock_nodes_safely(
        lock_id, {},
        [this, h, lock_id, pid = m.pid](bool ok, actions& o) {
            send_lock_set(ok, pid, h.vsn, h.his_tag, o);
            if (!ok) {
                lk_state_ = lk_state::idle;
                lk_just_synced_ = false;
                return;
            }
            lk_him_ = h;
            lk_lock_id_ = lock_id;
            lk_hold_known_ = lk_known_;
            lk_hold_known_.insert(lk_hold_known_.begin(), cfg_.node);
            lk_state_ = lk_state::wait_cancel;
            lock_is_set(h.node, h.my_tag, lock_id, o);
        },
        out);
}

// select_node/1: pick a waiting session (same-host peers first) and lock both sides' nodes
// we know: the boss, us, the peer, then all known nodes.
void global_server::locker_select_node(actions& out) {
    bool use_remote = lk_local_.empty();
    auto& l = use_remote ? lk_remote_ : lk_local_;
    l.erase(std::remove_if(l.begin(), l.end(),
                           [&](const him& h) {
                               return std::find(lk_known_.begin(), lk_known_.end(), h.node) !=
                                      lk_known_.end();
                           }),
            l.end());
    if (l.empty()) {
        locker_arm(out);
        return;
    }
    him h = l[random_below(l.size())];
    term lock_id = locker_lock_id(h.locker);
    lk_state_ = lk_state::locking;
    lock_nodes_safely(
        lock_id, {h.node},
        [this, h, lock_id](bool ok, actions& o) {
            if (!ok) {
                lk_state_ = lk_state::idle;
                return;
            }
            lk_hold_known_ = lk_known_;
            lk_hold_known_.insert(lk_hold_known_.begin(), {cfg_.node, h.node});
            send_lock_set(true, h.locker, h.vsn, h.his_tag, o);
            lk_him_ = h;
            lk_lock_id_ = lock_id;
            lk_state_ = lk_state::lock_is_set;
        },
        out);
}

// lock_nodes_safely/3.
void global_server::lock_nodes_safely(const term& lock_id, std::vector<atom> extra,
                                      std::function<void(bool, actions&)> done, actions& out) {
    auto first = delete_nonode({lk_boss_});
    bool may =
        (first.size() == 1 && first[0] == cfg_.node) || locks_.can_set(lock_id[0], lock_id[1]);
    if (!may) {
        done(false, out);
        return;
    }
    set_lock_on_nodes(
        lock_id, cfg_.locker, first,
        [=, this](bool ok1, actions& o1) {
            if (!ok1) {
                done(false, o1);
                return;
            }
            // update_locker_known/1: take in the known-node changes that arrived meanwhile.
            for (auto it = lk_queue_.begin(); it != lk_queue_.end();) {
                if (it->what == locker_msg::kind::add_to_known ||
                    it->what == locker_msg::kind::remove_from_known) {
                    locker_update_known(*it);
                    it = lk_queue_.erase(it);
                } else {
                    ++it;
                }
            }
            std::vector<atom> us = extra;
            us.insert(us.begin(), cfg_.node);
            auto second = delete_nonode(minus(us, first));
            set_lock_on_nodes(
                lock_id, cfg_.locker, second,
                [=, this](bool ok2, actions& o2) {
                    if (!ok2) {
                        multi_call_servers(first, tuple(A("del_lock"), lock_id), cfg_.locker, {},
                                           o2);
                        done(false, o2);
                        return;
                    }
                    set_lock_on_nodes(
                        lock_id, cfg_.locker, minus(lk_known_, first),
                        [=, this](bool ok3, actions& o3) {
                            if (!ok3) {
                                auto so_far = first;
                                so_far.insert(so_far.end(), second.begin(), second.end());
                                multi_call_servers(so_far, tuple(A("del_lock"), lock_id),
                                                   cfg_.locker, {}, o3);
                            }
                            done(ok3, o3);
                        },
                        o2);
                },
                o1);
        },
        out);
}

// delete_global_lock/2: everyone but the boss, then the boss.
void global_server::delete_global_lock(const term& lock_id, std::vector<atom> nodes,
                                       const term& caller, std::function<void(actions&)> then,
                                       actions& out) {
    if (nodes.empty()) {
        if (then) then(out);
        return;
    }
    atom boss = max_node(nodes);
    auto rest = minus(nodes, {boss});
    term req = tuple(A("del_lock"), lock_id);
    multi_call_servers(
        rest, req, caller,
        [=, this](std::vector<std::pair<atom, term>>, actions& o) {
            multi_call_servers(
                {boss}, req, caller,
                [then](std::vector<std::pair<atom, term>>, actions& o2) {
                    if (then) then(o2);
                },
                o);
        },
        out);
}

// set_lock_on_nodes/2 + local_lock_check/2 + check_replies/3: one attempt on every node; on
// a refusal the nodes that said yes are released again.
void global_server::set_lock_on_nodes(const term& id, const term& caller, std::vector<atom> nodes,
                                      std::function<void(bool, actions&)> done, actions& out) {
    if (nodes.empty()) {
        done(true, out);
        return;
    }
    bool local_ok = nodes.size() == 1 ||
                    std::find(nodes.begin(), nodes.end(), cfg_.node) == nodes.end() ||
                    locks_.can_set(id[0], id[1]);
    if (!local_ok) {
        done(false, out);
        return;
    }
    multi_call_servers(
        nodes, tuple(A("set_lock"), id), caller,
        [this, id, caller, done](std::vector<std::pair<atom, term>> replies, actions& o) {
            std::vector<atom> yes;
            bool refused = false;
            for (auto& [n, r] : replies) {
                if (r.is_atom(atoms::true_()))
                    yes.push_back(n);
                else
                    refused = true;
            }
            if (refused && replies.size() > 1)
                multi_call_servers(yes, tuple(A("del_lock"), id), caller, {}, o);
            done(!refused, o);
        },
        out);
}

// gen_server:multi_call(Nodes, global_name_server, Request) from `caller`: our own server
// answers in place; a node whose server is gone is left out of the replies (a bad node).
void global_server::multi_call_servers(
    std::vector<atom> nodes, const term& request, const term& caller,
    std::function<void(std::vector<std::pair<atom, term>>, actions&)> done, actions& out) {
    struct state {
        std::vector<std::pair<atom, term>> replies;
        std::size_t waiting = 0;
        std::function<void(std::vector<std::pair<atom, term>>, actions&)> done;
    };
    auto st = std::make_shared<state>();
    st->done = std::move(done);
    for (auto n : nodes)
        if (n != cfg_.node) ++st->waiting;
    for (auto n : nodes) {
        if (n == cfg_.node) {
            term reply;
            call_own_server(caller, request, reply, out);
            st->replies.emplace_back(n, reply);
            continue;
        }
        auto id = next_call_++;
        calls_[id] = [st, n](std::optional<term> reply, actions& o) {
            if (reply) st->replies.emplace_back(n, *reply);
            if (--st->waiting == 0 && st->done) st->done(std::move(st->replies), o);
        };
        out.push_back(call_server{id, caller, gns(n), request});
    }
    if (st->waiting == 0 && st->done) st->done(std::move(st->replies), out);
}

void global_server::call_own_server(const term& caller, const term& req, term& reply,
                                    actions& out) {
    auto tag = req[0].as_atom().str();
    if (tag == "set_lock") {
        reply = handle_set_lock(req[1], caller, out);
    } else if (tag == "del_lock") {
        handle_del_lock(req[1], caller, out);
        reply = true;
    } else if (tag == "register") {
        ins_name(req[1], req[2], req[3], std::nullopt, caller, term{}, out);
        reply = A("yes");
    } else if (tag == "unregister") {
        names_.erase(req[1], out);
        reply = atoms::ok();
    }
}

}  // namespace erl::cluster
