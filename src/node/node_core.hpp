// The runtime behind erl::node: process table, registered names, aliases, connections and
// routing. Shared by the node facade, mailboxes and connections.
#pragma once

#include <erl/node.hpp>
#include <erl/stats.hpp>

#include "node/connection_manager.hpp"
#include "node/process.hpp"
#include "node/process_table.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <typeindex>
#include <unordered_map>

namespace erl::epmd {
class registration;
class server;
}  // namespace erl::epmd

namespace erl::proto {
struct dist_message;
}

namespace erl::detail {

class connection;

// What a send to a remote node does when its connection is busy (docs/node.md "Writes"):
//   queue  appends anyway (signals, runtime replies, sends on I/O threads never wait); a busy
//          connection that then passes output_queue_limit or output_total_limit is closed;
//   wait   blocks the calling thread until the connection is not busy or has closed (erts
//          suspends the sending process); on an I/O thread it acts as queue;
//   try_   sends nothing and returns errc::would_block (erlang:send/3 with nosuspend).
enum class send_mode : std::uint8_t { queue, wait, try_ };

// Node-wide counters behind node::stats(). The rpc ones are relaxed atomics bumped once per
// served call; handshake failures are rare and keyed by reason under a mutex of their own.
struct node_counters {
    // Upper bounds of the rpc duration buckets, in seconds (50 us .. 10 s).
    static constexpr std::array<double, 17> rpc_bounds{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3,
                                                       5e-3,  10e-3,  25e-3,  50e-3,  0.1,  0.25,
                                                       0.5,   1.0,    2.5,    5.0,    10.0};
    // Messages refused by a full queue (max_message_queue_len) and processes killed for it.
    std::atomic<std::uint64_t> queue_limit_drops{0};
    std::atomic<std::uint64_t> queue_limit_kills{0};
    std::atomic<std::uint64_t> rpc_served{0};
    std::atomic<std::uint64_t> rpc_failed{0};
    std::atomic<std::uint64_t> rpc_duration_ns{0};  // sum of every served call's duration
    std::array<std::atomic<std::uint64_t>, rpc_bounds.size() + 1> rpc_buckets{};  // + overflow

    // A served rpc/erpc call whose reply is being sent, `d` after its request arrived.
    void rpc_done(std::chrono::steady_clock::duration d, bool failed) noexcept;
    // A distribution handshake that failed with `why` (an errc's name, else the message).
    void handshake_failed(const error_code& why);

    void fill(node_stats& s) const;

  private:
    mutable std::mutex handshake_mu_;
    std::map<std::string, std::uint64_t> handshake_failures_;  // guarded by handshake_mu_
};

// Hands `e` to opts.logger, or opts.log as one line, or stderr (node_options; no level check).
void emit_log(const node_options& opts, const log_event& e);

class decode_pool;

struct node_core : std::enable_shared_from_this<node_core> {
    explicit node_core(node_options o);
    ~node_core();

