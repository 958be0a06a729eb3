// C++ processes: callables with their own mailbox, spawned on a node like Erlang processes.
//
// Two kinds of body:
//   * void(erl::mailbox&) runs on its own thread and may block in mailbox::receive.
//   * boost::asio::awaitable<void>(erl::process_context&) runs as a coroutine on the node's
//     io_context (its handlers one at a time, in order: on a strand of its own, or on a node
//     with one I/O thread on that thread) and waits with co_await ctx.async_receive(timeout).
//     It must never block: it shares the node's I/O threads.
//
// A process ends when its body returns (reason `normal`), throws erl::exit_exception (its
// reason), throws anything else (reason {cpp_exception, <<What>>}), or when an exit signal kills
// it. A killed process is dead at once for everyone (links and monitors fire, its name is
// free, its sends are dropped), but C++ cannot stop a running function: the body learns of it
// when receive()/async_receive() return nullopt (check mailbox::exited()), and must return.
//
// Links, monitors and exit signals behave exactly as with remote processes: the same signal
// handlers serve both (see include/erl/mailbox.hpp).
#pragma once

#include <erl/detail/async.hpp>
#include <erl/error.hpp>
#include <erl/mailbox.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace erl {

class node;

namespace detail {
struct coroutine_state;
}

// Throw inside a C++ process to end it with `reason` (erlang:exit/1).
class exit_exception : public std::exception {
  public:
    explicit exit_exception(term reason) : reason_(std::move(reason)) {}
    const term& reason() const noexcept { return reason_; }
    const char* what() const noexcept override { return "erl::exit_exception"; }

  private:
    term reason_;
};

struct spawn_options {
    std::optional<atom> name;    // register the process under this name (errc::name_taken)
    bool trap_exit = false;      // process_flag(trap_exit, true) before the body runs
    std::optional<pid> link_to;  // link to this pid (local or remote) before the body runs
    // The most messages the process's queue may hold (node_options::max_message_queue_len
    // when not set; 0 = unbounded) and what a message beyond it does (node_options default).
    std::optional<std::size_t> max_message_queue_len;
    std::optional<message_queue_limit_action> message_queue_limit;
};

// What a coroutine process sees of itself. Cheap to copy. It holds no strong reference to the
// process or the node, so a coroutine suspended when the node stops is simply destroyed with
// the node's io_context. Every member is a no-op (or returns nullopt / an empty value) once
// the process has ended.
class process_context {
  public:
    explicit process_context(std::shared_ptr<detail::coroutine_state> st) noexcept
        : st_(std::move(st)) {}

    const pid& self() const noexcept;
    const term& self_term() const noexcept;
    // The executor the coroutine runs on: a strand of the node's io_context, which runs the
    // process's handlers one at a time and in order (on a node with one I/O thread and an
    // io_context of its own, that io_context's executor, which does the same).
    boost::asio::any_io_executor get_executor() const;

    // Next message / first message matching pred, waiting up to timeout; nullopt on timeout or
    // once the process has ended. One receive at a time per process.
    boost::asio::awaitable<std::optional<term>> async_receive(
        std::chrono::milliseconds timeout = infinity) const;
    boost::asio::awaitable<std::optional<term>> async_receive_if(
        std::function<bool(const term&)> pred, std::chrono::milliseconds timeout = infinity) const;
    // Suspends for d (a timer on the process's executor).
    boost::asio::awaitable<void> async_sleep(std::chrono::milliseconds d) const;

    // A mailbox handle on this process (empty once it ended) for the full mailbox API. Do not
    // keep it across a co_await: it holds the process (and so the node) alive.
    mailbox handle() const;
    bool exited() const;

