// mailbox::async_send, node::async_send: a send that completes once its message is queued
// within the connection's output bound, without a thread waiting for room (the connection
// queues it when a write has drained the queue: connection::send_async).
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "node/access.hpp"
#include "node/async_op.hpp"
#include "node/connection.hpp"
#include "node/node_core.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/error.hpp>

namespace asio = boost::asio;

namespace erl::detail {
namespace {

class send_op : public std::enable_shared_from_this<send_op> {
  public:
    using done_fn = std::function<void(error_code)>;

    // From `sender` (a process of `core`; its pid term is the SEND's from; null: the node is
    // not running and nothing is sent) to `to` or to `to_name` on `to_node`.
    send_op(std::shared_ptr<node_core> core, std::shared_ptr<process> sender, pid to, atom to_name,
            atom to_node, bool by_name, term msg)
        : core_(std::move(core)), sender_(std::move(sender)), to_node_(to_node) {
        if (sender_) req_->from = sender_->self_term;
        req_->to = std::move(to);
        req_->to_name = to_name;
        req_->by_name = by_name;
        req_->msg = std::move(msg);
    }

    // A cancelled send has not sent its message: nothing happened, so every type applies.
    static constexpr asio::cancellation_type cancellation = asio::cancellation_type::terminal |
                                                            asio::cancellation_type::partial |
                                                            asio::cancellation_type::total;

    void start(done_fn done) {
        {
            std::unique_lock lk(mu_);
            if (cancelled_early_) {
                lk.unlock();
                return done(make_error_code(asio::error::operation_aborted));
            }
            req_->done = std::move(done);
            started_ = true;
        }
        auto& n = *core_;
        // As mailbox::send: a process that has ended sends nothing (and learns nothing of it).
        if (!sender_ || sender_->exited.load(std::memory_order_relaxed)) return finish({});
        sender_.reset();  // the op must not keep the process alive while it waits
        const atom node = req_->by_name ? to_node_ : req_->to.node;
        if (node == n.name) {
            // Local delivery never waits.
            if (!req_->claimed.exchange(true)) {
                if (req_->by_name)
                    n.deliver_local_name(req_->from, req_->to_name, std::move(req_->msg));
                else
                    n.send_pid(req_->from, req_->to, std::move(req_->msg));
                std::exchange(req_->done, nullptr)({});
            }
            return;
        }
        // Unknown or malformed node name, or the node stopping: dropped, as send() drops it.
        auto c = n.connections.connection_to(node, true);
        if (!c) return finish({});
        {
            std::lock_guard lk(mu_);
            conn_ = c;
        }
        c->send_async(req_);
    }

    void cancel() {
        std::shared_ptr<connection> c;
        {
            std::lock_guard lk(mu_);
            if (!started_) {
                cancelled_early_ = true;  // start() finishes it
                return;
            }
            c = conn_.lock();
        }
        if (req_->claimed.exchange(true)) return;  // queued, finished, or cancelled already
        // The connection it waited on (a simultaneous connect may have moved it to another:
        // that one skips it, claimed, when its turn comes).
        if (c) c->forget_async(req_.get());
        std::exchange(req_->done, nullptr)(make_error_code(asio::error::operation_aborted));
    }

  private:
    void finish(error_code ec) {
        if (!req_->claimed.exchange(true)) std::exchange(req_->done, nullptr)(ec);
    }

    std::shared_ptr<node_core> core_;
    std::shared_ptr<process> sender_;
    atom to_node_;
    std::shared_ptr<async_send_req> req_ = std::make_shared<async_send_req>();
    std::mutex mu_;
    std::weak_ptr<connection> conn_;  // under mu_
    bool started_ = false;            // under mu_
    bool cancelled_early_ = false;    // under mu_: cancelled before start()
};

void start_send(const std::shared_ptr<node_core>& core, std::shared_ptr<process> sender, pid to,
                atom to_name, atom to_node, bool by_name, term msg, error_handler handler) {
    auto op = std::make_shared<send_op>(core, std::move(sender), std::move(to), to_name, to_node,
                                        by_name, std::move(msg));
    launch(*core, op, std::move(handler));
}

}  // namespace
}  // namespace erl::detail

namespace erl {

void mailbox::initiate_send(const std::shared_ptr<detail::process>& p, const pid* to, atom to_name,
                            atom to_node, term msg, detail::error_handler handler) {
    if (!p) {
        // The handle of a coroutine process that has ended: nothing to send, and no node to
        // complete on.
        auto ex = asio::get_associated_executor(handler);
        asio::prefer(ex, asio::execution::blocking.never, asio::execution::relationship.fork)
            .execute([h = std::make_shared<detail::error_handler>(std::move(handler))] {
                std::move (*h)(error_code{});
            });
        return;
    }
    detail::start_send(p->node, p, to ? *to : pid{}, to_name, to_node, to == nullptr,
                       std::move(msg), std::move(handler));
}

void node::initiate_send(const pid* to, atom to_name, atom to_node, term msg,
                         detail::error_handler handler) {
    // As node::send: nothing is sent from a node that is not running.
    std::shared_ptr<detail::process> sender = impl_->alive ? impl_->node_process : nullptr;
    detail::start_send(std::static_pointer_cast<detail::node_core>(impl_), std::move(sender),
                       to ? *to : pid{}, to_name, to_node, to == nullptr, std::move(msg),
                       std::move(handler));
}

}  // namespace erl
