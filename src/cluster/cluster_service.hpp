// The cluster services on a running erl::node: the global_server and pg_scope cores served by
// service processes of the node's runtime (src/node/runtime.hpp), on the node's io_context.
//
// Each core has one service process (global_name_server, or the scope's registered name)
// whose inline handler only queues what it is given. One drain at a time, posted to the node's
// io_context, feeds the queue to the core in order, under the service's mutex, and executes the
// actions the core returns; a service therefore never runs inside another one's handler, needs
// no thread of its own and never polls. Node events (runtime::monitor_nodes), timer expiries
// and the node's own operations (erl::global's calls) enter the same queue as jobs, so they are
// ordered with the messages: the runtime reports a nodeup before it delivers the connection's
// first message, and a nodedown after the noconnection DOWNs of the monitors on that node (the
// node_event contract in <erl/node.hpp>; docs/global.md "What a runtime must provide").
#pragma once

#include <erl/cluster.hpp>
#include <erl/global.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>
#include <erl/rpc.hpp>

#include "cluster/global_server.hpp"
#include "cluster/pg_scope.hpp"
#include "node/access.hpp"
#include "node/runtime.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <variant>

namespace erl::cluster {
namespace detail {

using erl::detail::node_core;
using erl::detail::process;
namespace rt = erl::detail::runtime;

inline atom A(const char* s) {
    return atom(s);
}

// Functions to run once the service's mutex is released (completions, pg subscribers).
using after_list = std::vector<std::function<void()>>;
// A job for the core: runs on the drain, in queue order, with the service's mutex held.
using job = std::function<void()>;

// One core served by one service process: the queue, the drain and what the actions of
// cluster_actions.hpp need.
class service_base : public std::enable_shared_from_this<service_base> {
  public:
    explicit service_base(node_core& n) : node_(n) {}
    virtual ~service_base() = default;
    service_base(const service_base&) = delete;
    service_base& operator=(const service_base&) = delete;

    node_core& core() noexcept { return node_; }
    const std::shared_ptr<process>& proc() const noexcept { return proc_; }

    // Guards the core and everything below; held by the drain while one item runs and by the
    // node's queries (whereis_name, get_members, ...).
    std::mutex mu;

    // Queues a job behind what is already queued (any thread).
    void post(job j) { enqueue(item(std::move(j))); }
    // With mu held: executes the core's actions in order.
    void execute(actions& out);
    // With mu held: `input(out)` feeds one input to the core, then its actions are executed.
    template <class F>
    void feed(F&& input) {
        actions out;
        input(out);
        execute(out);
    }
    // With mu held: `f` runs after mu is released, on the drain (one at a time, in order).
    void run_after(std::function<void()> f) { after_.push_back(std::move(f)); }
    // With mu held, outside the drain: makes sure what run_after queued gets run.
    void kick() {
        if (!after_.empty()) post([] {});
    }
    // Ends the service: no more items run, timers are cancelled, the process exits with
    // `shutdown` (peers see its DOWN).
    void stop();
    bool stopped() const noexcept { return stopped_.load(); }

  protected:
    // The service process, registered as `name` if given (errc::name_taken).
    error_code spawn(std::optional<atom> name);
    // With mu held, on the drain.
    virtual void on_message(const term& msg) = 0;
    virtual void on_nodeup(atom peer) = 0;
    virtual void on_nodedown(atom peer) = 0;
    virtual void on_down(monitor_id id) = 0;
    virtual void on_timer(timer_id) {}
    virtual void on_call_result(call_id, std::optional<term>) {}
    virtual void on_op_done(std::uint64_t, const term&) {}
    virtual void on_connect_failed(atom) {}
    // With mu held, when stop() ends the service.
    virtual void on_stop() {}

    node_core& node_;
    std::shared_ptr<process> proc_;
    std::set<atom> awaiting_connection_;  // sends that set up a connection, see on_nodeup

  public:
    // A node event, queued in the order the runtime reports it (node_event's contract).
    void node_event(bool up, atom peer) {
        post([this, up, peer] {
            if (up) {
                if (awaiting_connection_.erase(peer)) rt::monitor_node(node_, proc_, peer, false);
                on_nodeup(peer);
            } else {
                on_nodedown(peer);
            }
        });
    }

  private:
    using item = std::variant<term, job>;
    void enqueue(item it);
    void schedule_drain();
    void drain();
    void dispatch(const term& msg);
    bool may_send(const term& to, bool noconnect, atom& remote) const;
    void finish_call(call_id id, std::optional<term> reply);
    void finish_rpc(const term& req, term result);

