// erl::dispatch — calls and casts spread over a changing set of nodes or processes, with
// failover: what an Erlang program does with pg groups and a little routing code, in one
// object.
//
//     erl::dispatch::dispatcher d(node, erl::dispatch::targets::pg_group("pg", "workers"),
//                                 {.how = erl::dispatch::strategy::least_loaded});
//     auto r = d.call("erlang", "node", erl::list(), {.idempotent = true});
//     // r.result: the rpc::call_result; r.target: who answered
//
// Target sets (targets::...):
//   nodes(List)            a fixed list of nodes; a node is dropped while it is down (nodedown)
//                          and taken back when it comes up again (nodeup).
//   pg_group(Scope, Group) the members of a pg group (erl::pg, on every node of the scope): a
//                          target per member pid, added and dropped as pg reports joins and
//                          leaves. rpc calls go to the member's node, gen_server calls to the pid.
//   registered(Name)       every connected node where Name is registered: each node that comes
//                          up is taken as a target and a monitor on {Name, Node} drops it when
//                          the name is not (or no longer) there. A name registered on a node after
//                          it came up is not noticed until that node reconnects.
// Down targets are dropped at once, from node down events and pg leaves (and the first call
// that fails with noconnection); no call is sent to them.
//
// Strategies: round_robin (each live target in turn), least_loaded (fewest calls in flight from
// this dispatcher; ties in turn), least_reported_load (the lowest figure given to report_load;
// ties by fewest in flight), random (uniform), consistent_hash (by call_options::key, 100
// points per target on a hash ring: a key stays on its target while that target lives, and
// only the keys of a lost target move).
//
// Failures are values (rpc::call_result, as erl::rpc::call returns them), with two of their own:
//   error {dispatch, overloaded}  errc::overloaded: every eligible target has max_in_flight
//                                 calls in flight (consistent_hash: the key's target has)
//   error {dispatch, no_target}   errc::no_target: no live target
// Both are returned at once; nothing is queued. A call marked idempotent whose target fails
// with noconnection (or, for gen_server calls to a name, noproc: the request was not
// delivered) is retried on another target while its deadline lasts; other calls return the
// failure. A retried call counts as a failure of the target that failed.
//
// Completion forms: async_call, async_gen_call, async_cast and async_gen_cast take an Asio
// completion token (use_awaitable, a callback, use_future, as_tuple(...), ...) and never
// block: a coroutine process may co_await them on the node's only I/O thread. The blocking
// members wait for the same operation on the calling thread.
//
// Thread safety: every member may be called from any thread, concurrently (the blocking ones
// not from the node's I/O threads: they would wait on themselves); counters and target changes
// are under one mutex, never held while a call is in flight. An asynchronous operation keeps
// what it needs of the dispatcher alive, so the dispatcher may be destroyed while one runs (the
// node must outlive both); destroy it only when no blocking call is running on it. Events
// (node up/down, pg) update it from the node's threads.
#pragma once

#include <erl/detail/async.hpp>
#include <erl/error.hpp>
#include <erl/rpc.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace erl {
class node;
}

namespace erl::dispatch {

enum class strategy : std::uint8_t {
    round_robin,
    least_loaded,
    least_reported_load,
    random,
    consistent_hash,
};

// One target: a node, and for pg members the member's pid.
struct target {
    atom node;
    std::optional<pid> process;
    bool operator==(const target&) const = default;
};

// Where a dispatcher's targets come from.
class targets {
  public:
    static targets nodes(std::vector<atom> list);
    static targets pg_group(atom scope, term group);
    static targets registered(atom name);

    enum class kind : std::uint8_t { nodes, pg_group, registered };
    kind source() const noexcept { return kind_; }
    const std::vector<atom>& node_list() const noexcept { return nodes_; }
    atom scope() const noexcept { return scope_; }
    const term& group() const noexcept { return group_; }
    atom name() const noexcept { return name_; }