    void send(const pid& to, term msg) const;
    void send(atom registered_name, term msg) const;
    void send(atom registered_name, atom to_node, term msg) const;
    // mailbox::try_send: would_block instead of queueing beyond a busy connection's bound.
    error_code try_send(const pid& to, term msg) const;
    error_code try_send(atom registered_name, atom to_node, term msg) const;
    // mailbox::async_send (same outcomes and order): a coroutine process waits for room on a
    // busy connection without holding its I/O thread, where send() queues beyond the bound.
    //     co_await ctx.async_send(to, msg, boost::asio::use_awaitable);
    template <class Token>
    auto async_send(const pid& to, term msg, Token&& token) const {
        return handle().async_send(to, std::move(msg), std::forward<Token>(token));
    }
    template <class Token>
    auto async_send(atom registered_name, atom to_node, term msg, Token&& token) const {
        return handle().async_send(registered_name, to_node, std::move(msg),
                                   std::forward<Token>(token));
    }
    void link(const pid& other) const;
    void unlink(const pid& other) const;
    reference monitor(const pid& target) const;
    reference monitor(atom registered_name, atom node) const;
    bool demonitor(const reference& ref, bool flush = false) const;
    bool trap_exit(bool on) const;
    void exit(const pid& to, term reason) const;

  private:
    std::shared_ptr<detail::coroutine_state> st_;
};

using process_body = std::function<void(mailbox&)>;
using coroutine_body = std::function<boost::asio::awaitable<void>(process_context&)>;

struct spawned {
    erl::pid pid;
    reference monitor;  // the parent's monitor on the new process
};

// erlang:spawn/1 for C++ bodies. Errors: not_alive, name_taken. As in BEAM, the call returns
// before the new process runs: a thread body starts on its thread, a coroutine body from its
// executor's queue (also when a coroutine process spawns on the same I/O thread), so a chain of
// processes each spawning the next never nests on a stack.
result<pid> spawn(node& n, process_body body, spawn_options opts = {});
result<pid> spawn(node& n, coroutine_body body, spawn_options opts = {});
// erlang:spawn_link/1: the link exists before the body runs.
result<pid> spawn_link(const mailbox& parent, process_body body, spawn_options opts = {});
result<pid> spawn_link(const mailbox& parent, coroutine_body body, spawn_options opts = {});
// erlang:spawn_monitor/1: the parent's monitor exists before the body runs.
result<spawned> spawn_monitor(const mailbox& parent, process_body body, spawn_options opts = {});
result<spawned> spawn_monitor(const mailbox& parent, coroutine_body body, spawn_options opts = {});

// ------------------------------------------------------------------------------------------
// Spawning M:F(Args) on another node (erlang:spawn/4, spawn_link/4, spawn_monitor/4).
//
// The request is erl_dist_protocol SPAWN_REQUEST; link and monitor are set up atomically with
// the spawn, as OTP's spawn_request does: the new process is linked to / monitored by the
// parent before it runs, so even an immediate exit reaches the parent as a link exit or a
// 'DOWN'. The call blocks the calling thread until the peer answers (SPAWN_REPLY) or `timeout`
// passes; from a coroutine process use the async_ forms below. Where a BEAM node raises or
// returns a pid that is already dead, these return the error as a value:
//   errc::badarg        args is not a proper list, or the peer rejected an option (badopt)
//   errc::noconnection  the node cannot be reached, or the connection was lost before the
//                       answer (erlang:spawn/4 returns a pid that exits noconnection)
//   errc::notsup        the peer cannot spawn: no DFLAG_SPAWN, or an erlcpp node without a
//                       process kind (add_spawnable) or rpc function registered as M:F/Arity
//   errc::timeout       no answer within `timeout` (the request is abandoned: a process
//                       spawned for it later is killed with `abandoned` if it was linked)
//   errc::limit_exceeded the peer answered system_limit
//   errc::not_alive     this node is not running
//   errc::exited        the parent ended while waiting for the answer
// A function a BEAM node does not know is no spawn error there: the process starts and exits
// {undef, [{M, F, Args, []}]}, which the parent sees as the exit reason (link, 'DOWN'). On
// this node's own name the process kind registered with add_spawnable is started locally.
// `parent` must not receive concurrently (the answer is taken from its mailbox).
//
// async_spawn, async_spawn_link and async_spawn_monitor are the same as asynchronous
// operations: they take an Asio completion token, never block, and complete with
// (error_code, pid) / (error_code, spawned) on the token's associated executor (the node's if
// it has none): the errors above, or boost::asio::error::operation_aborted when terminal
// cancellation is emitted on the token's cancellation slot (the request is abandoned as on a
// timeout). A coroutine process passes ctx.handle() as the parent (the operation holds it
// until it completes):
//
//     auto [ec, p] = co_await erl::async_spawn_link(ctx.handle(), peer, erl::atom("timer"),
//                                                   erl::atom("sleep"), erl::list(100),
//                                                   erl::default_spawn_timeout,
//                                                   boost::asio::as_tuple(use_awaitable));
inline constexpr std::chrono::milliseconds default_spawn_timeout = std::chrono::seconds(5);