    void exec(send_to& a);
    void exec(monitor_pid& a);
    void exec(demonitor_pid& a);
    void exec(timer_start& a);
    void exec(timer_cancel& a);
    void exec(call_server& a);
    void exec(reply_to& a);
    void exec(exit_pid& a);
    void exec(disconnect_node& a);
    void exec(rpc_call& a);
    void exec(op_done& a) { on_op_done(a.op, a.result); }
    void exec(log_line& a);

    std::mutex q_mu_;  // guards q_, scheduled_; taken on its own, never while waiting for mu
    std::deque<item> q_;
    bool scheduled_ = false;  // a drain is posted or running
    std::atomic<bool> stopped_{false};

    // guarded by mu
    after_list after_;
    struct pending_call {
        reference alias;
        reference mon;
    };
    struct pending_rpc {
        call_id id;
        term res;  // erpc's result reference
    };
    std::map<term, monitor_id> monitors_;  // DOWN reference -> core's id
    std::map<monitor_id, reference> monitor_refs_;
    std::map<timer_id, std::shared_ptr<boost::asio::steady_timer>> timers_;
    std::map<call_id, pending_call> calls_;
    std::map<term, call_id> call_aliases_;   // [alias|Alias] reply tag's alias
    std::map<term, call_id> call_monitors_;  // the call's monitor reference
    std::map<term, pending_rpc> rpcs_;       // spawn request id (= monitor reference)
};

// Tracks the visible peers a service has been told about: a nodeup for a peer already up or a
// nodedown for one not up changes nothing (the start-up snapshot may repeat an event).
struct peer_set {
    std::set<atom> up;
    bool add(atom n) { return up.insert(n).second; }
    bool remove(atom n) { return up.erase(n) != 0; }
};

// An operation of the node's own code on the global core ended: its result (yes | no,
// true | false, ok), or errc::timeout when the timeout passed first, errc::noproc when the
// service stopped first.
using op_completion = std::function<void(error_code, term)>;

class global_service final : public service_base {
  public:
    explicit global_service(node_core& n) : service_base(n) {}
    // Spawns global_name_server, the locker and the registrar, and makes the core.
    error_code start();

    global_server& server() { return *core_; }        // with mu held
    const peer_set& peers() const { return peers_; }  // with mu held

    // Queues `start` (it starts the operation on the core and returns its op id); `done` runs
    // once, on the drain or the timeout's timer, with mu released.
    void run_op(std::function<std::uint64_t(actions&)> start, std::chrono::milliseconds timeout,
                op_completion done);

  protected:
    void on_message(const term& msg) override;
    void on_nodeup(atom peer) override;
    void on_nodedown(atom peer) override;
    void on_down(monitor_id id) override;
    void on_timer(timer_id id) override;
    void on_call_result(call_id id, std::optional<term> reply) override;
    void on_connect_failed(atom peer) override;
    void on_op_done(std::uint64_t op, const term& result) override;
    void on_stop() override;

  private:
    global_config config();
    struct waiter {
        op_completion done;
        std::shared_ptr<boost::asio::steady_timer> timer;
    };
    std::shared_ptr<process> locker_, registrar_;
    std::mt19937_64 rng_;
    std::int64_t unique_ = 1;
    std::int64_t next_connection_id_ = 1;
    peer_set peers_;
    std::map<std::uint64_t, waiter> waiters_;
    std::unique_ptr<global_server> core_;
};

class pg_service final : public service_base {
  public:
    pg_service(node_core& n, atom scope) : service_base(n), scope_(scope) {}
    // Spawns the scope process registered as the scope's name and starts the core.
    error_code start();

    pg_scope& scope() { return *core_; }  // with mu held
    // With mu held: the subscribers hear of `changes` on the drain, in order.
    void publish(std::vector<pg_change>& changes);
    std::uint64_t subscribe(std::function<void(const erl::pg::event&)> cb);  // with mu held
    void unsubscribe(std::uint64_t id);                                      // with mu held

  protected:
    void on_message(const term& msg) override;
    void on_nodeup(atom peer) override;
    void on_nodedown(atom peer) override;
    void on_down(monitor_id id) override;

  private:
    atom scope_;
    std::unique_ptr<pg_scope> core_;
    peer_set peers_;
    std::map<std::uint64_t, std::function<void(const erl::pg::event&)>> subscribers_;
    std::uint64_t next_sub_ = 1;
};

struct cluster_state {
    node* n = nullptr;
    std::unique_ptr<erl::rpc::server> own_rpc;
    erl::rpc::server* rpc = nullptr;
    std::shared_ptr<global_service> global;
    std::map<atom, std::shared_ptr<pg_service>> scopes;
    std::optional<std::uint64_t> node_monitor;
    std::atomic<bool> stopped{false};

    void stop();
};

// The services running on n, if any (kept in the node's per-node service state).
std::shared_ptr<cluster_state> find(node& n);

}  // namespace detail
}  // namespace erl::cluster
