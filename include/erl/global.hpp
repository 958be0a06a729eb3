// erl::global — OTP's `global` from C++: cluster-wide names and locks shared with every
// visible node of the cluster (BEAM and erlcpp alike). Needs erl::cluster::start(node) (see
// <erl/cluster.hpp>); every function here fails with errc::noproc without it.
//
// The functions that wait for the cluster (register_name, re_register_name, unregister_name,
// set_lock, del_lock, trans, sync) block the calling thread until the operation is done or
// `timeout` passes (errc::timeout; the operation itself carries on in the server, as a
// gen_server call abandoned by its caller does). They must not be called on the node's I/O
// threads (they would wait for those threads). whereis_name, send and registered_names answer
// from the local table at once and may be called anywhere. Awaitable forms of the blocking
// functions are not offered yet.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <vector>

namespace erl {

class node;

namespace global {

inline constexpr std::chrono::milliseconds default_timeout = std::chrono::seconds(30);

// global:register_name(Name, Pid): true for yes, false for no (the name is taken or the pid
// already has a name). Name clashes after a partition heals are resolved with
// global:random_exit_name/3 (the loser exits with {global_name_conflict, Name}), as OTP's
// default method.
result<bool> register_name(node& n, const term& name, const pid& p,
                           std::chrono::milliseconds timeout = default_timeout);
// global:re_register_name(Name, Pid): the name now refers to p.
error_code re_register_name(node& n, const term& name, const pid& p,
                            std::chrono::milliseconds timeout = default_timeout);
// global:unregister_name(Name).
error_code unregister_name(node& n, const term& name,
                           std::chrono::milliseconds timeout = default_timeout);
// global:whereis_name(Name): nullopt for undefined.
std::optional<pid> whereis_name(node& n, const term& name);
// global:send(Name, Msg): errc::noproc when the name is not registered (OTP exits with
// {badarg, {Name, Msg}}).
error_code send(node& n, const term& name, term msg);
// global:registered_names().
std::vector<term> registered_names(node& n);
// The nodes this node's global shares names with or is connecting to (global's known nodes,
// gen_server:call(global_name_server, get_known)).
std::vector<atom> known_nodes(node& n);

// global:set_lock({ResourceId, LockRequesterId}, Nodes, Retries) held by `holder` (a local
// process: the lock goes when it exits). nodes empty: this node and every visible peer.
// retries < 0: infinity. true if the lock was taken.
result<bool> set_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes = {},
                      int retries = -1, std::chrono::milliseconds timeout = default_timeout);
// global:del_lock(Id, Nodes) for `holder`.
error_code del_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes = {},
                    std::chrono::milliseconds timeout = default_timeout);
// global:trans(Id, Fun, Nodes, Retries): fn runs with the lock held by `holder`; false (and
// fn not run) when the lock could not be taken. The lock is released however fn ends.
result<bool> trans(node& n, const term& id, const pid& holder, const std::function<void()>& fn,
                   std::vector<atom> nodes = {}, int retries = -1,
                   std::chrono::milliseconds timeout = default_timeout);
// global:sync(): returns when this node shares names with every visible peer.
error_code sync(node& n, std::chrono::milliseconds timeout = default_timeout);

}  // namespace global
}  // namespace erl
