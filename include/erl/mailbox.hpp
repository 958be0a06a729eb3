// erl::mailbox — a process of a C++ node: a pid, an optional registered name and a message
// queue. Handles are cheap to copy (shared ownership); the process exits when the last handle
// goes away or exit() is called.
//
// Thread safety: all members may be called from any thread. receive() blocks the calling
// thread; never call it on one of the node's I/O threads (use async_receive there).
#pragma once

#include <erl/detail/async.hpp>
#include <erl/error.hpp>
#include <erl/term.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace erl {

// What a process does when a message finds its queue at max_message_queue_len.
enum class message_queue_limit_action {
    kill,  // the process exits with reason `killed` (OTP's max_heap_size with kill => true)
    drop,  // the message is dropped (counted in node_stats; the first one per process logged)
};

class node;
namespace detail {
struct process;
struct access;
}  // namespace detail

// Wait forever.
inline constexpr std::chrono::milliseconds infinity = std::chrono::milliseconds::max();

/// What mailbox::receive returns: the message, or none and why. It is the
/// std::optional<term> receive() has always returned (`if (auto m = mb.receive(1s))`, `*m`,
/// comparisons with a term), plus error().
class receive_result : public std::optional<term> {
  public:
    receive_result(term msg) : std::optional<term>(std::move(msg)) {}
    explicit receive_result(error_code why) noexcept : why_(why) {}

    /// {} when a message was received; errc::timeout when none (matching) arrived in time;
    /// errc::exited when the process has ended (mailbox::exit_reason() gives its reason).
    error_code error() const noexcept { return why_; }
    bool timed_out() const noexcept { return why_ == errc::timeout; }
    bool exited() const noexcept { return why_ == errc::exited; }

  private:
    error_code why_;
};

class mailbox {
  public:
    mailbox() = default;

    explicit operator bool() const noexcept { return p_ != nullptr; }
    const pid& self() const noexcept;
    const term& self_term() const noexcept;  // the pid as a term (no allocation per use)
    std::optional<atom> registered_name() const;

    // Receive ------------------------------------------------------------------------------
    /// Next message in arrival order, waiting up to `timeout` on this thread. No message:
    /// error() is errc::timeout, or errc::exited once the process has ended (its queue goes
    /// with it; exit_reason() says why it ended).
    receive_result receive(std::chrono::milliseconds timeout = infinity);
    /// Selective receive: the first message for which pred is true; others stay queued in
    /// order. Errors as receive().
    receive_result receive_if(const std::function<bool(const term&)>& pred,
                              std::chrono::milliseconds timeout = infinity);
    std::size_t pending() const;

