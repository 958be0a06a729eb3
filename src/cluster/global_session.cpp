// global_server's connection sessions: init_connect, exchange, name resolution, resolved,
// new_nodes (global.erl's init_connect/6 ... lock_still_set/3). Function names in comments
// are global.erl's (kernel 8.5, OTP 25).
#include "cluster/global_server.hpp"
#include "cluster/global_terms.hpp"

#include <algorithm>

namespace erl::cluster {

using namespace detail;

namespace {

// extra_info/2: {Tag, Info} in ExtraInfo, or undefined.
term find_extra_info(const term& tag, const term& info) {
    for (const auto& e : elements(info))
        if (e.is_tuple(2) && e[0] == tag) return e[1];
    return atoms::undefined();
}

}  // namespace

// init_connect/6.
void global_server::init_connect(int vsn, atom node, const term& init_msg, const term& his_tag,
                                 int his_vsn, actions& out) {
    if (pending_.count(node)) {
        if (his_vsn < 8) {
            out.push_back(disconnect_node{node});
            out.push_back(log_line{log_line::level::error,
                                   "'global' at node " + term(cfg_.node).to_string() +
                                       " got an out of sync connection attempt from old version " +
                                       std::to_string(his_vsn) + " node " + term(node).to_string() +
                                       ". Disconnecting from it."});
            return;
        }
        out.push_back(send_to{gns(node), tuple(A("cancel_connect"), cfg_.node, his_tag), true});
        restart_connect(node, sessions_[node].my_tag, out);
    }
    auto& s = sessions_[node];
    s.prot_vsn = vsn;
    s.his_tag = his_tag;
    auto r = resolver_tags_.find(node);
    if (r != resolver_tags_.end()) {
        if (!init_msg.is_tuple(4) || !init_msg[3].is_pid()) return;
        locker_msg m;
        m.what = locker_msg::kind::his_the_locker;
        m.node = init_msg[3].as_pid().node;
        m.pid = init_msg[3];
        m.vsn = vsn;
        m.his_tag = his_tag;
        m.tag = r->second;
        to_locker(std::move(m), out);
        if (his_vsn >= 8)
            out.push_back(send_to{
                gns(node), tuple(A("init_connect_ack"), cfg_.node, his_tag, r->second), true});
        pending_[node] = his_vsn;
    } else {
        s.has_pre_connect = true;
        s.pre_vsn = vsn;
        s.pre_msg = init_msg;
        s.pre_tag = his_tag;
    }
}

// restart_connect/3.
void global_server::restart_connect(atom node, std::optional<std::int64_t> my_tag, actions& out) {
    cancel_locker(node, my_tag, out);
    reset_node_state(node);
    pending_.erase(node);
    if (my_tag) handle_nodeup(node, out);
}

// cancel_locker/4: the locker drops (or, holding the lock, releases) the session with Node;
// the resolver of that session goes.
void global_server::cancel_locker(atom node, std::optional<std::int64_t> tag, actions& out,
                                  std::vector<send_to> run_first) {
    locker_msg m;
    m.what = locker_msg::kind::cancel;
    m.node = node;
    m.tag = tag;
    m.has_fun = !run_first.empty();
    m.fun = std::move(run_first);
    to_locker(std::move(m), out);
    send_cancel_connect(node, tag, out);
    auto r = resolver_tags_.find(node);
    if (r != resolver_tags_.end() && tag && r->second == *tag) {
        resolver_tags_.erase(r);
        resolvers_.erase(node);
    }
}

// send_cancel_connect/3: only for a session under way with a vsn 8 peer.
void global_server::send_cancel_connect(atom node, std::optional<std::int64_t> tag, actions& out) {
    auto p = pending_.find(node);
    if (p == pending_.end() || p->second < 8) return;
    auto s = sessions_.find(node);
    if (s == sessions_.end() || !s->second.my_tag || !tag || *s->second.my_tag != *tag) return;
    out.push_back(send_to{gns(node),
                          tuple(A("cancel_connect"), cfg_.node,
                                s->second.his_tag ? *s->second.his_tag : term(atoms::undefined())),
                          true});
}

void global_server::reset_node_state(atom node) {
    sessions_.erase(node);
}

// lock_is_set/3 (from our locker): the partition lock is held on both sides; send our names.
void global_server::lock_is_set(atom node, std::int64_t tag, const term& lock_id, actions& out) {
    auto it = sessions_.find(node);
    if (it == sessions_.end() || !it->second.my_tag || *it->second.my_tag != tag) {
        cancel_locker(node, tag, out);
        return;
    }
    auto& s = it->second;
    out.push_back(send_to{gns(node), cast(tuple(A("exchange"), cfg_.node, names_.exchange_list(),
                                                term{}, s.his_tag ? *s.his_tag : term{}))});
    s.lock_id = lock_id;
    if (s.wait_lock == session::wait::exchange) {
        s.wait_lock = session::wait::lock_is_set;
        exchange(node, s.wait_names, out);
    } else {
        s.wait_lock = session::wait::lock_is_set;
    }
}

// exchange/3: both the lock and the peer's names are here: resolve.
void global_server::exchange(atom node, const term& name_list, actions& out) {
    auto& s = sessions_[node];
    if (s.wait_lock == session::wait::lock_is_set) {
        s.wait_lock = session::wait::none;
        auto r = resolver_tags_.find(node);
        if (r != resolver_tags_.end()) start_resolver(node, r->second, name_list, out);
    } else {
        s.wait_lock = session::wait::exchange;
        s.wait_names = name_list;
    }
}

// resolver/2 + exchange_names/4: every name of the peer's partition against ours. A clash is
// resolved here only when we are the smaller node (the other side resolves otherwise), by the
// method of our registration, run on the node of our pid (resolve_it/4 over rpc).
void global_server::start_resolver(atom node, std::int64_t tag, const term& name_list,
                                   actions& out) {
    resolver r;
    r.node = node;
    r.tag = tag;
    r.names = elements(name_list);
    resolvers_[node] = std::move(r);
    resolve_next(resolvers_[node], out);
}

void global_server::resolve_next(resolver& r, actions& out) {
    while (r.next < r.names.size()) {
        const term& n = r.names[r.next];
        if (!n.is_tuple(3) || !n[1].is_pid()) {
            ++r.next;
            continue;
        }
        const term &name = n[0], &pid = n[1], &method = n[2];
        auto* mine = names_.find(name);
        if (!mine) {
            r.ops.insert(r.ops.begin(), tuple(A("insert"), tuple(name, pid, method)));
        } else if (mine->pid != pid && cfg_.node.str() < r.node.str() && mine->pid.is_pid()) {
            term pid2 = mine->pid;
            if (pid2.as_pid().node == cfg_.node) {
                auto res = resolve_locally(mine->method, name, pid, pid2, out);
                resolve_result(r, res ? *res : term(A("unknown_method")), out);
                continue;
            }
            auto id = next_call_++;
            r.waiting = id;
            atom target = r.node;
            calls_[id] = [this, target](std::optional<term> reply, actions& o) {
                auto it = resolvers_.find(target);
                if (it == resolvers_.end()) return;
                it->second.waiting.reset();
                term res = reply ? *reply : tuple(A("badrpc"), A("nodedown"));
                resolve_result(it->second, res, o);
                auto again = resolvers_.find(target);
                if (again != resolvers_.end() && !again->second.waiting)
                    resolve_next(again->second, o);
            };
            out.push_back(rpc_call{id, pid2.as_pid().node, A("global"), A("resolve_it"),
                                   list(mine->method, name, pid, pid2)});
            return;
        }
        ++r.next;
    }
    // exchange_ops from the resolver to the server
    atom node = r.node;
    auto tag = r.tag;
    term ops = make_list(r.ops), res = make_list(r.res);
    resolvers_.erase(node);
    exchange_ops(node, tag, ops, res, out);
}

void global_server::resolve_result(resolver& r, const term& result, actions& out) {
    const term& n = r.names[r.next];
    const term &name = n[0], &pid = n[1], &method = n[2];
    auto* mine = names_.find(name);
    term pid2 = mine ? mine->pid : term{};
    term method2 = mine ? mine->method : term{};
    ++r.next;
    if (result == pid) {
        r.ops.insert(r.ops.begin(), tuple(A("insert"), tuple(name, pid, method)));
    } else if (mine && result == pid2) {
        r.res.insert(r.res.begin(), tuple(A("insert"), tuple(name, pid2, method2)));
    } else if (result.is_atom(A("none"))) {
        term op = tuple(A("delete"), name);
        r.ops.insert(r.ops.begin(), op);
        r.res.insert(r.res.begin(), op);
    } else if (result.is_tuple(2) && result[0].is_atom(A("badrpc"))) {
        out.push_back(log_line{log_line::level::info, "global: badrpc " + result[1].to_string() +
                                                          " received when conflicting name " +
                                                          name.to_string() + " was found"});
        r.ops.insert(r.ops.begin(), tuple(A("insert"), tuple(name, pid, method)));
    } else {
        out.push_back(
            log_line{log_line::level::info, "global: Resolve method " + method.to_string() +
                                                " for conflicting name " + name.to_string() +
                                                " returned " + result.to_string()});
        term op = tuple(A("delete"), name);
        r.ops.insert(r.ops.begin(), op);
        r.res.insert(r.res.begin(), op);
    }
}

// resolve_it/4 for the methods global.erl exports, run on our node. global.erl's own
// default, `fun random_exit_name/3` as a local fun, travels as a closure of module global;
// it is taken as random_exit_name, which it is in every OTP release that has it.
std::optional<term> global_server::resolve_locally(const term& method, const term& name,
                                                   const term& pid, const term& pid2,
                                                   actions& out) {
    std::string_view fn;
    if (method.is_export() && method.as_export().module == A("global") &&
        method.as_export().arity == 3)
        fn = method.as_export().function.str();
    else if (method.is_closure() && method.as_closure().module == A("global") &&
             method.as_closure().arity == 3 && method.as_closure().free_vars.empty())
        fn = "random_exit_name";
    else
        return std::nullopt;
    // minmax/2: by node name of the pids.
    bool first_smaller = pid.as_pid().node.str() < pid2.as_pid().node.str();
    term min = first_smaller ? pid : pid2, max = first_smaller ? pid2 : pid;
    if (fn == "random_exit_name") {
        out.push_back(log_line{log_line::level::info, "global: Name conflict terminating " +
                                                          tuple(name, max).to_string()});
        out.push_back(exit_pid{max, A("kill")});
        return min;
    }
    if (fn == "random_notify_name") {
        out.push_back(send_to{max, tuple(A("global_name_conflict"), name)});
        return min;
    }
    if (fn == "notify_all_name") {
        out.push_back(send_to{pid, tuple(A("global_name_conflict"), name, pid2)});
        out.push_back(send_to{pid2, tuple(A("global_name_conflict"), name, pid)});
        return term(A("none"));
    }
    return std::nullopt;
}

// handle_cast({exchange_ops, Node, MyTag, Ops, Resolved}): send resolved; finish if the
// peer's resolved is already here.
void global_server::exchange_ops(atom node, std::int64_t tag, term ops, term res, actions& out) {
    auto it = sessions_.find(node);
    if (it == sessions_.end() || !it->second.my_tag || *it->second.my_tag != tag) {
        cancel_locker(node, tag, out);
        return;
    }
    auto& s = it->second;
    out.push_back(send_to{
        gns(node), cast(tuple(A("resolved"), cfg_.node, res, known_list(node_vsn(node)),
                              A("unused"), names_.ext_list(), s.his_tag ? *s.his_tag : term{}))});
    if (s.save_ops == session::save::resolved) {
        term hk = s.his_known, ne = s.names_ext, hr = s.his_resolved;
        s.save_ops = session::save::ops;
        s.ops = ops;
        resolved(node, hr, hk, ne, out);
    } else {
        s.save_ops = session::save::ops;
        s.ops = ops;
    }
}

// resolved/5: apply both sides' operations, tell the rest of our partition (new_nodes, sent
// by the locker before it releases the lock) and the rest of his (in_sync).
void global_server::resolved(atom node, const term& his_resolved, const term& his_known,
                             const term& names_ext, actions& out) {
    auto& s = sessions_[node];
    std::vector<term> ops = elements(s.ops);
    for (const auto& o : elements(his_resolved))
        ops.push_back(o);
    term ops_t = make_list(ops);
    auto known_before = known_;
    auto synced_before = synced_;
    // make_node_vsn_list([Node | HisKnown])
    std::vector<term> new_nodes_v;
    std::vector<atom> his_known_nodes;
    auto add_nv = [&](const term& e) {
        if (e.is_atom()) {
            new_nodes_v.push_back(tuple(e, node_vsn(e.as_atom())));
        } else if (e.is_tuple(2) && e[0].is_atom() && e[1].is_small()) {
            new_nodes_v.push_back(e[1].as_int64() == 0 ? tuple(e[0], node_vsn(e[0].as_atom())) : e);
        }
    };
    add_nv(term(node));
    for (const auto& e : elements(his_known)) {
        add_nv(e);
        if (e.is_atom()) his_known_nodes.push_back(e.as_atom());
        if (e.is_tuple(2) && e[0].is_atom()) his_known_nodes.push_back(e[0].as_atom());
    }
    term new_nodes_t = make_list(new_nodes_v);
    sync_others(his_known_nodes, out);
    term extra = list(tuple(A("vsn"), s.prot_vsn),
                      tuple(A("lock"), s.lock_id ? *s.lock_id : term(atoms::undefined())));
    do_ops(ops_t, term(cfg_.node), names_ext, extra, out);
    notify_synced(node, out);
    for (auto n : his_known_nodes) {
        pending_.erase(n);
        auto cs = sessions_.find(n);
        cancel_locker(n, cs == sessions_.end() ? std::nullopt : cs->second.my_tag, out);
        reset_node_state(n);
    }
    // NewNodesF, run by the locker: new_nodes to every node known when resolved started.
    std::vector<send_to> nn;
    std::vector<term> plain_nodes;
    for (const auto& e : new_nodes_v)
        plain_nodes.push_back(e[0]);
    for (const auto& [n, v] : known_before)
        nn.push_back(
            send_to{gns(n), cast(tuple(A("new_nodes"), cfg_.node, ops_t, names_ext,
                                       v >= 7 ? new_nodes_t : make_list(plain_nodes), extra))});
    pending_.erase(node);
    auto it = sessions_.find(node);
    auto tag = it == sessions_.end() ? std::nullopt : it->second.my_tag;
    if (nn.empty()) {
        cancel_locker(node, tag, out);
    } else {
        cancel_locker(node, tag, out, std::move(nn));
    }
    reset_node_state(node);
    auto added = add_to_known(new_nodes_t);
    locker_msg m;
    m.what = locker_msg::kind::add_to_known;
    m.nodes = added;
    to_locker(std::move(m), out);
    synced_ = synced_before;
    synced_.insert(synced_.begin(), node);
}

// new_nodes/6: another node of our partition connected a new partition.
void global_server::new_nodes(const term& ops, atom conn_node, const term& names_ext,
                              const term& nodes, const term& extra_info, actions& out) {
    auto added = add_to_known(nodes);
    sync_others(added, out);
    do_ops(ops, term(conn_node), names_ext, extra_info, out);
    locker_msg m;
    m.what = locker_msg::kind::add_to_known;
    m.nodes = added;
    to_locker(std::move(m), out);
}

// add_to_known/2: the nodes newly added, in global.erl's (prepending) order.
std::vector<atom> global_server::add_to_known(const term& nodes) {
    std::vector<atom> added;
    for (const auto& e : elements(nodes)) {
        atom n;
        int v = 0;
        if (e.is_atom()) {
            n = e.as_atom();
        } else if (e.is_tuple(2) && e[0].is_atom() && e[1].is_small()) {
            n = e[0].as_atom();
            v = static_cast<int>(e[1].as_int64());
        } else {
            continue;
        }
        if (n == cfg_.node) continue;
        if (!known_.count(n)) {
            added.insert(added.begin(), n);
            known_[n] = v;
        }
    }
    return added;
}

// sync_others/1 + sync_other/2: in_sync to each node, connecting to it if need be (this is how
// the partitions become fully connected); a node that cannot be reached gets extra_nodedown.
void global_server::sync_others(const std::vector<atom>& nodes, actions& out) {
    for (auto n : nodes)
        out.push_back(send_to{gns(n), cast(tuple(A("in_sync"), cfg_.node, true)), false});
}

// do_ops/5.
void global_server::do_ops(const term& ops, const term& from, const term& names_ext,
                           const term& extra_info, actions& out) {
    std::vector<term> ext_names;
    for (const auto& o : elements(ops)) {
        if (!o.is_tuple(2) || !o[0].is_atom(A("insert")) || !o[1].is_tuple(3)) continue;
        for (const auto& x : elements(names_ext))
            if (x.is_tuple(3) && x[0] == o[1][0] && x[1] == o[1][1] && x[1].is_pid() &&
                x[2].is_atom()) {
                ins_name(o[1][0], o[1][1], o[1][2], x[2].as_atom(), from, extra_info, out);
                ext_names.push_back(o[1][0]);
            }
    }
    for (const auto& o : elements(ops)) {
        if (!o.is_tuple(2) || !o[0].is_atom(A("insert")) || !o[1].is_tuple(3) || !o[1][1].is_pid())
            continue;
        if (std::find(ext_names.begin(), ext_names.end(), o[1][0]) != ext_names.end()) continue;
        ins_name(o[1][0], o[1][1], o[1][2], std::nullopt, from, extra_info, out);
    }
    for (const auto& o : elements(ops))
        if (o.is_tuple(2) && o[0].is_atom(A("delete"))) names_.erase(o[1], out);
}

// ins_name/6 + insert_global_name/6: a name registered under a lock that is no longer held
// (its holder's node went down and up again meanwhile) is removed again.
void global_server::ins_name(const term& name, const term& pid, const term& method,
                             std::optional<atom> ext, const term& from, const term& extra_info,
                             actions& out) {
    names_.insert(name, pid, method, ext, alloc_, out);
    if (!lock_still_set(from, extra_info)) names_.erase(name, out);
}

bool global_server::lock_still_set(const term& from, const term& extra_info) const {
    auto* l = locks_.find(A("global"));
    if (!l) return !global_lock_down_;
    if (from.is_pid())
        return std::any_of(l->holders.begin(), l->holders.end(),
                           [&](const auto& h) { return h.pid == from; });
    term lock = find_extra_info(A("lock"), extra_info);
    return lock.is_tuple(2) && l->requester == lock[1];
}

}  // namespace erl::cluster
