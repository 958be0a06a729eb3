// A selective receive on a process as a runtime operation (the shape of node/async_op.hpp:
// start(done) once, cancel() any time, `done` on whichever thread finishes it), for services
// that compose a receive into operations of their own. mailbox::async_receive_if is this
// operation behind a completion token.
#pragma once

#include <erl/term.hpp>

#include "node/any_op.hpp"

#include <chrono>
#include <functional>
#include <memory>

namespace erl::detail {

struct process;

// ec {} and the message; errc::timeout; errc::exited (the process ended);
// boost::asio::error::operation_aborted after cancel().
using any_receive_op = any_op<term>;

// The first message of `p` matching `pred` (null: any), waiting up to `timeout`.
std::shared_ptr<any_receive_op> make_receive_op(const std::shared_ptr<process>& p,
                                                std::function<bool(const term&)> pred,
                                                std::chrono::milliseconds timeout);

}  // namespace erl::detail