    /// receive() as an asynchronous operation: completes with (error_code, term) on the
    /// token's associated executor (the node's executor if it has none), with the message and
    /// {}, or with errc::timeout, errc::exited, boost::asio::error::operation_aborted when
    /// the token's cancellation slot is emitted (terminal, partial or total: a cancelled
    /// receive has taken no message), or errc::shutting_down when the node stops first
    /// (stop() returns after this completion has run on the node's io_context).
    /// Never blocks: usable from coroutines and handlers on the node's I/O threads. Any
    /// number of receives may wait on one mailbox; each message goes to one of them.
    ///
    ///     auto [ec, msg] = co_await mb.async_receive(5s, as_tuple(use_awaitable));
    template <class Token>
    auto async_receive(std::chrono::milliseconds timeout, Token&& token) {
        return async_receive_if(nullptr, timeout, std::forward<Token>(token));
    }
    /// Selective receive_if() as an asynchronous operation (a null pred accepts every
    /// message). pred runs on the thread delivering a message, with the process's queue
    /// locked: keep it quick. Completion as async_receive().
    template <class Token>
    auto async_receive_if(std::function<bool(const term&)> pred, std::chrono::milliseconds timeout,
                          Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code, term)>(
            [p = p_](auto handler, std::function<bool(const term&)> pred,
                     std::chrono::milliseconds timeout) {
                initiate_receive(p, std::move(pred), timeout,
                                 detail::term_handler(std::move(handler)));
            },
            token, std::move(pred), timeout);
    }

    // Send from this process -----------------------------------------------------------------
    // To a remote node whose connection is busy (output_busy_limit bytes unwritten, see
    // node_options), send() waits until the connection has drained or closed, as a BEAM sender
    // is suspended; on one of the node's I/O threads it never waits (docs/node.md "Writes").
    void send(const pid& to, term msg) const;
    void send(atom registered_name, term msg) const;
    void send(atom registered_name, atom to_node, term msg) const;
    void send_alias(const reference& alias, term msg) const;
    // send() that never waits (erlang:send(Dest, Msg, [nosuspend])): errc::would_block, and
    // nothing sent, while the destination's connection is busy; otherwise as send() (a message
    // to an unknown process or unreachable node is dropped and reports success).
    error_code try_send(const pid& to, term msg) const;
    error_code try_send(atom registered_name, atom to_node, term msg) const;

    /// send() as an asynchronous operation: completes with (error_code) on the token's
    /// associated executor (the node's executor if it has none) once the message is queued
    /// within the destination connection's output bound — at once while the connection has
    /// room, later when its queue has drained. No thread waits meanwhile (usable on the node's
    /// I/O threads, where send() does not wait). Outcomes, as send() has them:
    ///   {}  queued (or delivered locally; or dropped as send() drops a message to an unknown
    ///       process or unreachable node, or from a process that has ended);
    ///   errc::noconnection  the connection closed (or its set-up failed) while the send
    ///       waited for room: the message was not sent (a blocking send returns then too, its
    ///       message dropped);
    ///   boost::asio::error::operation_aborted  cancelled through the token's cancellation
    ///       slot (terminal, partial or total) while it waited: the message is not sent;
    ///   errc::shutting_down  the node stopped first: the message is not sent.
    /// Order: while asynchronous sends wait on a connection it is busy for every sender
    /// (send() waits, try_send() reports would_block, later async sends queue behind), and a
    /// send that does not wait takes the waiting ones along before its own message, so the
    /// messages of one sender reach one destination in the order they were sent.
    ///
    ///     co_await mb.async_send(peer_pid, msg, boost::asio::use_awaitable);
    template <class Token>
    auto async_send(const pid& to, term msg, Token&& token) const {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [p = p_](auto handler, const pid& to, term msg) {
                initiate_send(p, &to, atom(), atom(), std::move(msg),
                              detail::error_handler(std::move(handler)));
            },
            token, to, std::move(msg));
    }
    /// async_send to {registered_name, to_node} (a local name when to_node is this node).
    template <class Token>
    auto async_send(atom registered_name, atom to_node, term msg, Token&& token) const {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [p = p_](auto handler, atom name, atom to_node, term msg) {
                initiate_send(p, nullptr, name, to_node, std::move(msg),
                              detail::error_handler(std::move(handler)));
            },
            token, registered_name, to_node, std::move(msg));
    }

    // Aliases (erlang:alias/0): messages sent to the returned reference reach this process
    // until remove_alias() or exit.
    reference make_alias() const;
    void remove_alias(const reference& alias) const;

    // Links (erlang:link/1, unlink/1) -----------------------------------------------------------
    // Links are bidirectional: when either process ends, the other gets an exit signal with
    // the reason. link() to a dead or unknown process gives this process an exit signal
    // `noproc` (to one on an unreachable node: `noconnection`); signals are asynchronous, so
    // link() itself never fails. After unlink() returns, the link has no further effect on this
    // process (an {'EXIT', Pid, _} already queued stays queued). Links to remote processes use
    // the UNLINK_ID protocol (erl_dist_protocol "Link Protocol").
    void link(const pid& other) const;
    void unlink(const pid& other) const;
    std::vector<pid> links() const;  // active links (process_info(self(), links))

    // Exit signals ------------------------------------------------------------------------------
    // process_flag(trap_exit, On): returns the previous value. A trapping process receives exit
    // signals as messages {'EXIT', From, Reason} (except an exit(Pid, kill), which always kills).
    bool trap_exit(bool on) const;
    bool trapping_exits() const;
    // erlang:exit(To, Reason): sends an exit signal from this process. `kill` kills the target
    // unconditionally (it exits with `killed`); `normal` is ignored by a non-trapping target
    // other than this process itself.
    void exit(const pid& to, term reason) const;

    // Monitors (erlang:monitor/2, demonitor/2, monitor_node/2) ---------------------------------
    // When the target ends this process receives {'DOWN', Ref, process, Object, Reason}: Object
    // is the pid, or {Name, Node} for a monitor by name. A dead target gives Reason `noproc`, an
    // unreachable node or a lost connection `noconnection`.
    reference monitor(const pid& target) const;
    reference monitor(atom registered_name) const;             // a local name
    reference monitor(atom registered_name, atom node) const;  // {Name, Node}
    // True if the monitor was still active. With flush, a 'DOWN' for it already queued is
    // removed too (demonitor(Ref, [flush])). After return no 'DOWN' for it will arrive.
    bool demonitor(const reference& ref, bool flush = false) const;
    // monitor_node(Node, true): {nodedown, Node} when the connection to Node is lost (or cannot
    // be made). Each call adds one monitor; monitor_node(Node, false) removes one.
    void monitor_node(atom node, bool on = true) const;

    // Exit ---------------------------------------------------------------------------------
    // Ends the process with `reason` (erlang:exit/1): its name is unregistered, its aliases
    // removed, links and monitors fire with `reason`.
    void exit(term reason = term(atoms::normal())) const;
    bool exited() const noexcept;
    // The reason the process ended with (nullopt while it runs).
    std::optional<term> exit_reason() const;

    // The node this process runs on; std::logic_error once that node has been destroyed.
    erl::node& owner() const;

  private:
    friend struct detail::access;  // src/node/access.hpp
    explicit mailbox(std::shared_ptr<detail::process> p) noexcept : p_(std::move(p)) {}
    static void initiate_receive(const std::shared_ptr<detail::process>& p,
                                 std::function<bool(const term&)> pred,
                                 std::chrono::milliseconds timeout, detail::term_handler handler);
    // `to` null: the message goes to `to_name` on `to_node`. A null `p` (the handle that
    // process_context gives once its coroutine process has ended) completes with {} at
    // once, on the handler's executor: nothing is sent.
    static void initiate_send(const std::shared_ptr<detail::process>& p, const pid* to,
                              atom to_name, atom to_node, term msg, detail::error_handler handler);
    std::shared_ptr<detail::process> p_;
};

}  // namespace erl