    node_options opts;
    // The public object, for mailbox::owner(); cleared by ~node.
    std::atomic<erl::node*> facade{nullptr};
    // An io_context whose pending handlers can be destroyed once the I/O threads are gone:
    // coroutine frames still queued there own references to connections and to this core,
    // so stopping must drop them to break that cycle (execution_context::shutdown is
    // protected). A shut-down context cannot run again, so every start() gets a fresh one;
    // the old ones stay (idle) until the node is destroyed, for I/O objects that outlive a
    // stop (a process_context kept by user code).
    struct owned_io_context : boost::asio::io_context {
        using boost::asio::io_context::shutdown;
    };
    // The io_context every handler of the node runs on: the caller's (node(opts, ioc)) or
    // ioc_, run by `threads`.
    boost::asio::io_context& ioc() noexcept { return user_ioc ? *user_ioc : *ioc_; }
    std::shared_ptr<owned_io_context> ioc_ = std::make_shared<owned_io_context>();
    std::vector<std::shared_ptr<owned_io_context>> retired_iocs;
    std::vector<std::thread> threads;  // run ioc_; joined by finish_stop()
    // CPU clocks of the I/O threads, for statistics(scheduler_wall_time): each thread adds its
    // own as it starts; dropped before the threads are joined.
    struct io_thread_clock {
        clockid_t cpu;
        std::chrono::steady_clock::time_point started;
    };
    std::mutex io_clocks_mu;
    std::vector<io_thread_clock> io_clocks;  // guarded by io_clocks_mu
    // Per I/O thread: nanoseconds it spent on the CPU and nanoseconds since it started, as
    // BEAM's {Id, Active, Total}; empty on the caller's io_context (no thread of ours).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> io_thread_times();
    // Decodes large messages for the connections' readers (node_options::decode_threads;
    // null when 0). Joined by finish_stop() after the I/O threads, before ioc_ is shut down.
    std::unique_ptr<decode_pool> decoder;
    boost::asio::io_context* user_ioc = nullptr;  // the caller's; never stopped or shut down
    // Lifecycle (node.cpp) --------------------------------------------------------------------
    enum class life { stopped, starting, running, stopping };
    std::mutex life_mu;
    std::condition_variable life_cv;  // notified on every change of `state`
    life state = life::stopped;       // guarded by life_mu
    bool ioc_used = false;            // ioc_ has run (and been shut down): start() needs a new one
    // Starts another start() made while one is in progress waits for (async_start: called
    // with its outcome by end_start). Guarded by life_mu.
    std::vector<std::function<void(error_code)>> start_waiters;
    // A start in three steps (node::async_start; start() waits for it): everything up to the
    // EPMD registration (name, cookie, transport, listener, I/O threads; `why` gets what went
    // wrong, in words), the registration as one asynchronous step, and what follows a
    // successful one.
    error_code start_prepare(std::string& why);
    boost::asio::awaitable<error_code> start_register();
    void start_complete();
    // Leaves `starting` for running (no error) or stopped and hands `ec` to start_waiters.
    void end_start(error_code ec);
    // A failed start: logs `why` (ec's message if empty), hands it to `diag`, end_start(ec).
    void fail_start(error_code ec, std::string why, diagnostics* diag);
    // What start_register's failure says in words.
    std::string epmd_failure(error_code ec) const;
    // Finishes a stop() made on one of the node's own threads (it cannot join itself).
    std::thread stopper;
    bool on_io_thread() const noexcept;
    // The first half of stopping, on any thread: refuses new work, closes every connection,
    // ends every process.
    void begin_stop();
    // The second half, never on an I/O thread: closes the listener and the EPMD registration
    // on the I/O threads, stops and joins them, destroys what is still queued, and marks the
    // node stopped. A stop that ends a failed start passes `stopped`, which then leaves the
    // state instead (end_start): nothing can start the node between the two.
    void finish_stop(std::function<void()> stopped = {});
    // Joins a stopper left by an earlier stop(); false if called on the stopping thread.
    bool join_stopper();
    // finish_stop for a node on the caller's io_context (node.cpp).
    void finish_stop_on_user_ioc(std::function<void()> stopped);
    // The last step of finish_stop: `stopped` if given, else the state becomes stopped.
    void mark_stopped(const std::function<void()>& stopped);
    // Drops the connections, listener, EPMD registration and node process once stopped.
    void release_after_stop();

    atom name;
    std::string host;
    std::string cookie;
    std::atomic<std::uint32_t> creation{0};
    std::atomic<bool> alive{false};
    std::atomic<bool> stopping{false};
    std::unique_ptr<epmd::registration> registration;
    std::unique_ptr<epmd::server> embedded_epmd;

    // Processes --------------------------------------------------------------------------------
    // Pids, names and aliases; its header states the lock order (node/process_table.hpp).
    process_table table;
    std::atomic<std::uint64_t> ref_counter{1};
    std::shared_ptr<process> node_process;  // sender of messages sent "from the node"
    std::shared_ptr<void> work_guard;       // keeps the io_context running while alive

    // A new process in the table. With a handler, its messages are handled inline (a service
    // process, see spawn_service) instead of queued.
    // `on_exit` (optional) is called once when the process exits (process::on_exit).
    std::shared_ptr<process> new_process(std::function<void(term)> handler = {},
                                         std::function<void(const term&)> on_exit = {});
    // A new queueing process registered as `name` in the same step (errc::name_taken).
    result<std::shared_ptr<process>> new_named_process(atom name);
    mailbox make_handle(const std::shared_ptr<process>& p);
    // A registered service process whose messages are handled inline by `handler` (on the
    // delivering thread: keep it short and non-blocking). It can be linked to and monitored
    // like any process. Returns the process (kept alive by the name table).
    std::shared_ptr<process> spawn_service(atom name, std::function<void(term)> handler);
    // Starts the built-in services (net_kernel, ...). Called once the node has its creation.
    void start_services();
    std::shared_ptr<process> find_process(const pid& p) const;
    std::shared_ptr<process> find_name(atom n) const;
    void process_exit(const std::shared_ptr<process>& p, term reason);
    reference make_ref();
    bool is_local(const pid& p) const noexcept {
        return p.node == name && (p.creation == creation.load() || p.creation == 0);
    }
    bool is_local(const reference& r) const noexcept {
        return r.node == name && (r.creation == creation.load() || r.creation == 0);
    }

