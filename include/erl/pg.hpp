// erl::pg — OTP's `pg` process groups from C++, in the scopes erl::cluster::start runs (the
// default scope `pg` unless told otherwise; see <erl/cluster.hpp>). C++ processes joined here
// are members for every BEAM node running the same scope (pg:get_members/2), and BEAM members
// are seen here.
//
// Nothing here waits for the network: join and leave update the local scope and tell the
// peers asynchronously (as pg:join/3 does), queries answer from the local view. Every
// function may be called from any thread. Errors: errc::noproc when the scope is not running.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <cstdint>
#include <functional>
#include <vector>

namespace erl {

class node;

namespace pg {

inline atom default_scope() {
    return atom("pg");
}

// pg:join(Scope, Group, Pids): the pids must be local processes (errc::type_mismatch
// otherwise). A process may join a group several times; it is then a member that many times.
error_code join(node& n, atom scope, const term& group, const std::vector<pid>& pids);
error_code join(node& n, const term& group, const pid& p);  // default scope
// pg:leave(Scope, Group, Pids): false for not_joined.
result<bool> leave(node& n, atom scope, const term& group, const std::vector<pid>& pids);
result<bool> leave(node& n, const term& group, const pid& p);

std::vector<pid> get_members(node& n, atom scope, const term& group);
std::vector<pid> get_members(node& n, const term& group);
std::vector<pid> get_local_members(node& n, atom scope, const term& group);
std::vector<pid> get_local_members(node& n, const term& group);
std::vector<term> which_groups(node& n, atom scope);
std::vector<term> which_groups(node& n);
std::vector<term> which_local_groups(node& n, atom scope);
std::vector<atom> which_scopes(node& n);

// A membership change seen by the scope: pids joined or left `group` (on any node).
struct event {
    atom scope;
    term group;
    std::vector<pid> joined;
    std::vector<pid> left;
};
// Calls cb for every change after subscribe returns (pg:monitor_scope/1 without the
// initial snapshot: read get_members for that). cb runs on one of the node's I/O threads, one
// event at a time, in the order the scope saw them, just after the change is visible to
// get_members; it may call the functions here but must not block (the scope's next message
// waits for it). Returns 0 when the scope is not running.
std::uint64_t subscribe(node& n, atom scope, std::function<void(const event&)> cb);
void unsubscribe(node& n, atom scope, std::uint64_t id);

}  // namespace pg
}  // namespace erl
