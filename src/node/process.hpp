// A process of the C++ node: identity, message queue and the state signals act on.
#pragma once

#include <erl/mailbox.hpp>
#include <erl/term.hpp>

#include "common/block_pool.hpp"
#include "node/link_table.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace erl {
class node;
}

namespace erl::detail {

struct node_core;

// A process's message queue: a ring buffer of terms, allocated with the first message (an idle
// process's empty mailbox costs no allocation) and grown by doubling. Order is arrival order;
// take(i) removes any position (selective receive) and keeps the others in order, shifting the
// shorter side. Emptied by receives, a buffer larger than keep_capacity is given back, so a
// burst does not leave its memory with an idle process. Not synchronised: process::mu guards it.
class message_queue {
  public:
    message_queue() = default;
    message_queue(const message_queue&) = delete;
    message_queue& operator=(const message_queue&) = delete;

    std::size_t size() const noexcept { return len_; }
    bool empty() const noexcept { return len_ == 0; }
    // Slots allocated (messages it holds without growing).
    std::size_t capacity() const noexcept { return cap_; }

    term& operator[](std::size_t i) noexcept { return buf_[(head_ + i) & (cap_ - 1)]; }
    const term& operator[](std::size_t i) const noexcept { return buf_[(head_ + i) & (cap_ - 1)]; }

    void push_back(term msg) {
        if (len_ == cap_) grow();
        buf_[(head_ + len_) & (cap_ - 1)] = std::move(msg);
        ++len_;
    }

    // Removes and returns the message at position i (< size()).
    term take(std::size_t i) {
        term out = std::move((*this)[i]);
        if (i < len_ - 1 - i) {  // fewer before it: move those one step back
            for (std::size_t j = i; j > 0; --j)
                (*this)[j] = std::move((*this)[j - 1]);
            head_ = (head_ + 1) & (cap_ - 1);
        } else {
            for (std::size_t j = i; j + 1 < len_; ++j)
                (*this)[j] = std::move((*this)[j + 1]);
        }
        --len_;
        if (len_ == 0) {
            head_ = 0;
            if (cap_ > keep_capacity) release();
        }
        return out;
    }

    // Removes every message pred accepts, keeping the others in order; returns how many.
    template <class Pred>
    std::size_t erase_if(Pred&& pred) {
        std::size_t kept = 0;
        for (std::size_t i = 0; i < len_; ++i) {
            if (pred(std::as_const((*this)[i]))) continue;
            if (kept != i) (*this)[kept] = std::move((*this)[i]);
            ++kept;
        }
        const std::size_t removed = len_ - kept;
        for (std::size_t i = kept; i < len_; ++i)
            (*this)[i] = term();
        len_ = kept;
        if (len_ == 0) release();
        return removed;
    }

    // Drops every message and the buffer.
    void clear() noexcept { release(); }

    template <class Q, class T>
    class basic_iterator {
      public:
        using value_type = term;
        using difference_type = std::ptrdiff_t;
        basic_iterator() = default;
        basic_iterator(Q* q, std::size_t i) : q_(q), i_(i) {}
        T& operator*() const { return (*q_)[i_]; }
        T* operator->() const { return &(*q_)[i_]; }
        basic_iterator& operator++() {
            ++i_;
            return *this;
        }
        basic_iterator operator++(int) {
            auto t = *this;
            ++i_;
            return t;
        }
        friend bool operator==(const basic_iterator&, const basic_iterator&) = default;

      private:
        Q* q_ = nullptr;
        std::size_t i_ = 0;
    };
    using iterator = basic_iterator<message_queue, term>;
    using const_iterator = basic_iterator<const message_queue, const term>;
    iterator begin() noexcept { return {this, 0}; }
    iterator end() noexcept { return {this, len_}; }
    const_iterator begin() const noexcept { return {this, 0}; }
    const_iterator end() const noexcept { return {this, len_}; }

  private:
    static constexpr std::size_t first_capacity = 4;
    static constexpr std::size_t keep_capacity = 64;

