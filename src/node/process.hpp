// A process of the C++ node: identity, message queue and the state signals act on.
#pragma once

#include <erl/mailbox.hpp>
#include <erl/term.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace erl {
class node;
}

namespace erl::detail {

struct node_core;

struct process {
    process(std::shared_ptr<node_core> n, pid id)
        : node(std::move(n)), self(std::move(id)), self_term(self) {}

    std::shared_ptr<node_core> node;
    const pid self;
    const term self_term;

    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<term> queue;
    bool exited = false;
    term exit_reason;
    std::optional<atom> name;
    std::vector<reference> aliases;
    // Wakes asynchronous waiters (coroutine receive) when a message arrives or the process
    // exits. Called with mu held; must not block.
    std::list<std::function<void()>> waiters;

    // Signals (src/node/signals.cpp). All guarded by mu.
    bool trap_exit = false;
    std::vector<term> links;  // linked pids (local or remote)
    struct watcher {
        term pid;       // the monitoring process
        reference ref;  // monitor reference
        term ident;     // what the watcher monitored: our pid, or our registered name
    };
    std::vector<watcher> watchers;  // processes monitoring this one
    struct watched {
        reference ref;
        term target;  // pid, or registered name atom
        atom node;    // node of the target
    };
    std::vector<watched> monitors;  // monitors this process holds

    // Service processes (net_kernel, rex, ...) handle each message inline on the delivering
    // thread instead of queueing it. Set before the process is published; never changed.
    std::function<void(term)> handler;

    // Appends a message; false if the process has exited (message dropped, as in Erlang).
    bool deliver(term msg) {
        if (handler) {
            if (exited) return false;
            handler(std::move(msg));
            return true;
        }
        std::list<std::function<void()>> wake;
        {
            std::lock_guard lk(mu);
            if (exited) return false;
            queue.push_back(std::move(msg));
            wake.swap(waiters);
        }
        cv.notify_one();
        for (auto& w : wake)
            w();
        return true;
    }
};

}  // namespace erl::detail
