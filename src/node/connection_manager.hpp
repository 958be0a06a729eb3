// The connections of a node: the table of connections by peer (pending and up), the listener
// and its accept loop, the transport and access state every connection shares (net_state:
// TLS, allow-list, per-peer cookies, connection counts), the up/down transitions with the
// simultaneous-connect rule, and the node events (net_kernel:monitor_nodes) they raise.
// node_core owns one (node_core::connections); nothing else reaches the table.
//
// Lock order. The table lock (mu_) is taken before a connection's lock (connection::mu_, only
// where a superseded attempt hands its queue over, in accept_pending), never the other way
// round. It is never held together with the process table's lock or a process's lock
// (node/process_table.hpp): callers hold neither when they call in, and the manager calls
// nothing outside this class and the connections' atomic state under mu_. Node-event
// subscribers, connection closes and the node-down signals run with no lock held. The
// subscriber lock (events_mu_) is a leaf: nothing else is taken under it.
#pragma once

#include <erl/error.hpp>
#include <erl/node.hpp>
#include <erl/term.hpp>

#include "proto/handshake.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace erl::detail {

class connection;
struct net_state;
struct node_core;

class connection_manager {
  public:
    explicit connection_manager(node_core& core);
    ~connection_manager();
    connection_manager(const connection_manager&) = delete;
    connection_manager& operator=(const connection_manager&) = delete;

    // Starting -----------------------------------------------------------------------------
    // The transport and access state from the node's options and cookie (node::start); `why`
    // gets the option that is wrong, in words.
    error_code configure(std::string& why);
    // Opens the listener on listen_address:listen_port (port() tells the port it got).
    error_code listen(std::string& why);
    std::uint16_t port() const noexcept { return port_; }
    // Accepts connections until the listener closes (max_connections refuses before any TLS
    // or handshake work).
    void start_accepting();

    // What the connections share: TLS contexts, allow-list, cookies, counts (connection.hpp).
    // Set by configure(), before any connection exists.
    const std::shared_ptr<net_state>& net() const noexcept { return net_; }

    // Lookup ------------------------------------------------------------------------------
    // The connection to `peer` that is not closed (pending or up). With `create`, a new
    // outgoing one if there is none (a connection that fails at once when max_connections are
    // open). Null for this node itself, a name that is not name@host, or a stopping node.
    // The send path: one lock, one hash lookup, no allocation when the connection exists.
    std::shared_ptr<connection> connection_to(atom peer, bool create);
    bool is_up(atom peer) const;
    // Peers whose connection is up: all, visible or hidden ones (erlang:nodes/1).
    std::vector<atom> connected_nodes(node_type which = node_type::connected) const;
    // Every connection in the table (stats, introspection).
    std::vector<std::shared_ptr<connection>> snapshot() const;
    // node::connect: a connection to `peer`, waiting up to `timeout` for its handshake (the
    // blocking form of connect_op, node/async_call.hpp).
    error_code connect(atom peer, std::chrono::milliseconds timeout);

    // Transitions (called by the connections) ---------------------------------------------
    // True while `c` is the table's connection to `peer` (the handshake's "alive" answer).
    bool is_current(atom peer, const connection* c) const;
    // An incoming handshake from `peer` (whose name is an atom already) asks to go on:
    // net_kernel's accept_pending rule. `c` takes the table's slot unless a pending outgoing
    // attempt wins the simultaneous connect (nok); a pending attempt it replaces hands its
    // queued messages to `c` and is returned in `loser` (the caller closes it); a connection
    // that is up already gives alive.
    proto::handshake_status accept_pending(atom peer, const std::shared_ptr<connection>& c,
                                           std::shared_ptr<connection>& loser);
    // `c` completed its handshake with `peer`: it takes the slot; returns the connection it
    // replaced there, if any.
    std::shared_ptr<connection> take_slot(atom peer, const std::shared_ptr<connection>& c);
    // After the handshake, before the connection's reader starts: the nodeup event is seen
    // before any message of the connection is delivered (<erl/node.hpp>).
    void on_up(const std::shared_ptr<connection>& c);
    // `c` closed; was_up: it had completed its handshake (links and monitors across it fire
    // noconnection, then the nodedown event).
    void on_down(const std::shared_ptr<connection>& c, error_code why, bool was_up);

    // Node events (net_kernel:monitor_nodes) ----------------------------------------------
    // `cb` sees every nodeup and nodedown, on the thread that brings a connection up or down;
    // it must not block. Returns an id for unsubscribe.
    std::uint64_t subscribe(std::function<void(const node_event&)> cb);
    void unsubscribe(std::uint64_t id);

    // Stopping ------------------------------------------------------------------------------
    // Closes every connection with `why` (peers see nodedown).
    void close_all(error_code why);
    // Closes the listener (on the thread that runs its accept loop).
    void close_listener();
    // Drops the table and the listener once the node has stopped.
    void release();
    // Waits until every connection object of the node is gone (a node on the caller's
    // io_context: nothing else tells that their handlers have finished).
    void wait_connections_gone();

  private:
    // Every connection is made here, so wait_connections_gone() knows how many exist.
    template <class... Args>
    std::shared_ptr<connection> make(Args&&... args);
    void notify(const node_event& ev);

    node_core& core_;
    std::shared_ptr<net_state> net_;

    mutable std::mutex mu_;
    std::unordered_map<atom, std::shared_ptr<connection>> conns_;  // guarded by mu_

    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
    std::uint16_t port_ = 0;

    // Connection objects that still exist.
    struct live_count {
        std::mutex mu;
        std::condition_variable cv;
        std::size_t live = 0;
    };
    std::shared_ptr<live_count> live_ = std::make_shared<live_count>();

    std::mutex events_mu_;
    std::map<std::uint64_t, std::function<void(const node_event&)>>
        subscribers_;                  // guarded by events_mu_
    std::uint64_t next_event_id_ = 1;  // guarded by events_mu_
};

}  // namespace erl::detail