    // The slots: blocks of the block pool up to its largest class, like the process itself.
    struct slots_deleter {
        std::size_t n;
        void operator()(term* p) const noexcept {
            std::destroy_n(p, n);
            block_pool::deallocate(p, n * sizeof(term));
        }
    };
    using slots = std::unique_ptr<term[], slots_deleter>;
    static slots make_slots(std::size_t n) {
        auto* p = static_cast<term*>(block_pool::allocate(n * sizeof(term)));
        std::uninitialized_default_construct_n(p, n);
        return slots(p, slots_deleter{n});
    }

    void grow() {
        const std::size_t cap = cap_ == 0 ? first_capacity : cap_ * 2;
        slots b = make_slots(cap);
        for (std::size_t i = 0; i < len_; ++i)
            b[i] = std::move((*this)[i]);
        buf_ = std::move(b);
        cap_ = cap;
        head_ = 0;
    }
    void release() noexcept {
        buf_.reset();
        cap_ = head_ = len_ = 0;
    }

    slots buf_;  // cap_ slots (a power of two), nil outside the live range
    std::size_t cap_ = 0;
    std::size_t head_ = 0;  // slot of the oldest message
    std::size_t len_ = 0;
};

// A coroutine process's receive suspended until its process gets a message or exits
// (src/node/spawn.cpp). Owns the suspended coroutine: a process with no message to wait for
// holds neither a timer nor a pending operation of the io_context.
struct coroutine_wake;
struct coroutine_wake_deleter {
    void operator()(coroutine_wake* w) const noexcept;
};
using coroutine_wake_ptr = std::unique_ptr<coroutine_wake, coroutine_wake_deleter>;
// Resumes the receive on the process's strand: posted, never run inline; does not block.
void wake_coroutine(coroutine_wake_ptr w);

struct process;
// A delivery found the process's queue at its max_message_queue_len: counts, logs, and kills
// the process or drops what did not fit (node_core.cpp). Called without mu held.
void message_queue_limit_reached(process& p, std::size_t refused);

struct process : std::enable_shared_from_this<process> {
    process(std::shared_ptr<node_core> n, pid id)
        : node(std::move(n)), self(std::move(id)), self_term(self) {}

    std::shared_ptr<node_core> node;
    const pid self;
    const term self_term;

    mutable std::mutex mu;
    // What a blocking receive (mailbox.cpp) waits on: made by the first one (under mu), then
    // kept until the process goes, so a notifier may use the pointer it read under mu.
    std::unique_ptr<std::condition_variable> cv;
    message_queue queue;
    // Bumped (under mu) whenever messages leave the queue other than by the receiver taking
    // one (demonitor flush, exit): a selective receive part-way through the queue must scan
    // again from the front, as its position no longer means anything.
    std::uint64_t queue_epoch = 0;
    // The longest the queue may grow (node_options::max_message_queue_len, or the spawn
    // option); 0: unbounded. What a delivery beyond it does: drop it (true) or kill the
    // process with reason `killed` (false, as OTP's max_heap_size with kill => true). Guarded
    // by mu. Signals turned into messages (DOWN, EXIT, nodedown) are not refused.
    std::size_t max_queue_len = 0;
    bool drop_over_limit = false;
    bool queue_limit_logged = false;  // the first drop is logged, not every one (under mu)
    bool trap_exit = false;           // process_flag(trap_exit) (under mu; signals.cpp)
    // Written under mu; read without it by senders that drop messages from dead processes.
    std::atomic<bool> exited{false};
    term exit_reason;
    std::optional<atom> name;
    // The coroutine receive of this process, while it waits (taken with the waiters).
    coroutine_wake_ptr suspended;

