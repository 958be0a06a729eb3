// erl::cluster::global_server — OTP's global_name_server (global.erl, protocol version 8,
// kernel 8.5 / OTP 25) as one sans-io state machine: the server, its locker, its resolvers,
// its registrar and its sync waiters, which OTP runs as separate processes, are parts of this
// one object here. See docs/global.md for the protocol it speaks.
//
// What each part does:
//  - connection sessions: on nodeup, {init_connect, {8, MyTag}, Node, {locker,
//    no_longer_a_pid, Known, Locker}} to the peer's server; the peer's init_connect hands its
//    locker to ours and is confirmed with init_connect_ack; cancel_connect restarts a session
//    that got out of step. When both lockers hold the partition lock: exchange (our names),
//    name clash resolution, resolved (our ops and known nodes), new_nodes to the rest of our
//    partition, in_sync to the rest of the peer's partition.
//  - the locker: takes {global, [LockerA, LockerB]} (sorted) on the boss (the greatest node
//    name), itself, the peer and everything it knows, with one-shot set_lock multi-calls, and
//    tells the peer's locker (through its server) with lock_set; releases the lock when the
//    server has finished the session (boss last).
//  - the tables: names (monitored, cleaned on DOWN and nodedown), locks (requester-id
//    re-entrant, released when a holder dies), answered through the gen_server calls BEAM's
//    servers make on each other: set_lock, del_lock, register, register_ext, unregister,
//    get_known, get_synced, get_protocol_version, get_names_ext.
//  - prevent_overlapping_partitions: lost_connection multicast on nodedown, remove_connection
//    to the far end of a lost connection.
//  - the node's own operations (register_name, unregister_name, set_lock, del_lock, sync):
//    the same multi-call algorithms as global.erl's client side, with its random back-off.
//
// Every call BEAM makes on our server must be answered: BEAM's locker and registrar call
// gen_server:multi_call with no timeout, and a call left unanswered stops global on that
// BEAM node for good. Unknown calls are therefore answered too (with `false`), unlike
// global.erl which logs them and never replies.
#pragma once

#include "cluster/cluster_actions.hpp"
#include "cluster/global_tables.hpp"

#include <erl/term.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <variant>
#include <vector>

namespace erl::cluster {

struct global_config {
    atom node;       // our node name
    term server;     // pid of the process registered as global_name_server
    term locker;     // pid in whose name the locker takes partition locks
    term registrar;  // pid in whose name register_name/unregister_name take {global, Pid}
    // kernel connect_all (-connect_all false): without it global only records connections; no
    // sessions, names and locks stay local, no lost_connection traffic.
    bool connect_all = true;
    bool prevent_overlapping_partitions = true;  // kernel prevent_overlapping_partitions
    // The creation extension of lost_connection messages: global.erl draws it at random once
    // per server start (creation_extension + erlang:system_info(creation) - MIN_SMALL).
    std::int64_t creation_extension = 0;
    // erlang:unique_integer([monotonic]): session tags and lost_connection operation ids.
    std::function<std::int64_t()> unique_integer;
    // rand:uniform(N) - 1 style source for the locker's pick and the retry back-off.
    std::function<std::uint64_t()> random;
};

class global_server {
  public:
    static constexpr int protocol_version = 8;

    explicit global_server(global_config cfg);
    // Pending calls and timers refer to the object: it stays where it was made.
    global_server(const global_server&) = delete;
    global_server& operator=(const global_server&) = delete;

    // ---- inputs ------------------------------------------------------------------------
    // {nodeup, Node, #{connection_id := Id}} / {nodedown, Node, _} for visible nodes.
    void node_up(atom node, std::int64_t connection_id, actions& out);
    void node_down(atom node, actions& out);
    // A connection the core asked for (send_to without noconnect, for in_sync) could not be
    // set up: global.erl's {extra_nodedown, Node}.
    void connect_failed(atom node, actions& out);

    enum class handled : std::uint8_t { ok, ignored };
    // Any message to global_name_server: '$gen_call' requests, '$gen_cast' protocol messages
    // and the plain ones (init_connect_ack, cancel_connect, lost_connection,
    // remove_connection, whereis).
    handled message(const term& msg, actions& out);
    void down(monitor_id id, actions& out);
    void timer_fired(timer_id id, actions& out);
    // The answer to a call_server (nullopt: the call failed) or an rpc_call.
    void call_result(call_id id, std::optional<term> reply, actions& out);

    // ---- the node's own operations; each ends with op_done{returned op id, result} -------
    std::uint64_t register_name(const term& name, const term& pid, const term& method,
                                actions& out);
    std::uint64_t re_register_name(const term& name, const term& pid, const term& method,
                                   actions& out);
    std::uint64_t unregister_name(const term& name, actions& out);
    // global:set_lock({ResourceId, LockRequesterId}, Nodes, Retries) on behalf of `caller`
    // (the lock holder). retries < 0: infinity.
    std::uint64_t set_lock(const term& id, const term& caller, std::vector<atom> nodes, int retries,
                           actions& out);
    std::uint64_t del_lock(const term& id, const term& caller, std::vector<atom> nodes,
                           actions& out);
    // global:sync(): ok when every node in `nodes` is synced or down.
    std::uint64_t sync(std::vector<atom> nodes, actions& out);