// erlang:spawn/4: the new process is neither linked nor monitored (a temporary process of the
// node sends the request).
result<pid> spawn(node& n, atom where, atom module, atom function, term args,
                  std::chrono::milliseconds timeout = default_spawn_timeout);
// erlang:spawn_link/4 from `parent`.
result<pid> spawn_link(const mailbox& parent, atom where, atom module, atom function, term args,
                       std::chrono::milliseconds timeout = default_spawn_timeout);
// erlang:spawn_monitor/4 from `parent`: the monitor reference is the request id, as on BEAM.
result<spawned> spawn_monitor(const mailbox& parent, atom where, atom module, atom function,
                              term args, std::chrono::milliseconds timeout = default_spawn_timeout);

namespace detail {
using pid_handler = boost::asio::any_completion_handler<void(error_code, pid)>;
using spawned_handler = boost::asio::any_completion_handler<void(error_code, spawned)>;
void initiate_spawn(node& n, atom where, atom module, atom function, term args,
                    std::chrono::milliseconds timeout, pid_handler handler);
void initiate_spawn_link(const mailbox& parent, atom where, atom module, atom function, term args,
                         std::chrono::milliseconds timeout, pid_handler handler);
void initiate_spawn_monitor(const mailbox& parent, atom where, atom module, atom function,
                            term args, std::chrono::milliseconds timeout, spawned_handler handler);
}  // namespace detail

template <class Token>
auto async_spawn(node& n, atom where, atom module, atom function, term args,
                 std::chrono::milliseconds timeout, Token&& token) {
    return detail::async_op<void(error_code, pid)>(token, &detail::initiate_spawn, std::ref(n),
                                                   where, module, function, std::move(args),
                                                   timeout);
}
template <class Token>
auto async_spawn_link(const mailbox& parent, atom where, atom module, atom function, term args,
                      std::chrono::milliseconds timeout, Token&& token) {
    return detail::async_op<void(error_code, pid)>(token, &detail::initiate_spawn_link, parent,
                                                   where, module, function, std::move(args),
                                                   timeout);
}
template <class Token>
auto async_spawn_monitor(const mailbox& parent, atom where, atom module, atom function, term args,
                         std::chrono::milliseconds timeout, Token&& token) {
    return detail::async_op<void(error_code, spawned)>(token, &detail::initiate_spawn_monitor,
                                                       parent, where, module, function,
                                                       std::move(args), timeout);
}

// ------------------------------------------------------------------------------------------
// C++ process kinds other nodes may spawn: spawn(CppNode, M, F, Args) from erl, Elixir or
// erl::spawn above starts `body` with the argument list (its length is the arity) in a new
// process of `n`, linked to / monitored by the requester as asked. A kind is found before the
// rpc functions of an erl::rpc::server (which are spawned as run-once processes); anything
// registered neither way is refused with the spawn error `notsup`, as a C++ node cannot run
// Erlang code. Registration may change at any time from any thread; a spawn that is being
// served keeps the body it found.
using spawnable_body = std::function<void(mailbox&, std::vector<term> args)>;
using spawnable_coroutine =
    std::function<boost::asio::awaitable<void>(process_context&, std::vector<term> args)>;
void add_spawnable(node& n, atom module, atom function, unsigned arity, spawnable_body body);
void add_spawnable(node& n, atom module, atom function, unsigned arity, spawnable_coroutine body);
bool remove_spawnable(node& n, atom module, atom function, unsigned arity);

// Waits until the thread of every thread-bodied process spawned on `n` has returned (their
// processes have ended and their bodies noticed). Call it after node::stop() before destroying
// what the bodies reference. True if all returned within timeout.
bool join_processes(node& n, std::chrono::milliseconds timeout = infinity);

}  // namespace erl
