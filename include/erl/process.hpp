// C++ processes: callables with their own mailbox, spawned on a node like Erlang processes.
//
// Two kinds of body:
//   * void(erl::mailbox&) runs on its own thread and may block in mailbox::receive.
//   * boost::asio::awaitable<void>(erl::process_context&) runs as a coroutine on the node's
//     io_context (on a strand of its own) and waits with co_await ctx.async_receive(timeout).
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

#include <erl/error.hpp>
#include <erl/mailbox.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>

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
    // The process's strand (the executor the coroutine runs on).
    boost::asio::any_io_executor get_executor() const;

    // Next message / first message matching pred, waiting up to timeout; nullopt on timeout or
    // once the process has ended. One receive at a time per process.
    boost::asio::awaitable<std::optional<term>> async_receive(
        std::chrono::milliseconds timeout = infinity) const;
    boost::asio::awaitable<std::optional<term>> async_receive_if(
        std::function<bool(const term&)> pred, std::chrono::milliseconds timeout = infinity) const;
    // Suspends for d (a timer on the process's strand).
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

// erlang:spawn/1 for C++ bodies. Errors: not_alive, name_taken.
result<pid> spawn(node& n, process_body body, spawn_options opts = {});
result<pid> spawn(node& n, coroutine_body body, spawn_options opts = {});
// erlang:spawn_link/1: the link exists before the body runs.
result<pid> spawn_link(const mailbox& parent, process_body body, spawn_options opts = {});
result<pid> spawn_link(const mailbox& parent, coroutine_body body, spawn_options opts = {});
// erlang:spawn_monitor/1: the parent's monitor exists before the body runs.
result<spawned> spawn_monitor(const mailbox& parent, process_body body, spawn_options opts = {});
result<spawned> spawn_monitor(const mailbox& parent, coroutine_body body, spawn_options opts = {});

// Waits until the thread of every thread-bodied process spawned on `n` has returned (their
// processes have ended and their bodies noticed). Call it after node::stop() before destroying
// what the bodies reference. True if all returned within timeout.
bool join_processes(node& n, std::chrono::milliseconds timeout = infinity);

}  // namespace erl