    // Signals (src/node/signals.cpp). All guarded by mu.
    link_table links;                  // linked pids (local or remote) with unlink state
    std::uint64_t next_unlink_id = 1;  // UNLINK_ID ids: unique among our unacknowledged unlinks
    struct watcher {
        term pid;       // the monitoring process
        reference ref;  // monitor reference
        term ident;     // what the watcher monitored: our pid, or our registered name
    };
    std::vector<watcher> watchers;  // processes monitoring this one
    struct watched {
        reference ref;
        term target;  // pid, registered name atom, or [] while a spawn_request is unanswered
        atom node;    // node of the target
    };
    std::vector<watched> monitors;  // monitors this process holds
    // A SPAWN_REQUEST of this process still unanswered (runtime::spawn_request).
    struct spawn_request {
        reference ref;
        atom node;          // where the process is to be spawned
        bool reply = true;  // deliver {spawn_reply, ...} (not for erpc:cast's {reply, no})
        bool link = false;  // link to the new process when the reply arrives
    };
    // What few processes use, made on first use (under mu) and kept until the process goes:
    // most processes never hold an alias, watch a node, spawn remotely or wait through a
    // callback, and are 88 bytes smaller without them inline.
    struct extras {
        std::vector<reference> aliases;
        std::vector<atom> node_watches;  // monitor_node/2: one entry per monitor_node(N, true)
        std::vector<spawn_request> spawn_requests;
        // One-shot wake-ups for asynchronous waiters (the mailbox's async_receive, etop): the
        // whole list is taken when a message arrives or the process exits and each is called
        // once, without mu held. Must not block.
        std::list<std::function<void()>> waiters;
    };
    std::unique_ptr<extras> more;  // guarded by mu
    extras& more_locked() {
        if (!more) more = std::make_unique<extras>();
        return *more;
    }
    // With mu held: removes and returns the unanswered spawn request `ref`, if there is one.
    std::optional<spawn_request> take_spawn_request_locked(const reference& ref) {
        if (!more) return std::nullopt;
        auto& requests = more->spawn_requests;
        auto it = std::find_if(requests.begin(), requests.end(),
                               [&](const spawn_request& r) { return r.ref == ref; });
        if (it == requests.end()) return std::nullopt;
        spawn_request r = *it;
        requests.erase(it);
        return r;
    }
    // With mu held: removes one monitor_node(node, true) entry; false if there was none.
    bool drop_node_watch_locked(atom node) {
        if (!more) return false;
        auto& watches = more->node_watches;
        auto it = std::find(watches.begin(), watches.end(), node);
        if (it == watches.end()) return false;
        watches.erase(it);
        return true;
    }

    // Messages delivered to this process (process_info reductions: those delivered minus those
    // still queued). Queueing processes count under mu with a relaxed load + store (no atomic
    // read-modify-write); service processes, whose handler runs without mu, with a relaxed
    // fetch_add.
    std::atomic<std::uint64_t> delivered{0};
    // process_info initial_call and current_function: what runs in the process (an empty
    // module: not described; src/observe/introspection.hpp). Guarded by mu.
    struct mfa {
        atom m, f;
        std::uint32_t arity = 0;
    };
    mfa initial_call, current_function;

    // Service processes (net_kernel, rex, ...) handle each message inline on the delivering
    // thread instead of queueing it. Set before the process is published; never changed.
    // (Held by pointer: most processes have none, and a pointer is a quarter of the size.)
    std::unique_ptr<std::function<void(term)>> handler;
    // Called once by node_core::process_exit with the exit reason, after the process is marked
    // exited and before its links and monitors fire (an inline gen_server's terminate/2).
    // Set before the process is published; never changed.
    std::unique_ptr<std::function<void(const term& reason)>> on_exit;

    // Who to wake after a change to the queue or the exit, collected under mu by
    // take_waiters_locked and woken by notify() once mu is released.
    struct wake_list {
        std::list<std::function<void()>> calls;
        coroutine_wake_ptr coroutine;
        std::condition_variable* cv = nullptr;
    };
    void take_waiters_locked(wake_list& wake) {
        if (more && !more->waiters.empty()) wake.calls.splice(wake.calls.end(), more->waiters);
        if (suspended) wake.coroutine = std::move(suspended);
        wake.cv = cv.get();
    }

