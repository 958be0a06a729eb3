// Asynchronous runtime operations that services build on (see async_op.hpp for the shape):
//   connect_op   node::connect: a connection to a peer, up or failed, within a deadline;
//   gen_call_op  gen:do_call/4 (OTP gen.erl): from a temporary process, a monitor on the
//                server, an alias as the reply tag, {'$gen_call', {Self, Tag}, Request}, and
//                the reply or the monitor's DOWN. node::ping (net_kernel is_auth),
//                gen_server::call and rpc's `rex` fallback are this one operation.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include "node/node_core.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace erl::detail {

class connect_op : public std::enable_shared_from_this<connect_op> {
  public:
    using done_fn = std::function<void(error_code)>;
    // Errors: not_alive (node not started), shutting_down (node stopping), bad_node_name,
    // timeout (`timeout` passed; the set-up goes on), or why the set-up failed (bad_cookie,
    // not_allowed, handshake_timeout, connection_closed, limit_exceeded, ...).
    connect_op(std::shared_ptr<node_core> core, atom peer, std::chrono::milliseconds timeout);
    void start(done_fn done);
    void cancel();

  private:
    void watch(const std::shared_ptr<connection>& c);
    void settled(const std::shared_ptr<connection>& c, bool up);
    void finish(error_code ec);

    std::shared_ptr<node_core> core_;
    atom peer_;
    std::chrono::milliseconds timeout_;
    std::mutex mu_;
    boost::asio::steady_timer timer_;  // under mu_
    done_fn done_;                     // null once finished
    bool cancelled_ = false;
    std::shared_ptr<connect_op> self_;
};

// How a gen:do_call ended: ec {} and the reply; errc::timeout; operation_aborted; not_alive;
// shutting_down (the node stopped); or the monitor fired: errc::noconnection / errc::noproc /
// errc::exited with the DOWN reason.
class gen_call_op : public std::enable_shared_from_this<gen_call_op> {
  public:
    using done_fn = std::function<void(error_code, term)>;
    // `dest` is a pid, or a registered name on `dest_node`.
    gen_call_op(std::shared_ptr<node_core> core, term dest, atom dest_node, term request,
                std::chrono::milliseconds timeout);
    void start(done_fn done);
    void cancel();
    // Finishes it with `why` (node stop: errc::shutting_down) unless it has finished.
    void abort(error_code why);

  private:
    void on_message(term msg);
    // Under mu_: true if msg finished the call (mu_ is then released).
    bool handle(std::unique_lock<std::mutex>& lk, const term& msg);
    void finish(std::unique_lock<std::mutex>& lk, error_code ec, term value);

    std::shared_ptr<node_core> core_;
    term dest_;
    atom dest_node_;
    term request_;
    std::chrono::milliseconds timeout_;
    std::mutex mu_;
    boost::asio::steady_timer timer_;  // under mu_
    std::shared_ptr<process> proc_;    // the calling process (a service process)
    bool ready_ = false;               // monitor, alias and tag are set
    std::vector<term> early_;          // messages that arrived before that
    reference monitor_;
    reference alias_;
    term tag_;
    done_fn done_;  // null once finished
    bool cancelled_ = false;
    error_code aborted_;  // why, once cancelled_
    std::shared_ptr<gen_call_op> self_;
};

}  // namespace erl::detail
