// global_server's prevent_overlapping_partitions (global.erl, kernel 8.5 / OTP 25):
// lost_connection on nodedown, its handling and forwarding, remove_connection.
#include "cluster/global_server.hpp"
#include "cluster/global_terms.hpp"

#include <algorithm>

namespace erl::cluster {

using namespace detail;

namespace {

// ?lost_conn_info_cleanup_time: how long a lost_connection is remembered.
constexpr std::int64_t lost_conn_info_cleanup_ms = 60 * 60 * 1000;

}  // namespace

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

}  // namespace erl::cluster