    // With mu held: appends msg to a queueing (non-handler) process and collects the waiters to
    // wake; call notify(wake) after unlocking. Used where a message must be queued atomically
    // with a state change (a DOWN with the removal of its monitor, an 'EXIT' with the removal
    // of its link), so demonitor/unlink never see a message for a monitor or link they removed.
    void push_locked(term msg, wake_list& wake) {
        queue.push_back(std::move(msg));
        delivered.store(delivered.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        take_waiters_locked(wake);
    }
    static void notify(wake_list& wake) {
        if (wake.cv) wake.cv->notify_all();
        if (wake.coroutine) wake_coroutine(std::move(wake.coroutine));
        for (auto& w : wake.calls)
            w();
    }

    // Delivers msg if accept() — called with mu held, where it may change the state the
    // message reports (remove the monitor a DOWN is for) — returns true; atomically with that
    // change for a queueing process. False if the process has exited or accept() refused.
    template <class Accept>
    bool deliver_if(term msg, Accept&& accept) {
        wake_list wake;
        bool via_handler = false;
        {
            std::lock_guard lk(mu);
            if (exited || !accept()) return false;
            if (handler)
                via_handler = true;
            else
                push_locked(std::move(msg), wake);
        }
        if (via_handler)
            deliver(std::move(msg));
        else
            notify(wake);
        return true;
    }

    // Appends a message; false if the process has exited (message dropped, as in Erlang).
    bool deliver(term msg) {
        if (handler) {
            if (exited) return false;
            delivered.fetch_add(1, std::memory_order_relaxed);
            (*handler)(std::move(msg));
            return true;
        }
        return enqueue(&msg, &msg + 1);
    }

    // Queues [first, last) (moved) under one lock and wakes a waiting receiver once; false if
    // the process has exited (messages dropped). For queueing processes only.
    bool enqueue(term* first, term* last) {
        wake_list wake;
        std::size_t refused = 0;
        {
            std::lock_guard lk(mu);
            if (exited) return false;
            const auto n = static_cast<std::size_t>(last - first);
            if (max_queue_len != 0 && queue.size() + n > max_queue_len) {
                const std::size_t room =
                    max_queue_len > queue.size() ? max_queue_len - queue.size() : 0;
                refused = n - room;
                last = first + room;
            }
            delivered.store(delivered.load(std::memory_order_relaxed) +
                                static_cast<std::uint64_t>(last - first),
                            std::memory_order_relaxed);
            for (; first != last; ++first)
                queue.push_back(std::move(*first));
            take_waiters_locked(wake);
        }
        if (wake.cv) wake.cv->notify_one();
        if (wake.coroutine) wake_coroutine(std::move(wake.coroutine));
        for (auto& w : wake.calls)
            w();
        if (refused != 0) message_queue_limit_reached(*this, refused);
        return true;
    }
};

// Messages for queueing processes, collected while one read chunk of a connection is
// dispatched and delivered together by flush(): one lock and one wake-up per run of messages
// to the same process instead of one per message (a receiver that keeps up would otherwise be
// woken, and switch threads, for every message). Per-process order is kept; the connection
// flushes before it acts on anything else (signals, service processes, aliases), so messages
// and signals from one peer still reach a process in the order they were sent.
class delivery_batch {
  public:
    void add(std::shared_ptr<process> p, term msg) {
        if (runs_.empty() || runs_.back().proc != p) runs_.push_back({std::move(p), msgs_.size()});
        msgs_.push_back(std::move(msg));
    }
    bool empty() const noexcept { return msgs_.empty(); }
    void flush() {
        for (std::size_t r = 0; r < runs_.size(); ++r) {
            const std::size_t end = r + 1 < runs_.size() ? runs_[r + 1].first : msgs_.size();
            runs_[r].proc->enqueue(msgs_.data() + runs_[r].first, msgs_.data() + end);
        }
        runs_.clear();
        msgs_.clear();
    }

  private:
    struct run {
        std::shared_ptr<process> proc;
        std::size_t first;  // index of its first message in msgs_
    };
    std::vector<run> runs_;
    std::vector<term> msgs_;
};

}  // namespace erl::detail