    // ---- queries -----------------------------------------------------------------------
    std::optional<term> whereis(const term& name) const;
    const global_name_table& names() const noexcept { return names_; }
    const global_lock_table& locks() const noexcept { return locks_; }
    std::vector<atom> known() const;      // nodes in our partition (global:get_known)
    std::vector<atom> synced() const;     // nodes whose names we share
    std::vector<atom> connected() const;  // nodes with a live connection
    bool connecting(atom node) const;     // a session with node is under way
    const global_config& config() const noexcept { return cfg_; }

    // global:resolve_it(Method, Name, Pid1, Pid2) on this node: the effect of one of global's
    // resolve methods (random_exit_name, random_notify_name, notify_all_name; global's own
    // default closure counts as random_exit_name) and its result, nullopt for any other
    // method. A BEAM resolver calls it over rpc when our pid is in a clash.
    static std::optional<term> resolve_locally(const term& method, const term& name,
                                               const term& pid, const term& pid2, actions& out);

  private:
    // Per-peer connection state: global.erl's process dictionary entries for one node
    // (sync_tag_my, sync_tag_his, prot_vsn, pre_connect, wait_lock, save_ops, lock_id).
    struct session {
        std::optional<std::int64_t> my_tag;
        std::optional<term> his_tag;
        int prot_vsn = 0;
        bool has_pre_connect = false;
        int pre_vsn = 0;
        term pre_msg, pre_tag;
        enum class wait : std::uint8_t { none, exchange, lock_is_set } wait_lock = wait::none;
        term wait_names;
        enum class save : std::uint8_t { none, resolved, ops } save_ops = save::none;
        term his_known, names_ext, his_resolved, ops;
        std::optional<term> lock_id;
    };
    // A message to the locker (global.erl section "Between global_name_server and my locker").
    struct locker_msg {
        enum class kind : std::uint8_t {
            his_the_locker,
            cancel,
            lock_set,
            add_to_known,
            remove_from_known
        } what = kind::cancel;
        atom node;
        term pid;                         // his_the_locker / lock_set: the peer's locker
        int vsn = 0;                      // his_the_locker
        term his_tag;                     // his_the_locker
        std::optional<std::int64_t> tag;  // cancel, his_the_locker (MyTag), lock_set
        bool lock_set_has_tag = false;    // {lock_set, P, S, K, Tag} vs {lock_set, P, S, K}
        bool set = false;                 // lock_set
        bool has_fun = false;             // cancel: a fun to run before releasing
        std::vector<send_to> fun;         // what that fun sends (new_nodes)
        std::vector<atom> nodes;          // add_to_known / remove_from_known
    };
    // exchange_names/4 running for one session (global.erl's resolver process).
    struct resolver {
        atom node;
        std::int64_t tag = 0;
        std::vector<term> names;
        std::size_t next = 0;
        std::vector<term> ops, res;  // prepended as global.erl does
        std::optional<call_id> waiting;
    };

    // server side
    void handle_call(const term& from, const term& req, actions& out);
    void handle_cast(const term& msg, actions& out);
    void handle_nodeup(atom node, actions& out);
    void handle_nodedown(atom node, int what, actions& out);  // 0 disconnected, 1 removal, 2 ignore
    void init_connect(int vsn, atom node, const term& init_msg, const term& his_tag, int his_vsn,
                      actions& out);
    void restart_connect(atom node, std::optional<std::int64_t> my_tag, actions& out);
    void cancel_locker(atom node, std::optional<std::int64_t> tag, actions& out,
                       std::vector<send_to> run_first = {});
    void send_cancel_connect(atom node, std::optional<std::int64_t> tag, actions& out);
    void reset_node_state(atom node);
    void lock_is_set(atom node, std::int64_t tag, const term& lock_id, actions& out);
    void exchange(atom node, const term& name_list, actions& out);
    void exchange_ops(atom node, std::int64_t tag, term ops, term resolved, actions& out);
    void resolved(atom node, const term& his_resolved, const term& his_known, const term& names_ext,
                  actions& out);
    void new_nodes(const term& ops, atom conn_node, const term& names_ext, const term& nodes,
                   const term& extra_info, actions& out);
    void do_ops(const term& ops, const term& from_pid_or_node, const term& names_ext,
                const term& extra_info, actions& out);
    void ins_name(const term& name, const term& pid, const term& method, std::optional<atom> ext,
                  const term& from_pid_or_node, const term& extra_info, actions& out);
    bool lock_still_set(const term& from_pid_or_node, const term& extra_info) const;
    void sync_others(const std::vector<atom>& nodes, actions& out);
    std::vector<atom> add_to_known(const term& nodes);
    void inform_connection_loss(atom node, actions& out);
    void multicast(const term& msg, atom ignore, bool also_pending, actions& out);
    void lost_connection(const term& msg, actions& out);
    void remove_connection(atom node, actions& out);
    void notify_synced(atom node, actions& out);
    void sync_nodedown(atom node, actions& out);
    bool handle_set_lock(const term& id, const term& pid, actions& out);
    void handle_del_lock(const term& id, const term& pid, actions& out);
    void after_lock_removed(const term& resource, bool by_down);
    int node_vsn(atom node) const;
    term known_map() const;
    term known_list(int vsn) const;
    void start_resolver(atom node, std::int64_t tag, const term& name_list, actions& out);
    void resolve_next(resolver& r, actions& out);
    void resolve_result(resolver& r, const term& result, actions& out);