  private:
    targets() = default;
    kind kind_ = kind::nodes;
    std::vector<atom> nodes_;
    atom scope_;
    term group_;
    atom name_;
};

struct options {
    strategy how = strategy::round_robin;
    // Calls in flight from this dispatcher per target; a call finding every eligible target at
    // the cap fails with errc::overloaded.
    std::size_t max_in_flight = 256;
    std::chrono::milliseconds timeout = std::chrono::seconds(5);  // default deadline per call
    // The registered name gen_server calls go to on node-list targets ({Name, Node}); pg members
    // are called by pid, registered(Name) targets by {Name, Node}.
    std::optional<atom> server{};
    std::uint64_t seed = 0;  // random: 0 seeds from std::random_device
};

struct call_options {
    // The call may run twice (on two targets) without harm: a noconnection failure is retried
    // on another target within the deadline.
    bool idempotent = false;
    std::optional<term> key{};                           // consistent_hash routing key
    std::optional<std::chrono::milliseconds> timeout{};  // overall deadline (options::timeout)
};

// A dispatched call's outcome.
struct reply {
    rpc::call_result result;
    std::optional<dispatch::target> target;  // the target that gave `result` (none: no target)
    unsigned attempts = 0;                   // targets tried
};

// What the dispatcher has counted for a target (since it became a target).
struct target_stats {
    dispatch::target target;
    bool up = true;
    std::size_t in_flight = 0;
    std::uint64_t calls = 0;      // calls (and casts) sent to it
    std::uint64_t failures = 0;   // calls that did not return a value (errors included)
    std::uint64_t overloads = 0;  // picks refused because it was at max_in_flight
    std::chrono::nanoseconds latency_total{0};  // over finished calls
    std::chrono::nanoseconds latency_max{0};
    double reported_load = 0;
    // When it last became a live target (added, or back up): the event that made it one.
    std::chrono::steady_clock::time_point up_since{};
    std::chrono::nanoseconds mean_latency() const {
        return calls ? latency_total / static_cast<std::int64_t>(calls)
                     : std::chrono::nanoseconds(0);
    }
};

namespace detail {
struct dispatcher_state;
using reply_handler = boost::asio::any_completion_handler<void(error_code, reply)>;
using cast_handler = boost::asio::any_completion_handler<void(error_code)>;
void initiate_call(const std::shared_ptr<dispatcher_state>& st, atom module, atom function,
                   term args, call_options co, reply_handler handler);
void initiate_gen_call(const std::shared_ptr<dispatcher_state>& st, term request, call_options co,
                       reply_handler handler);
void initiate_cast(const std::shared_ptr<dispatcher_state>& st, atom module, atom function,
                   term args, call_options co, cast_handler handler);
void initiate_gen_cast(const std::shared_ptr<dispatcher_state>& st, term request, call_options co,
                       cast_handler handler);
}  // namespace detail

class dispatcher {
  public:
    // Starts following `t` on `n` (node events, pg subscription). `n` must outlive it.
    // A pg_group source needs the scope running (erl::cluster::start): errc::noproc otherwise,
    // thrown as boost::system::system_error.
    dispatcher(erl::node& n, targets t, options o = {});
    ~dispatcher();
    dispatcher(const dispatcher&) = delete;
    dispatcher& operator=(const dispatcher&) = delete;

    // erpc:call(Target's node, M, F, Args) on a chosen target.
    reply call(atom module, atom function, term args, call_options co = {});
    reply call(std::string_view module, std::string_view function, term args, call_options co = {});
    // gen_server:call(Target, Request): the pg member's pid, or {Name, Node} (options::server
    // for node lists, the name for registered(Name)).
    reply gen_call(term request, call_options co = {});
    // erpc:cast / gen_server:cast to a chosen target: errors only as dispatch (overloaded,
    // no_target) or noconnection for a target that cannot be reached.
    error_code cast(atom module, atom function, term args, call_options co = {});
    error_code gen_cast(term request, call_options co = {});

    // The same as asynchronous operations. A call completes with (error_code, reply): the
    // error_code is {} whenever the call has an outcome (every outcome of call(), dispatch
    // failures included, is in the reply), boost::asio::error::operation_aborted when terminal
    // cancellation is emitted on the token's cancellation slot (the attempt in flight is
    // abandoned as on its timeout, no other target is tried; the reply is empty). A cast
    // completes with (error_code): what cast() returns, or operation_aborted. Handlers run on
    // the token's associated executor (the node's executor if it has none), never inline.
    //
    //     auto [ec, r] = co_await pool.async_call(erl::atom("erlang"), erl::atom("node"),
    //                                             erl::list(), {.idempotent = true},
    //                                             boost::asio::as_tuple(use_awaitable));
    template <class Token>
    auto async_call(atom module, atom function, term args, call_options co, Token&& token) {
        return erl::detail::async_op<void(error_code, reply)>(
            token, &detail::initiate_call, st_, module, function, std::move(args), std::move(co));
    }
    template <class Token>
    auto async_gen_call(term request, call_options co, Token&& token) {
        return erl::detail::async_op<void(error_code, reply)>(
            token, &detail::initiate_gen_call, st_, std::move(request), std::move(co));
    }
    template <class Token>
    auto async_cast(atom module, atom function, term args, call_options co, Token&& token) {
        return erl::detail::async_op<void(error_code)>(token, &detail::initiate_cast, st_, module,
                                                       function, std::move(args), std::move(co));
    }
    template <class Token>
    auto async_gen_cast(term request, call_options co, Token&& token) {
        return erl::detail::async_op<void(error_code)>(token, &detail::initiate_gen_cast, st_,
                                                       std::move(request), std::move(co));
    }

    // A load figure reported by (or for) every target on `node`, for least_reported_load.
    void report_load(atom node, double load);

    std::vector<target_stats> stats() const;
    std::vector<target> live_targets() const;
    // Waits until pred(live targets) holds, woken by every change of the set; false on timeout.
    bool wait_targets(const std::function<bool(const std::vector<target>&)>& pred,
                      std::chrono::milliseconds timeout);

  private:
    std::shared_ptr<detail::dispatcher_state> st_;
};

}  // namespace erl::dispatch
