// global_name_server state machine. Function names in comments are global.erl's (kernel 8.5,
// OTP 25); docs/global.md describes the messages.
#include "cluster/global_server.hpp"
#include "cluster/global_terms.hpp"

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

std::vector<term> elements(const term& t) {
    if (!t.is_proper_list()) return {};
    auto lv = t.as_list();
    return {lv.elements.begin(), lv.elements.end()};
}

template <class T>
void erase_value(std::vector<T>& v, const T& x) {
    auto it = std::find(v.begin(), v.end(), x);
    if (it != v.end()) v.erase(it);
}

// extra_info/2: {Tag, Info} in ExtraInfo, or undefined.
term find_extra_info(const term& tag, const term& info) {
    for (const auto& e : elements(info))
        if (e.is_tuple(2) && e[0] == tag) return e[1];
    return atoms::undefined();
}

constexpr std::int64_t lost_conn_info_cleanup_ms = 60 * 60 * 1000;

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
    std::vector<atom> out;
    for (const auto& [n, v] : known_)
        out.push_back(n);
    return out;
}

std::vector<atom> global_server::synced() const {
    return synced_;
}

std::vector<atom> global_server::connected() const {
    std::vector<atom> out;
    for (const auto& [n, id] : connection_ids_)
        out.push_back(n);
    return out;
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

// inform_connection_loss/2: tell everyone we know (and are connecting to) that we lost Node.
void global_server::inform_connection_loss(atom node, actions& out) {
    if (!cfg_.connect_all || !cfg_.prevent_overlapping_partitions) return;
    term msg = tuple(A("lost_connection"), cfg_.node, cfg_.creation_extension,
                     cfg_.unique_integer(), node);
    multicast(msg, node, true, out);
}

// gns_volatile_multicast/5 with MinVer 7: noconnect sends to known (and pending) nodes.
void global_server::multicast(const term& msg, atom ignore, bool also_pending, actions& out) {
    std::vector<std::pair<term, atom>> order;  // maps:foreach visits keys in term order
    for (const auto& [n, v] : known_)
        if (n != ignore && v >= 7) order.emplace_back(term(n), n);
    if (also_pending)
        for (const auto& [n, v] : pending_)
            if (n != ignore && v >= 7) order.emplace_back(tuple(A("pending"), n), n);
    std::sort(order.begin(), order.end());
    for (const auto& [k, n] : order)
        out.push_back(send_to{gns(n), msg, true});
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

// ---- prevent_overlapping_partitions ---------------------------------------------------------

// handle_info({lost_connection, NodeA, XCreationA, OpIdA, NodeB}).
void global_server::lost_connection(const term& msg, actions& out) {
    if (!cfg_.connect_all || !cfg_.prevent_overlapping_partitions) return;
    atom a = msg[1].as_atom(), b = msg[4].as_atom();
    auto key = std::make_pair(a, b);
    auto it = lost_.find(key);
    if (it != lost_.end() && std::get<1>(it->second) == msg[2] &&
        msg[3] <= term(std::get<0>(it->second)))
        return;  // seen already
    multicast(msg, a, true, out);
    if (it != lost_.end()) out.push_back(timer_cancel{std::get<2>(it->second)});
    auto t = next_timer_++;
    out.push_back(timer_start{t, std::chrono::milliseconds(lost_conn_info_cleanup_ms)});
    timers_[t] = [this, key, t](actions&) {
        auto i = lost_.find(key);
        if (i != lost_.end() && std::get<2>(i->second) == t) lost_.erase(i);
    };
    lost_[key] = {msg[3].is_small() ? msg[3].as_int64() : 0, msg[2], t};
    atom rm = cfg_.node == b ? a : b;
    if (!known_.count(rm) && !pending_.count(rm)) return;
    std::string what;
    if (node_vsn(rm) < 7) {
        out.push_back(disconnect_node{rm});
        what = "disconnected old";
    } else {
        out.push_back(send_to{gns(rm), tuple(A("remove_connection"), cfg_.node), true});
        what = "requested disconnect from";
    }
    out.push_back(
        log_line{log_line::level::warning, "'global' at node " + term(cfg_.node).to_string() + " " +
                                               what + " node " + term(rm).to_string() +
                                               " in order to prevent overlapping partitions"});
    handle_nodedown(rm, 1, out);
}

// handle_info({remove_connection, Node}).
void global_server::remove_connection(atom node, actions& out) {
    if (!known_.count(node) && !pending_.count(node)) return;
    out.push_back(disconnect_node{node});
    handle_nodedown(node, 1, out);
    out.push_back(
        log_line{log_line::level::warning, "'global' at node " + term(cfg_.node).to_string() +
                                               " disconnected node " + term(node).to_string() +
                                               " in order to prevent overlapping partitions"});
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
