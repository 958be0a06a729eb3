// A selective receive on a process as a runtime operation (the shape of node/async_op.hpp:
// start(done) once, cancel() any time, `done` on whichever thread finishes it), for services
// that compose a receive into operations of their own. mailbox::async_receive_if is this
// operation behind a completion token.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace erl::detail {

struct process;

class any_receive_op {
  public:
    // ec {} and the message; errc::timeout; errc::exited (the process ended);
    // boost::asio::error::operation_aborted after cancel().
    using done_fn = std::function<void(error_code, term)>;
    virtual ~any_receive_op() = default;
    virtual void start(done_fn done) = 0;
    virtual void cancel() = 0;
};

// The first message of `p` matching `pred` (null: any), waiting up to `timeout`.
std::shared_ptr<any_receive_op> make_receive_op(const std::shared_ptr<process>& p,
                                                std::function<bool(const term&)> pred,
                                                std::chrono::milliseconds timeout);

}  // namespace erl::detail
