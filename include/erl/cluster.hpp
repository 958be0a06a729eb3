// erl::cluster — the cluster services every visible Erlang node runs: `global_name_server`
// (OTP's `global`: cluster-wide names and locks) and `pg` scopes (process groups), served on
// an erl::node so that BEAM nodes see it as a full cluster member (see docs/global.md and
// docs/pg.md, section "On an erlcpp node").
//
//     erl::node n(opts);
//     n.start();
//     erl::rpc::server rpc(n);
//     auto cluster = erl::cluster::start(n, {.rpc = &rpc});   // before connecting to peers
//
// Start the services right after node::start() and before the node connects to anyone, as a
// BEAM node starts kernel's global and pg before distribution. They are processes of the
// node's runtime driven by its messages, timers and node events on the node's own I/O threads
// (no thread of their own, no polling).
//
// What a node takes part in depends on node_options::hidden (<erl/node.hpp>):
//  - visible (the default): global sessions with every visible peer (BEAM's global:sync()
//    waits for ours), the cluster-wide name and lock tables, connect_all and
//    prevent_overlapping_partitions, and the overlay of every pg scope it runs;
//  - hidden: the services run with no peers, as OTP's do on an `erl -hidden` node: names,
//    locks and groups stay local and no peer ever receives a message from them.
// Either way, hidden peers (erl -hidden) take no part: they never hear from our services.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <memory>
#include <vector>

namespace erl {

class node;
namespace rpc {
class server;
}

namespace cluster {

namespace detail {
struct cluster_state;
}

struct options {
    bool global = true;                       // run global_name_server
    std::vector<atom> pg_scopes{atom("pg")};  // pg scopes to run (pg:start_link(Scope))
    // The node's rpc server: global:resolve_it/4 is added to it (a BEAM resolver calls it over
    // rpc when one of our pids is in a name clash). Null: the services make and own one, and
    // the node must then have no other erl::rpc::server.
    erl::rpc::server* rpc = nullptr;
};

// The running services. Stopping (or destroying) ends them: global_name_server and the
// scopes exit (BEAM's scopes see their DOWN and drop our members). Meant for the end of the
// node's life: stop the node right after, as peers then forget our names with the nodedown.
// Destroy it before the node, or stop the node first.
class running {
  public:
    running() = default;
    explicit running(std::shared_ptr<detail::cluster_state> st) noexcept : st_(std::move(st)) {}
    running(running&&) noexcept = default;
    running& operator=(running&& o) noexcept;
    running(const running&) = delete;
    running& operator=(const running&) = delete;
    ~running();
    void stop();
    explicit operator bool() const noexcept { return st_ != nullptr; }

  private:
    std::shared_ptr<detail::cluster_state> st_;
};

// Registers global_name_server and the scopes on `n` (which must be started) and starts
// serving them. Errors: not_alive, name_taken (a service name is already registered, or the
// node already runs cluster services).
result<running> start(node& n, options o = {});

}  // namespace cluster
}  // namespace erl
