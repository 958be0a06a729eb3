// What the sans-io cluster cores (global_*, pg_*) ask their runtime to do.
//
// The cores never touch a socket, a clock or a process: every input is a call on the core
// (a node came up or went down, a message arrived, a monitor fired, a timer expired, a call was
// answered) and every effect is an action appended to the caller's list, executed in order by
// the runtime. Monitors, timers and calls are named by ids the core allocates, so the runtime
// maps them to its own references and reports them back by id.
#pragma once

#include <erl/term.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace erl::cluster {

using monitor_id = std::uint64_t;
using timer_id = std::uint64_t;
using call_id = std::uint64_t;

// erlang:send(To, Message[, [noconnect]]). `to` is a pid term, a {RegName, Node} tuple or a
// locally registered name (an atom). noconnect: do not set up a connection to reach `to`
// (pg.erl and global.erl send their peer traffic that way so that a message never revives a
// connection that just went down).
struct send_to {
    term to;
    term message;
    bool noconnect = false;
};

// erlang:monitor(process, Pid). The runtime reports the DOWN with the same id.
struct monitor_pid {
    monitor_id id = 0;
    term pid;
};

// erlang:demonitor(Ref, [flush]): no DOWN for this id may be reported afterwards.
struct demonitor_pid {
    monitor_id id = 0;
};

// erlang:start_timer(After, self(), ...). The runtime reports expiry with the same id.
struct timer_start {
    timer_id id = 0;
    std::chrono::milliseconds after{0};
};

// erlang:cancel_timer: no expiry for this id may be reported afterwards.
struct timer_cancel {
    timer_id id = 0;
};

// gen_server:call(To, Request, infinity) made by the local process `caller` (global's
// servers hold locks in the name of the calling process, so the caller matters): the runtime
// sends {'$gen_call', {Caller, Tag}, Request}, monitors the server and reports either the
// reply or the failure (server down, no such process, connection lost) with the same id. `to`
// is a {RegName, Node} tuple or a pid.
struct call_server {
    call_id id = 0;
    term caller;
    term to;
    term request;
};

// gen_server:reply(From, Value): From is the {Pid, Tag} of a '$gen_call'.
struct reply_to {
    term from;
    term value;
};

// exit(Pid, Reason).
struct exit_pid {
    term pid;
    term reason;
};

// net_kernel:async_disconnect(Node) / erlang:disconnect_node(Node).
struct disconnect_node {
    atom node;
};

// erpc:call(Node, Module, Function, Args) made by the core's process (the resolver's
// rpc:call to global:resolve_it/4). The runtime reports the result, or the failure as
// {badrpc, Reason}, with the same id.
struct rpc_call {
    call_id id = 0;
    atom node;
    atom module;
    atom function;
    term args;  // a proper list
};

// An operation the node's own code started on the core (register_name, set_lock, sync, ...)
// has finished with `result` (what the Erlang function returns: yes | no, true | false, ok).
struct op_done {
    std::uint64_t op = 0;
    term result;
};

// A line for the node's log (what OTP logs with logger at that point).
struct log_line {
    enum class level : std::uint8_t { info, warning, error } severity = level::info;
    std::string text;
};

using action =
    std::variant<send_to, monitor_pid, demonitor_pid, timer_start, timer_cancel, call_server,
                 reply_to, exit_pid, disconnect_node, rpc_call, op_done, log_line>;
using actions = std::vector<action>;

}  // namespace erl::cluster
