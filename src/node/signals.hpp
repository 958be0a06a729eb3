// Process-level link, monitor and exit operations (the sending half of src/node/signals.cpp).
// Local and remote targets go through the same receive handlers: a signal to a local process
// calls the handler directly; to a remote one it becomes a control message.
#pragma once

#include "node/node_core.hpp"

#include <memory>

namespace erl::detail {

// erlang:link/1. A dead or unknown target gives `self` an exit signal noproc; an unreachable
// node gives noconnection.
void link(node_core& n, const std::shared_ptr<process>& self, const pid& other);
// erlang:unlink/1: the link is inactive at once; UNLINK_ID completes it.
void unlink(node_core& n, const std::shared_ptr<process>& self, const pid& other);
// erlang:exit/2 sent from `from` (a pid term).
void send_exit2(node_core& n, const term& from, const pid& to, const term& reason);
// erlang:monitor(process, Target); target: a pid, a local registered name (atom) or
// {Name, Node}. A dead target gives 'DOWN' noproc; an unreachable node noconnection.
reference monitor(node_core& n, const std::shared_ptr<process>& self, const term& target);
// erlang:demonitor/2: true if the monitor was active. With flush, a 'DOWN' already queued for
// it is removed.
bool demonitor(node_core& n, const std::shared_ptr<process>& self, const reference& ref,
               bool flush);
// erlang:monitor_node/2.
void monitor_node(node_core& n, const std::shared_ptr<process>& self, atom node, bool on);

// Receive handlers, shared by control messages and local signals.
void recv_link(node_core& n, const term& from, const pid& to);
void recv_unlink_id(node_core& n, const term& id, const term& from, const pid& to);
void recv_unlink_id_ack(node_core& n, const term& id, const term& from, const pid& to);
// MONITOR_P: target is a pid or a registered name atom.
void recv_monitor(node_core& n, const term& from, const term& target, const reference& ref);
void recv_demonitor(node_core& n, const term& target, const reference& ref);
// SPAWN_REPLY for request `req` of local process `to` (result: the new pid or an error atom;
// flags: erl_dist_protocol SPAWN_REPLY Flags, 1 = link set up, 2 = monitor set up).
void recv_spawn_reply(node_core& n, const reference& req, const pid& to, std::int64_t flags,
                      const term& result);
// SPAWN_REQUEST for a C++ process kind registered with erl::add_spawnable (src/node/spawn.cpp):
// true if it named one and was answered.
bool serve_spawnable(node_core& n, const std::shared_ptr<connection>& c, const term& control,
                     term* payload);

// The control message of a message to a pid: SEND_SENDER {22, From, To} when the peer
// negotiated DFLAG_SEND_SENDER, else SEND {2, '', To}; and of a message to a registered name:
// REG_SEND {6, From, '', Name}. A connection that is up encodes these straight into its output
// (proto::dist_writer); these terms are what it queues before its handshake.
term send_control(const term& from, const pid& to, bool send_sender);
term reg_send_control(const term& from, atom to_name);

}  // namespace erl::detail
