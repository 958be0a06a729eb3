// erl::mailbox — a process of a C++ node: a pid, an optional registered name and a message
// queue. Handles are cheap to copy (shared ownership); the process exits when the last handle
// goes away or exit() is called.
//
// Thread safety: all members may be called from any thread. receive() blocks the calling
// thread; never call it on one of the node's I/O threads.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>

namespace erl {

class node;
namespace detail {
struct process;
}

// Wait forever.
inline constexpr std::chrono::milliseconds infinity = std::chrono::milliseconds::max();

class mailbox {
  public:
    mailbox() = default;
    explicit mailbox(std::shared_ptr<detail::process> p) noexcept : p_(std::move(p)) {}

    explicit operator bool() const noexcept { return p_ != nullptr; }
    const pid& self() const noexcept;
    const term& self_term() const noexcept;  // the pid as a term (no allocation per use)
    std::optional<atom> registered_name() const;

    // Receive ------------------------------------------------------------------------------
    // Next message in arrival order; nullopt on timeout or once the process has exited.
    std::optional<term> receive(std::chrono::milliseconds timeout = infinity);
    // Selective receive: the first message for which pred is true; others stay queued in order.
    std::optional<term> receive_if(const std::function<bool(const term&)>& pred,
                                   std::chrono::milliseconds timeout = infinity);
    std::size_t pending() const;

    // Send from this process -----------------------------------------------------------------
    void send(const pid& to, term msg) const;
    void send(atom registered_name, term msg) const;
    void send(atom registered_name, atom to_node, term msg) const;
    void send_alias(const reference& alias, term msg) const;

    // Aliases (erlang:alias/0): messages sent to the returned reference reach this process
    // until remove_alias() or exit.
    reference make_alias() const;
    void remove_alias(const reference& alias) const;

    // Exit ---------------------------------------------------------------------------------
    // Ends the process with `reason`: its name is unregistered, its aliases removed.
    void exit(term reason = term(atoms::normal())) const;
    bool exited() const noexcept;

    erl::node& owner() const noexcept;
    const std::shared_ptr<detail::process>& internals() const noexcept { return p_; }

  private:
    std::shared_ptr<detail::process> p_;
};

}  // namespace erl
