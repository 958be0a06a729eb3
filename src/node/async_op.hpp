// The pieces every asynchronous operation of the runtime shares: delivering the result to the
// caller's completion handler (once, on the handler's associated executor, the node's executor
// when it has none), hooking the handler's cancellation slot to the operation, and the
// blocking form that waits for the same operation on the calling thread.
//
// An operation is an object with `start(done)` and `cancel()`: `done` is called exactly once,
// from whichever thread finishes it (an I/O thread delivering a message, a timer, the thread
// cancelling it), with no lock of the runtime held. cancel() finishes it with
// boost::asio::error::operation_aborted unless it has finished already.
#pragma once

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>

#include <functional>
#include <future>
#include <memory>
#include <tuple>
#include <utility>

namespace erl::detail {

// Hands the operation's result to `handler` on its associated executor (never inline: the
// caller may still be inside the initiating function), and lets terminal cancellation reach
// the operation through the handler's cancellation slot (Asio's per-operation cancellation:
// the slot is assigned on the initiating thread and cleared on the handler's executor just
// before the handler runs, so emit and clear never race).
template <class Op, class... Args>
void launch(const std::shared_ptr<Op>& op,
            boost::asio::any_completion_handler<void(Args...)> handler,
            const boost::asio::any_io_executor& fallback) {
    namespace asio = boost::asio;
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) {
        // The slot holds the operation until the handler runs (the slot is cleared then):
        // an operation nothing else refers to (a wrapper around another one) stays
        // cancellable.
        slot.assign([op](asio::cancellation_type t) {
            if ((t & asio::cancellation_type::terminal) == asio::cancellation_type::none) return;
            op->cancel();
        });
    }
    auto ex = asio::get_associated_executor(handler, asio::any_completion_executor(fallback));
    auto h = std::make_shared<asio::any_completion_handler<void(Args...)>>(std::move(handler));
    op->start([h, ex, slot](Args... args) mutable {
        // As asio::post does for an I/O executor (any_completion_executor can only prefer
        // blocking.never, so post() itself does not take it).
        asio::prefer(ex, asio::execution::blocking.never, asio::execution::relationship.fork)
            .execute([h, slot, t = std::make_tuple(std::move(args)...)]() mutable {
                if (slot.is_connected()) slot.clear();
                std::apply([&](auto&&... a) { std::move (*h)(std::move(a)...); }, std::move(t));
            });
    });
}

// The blocking form of an operation: starts it and waits on this thread for its result (no
// hop through an executor). Must not run on a thread the operation needs (an I/O thread of a
// node with one thread).
template <class Op, class... Args>
std::tuple<Args...> run_blocking(const std::shared_ptr<Op>& op) {
    std::promise<std::tuple<Args...>> p;
    auto f = p.get_future();
    op->start([&p](Args... args) { p.set_value(std::make_tuple(std::move(args)...)); });
    return f.get();
}

// An operation behind an abstract interface `Base` (virtual start(done) and cancel()), for
// services that compose operations of several kinds without knowing their types.
template <class Base, class Op>
class op_ref final : public Base {
  public:
    explicit op_ref(std::shared_ptr<Op> op) : op_(std::move(op)) {}
    void start(typename Base::done_fn done) override { op_->start(std::move(done)); }
    void cancel() override { op_->cancel(); }

  private:
    std::shared_ptr<Op> op_;
};

}  // namespace erl::detail
