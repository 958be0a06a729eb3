// Internals shared by the rpc server, the rex service, the rpc client and gen_server.
#pragma once

#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "node/access.hpp"
#include "node/any_op.hpp"
#include "node/async_op.hpp"
#include "node/mfa_key.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"

#include <boost/asio/thread_pool.hpp>

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <tuple>
#include <unordered_map>

namespace erl::rpc::detail {

using erl::detail::node_core;
using erl::detail::process;
namespace runtime = erl::detail::runtime;

using erl::detail::A;

// How a handler ended. cls is empty for a normal return (value in `value`).
struct outcome {
    atom cls;    // '' (returned), error, exit, throw
    term value;  // return value or exception reason
    term stack;  // for errors
    bool returned() const noexcept { return cls.empty(); }
};

// [{M, F, ArityOrArgs, []}]: the one stack frame we can name for a C++ function.
term frame_stack(atom m, atom f, const term& arity_or_args);

// Exit reason of erpc:execute_call/4 for `o` (erpc.erl: {Ref, return, V}, {Ref, throw, V},
// {Ref, exit, R}, {Ref, error, R, Stack}).
term erpc_exit_reason(const term& ref, const outcome& o);
// rpc:call's reply through rex (rpc.erl execute_call/3): V, thrown V, {badrpc, {'EXIT', R}},
// {badrpc, {'EXIT', {R, Stack}}}.
term rex_reply(const outcome& o);
// Exit reason of a plain spawned process running a registered function (as a BEAM process
// ends: normal, R, {R, Stack}, {{nocatch, V}, Stack}).
term spawn_exit_reason(const outcome& o);

struct entry {
    unsigned arity = 0;
    run_on run = run_on::pool;  // io_thread: sync handler called inline by the receiving thread
    sync_handler sync;
    async_handler async;
};

using fn_key = erl::detail::mfa_key;
using fn_key_hash = erl::detail::mfa_key_hash;
inline fn_key key_of(atom m, atom f, unsigned arity) noexcept {
    return erl::detail::mfa_key_of(m, f, arity);
}

// One call to run on the pool.
struct job {
    std::shared_ptr<process> proc;  // the process running the call (null for rex)
    pid self;
    term caller;
    atom m, f;
    term args;  // proper list
    std::function<void(outcome)> done;
    std::chrono::steady_clock::time_point arrived;  // when the request was read (rpc stats)
};

struct server_state : std::enable_shared_from_this<server_state> {
    server_state(erl::node& n, server_options o);
    ~server_state();

    erl::node& node;
    node_core& core;
    server_options opts;
    boost::asio::thread_pool pool;
    std::atomic<bool> stopped{false};

    // Calls in progress on threads the server does not own (I/O threads, senders to rex): the
    // destructor waits for them, as it joins the pool, so no handler runs after ~server. A
    // call counted here after `stopped` was set sees it set (the mutex orders both).
    std::mutex foreign_mu;
    std::condition_variable foreign_cv;  // notified when foreign_calls drops to 0
    int foreign_calls = 0;               // guarded by foreign_mu
    struct foreign_call {
        server_state& st;
        explicit foreign_call(server_state& s) : st(s) {
            std::lock_guard lk(st.foreign_mu);
            ++st.foreign_calls;
        }
        ~foreign_call() {
            std::lock_guard lk(st.foreign_mu);
            if (--st.foreign_calls == 0) st.foreign_cv.notify_all();
        }
        foreign_call(const foreign_call&) = delete;
        foreign_call& operator=(const foreign_call&) = delete;
    };
    void wait_foreign_calls() {
        std::unique_lock lk(foreign_mu);
        foreign_cv.wait(lk, [&] { return foreign_calls == 0; });
    }

    mutable std::shared_mutex mu;
    std::unordered_map<fn_key, std::shared_ptr<const entry>, fn_key_hash> fns;
    std::shared_ptr<process> rex;

    std::shared_ptr<const entry> find(atom m, atom f, unsigned arity) const;
    // Runs the job: functions registered with run_on::io_thread, undef and badarg (improper
    // argument list) complete on the calling thread before run() returns; everything else
    // runs on the pool. `done` is called exactly once.
    void run(std::shared_ptr<job> j);
    // run() after the lookup: `e` is the entry (null: undef/badarg), `argv` the elements of
    // j->args.
    void dispatch(std::shared_ptr<job> j, std::shared_ptr<const entry> e,
                  std::span<const term> argv);
    // Computes the outcome of a call of `e` (null: not registered) on the calling thread.
    outcome run_here(const entry* e, call_context& ctx, std::span<const term> argv) const;
    // Logs a C++ exception (not an Erlang one) that a served function threw.
    void log_cpp_exception(const std::exception_ptr& ep, atom m, atom f, std::size_t arity) const;
    // Answers a SPAWN_REQUEST (called on the connection's strand).
    bool on_spawn_request(const std::shared_ptr<erl::detail::connection>& c, const term& control,
                          term* payload);
    // Handles one message to `rex` (called on the delivering thread).
    void on_rex_message(term msg);
    void start_rex();
};

// The rpc server of a node (per-node service state): the spawn hook and local calls find the
// current server (if any) through it, so servers can come and go.
struct spawn_slot {
    std::mutex mu;
    std::weak_ptr<server_state> server;
};
std::shared_ptr<spawn_slot> slot_for(node_core& core);

// The group leader of processes this node spawns elsewhere (erpc calls, erl::spawn on another
// node): answers every io output request with ok, so a remote io:format never blocks.
std::shared_ptr<process> group_leader(node_core& core);

// erpc:call and gen_server:call as runtime operations (node/async_op.hpp: start(done) once,
// cancel() any time; `done` runs on whichever thread finishes the call, with no executor hop),
// for services that compose calls into operations of their own (erl::dispatch).
using any_call_op = erl::detail::any_op<call_result>;
std::shared_ptr<any_call_op> make_call_op(erl::node& n, atom target, atom module, atom function,
                                          term args, std::chrono::milliseconds timeout);
std::shared_ptr<any_call_op> make_gen_call_op(erl::node& n, const erl::gen_server::dest& to,
                                              term request, std::chrono::milliseconds timeout);

template <class Op>
using any_call_op_of = erl::detail::op_ref<any_call_op, Op>;

// erpc:cast once the connection to `target` is up (rpc::cast without its connect): the spawn
// request, or the rex cast for a peer without DFLAG_SPAWN. Never blocks.
error_code cast_connected(erl::node& n, atom target, atom module, atom function, term args);

}  // namespace erl::rpc::detail
