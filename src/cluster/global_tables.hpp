// The two tables of OTP's global_name_server (global.erl, kernel 8.5): registered names and
// locks, with the monitors that keep them honest. Pure data: every monitor the tables need is
// asked for through `actions`, every id comes from the caller's allocator.
//
// Names (ETS global_names / global_pid_names / global_names_ext): Name -> {Pid, Method, Mon};
// a process may hold several names only if the caller allows it (check_dupname is the
// caller's job). Inserting over an existing name replaces it (ins_name/6 deletes first).
//
// Locks (ETS global_locks / global_pid_ids): ResourceId -> {LockRequesterId, [{Pid, Mon}]}.
// A lock is held by one LockRequesterId at a time; any number of processes may hold it under
// that id (re-entrant per id, see can_set_lock/1); each holder is monitored and loses the lock
// when it dies; the lock disappears with its last holder.
#pragma once

#include "cluster/cluster_actions.hpp"

#include <erl/term.hpp>

#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace erl::cluster {

using monitor_alloc = std::function<monitor_id()>;

class global_name_table {
  public:
    struct entry {
        term pid;
        term method;
        monitor_id mon = 0;
        std::optional<atom> ext_node;  // register_ext: the node that registered it
    };

    // ins_name / ins_name_ext: replaces any entry for `name`, monitors `pid`.
    void insert(const term& name, const term& pid, const term& method, std::optional<atom> ext_node,
                const monitor_alloc& alloc, actions& out);
    // delete_global_name2/2: false if there was no such name.
    bool erase(const term& name, actions& out);
    // del_name/2: the DOWN of a name's monitor; the name it belonged to, if any.
    std::optional<term> erase_by_monitor(monitor_id id);

    const entry* find(const term& name) const;
    bool pid_has_name(const term& pid) const;
    // get_names/0: [{Name, Pid, Method}], what an exchange message carries.
    term exchange_list() const;
    // get_names_ext/0: [{Name, Pid, RegNode}].
    term ext_list() const;
    std::vector<term> names() const;
    std::size_t size() const noexcept { return names_.size(); }

  private:
    std::map<term, entry> names_;
    std::map<monitor_id, term> by_monitor_;
};

class global_lock_table {
  public:
    struct holder {
        term pid;
        monitor_id mon = 0;
    };
    struct entry {
        term requester;
        std::vector<holder> holders;  // newest first, as global.erl's insert_lock
    };

    // can_set_lock/1 for Id = {ResourceId, LockRequesterId}.
    bool can_set(const term& resource, const term& requester) const;
    // handle_set_lock/3: true if `pid` now holds the lock (it may have held it already).
    bool set(const term& resource, const term& requester, const term& pid,
             const monitor_alloc& alloc, actions& out);
    // handle_del_lock/3: `pid` stops holding {resource, requester}; no-op otherwise.
    void del(const term& resource, const term& requester, const term& pid, actions& out);
    // delete_lock/2: the DOWN of a holder's monitor. The resources that lost that holder.
    std::vector<term> down(monitor_id id);

    bool is_set(const term& resource) const { return locks_.count(resource) != 0; }
    const entry* find(const term& resource) const;
    std::size_t size() const noexcept { return locks_.size(); }

  private:
    void remove_holder(std::map<term, entry>::iterator it, std::size_t index);

    std::map<term, entry> locks_;
    std::map<monitor_id, term> by_monitor_;  // holder monitor -> resource
};

}  // namespace erl::cluster
