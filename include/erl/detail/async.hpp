// The type-erased handlers behind the completion-token forms of node, mailbox, rpc and
// gen_server operations. Each public `async_*` function is a template over the completion
// token that hands one of these to a function compiled into the library
// (boost::asio::any_completion_handler keeps the handler's associated executor, allocator and
// cancellation slot).
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

namespace erl::detail {

using error_handler = boost::asio::any_completion_handler<void(error_code)>;
using term_handler = boost::asio::any_completion_handler<void(error_code, term)>;

}  // namespace erl::detail
