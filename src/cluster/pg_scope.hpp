// erl::cluster::pg_scope — one pg scope (OTP's pg.erl, kernel 8.x) as a sans-io state machine.
//
// A scope is a process registered under the scope's name on every node that takes part; the
// scopes of one name form an overlay network. They find each other with
//   {discover, PeerScopePid}                      sent to {Scope, Node} on nodeup (noconnect)
// and answer every discover with
//   {'$gen_cast', {sync, SelfPid, [{Group, [Pid]}]}}   all local members, by group
// (plus a discover back when the asker is new, so both sides monitor each other). Membership
// changes travel as plain messages to every known peer scope (noconnect):
//   {join, SelfPid, Group, Pid | [Pid]}       {leave, SelfPid, Pid | [Pid], [Group]}
// A peer scope is dropped, with all its members, when its monitor fires (scope exit or lost
// connection); nodedown itself is ignored, as in pg.erl.
//
// OTP's scope crashes (erlang:error(badarg)) on any message it does not expect and so drops
// every member it knows; this core never does that: unknown messages are reported as
// `ignored` and change nothing, and it only ever sends the messages above.
//
// Members are kept in the order pg.erl keeps them in its ETS table (newest first), so
// get_members answers the same list as BEAM's pg:get_members on the same history.
#pragma once

#include "cluster/cluster_actions.hpp"

#include <erl/term.hpp>

#include <map>
#include <optional>
#include <vector>

namespace erl::cluster {

// A membership change: `pids` joined or left `group` (pg's {Ref, join | leave, Group, Pids}).
struct pg_change {
    bool joined = false;
    term group;
    std::vector<term> pids;
};

class pg_scope {
  public:
    // scope: the registered name; self: the scope process's pid (on `node`).
    pg_scope(atom scope, term self);

    // The scope starts on a node already connected to `nodes` (pg:init: discover them all).
    void start(const std::vector<atom>& nodes, actions& out);

    // {nodeup, Node} / {nodedown, Node} from net_kernel:monitor_nodes(true).
    void node_up(atom node, actions& out);
    void node_down(atom node, actions& out);

    enum class handled : std::uint8_t { ok, ignored };
    // A message to the scope process (not a '$gen_call'): discover, join, leave and the
    // '$gen_cast' sync. Anything else is `ignored`.
    handled message(const term& msg, actions& out, std::vector<pg_change>& changes);

    // The DOWN of a monitor this core asked for.
    void down(monitor_id id, actions& out, std::vector<pg_change>& changes);

    // pg:join(Scope, Group, PidOrPids): pid_or_pids must be local pids (a pid or a proper list
    // of pids); false (and nothing done) otherwise.
    bool join(const term& group, const term& pid_or_pids, actions& out,
              std::vector<pg_change>& changes);
    // pg:leave: false when none of the pids was in the group (pg's not_joined).
    bool leave(const term& group, const term& pid_or_pids, actions& out,
               std::vector<pg_change>& changes);

    std::vector<term> members(const term& group) const;
    std::vector<term> local_members(const term& group) const;
    std::vector<term> which_groups() const;
    std::vector<term> which_local_groups() const;
    // Peer scope pids currently known (the overlay network seen from here).
    std::vector<term> peers() const;

    atom scope() const noexcept { return scope_; }
    const term& self() const noexcept { return self_; }

  private:
    struct local_entry {
        monitor_id mon = 0;
        std::vector<term> groups;  // newest first, as pg.erl's join_local
    };
    struct remote_entry {
        monitor_id mon = 0;
        std::map<term, std::vector<term>> groups;
    };
    struct group_entry {
        std::vector<term> all;
        std::vector<term> local;
    };

    bool is_local_pid(const term& t) const;
    std::optional<std::vector<term>> local_pids(const term& pid_or_pids) const;
    term local_sync_groups() const;
    void broadcast(const term& msg, actions& out) const;
    void discover(const term& peer, actions& out);
    void handle_sync(const term& peer, const term& groups, std::vector<pg_change>& changes,
                     actions& out);
    void add_members(const term& group, const std::vector<term>& pids, bool local,
                     std::vector<pg_change>& changes);
    void remove_members(const term& group, const std::vector<term>& pids, bool local,
                        std::vector<pg_change>& changes);

    atom scope_;
    term self_;
    atom node_;
    monitor_id next_monitor_ = 1;
    std::map<term, local_entry> local_;
    std::map<term, remote_entry> remote_;
    std::map<monitor_id, term> monitors_;  // id -> local pid or peer scope pid
    std::map<term, group_entry> groups_;
};

}  // namespace erl::cluster