    // locker
    void to_locker(locker_msg m, actions& out);
    void locker_pump(actions& out);
    bool locker_accepts(const locker_msg& m) const;
    void locker_message(locker_msg m, actions& out);
    void locker_arm(actions& out);
    void locker_select_node(actions& out);
    void lock_nodes_safely(const term& lock_id, std::vector<atom> extra,
                           std::function<void(bool, actions&)> done, actions& out);
    void send_lock_set(bool is_set, const term& his_locker, int vsn, const term& his_tag,
                       actions& out);
    void locker_update_known(const locker_msg& m);
    void delete_global_lock(const term& lock_id, std::vector<atom> nodes, const term& caller,
                            std::function<void(actions&)> then, actions& out);
    term locker_lock_id(const term& his_locker) const;

    // calls to servers (ours answered in place)
    void set_lock_on_nodes(const term& id, const term& caller, std::vector<atom> nodes,
                           std::function<void(bool, actions&)> done, actions& out);
    void multi_call_servers(std::vector<atom> nodes, const term& request, const term& caller,
                            std::function<void(std::vector<std::pair<atom, term>>, actions&)> done,
                            actions& out);
    void call_own_server(const term& caller, const term& request, term& reply, actions& out);

    // client ops
    std::uint64_t register_op(const term& name, const term& pid, const term& method, bool only_free,
                              actions& out);
    std::uint64_t start_op(actions& out, std::function<void(std::uint64_t, actions&)> body);
    void finish_op(std::uint64_t op, term result, actions& out);
    void trans_all_known(
        std::uint64_t op, int times,
        std::function<void(std::vector<atom>, std::function<void(term, actions&)>, actions&)> fun,
        actions& out);
    void set_lock_retry(std::uint64_t op, const term& id, const term& caller,
                        std::vector<atom> nodes, int retries, int times, actions& out);
    void after_random_sleep(int times, std::function<void(actions&)> then, actions& out);
    std::uint64_t random_below(std::uint64_t n);

    monitor_id next_monitor() { return next_monitor_++; }

    global_config cfg_;
    global_name_table names_;
    global_lock_table locks_;
    monitor_alloc alloc_;
    monitor_id next_monitor_ = 1;
    timer_id next_timer_ = 1;
    call_id next_call_ = 1;
    std::uint64_t next_op_ = 1;
    bool global_lock_down_ = false;

    // global.erl's #state.known, kept as its four kinds of keys
    std::map<atom, int> known_;                    // Node => Vsn
    std::map<atom, int> pending_;                  // {pending, Node} => Vsn
    std::set<atom> removing_;                      // {removing, Node} => yes
    std::map<atom, std::int64_t> connection_ids_;  // {connection_id, Node} => Id
    std::vector<atom> synced_;
    std::map<atom, session> sessions_;
    std::map<std::pair<atom, atom>, std::tuple<std::int64_t, term, timer_id>> lost_;

    struct sync_waiter {
        std::uint64_t op;
        std::vector<atom> nodes;
    };
    std::vector<sync_waiter> syncers_;
    std::map<std::uint64_t, term> call_ops_;  // op -> '$gen_call' From to reply to (sync)

    // locker (#multi)
    struct him {
        atom node;
        term locker;
        int vsn = 0;
        std::int64_t my_tag = 0;
        term his_tag;
    };
    enum class lk_state : std::uint8_t { idle, locking, lock_is_set, wait_cancel };
    lk_state lk_state_ = lk_state::idle;
    std::deque<locker_msg> lk_queue_;
    std::vector<him> lk_local_, lk_remote_;
    std::vector<atom> lk_known_;
    // #multi.the_boss: recomputed only when the known nodes change. A BEAM node starts global
    // before distribution, so until its first change the boss is nonode@nohost and its first
    // partition lock skips the boss step; this core starts the same way.
    atom lk_boss_{"nonode@nohost"};
    bool lk_just_synced_ = false;
    bool lk_pumping_ = false;
    std::optional<timer_id> lk_timer_;
    // while holding the partition lock for a session
    him lk_him_;
    term lk_lock_id_;
    std::vector<atom> lk_hold_known_;
    bool lk_from_select_ = false;

    std::map<call_id, std::function<void(std::optional<term>, actions&)>> calls_;
    std::map<timer_id, std::function<void(actions&)>> timers_;
    std::map<atom, std::int64_t> resolver_tags_;  // #state.resolvers: {Node, MyTag, _}
    std::map<atom, resolver> resolvers_;          // the running exchange_names jobs
    std::map<std::uint64_t, std::function<void(actions&)>> ops_;
};

}  // namespace erl::cluster
