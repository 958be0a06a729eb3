// The internal runtime interface: what services (rpc/erpc, rex, gen_server, supervisor, and
// new ones such as global, pg or introspection) use to act as Erlang processes. A service
// written on it never sees a distribution operation code, a connection or another process's
// link and monitor state: the runtime builds every control message (src/node/signals.cpp) and
// keeps the state both sides of a link or monitor need.
//
// Processes are std::shared_ptr<process> (src/node/process.hpp). A service may read a
// process's `self`/`self_term` and `exited`; everything else is the runtime's.
//
// Threads: every function may be called from any thread, including the node's I/O threads
// (none blocks). Inline handlers of service processes run on the delivering thread: they must
// be quick and must not block (they may call any function here).
//
// Semantics are Erlang's (reference manual, "Processes"): messages to dead processes or
// unreachable nodes are dropped; a link or monitor to a dead process fires `noproc`; to a
// node that cannot be reached, or whose connection is lost, `noconnection`.
#pragma once

#include <erl/error.hpp>
#include <erl/mailbox.hpp>
#include <erl/term.hpp>

#include "node/node_core.hpp"
#include "node/signals.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace erl::detail::runtime {

// Processes ------------------------------------------------------------------------------------

// A service process: each message is handed to `handler` on the delivering thread instead of
// being queued. `on_exit` (optional) runs once with the exit reason when it ends (before its
// links and monitors fire). With a name, it is registered in the same step
// (errc::name_taken).
result<std::shared_ptr<process>> spawn_service(node_core& n, std::function<void(term)> handler,
                                               std::function<void(const term&)> on_exit = {},
                                               std::optional<atom> name = std::nullopt);
// A queueing process for a service's own thread (receive through the mailbox). The mailbox
// is the process's last owner: the process exits with `normal` when it is dropped.
mailbox spawn_mailbox(node_core& n);
// A mailbox on `p` that is its last owner in the same way (the process exits with `normal`
// when the last copy is dropped); for a service process a C++ object stands for.
mailbox owning_handle(const std::shared_ptr<process>& p);
// register/2 for a process that already runs (errc::name_taken, errc::noproc).
error_code register_name(node_core& n, atom name, const std::shared_ptr<process>& p);
std::shared_ptr<process> whereis(node_core& n, atom name);
// Ends `p` with `reason` (exit/1): name, aliases, links and monitors are released.
void exit(const std::shared_ptr<process>& p, term reason);

// Messages -------------------------------------------------------------------------------------

void send(const process& from, const pid& to, term msg);
void send(const process& from, atom name, atom node, term msg);  // {Name, Node}
// gen:reply/2 to a '$gen_call' From = {Pid, Tag}: to the alias when Tag is [alias|Ref].
void reply(node_core& n, const term& from, term reply);
reference make_ref(node_core& n);

// Signals (erlang:link/1, monitor/2, alias/0 and their inverses) ------------------------------

using detail::demonitor;  // (n, self, ref, flush): true if it was active
using detail::link;       // (n, self, pid)
using detail::monitor;    // (n, self, pid | name | {Name, Node}) -> ref
using detail::unlink;     // (n, self, pid)
reference make_alias(const std::shared_ptr<process>& self);
void remove_alias(const std::shared_ptr<process>& self, const reference& alias);

// Nodes (erlang:monitor_node/2, net_kernel:monitor_nodes/1, erlang:disconnect_node/1) ---------

using detail::monitor_node;  // (n, self, node, on): {nodedown, Node} to self
using detail::send_exit2;    // (n, from, to, reason): erlang:exit/2 from the pid term `from`
// net_kernel:monitor_nodes(true) for a service: `cb` sees every nodeup and nodedown in the
// order the contract of erl::node_event states (<erl/node.hpp>), on the thread that brings the
// connection up or down; it must not block. Returns an id for demonitor_nodes.
std::uint64_t monitor_nodes(node_core& n, std::function<void(const node_event&)> cb);
void demonitor_nodes(node_core& n, std::uint64_t id);
bool is_connected(node_core& n, atom node);
// erlang:disconnect_node/1: closes the connection; peers see nodedown.
void disconnect(node_core& n, atom node);

// Spawning on another node (erl_dist_protocol SPAWN_REQUEST / SPAWN_REPLY) ------------------

// True if `node` is connected and negotiated DFLAG_SPAWN (else a service falls back, as rpc
// falls back to `rex`).
bool supports_spawn(node_core& n, atom node);
// erlang:spawn_request(Node, M, F, Args, Opts) from `self`; returns the request id.
// With `reply`, the answer arrives as the message {spawn_reply, ReqId, ok, Pid} or
// {spawn_reply, ReqId, error, Reason} (Reason noconnection when the connection cannot be set
// up, or is lost before the answer); without it the answer is dropped (erpc:cast's
// {reply, no}).
// With `monitor`, `self` holds a monitor whose reference is ReqId from this call on: its
// target becomes the new pid when the reply arrives (before the reply is delivered), it is
// dropped if the spawn fails (no 'DOWN' then: the error reply says why), and it fires 'DOWN'
// noconnection if the connection is lost after the reply; demonitor(ReqId) drops it (before
// the reply: the monitor the peer set up is removed when the reply names the new pid).
// With `link`, the link is set up atomically with the spawn, as erlang:spawn_link/4 does: the
// new process is linked to `self` before it runs, and `self` holds the link from the moment
// the reply arrives (so an exit of the new process, which the peer sends after the reply, is
// always seen as a link exit). A failed spawn creates no link.
struct spawn_request_opts {
    bool monitor = false;
    bool reply = true;
    bool link = false;
};
reference spawn_request(const std::shared_ptr<process>& self, atom node, atom m, atom f,
                        const term& args, const term& group_leader, spawn_request_opts opts);
// erlang:spawn_request_abandon/1: true if the request was still unanswered. Its reply (if one
// comes) is dropped, and what the peer set up for it is undone when it comes: the monitor is
// removed on the peer (DEMONITOR_P), and with `link` the new process gets the link exit signal
// `abandoned`. A requester that exits before the reply is treated alike (exit reason noproc).
bool spawn_request_abandon(const std::shared_ptr<process>& self, const reference& req);

// erlang:spawn/4 on the node's own name: starts the C++ process kind registered as
// M:F/length(Args) (erl::add_spawnable) in a new process, linked to or (with monitor_ref)
// monitored by *parent when given. errc::notsup if no kind is registered, badarg for an
// improper argument list.
result<pid> spawn_kind_locally(node_core& n, const std::shared_ptr<process>* parent, atom m, atom f,
                               const term& args, bool link, reference* monitor_ref);

// Serving SPAWN_REQUEST: node_core::set_spawn_handler installs the hook; it receives the
// connection (an opaque handle to pass back here) and the request.
// A new process for the request `req_id` from `from`, linked to / monitored by `from` as
// asked, and the SPAWN_REPLY carrying its pid sent before anything the process sends.
struct accept_opts {
    bool monitor = false;  // `from` monitors the new process, with req_id as the reference
    bool link = false;     // the new process is linked to `from`
};
std::shared_ptr<process> accept_spawn(node_core& n, const std::shared_ptr<connection>& c,
                                      const term& req_id, const term& from, accept_opts opts);

}  // namespace erl::detail::runtime
