// erl::global — OTP's `global` from C++: cluster-wide names and locks shared with every
// visible node of the cluster (BEAM and erlcpp alike). Needs erl::cluster::start(node) (see
// <erl/cluster.hpp>); every function here fails with errc::noproc without it.
//
// The functions that wait for the cluster (register_name, re_register_name, unregister_name,
// set_lock, del_lock, trans, sync) block the calling thread until the operation is done or
// `timeout` passes (errc::timeout; the operation itself carries on in the server, as a
// gen_server call abandoned by its caller does). They must not be called on the node's I/O
// threads (the server runs there: with one thread they would wait for themselves). Each has an
// async_ form taking an Asio completion token instead (see "Completion forms" below), usable
// on any thread. whereis_name, send, registered_names and known_nodes answer from the local
// table at once and may be called anywhere.
#pragma once

#include <erl/error.hpp>
#include <erl/node.hpp>
#include <erl/term.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
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

// Completion forms ------------------------------------------------------------------------
// The same operations with an Asio completion token (a callback, boost::asio::use_future,
// use_awaitable, deferred, ...) instead of a blocked thread. The handler receives
// (error_code) or (error_code, bool) as the blocking form returns it: errc::timeout when
// `timeout` passed first, errc::noproc when the services do not run on the node or stop first.
// It runs on the handler's associated executor, by default the node's (an I/O thread; a
// system thread when the node is not running). They
// never block and may be called from any thread, the node's own included. There is no
// per-operation cancellation: `timeout` bounds the wait, as for the blocking forms.
namespace detail {
// An operation's completion: the Erlang result (yes | no, true | false, ok) or the error.
using op_handler = std::function<void(error_code, const term&)>;
enum class op_kind { register_name, re_register_name, unregister_name, set_lock, del_lock, sync };
struct op_args {
    term name;  // name, or the lock id
    pid p;      // the pid to register, or the lock holder
    std::vector<atom> nodes;
    int retries = -1;
};
void start_op(node& n, op_kind kind, op_args args, std::chrono::milliseconds timeout,
              op_handler done);

// async_initiate for an operation: `deliver(handler, ec, result)` calls the handler with the
// operation's signature, on the handler's executor.
template <class Signature, class Token, class Deliver>
auto initiate_op(node& n, op_kind kind, op_args args, std::chrono::milliseconds timeout,
                 Token&& token, Deliver deliver) {
    return boost::asio::async_initiate<Token, Signature>(
        [&n, kind, timeout, deliver](auto handler, op_args a) {
            // The node's executor, or a system thread when the node does not run (nothing
            // would ever run the handler on a stopped node's io_context).
            auto ex = boost::asio::get_associated_executor(
                handler, n.alive() ? n.executor()
                                   : boost::asio::any_io_executor(boost::asio::system_executor()));
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            start_op(n, kind, std::move(a), timeout,
                     [h, ex, deliver](error_code ec, const term& r) {
                         boost::asio::post(
                             ex, [h, ec, r, deliver]() mutable { deliver(std::move(*h), ec, r); });
                     });
        },
        token, std::move(args));
}

inline auto deliver_ec() {
    return [](auto&& h, error_code ec, const term&) { std::move(h)(ec); };
}
inline auto deliver_bool(const char* yes) {
    return [yes](auto&& h, error_code ec, const term& r) {
        std::move(h)(ec, !ec && r.is_atom(atom(yes)));
    };
}
}  // namespace detail

// async form of register_name: (error_code, bool registered).
template <class Token>
auto async_register_name(node& n, const term& name, const pid& p, std::chrono::milliseconds timeout,
                         Token&& token) {
    return detail::initiate_op<void(error_code, bool)>(
        n, detail::op_kind::register_name, {name, p, {}, -1}, timeout, std::forward<Token>(token),
        detail::deliver_bool("yes"));
}
// async form of re_register_name: (error_code).
template <class Token>
auto async_re_register_name(node& n, const term& name, const pid& p,
                            std::chrono::milliseconds timeout, Token&& token) {
    return detail::initiate_op<void(error_code)>(n, detail::op_kind::re_register_name,
                                                 {name, p, {}, -1}, timeout,
                                                 std::forward<Token>(token), detail::deliver_ec());
}
// async form of unregister_name: (error_code).
template <class Token>
auto async_unregister_name(node& n, const term& name, std::chrono::milliseconds timeout,
                           Token&& token) {
    return detail::initiate_op<void(error_code)>(n, detail::op_kind::unregister_name,
                                                 {name, pid{}, {}, -1}, timeout,
                                                 std::forward<Token>(token), detail::deliver_ec());
}
// async form of set_lock: (error_code, bool taken).
template <class Token>
auto async_set_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes,
                    int retries, std::chrono::milliseconds timeout, Token&& token) {
    return detail::initiate_op<void(error_code, bool)>(
        n, detail::op_kind::set_lock, {id, holder, std::move(nodes), retries}, timeout,
        std::forward<Token>(token), detail::deliver_bool("true"));
}
// async form of del_lock: (error_code).
template <class Token>
auto async_del_lock(node& n, const term& id, const pid& holder, std::vector<atom> nodes,
                    std::chrono::milliseconds timeout, Token&& token) {
    return detail::initiate_op<void(error_code)>(n, detail::op_kind::del_lock,
                                                 {id, holder, std::move(nodes), -1}, timeout,
                                                 std::forward<Token>(token), detail::deliver_ec());
}
// async form of sync: (error_code).
template <class Token>
auto async_sync(node& n, std::chrono::milliseconds timeout, Token&& token) {
    return detail::initiate_op<void(error_code)>(n, detail::op_kind::sync, {}, timeout,
                                                 std::forward<Token>(token), detail::deliver_ec());
}

}  // namespace global
}  // namespace erl