    // Routing --------------------------------------------------------------------------------
    // `from` is a pid term of the sending process (node_process when none).
    // Errors only with send_mode::try_ (would_block); messages to unknown processes or
    // unreachable nodes are dropped, as Erlang drops them.
    error_code send_pid(const term& from, const pid& to, term msg,
                        send_mode mode = send_mode::queue);
    error_code send_name(const term& from, atom to_name, atom to_node, term msg,
                         send_mode mode = send_mode::queue);
    void send_alias(const term& from, const reference& alias, term msg);
    void deliver_local_name(const term& from, atom to_name, term msg);

    // Connections -------------------------------------------------------------------------------
    // The connection table, listener, transport and access state, node events; its header
    // states the lock order (node/connection_manager.hpp).
    connection_manager connections{*this};
    // Fires links and monitors across a lost connection with `noconnection` (signals.cpp).
    void on_node_down_signals(atom peer);

    // Incoming distribution message (called on the connection's strand). Messages for
    // queueing processes go into `batch` (the caller flushes it at the end of its read chunk);
    // anything else flushes the batch first, so per-peer order is kept.
    void on_dist_message(const std::shared_ptr<connection>& c, proto::dist_message& m,
                         delivery_batch& batch);
    // Link, exit, monitor and spawn signals (src/node/signals.cpp).
    void on_signal(const std::shared_ptr<connection>& c, const term& control, term* payload);
    // An exit signal from `from` reaches local process `to` (link exit when `linked`, else
    // exit/2). Applies Erlang semantics: trap_exit turns it into {'EXIT', From, Reason}.
    void exit_signal(const std::shared_ptr<process>& to, const term& from, const term& reason,
                     bool linked);
    // Sends a link exit / monitor DOWN for a local process that ended.
    void send_exit_signal(const term& from, const term& to, const term& reason);
    // Tells the target's node that `watcher` no longer monitors it (DEMONITOR_P).
    void remove_monitor_remote(const term& watcher, const process::watched& m);
    void send_monitor_down(const term& ident, const term& watcher, const reference& ref,
                           const term& reason);

    // Per-node service state -------------------------------------------------------------------
    // Answers SPAWN_REQUEST (the rpc/erpc service); returns false to let the runtime refuse it.
    using spawn_handler_fn =
        std::function<bool(const std::shared_ptr<connection>&, const term& control, term* payload)>;
    void set_spawn_handler(spawn_handler_fn h);
    spawn_handler_fn spawn_handler() const;
    // The state a service keeps per node (one T per node, made on first use and kept until the
    // node is destroyed). T must not own the node: hold processes by weak_ptr.
    template <class T>
    std::shared_ptr<T> service_state() {
        std::lock_guard lk(services_mu_);
        auto& slot = services_[std::type_index(typeid(T))];
        if (!slot) slot = std::make_shared<T>();
        return std::static_pointer_cast<T>(slot);
    }
    // Asynchronous operations in progress (node/async_op.hpp: launch, run_blocking). stop()
    // ends each with errc::shutting_down (abort_async_ops, first thing in begin_stop) and, in
    // finish_stop, waits until the completions bound for the node's io_context have run
    // (wait_async_completions) before that context stops.
    struct async_registry {
        std::mutex mu;
        std::condition_variable cv;  // notified when completions drops to 0
        bool stopping = false;       // operations started from now on end at once
        // The node's io_context runs the completions posted to it: the caller's always, ours
        // from start() until finish_stop() has waited for them. Otherwise a completion bound
        // for it runs on Asio's system executor instead (async_op.hpp, launch).
        bool io_runs = false;
        std::uint64_t next_id = 0;
        std::unordered_map<std::uint64_t, std::function<void()>> ops;  // id -> end it
        std::size_t completions = 0;  // queued for the node's io_context, not yet run
    };
    std::shared_ptr<async_registry> async_ops = std::make_shared<async_registry>();
    void abort_async_ops();
    void wait_async_completions();

    // Threads of thread-bodied processes still running (erl::join_processes).
    std::mutex bodies_mu;
    std::condition_variable bodies_cv;  // notified when live_bodies drops to 0
    std::size_t live_bodies = 0;        // guarded by bodies_mu

    // Reports an event (<erl/log.hpp>) if its level is at least opts.log_level. Callers that
    // build a costly detail test logs(level) first.
    bool logs(log_level level) const noexcept { return level >= opts.log_level; }
    void log(log_level level, log_kind kind, std::string_view peer, error_code reason,
             std::string detail) const;

    node_counters counters;
    // node::stats(): the counters above, the process and atom tables and every connection.
    node_stats stats() const;

  private:
    mutable std::mutex services_mu_;
    spawn_handler_fn spawn_handler_;  // guarded by services_mu_
    std::unordered_map<std::type_index, std::shared_ptr<void>>
        services_;  // guarded by services_mu_
};

}  // namespace erl::detail

struct erl::node::impl : erl::detail::node_core {
    using node_core::node_core;
};
