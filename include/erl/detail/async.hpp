// The type-erased handlers behind the completion-token forms of node, mailbox, process, rpc,
// gen_server and dispatch operations. Each public `async_*` function is a template over the
// completion token that hands one of these to a function compiled into the library
// (boost::asio::any_completion_handler keeps the handler's associated executor, allocator and
// cancellation slot), most of them through async_op below.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <functional>
#include <utility>

namespace erl::detail {

using error_handler = boost::asio::any_completion_handler<void(error_code)>;
using term_handler = boost::asio::any_completion_handler<void(error_code, term)>;

// The completion-token form of an operation compiled into the library: starts it as
// std::invoke(initiate, args..., handler), with the token's handler type-erased to
// any_completion_handler<Signature>. The arguments go through async_initiate by value, so a
// deferred token (use_awaitable, deferred) holds its own copies until the operation starts:
// pass std::ref for what the caller keeps alive (the node) and `this` with a member function.
template <class Signature, class Token, class Initiate, class... Args>
auto async_op(Token&& token, Initiate initiate, Args&&... args) {
    return boost::asio::async_initiate<Token, Signature>(
        [initiate](auto handler, auto... a) {
            std::invoke(initiate, std::move(a)...,
                        boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::forward<Args>(args)...);
}

}  // namespace erl::detail
