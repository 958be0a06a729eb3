// global_name_server state machine: node up/down, message dispatch, the calls it answers, the
// server side of locks, sync. Sessions are in global_session.cpp, the locker in
// global_locker.cpp, the node's own operations in global_ops.cpp. Function names in comments
// are global.erl's (kernel 8.5, OTP 25); docs/global.md describes the messages.
#include "cluster/global_server.hpp"
#include "cluster/global_terms.hpp"
#include "cluster/map_keys.hpp"

#include <algorithm>
#include <memory>

namespace erl::cluster {

using namespace detail;

namespace {

bool is_atom_list(const term& t) {
    if (!t.is_proper_list()) return false;
    for (const auto& e : t.as_list().elements)
        if (!e.is_atom()) return false;
    return true;
}

}  // namespace

global_server::global_server(global_config cfg) : cfg_(std::move(cfg)) {
    alloc_ = [this] { return next_monitor(); };
    if (!cfg_.unique_integer) {
        auto counter = std::make_shared<std::int64_t>(-(std::int64_t{1} << 59));
        cfg_.unique_integer = [counter] { return (*counter)++; };
    }
    if (!cfg_.random) {
        auto state = std::make_shared<std::uint64_t>(0x9e3779b97f4a7c15ull);
        cfg_.random = [state] {  // splitmix64
            std::uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            return z ^ (z >> 31);
        };
    }
    lk_known_ = {};
}

std::uint64_t global_server::random_below(std::uint64_t n) {
    return n ? cfg_.random() % n : 0;
}

// ---- queries -------------------------------------------------------------------------------

std::optional<term> global_server::whereis(const term& name) const {
    if (auto* e = names_.find(name)) return e->pid;
    return std::nullopt;
}

std::vector<atom> global_server::known() const {
    return keys_of(known_);
}

std::vector<atom> global_server::synced() const {
    return synced_;
}

std::vector<atom> global_server::connected() const {
    return keys_of(connection_ids_);
}

bool global_server::connecting(atom node) const {
    return pending_.count(node) || resolver_tags_.count(node);
}

int global_server::node_vsn(atom node) const {
    if (node == cfg_.node) return protocol_version;
    if (auto it = known_.find(node); it != known_.end()) return it->second;
    if (auto it = pending_.find(node); it != pending_.end()) return it->second;
    return 0;
}

// #state.known as the map term init_connect carries (global.erl sends the whole map).
term global_server::known_map() const {
    std::vector<std::pair<term, term>> kv;
    for (const auto& [n, v] : known_)
        kv.emplace_back(n, v);
    for (const auto& [n, v] : pending_)
        kv.emplace_back(tuple(A("pending"), n), v);
    for (const auto& n : removing_)
        kv.emplace_back(tuple(A("removing"), n), A("yes"));
    for (const auto& [n, id] : connection_ids_)
        kv.emplace_back(tuple(A("connection_id"), n), id);
    return make_map(std::move(kv));
}

// mk_known_list/2: a fold over maps:to_list(Known) that prepends, so the nodes come out in
// descending order; [Node] for peers older than vsn 7, [{Node, Vsn}] otherwise.
term global_server::known_list(int vsn) const {
    std::vector<term> out;
    for (const auto& [n, v] : known_)
        out.insert(out.begin(), vsn < 7 ? term(n) : tuple(n, v));
    return make_list(std::move(out));
}

// ---- node up / down ------------------------------------------------------------------------

void global_server::node_up(atom node, std::int64_t connection_id, actions& out) {
    if (node == cfg_.node) return;
    connection_ids_[node] = connection_id;
    if (!cfg_.connect_all) return;  // handle_info({nodeup, ...}) with connect_all = false
    handle_nodeup(node, out);
    locker_pump(out);
}

// handle_nodeup/2: start a session (tag, init_connect, resolver) unless known or under way.
void global_server::handle_nodeup(atom node, actions& out) {
    if (known_.count(node) || resolver_tags_.count(node)) return;
    auto& s = sessions_[node];
    bool resend = s.has_pre_connect;
    int pre_vsn = s.pre_vsn;
    term pre_msg = s.pre_msg, pre_tag = s.pre_tag;
    s.has_pre_connect = false;
    std::int64_t tag = cfg_.unique_integer();
    s.my_tag = tag;
    term locker = tuple(A("locker"), A("no_longer_a_pid"), known_map(), cfg_.locker);
    out.push_back(send_to{gns(node), cast(tuple(A("init_connect"), tuple(protocol_version, tag),
                                                cfg_.node, locker))});
    resolver_tags_[node] = tag;
    // resend_pre_connect/1: an init_connect that came before the nodeup is handled now.
    if (resend) handle_cast(tuple(A("init_connect"), tuple(pre_vsn, pre_tag), node, pre_msg), out);
}

void global_server::node_down(atom node, actions& out) {
    if (node == cfg_.node) return;
    sync_nodedown(node, out);
    handle_nodedown(node, 0, out);
    connection_ids_.erase(node);
    locker_pump(out);
}

void global_server::connect_failed(atom node, actions& out) {
    sync_nodedown(node, out);
    handle_nodedown(node, 0, out);
    connection_ids_.erase(node);
    locker_pump(out);
}

// handle_nodedown/3. what: 0 disconnected, 1 remove_connection, 2 ignore_node.
void global_server::handle_nodedown(atom node, int what, actions& out) {
    auto it = sessions_.find(node);
    cancel_locker(node, it == sessions_.end() ? std::nullopt : it->second.my_tag, out);
    locker_msg rm;
    rm.what = locker_msg::kind::remove_from_known;
    rm.nodes = {node};
    to_locker(std::move(rm), out);
    reset_node_state(node);
    if (what == 1) {
        removing_.insert(node);
    } else if (what == 2) {
        removing_.erase(node);
    } else if (!removing_.erase(node)) {
        inform_connection_loss(node, out);
    }
    pending_.erase(node);
    known_.erase(node);
    erase_value(synced_, node);
}

// ---- messages ------------------------------------------------------------------------------

global_server::handled global_server::message(const term& msg, actions& out) {
    if (!msg.is_tuple() || msg.size() < 2 || !msg[0].is_atom()) return handled::ignored;
    auto tag = msg[0].as_atom().str();
    handled h = handled::ok;
    if (tag == "$gen_call" && msg.size() == 3 && msg[1].is_tuple(2) && msg[1][0].is_pid()) {
        handle_call(msg[1], msg[2], out);
    } else if (tag == "$gen_cast" && msg.size() == 2) {
        handle_cast(msg[1], out);
    } else if (tag == "init_connect_ack" && msg.size() == 4 && msg[1].is_atom()) {
        // handle_info({init_connect_ack, Node, HisMyTag, HisHisTag})
        atom node = msg[1].as_atom();
        auto& s = sessions_[node];
        bool same = s.my_tag && msg[2] == term(*s.my_tag) && s.his_tag && *s.his_tag == msg[3];
        if (!same) {
            out.push_back(send_to{gns(node), tuple(A("cancel_connect"), cfg_.node, msg[3]), true});
            restart_connect(node, s.my_tag, out);
        }
    } else if (tag == "cancel_connect" && msg.size() == 3 && msg[1].is_atom()) {
        // handle_info({cancel_connect, Node, MyTag}): the peer gave up this session.
        atom node = msg[1].as_atom();
        auto s = sessions_.find(node);
        if (s != sessions_.end() && s->second.my_tag && msg[2] == term(*s->second.my_tag)) {
            auto my_tag = s->second.my_tag;
            cancel_locker(node, my_tag, out);
            reset_node_state(node);
            pending_.erase(node);
            restart_connect(node, my_tag, out);
        }
    } else if (tag == "lost_connection" && msg.size() == 5 && msg[1].is_atom() &&
               msg[2].is_integer() && msg[3].is_integer() && msg[4].is_atom()) {
        lost_connection(msg, out);
    } else if (tag == "remove_connection" && msg.size() == 2 && msg[1].is_atom()) {
        remove_connection(msg[1].as_atom(), out);
    } else if (tag == "whereis" && msg.size() == 3 && msg[2].is_tuple(2) && msg[2][0].is_pid()) {
        // handle_info({whereis, Name, From}) (old nodes' whereis_name).
        auto p = whereis(msg[1]);
        out.push_back(reply_to{msg[2], p ? *p : term(atoms::undefined())});
    } else if (tag == "timeout" && msg.size() == 3) {
        h = handled::ignored;
    } else {
        h = handled::ignored;
    }
    locker_pump(out);
    return h;
}

void global_server::handle_call(const term& from, const term& req, actions& out) {
    const term caller = from[0];
    auto reply = [&](term v) { out.push_back(reply_to{from, std::move(v)}); };
    auto is = [&](const char* t, std::size_t n) { return req.is_tuple(n) && req[0].is_atom(A(t)); };
    if (is("set_lock", 2) && req[1].is_tuple(2)) {
        reply(handle_set_lock(req[1], caller, out));
    } else if (is("del_lock", 2) && req[1].is_tuple(2)) {
        handle_del_lock(req[1], caller, out);
        reply(true);
    } else if (is("register", 4) && req[2].is_pid()) {
        ins_name(req[1], req[2], req[3], std::nullopt, caller, term{}, out);
        reply(A("yes"));
    } else if (is("register_ext", 5) && req[2].is_pid() && req[4].is_atom()) {
        ins_name(req[1], req[2], req[3], req[4].as_atom(), caller, term{}, out);
        reply(A("yes"));
    } else if (is("unregister", 2)) {
        names_.erase(req[1], out);
        reply(atoms::ok());
    } else if (req.is_atom(A("get_known"))) {
        reply(known_list(0));
    } else if (req.is_atom(A("get_synced"))) {
        std::vector<term> s(synced_.begin(), synced_.end());
        reply(make_list(std::move(s)));
    } else if (req.is_atom(A("get_protocol_version"))) {
        reply(protocol_version);
    } else if (req.is_atom(A("get_names_ext"))) {
        reply(names_.ext_list());
    } else if (is("sync", 2) && is_atom_list(req[1])) {
        std::vector<atom> nodes;
        for (const auto& n : elements(req[1]))
            nodes.push_back(n.as_atom());
        auto op = sync(std::move(nodes), out);
        // sync() may have finished already; otherwise answer when it does.
        bool done = false;
        for (auto& a : out)
            if (auto* d = std::get_if<op_done>(&a); d && d->op == op) {
                done = true;
                a = reply_to{from, d->result};
            }
        if (!done) call_ops_[op] = from;
    } else {
        // global.erl logs and never answers; a caller of ours would hang, so say no.
        out.push_back(
            log_line{log_line::level::warning,
                     "The global_name_server received an unexpected call: " + req.to_string()});
        reply(false);
    }
}

void global_server::handle_cast(const term& msg, actions& out) {
    if (!msg.is_tuple() || msg.size() < 2 || !msg[0].is_atom()) return;
    auto tag = msg[0].as_atom().str();
    if (tag == "init_connect" && msg.size() == 4 && msg[2].is_atom()) {
        // handle_cast({init_connect, Vsn, Node, InitMsg}): Vsn = {HisVsn, HisTag, ...}.
        const term& v = msg[1];
        if (!v.is_tuple() || v.size() < 2 || !v[0].is_small()) {
            out.push_back(log_line{log_line::level::info, "Illegal global protocol version " +
                                                              v.to_string() +
                                                              " Node: " + msg[2].to_string()});
            return;
        }
        int his_vsn = static_cast<int>(v[0].as_int64());
        int vsn = (his_vsn > protocol_version || v.size() > 2) ? protocol_version : his_vsn;
        init_connect(vsn, msg[2].as_atom(), msg[3], v[1], his_vsn, out);
    } else if (tag == "exchange" && msg.size() == 5 && msg[1].is_atom()) {
        // handle_cast({exchange, Node, NameList, _NameExtList, MyTag})
        atom node = msg[1].as_atom();
        auto& s = sessions_[node];
        if (s.my_tag && msg[4] == term(*s.my_tag))
            exchange(node, msg[2], out);
        else
            cancel_locker(node, msg[4].is_small() ? std::optional(msg[4].as_int64()) : std::nullopt,
                          out);
    } else if (tag == "resolved" && msg.size() == 7 && msg[1].is_atom()) {
        // handle_cast({resolved, Node, HisResolved, HisKnown, _, Names_ext, MyTag})
        atom node = msg[1].as_atom();
        auto& s = sessions_[node];
        if (!(s.my_tag && msg[6] == term(*s.my_tag))) {
            cancel_locker(node, msg[6].is_small() ? std::optional(msg[6].as_int64()) : std::nullopt,
                          out);
        } else if (s.save_ops == session::save::ops) {
            resolved(node, msg[2], msg[3], msg[5], out);
        } else {
            s.save_ops = session::save::resolved;
            s.his_known = msg[3];
            s.names_ext = msg[5];
            s.his_resolved = msg[2];
        }
    } else if (tag == "new_nodes" && msg.size() == 6 && msg[1].is_atom()) {
        new_nodes(msg[2], msg[1].as_atom(), msg[3], msg[4], msg[5], out);
    } else if (tag == "in_sync" && msg.size() == 3 && msg[1].is_atom()) {
        // handle_cast({in_sync, Node, _IsKnown}): Node (in the other partition) has our names.
        atom node = msg[1].as_atom();
        notify_synced(node, out);
        if (std::find(synced_.begin(), synced_.end(), node) == synced_.end())
            synced_.insert(synced_.begin(), node);
        pending_.erase(node);
        auto s = sessions_.find(node);
        cancel_locker(node, s == sessions_.end() ? std::nullopt : s->second.my_tag, out);
        reset_node_state(node);
    } else if ((tag == "async_del_name" || tag == "async_del_lock") && msg.size() == 3) {
        // Sent by R13B and older; the DOWN of the monitor does the work.
    } else if (tag == "lock_set" && (msg.size() == 5 || msg.size() == 4) && msg[1].is_pid() &&
               msg[2].is_bool()) {
        // handle_cast({lock_set, Pid, Set, HisKnown[, MyTag]}): for our locker, if the
        // session it belongs to is still the current one.
        atom node = msg[1].as_pid().node;
        locker_msg m;
        m.what = locker_msg::kind::lock_set;
        m.node = node;
        m.pid = msg[1];
        m.set = msg[2].as_bool();
        if (msg.size() == 5) {
            auto s = sessions_.find(node);
            if (s == sessions_.end() || !s->second.my_tag || msg[4] != term(*s->second.my_tag))
                return;
            m.lock_set_has_tag = true;
            m.tag = *s->second.my_tag;
        }
        to_locker(std::move(m), out);
    } else {
        out.push_back(log_line{log_line::level::warning,
                               "The global_name_server received an unexpected message: "
                               "handle_cast(" +
                                   msg.to_string() + ", _)"});
    }
}

// ---- locks (server side) -------------------------------------------------------------------

bool global_server::handle_set_lock(const term& id, const term& pid, actions& out) {
    return locks_.set(id[0], id[1], pid, alloc_, out);
}

void global_server::handle_del_lock(const term& id, const term& pid, actions& out) {
    locks_.del(id[0], id[1], pid, out);
    after_lock_removed(id[0], false);
}

// remove_lock/6: global_lock_down records whether the global lock went with a DOWN.
void global_server::after_lock_removed(const term& resource, bool by_down) {
    if (resource.is_atom(A("global")) && !locks_.is_set(resource)) global_lock_down_ = by_down;
}

void global_server::down(monitor_id id, actions& out) {
    for (const auto& r : locks_.down(id))
        after_lock_removed(r, true);
    names_.erase_by_monitor(id);
    locker_pump(out);
}

// ---- sync ----------------------------------------------------------------------------------

void global_server::notify_synced(atom node, actions& out) {
    for (auto it = syncers_.begin(); it != syncers_.end();) {
        erase_value(it->nodes, node);
        if (it->nodes.empty()) {
            auto op = it->op;
            it = syncers_.erase(it);
            finish_op(op, atoms::ok(), out);
        } else {
            ++it;
        }
    }
}

void global_server::sync_nodedown(atom node, actions& out) {
    notify_synced(node, out);
}

std::uint64_t global_server::sync(std::vector<atom> nodes, actions& out) {
    auto op = next_op_++;
    // handle_call({sync, Nodes}): lists:delete(node(), Nodes) -- Synced; sync_init/2's
    // monitor_node gives an immediate nodedown for a node that is not connected.
    std::vector<atom> wait;
    for (auto n : nodes)
        if (n != cfg_.node && std::find(synced_.begin(), synced_.end(), n) == synced_.end() &&
            connection_ids_.count(n) && std::find(wait.begin(), wait.end(), n) == wait.end())
            wait.push_back(n);
    if (wait.empty())
        finish_op(op, atoms::ok(), out);
    else
        syncers_.push_back(sync_waiter{op, std::move(wait)});
    return op;
}

void global_server::finish_op(std::uint64_t op, term result, actions& out) {
    auto c = call_ops_.find(op);
    if (c != call_ops_.end()) {
        out.push_back(reply_to{c->second, std::move(result)});
        call_ops_.erase(c);
        return;
    }
    out.push_back(op_done{op, std::move(result)});
}

void global_server::timer_fired(timer_id id, actions& out) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    auto f = std::move(it->second);
    timers_.erase(it);
    f(out);
    locker_pump(out);
}

void global_server::call_result(call_id id, std::optional<term> reply, actions& out) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    auto f = std::move(it->second);
    calls_.erase(it);
    f(std::move(reply), out);
    locker_pump(out);
}

}  // namespace erl::cluster
