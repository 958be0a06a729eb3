// mailbox::async_receive / async_receive_if: the selective receive of selective_receive.hpp,
// woken by process::extras::waiters instead of the condition variable the blocking receive waits
// on.
#include <erl/mailbox.hpp>

#include "node/async_op.hpp"
#include "node/node_core.hpp"
#include "node/receive_op.hpp"
#include "node/selective_receive.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>

namespace asio = boost::asio;

namespace erl::detail {
namespace {

class receive_op;

// The wake-up a waiting receive leaves in process::extras::waiters. A named type, so a receive that
// finishes without being woken (timeout, cancel) can find and remove its own entry: an idle
// mailbox polled with short timeouts would otherwise collect one entry per receive.
struct receive_waiter {
    std::weak_ptr<receive_op> op;
    void operator()() const;
};

class receive_op : public std::enable_shared_from_this<receive_op> {
  public:
    using done_fn = std::function<void(error_code, term)>;

    receive_op(const std::shared_ptr<process>& p, std::function<bool(const term&)> pred,
               std::chrono::milliseconds timeout)
        : proc_(p), pred_(std::move(pred)), timeout_(timeout) {
        if (timeout_ != infinity) timer_.emplace(p->node->ioc());
    }

    void start(done_fn done) {
        {
            std::unique_lock lk(mu_);
            done_ = std::move(done);
            self_ = shared_from_this();  // until finished
            if (cancelled_)
                return finish_locked(lk, make_error_code(asio::error::operation_aborted), {});
            if (timer_) {
                timer_->expires_after(timeout_);
                timer_->async_wait([w = weak_from_this()](error_code ec) {
                    if (ec) return;
                    if (auto o = w.lock()) o->on_deadline();
                });
            }
        }
        poll();
    }

    // A receive cancelled before it took a message has consumed nothing: any type applies.
    static constexpr asio::cancellation_type cancellation = asio::cancellation_type::terminal |
                                                            asio::cancellation_type::partial |
                                                            asio::cancellation_type::total;
    void cancel() {
        {
            std::lock_guard lk(mu_);
            cancelled_ = true;  // before start(): start finishes at once
        }
        finish_with(make_error_code(asio::error::operation_aborted));
    }

    // A message arrived or the process exited: scan again, or wait again.
    void poll() {
        std::unique_lock lk(mu_);
        if (!done_) return;
        auto p = proc_.lock();
        if (!p) return finish_locked(lk, make_error_code(errc::exited), {});
        std::unique_lock plk(p->mu);
        if (auto t = take(*p)) {
            plk.unlock();
            return finish_locked(lk, {}, std::move(*t));
        }
        if (p->exited) {
            plk.unlock();
            return finish_locked(lk, make_error_code(errc::exited), {});
        }
        if (!waiting_) {  // one entry at a time: a wake-up takes the whole list
            p->more_locked().waiters.push_back(receive_waiter{weak_from_this()});
            waiting_ = true;
        }
    }

    void woken() {
        {
            std::lock_guard lk(mu_);
            waiting_ = false;
        }
        poll();
    }

  private:
    std::optional<term> take(process& p) {
        if (!pred_) {
            auto all = [](const term&) { return true; };
            return cursor_.take(p, all);
        }
        return cursor_.take(p, pred_);
    }

    void on_deadline() {
        std::unique_lock lk(mu_);
        if (!done_) return;
        // A last look at what arrived meanwhile.
        if (auto p = proc_.lock()) {
            std::unique_lock plk(p->mu);
            if (auto t = take(*p)) {
                plk.unlock();
                return finish_locked(lk, {}, std::move(*t));
            }
        }
        finish_locked(lk, make_error_code(errc::timeout), {});
    }

    void finish_with(error_code ec) {
        std::unique_lock lk(mu_);
        if (done_) finish_locked(lk, ec, {});
    }

    // With mu_ held (released here): the result goes to done_ exactly once.
    void finish_locked(std::unique_lock<std::mutex>& lk, error_code ec, term msg) {
        done_fn done = std::move(done_);
        done_ = nullptr;
        auto keep = std::move(self_);  // `this` may go when this function returns
        if (timer_) timer_->cancel();
        if (waiting_) {
            if (auto p = proc_.lock()) {
                std::lock_guard plk(p->mu);
                const receive_op* self = this;
                if (p->more)
                    p->more->waiters.remove_if([self](const std::function<void()>& f) {
                        auto* w = f.target<receive_waiter>();
                        return w && w->op.lock().get() == self;
                    });
            }
            waiting_ = false;
        }
        lk.unlock();
        done(ec, std::move(msg));
    }

    std::mutex mu_;  // before process::mu
    std::weak_ptr<process> proc_;
    std::function<bool(const term&)> pred_;
    std::chrono::milliseconds timeout_;
    std::optional<asio::steady_timer> timer_;  // only with a finite timeout; used under mu_
    receive_cursor cursor_;                    // under mu_ and the process's mu
    done_fn done_;                             // null once finished
    std::shared_ptr<receive_op> self_;         // keeps the operation alive until it finishes
    bool waiting_ = false;                     // an entry of ours is in process::extras::waiters
    bool cancelled_ = false;
};

void receive_waiter::operator()() const {
    if (auto o = op.lock()) o->woken();
}

}  // namespace

std::shared_ptr<any_receive_op> make_receive_op(const std::shared_ptr<process>& p,
                                                std::function<bool(const term&)> pred,
                                                std::chrono::milliseconds timeout) {
    return std::make_shared<op_ref<any_receive_op, receive_op>>(
        std::make_shared<receive_op>(p, std::move(pred), timeout));
}
}  // namespace erl::detail

namespace erl {

void mailbox::initiate_receive(const std::shared_ptr<detail::process>& p,
                               std::function<bool(const term&)> pred,
                               std::chrono::milliseconds timeout, detail::term_handler handler) {
    auto op = std::make_shared<detail::receive_op>(p, std::move(pred), timeout);
    detail::launch(*p->node, op, std::move(handler));
}

}  // namespace erl
