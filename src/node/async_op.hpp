// The pieces every asynchronous operation of the runtime shares: delivering the result to the
// caller's completion handler (once, on the handler's associated executor, the node's executor
// when it has none), hooking the handler's cancellation slot to the operation, ending the
// operation when the node stops, and the blocking form that waits for the same operation on
// the calling thread.
//
// An operation is an object with `start(done)` and `cancel()`: `done` is called exactly once,
// from whichever thread finishes it (an I/O thread delivering a message, a timer, the thread
// cancelling it), with no lock of the runtime held; its first argument is an error_code.
// cancel() finishes it with boost::asio::error::operation_aborted unless it has finished
// already. An operation may declare `static constexpr boost::asio::cancellation_type
// cancellation` (the types it acts on); without it, terminal and partial: a cancelled
// operation may have had effects (a request sent, a connection set up) but leaves the node in
// a defined state. One that can be cancelled without any effect (a receive before it took a
// message) adds total.
#pragma once

#include <erl/error.hpp>

#include "node/node_core.hpp"

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace erl::detail {

// The cancellation types `Op` acts on (see above).
template <class Op>
constexpr boost::asio::cancellation_type cancellation_of() {
    if constexpr (requires { Op::cancellation; })
        return Op::cancellation;
    else
        return boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial;
}

// True if `ex` runs its work on `ioc` (directly, through any_io_executor or a strand of
// either): the completions stop() waits for. Other executors are not known to run while the
// node stops, so it does not wait for them.
inline bool runs_on(const boost::asio::any_completion_executor& ex,
                    const boost::asio::io_context& ioc) {
    namespace asio = boost::asio;
    using io_ex = asio::io_context::executor_type;
    auto ctx = [](const asio::any_io_executor& e) -> const void* {
        return &asio::query(e, asio::execution::context);
    };
    const void* c = nullptr;
    if (auto* e = ex.target<io_ex>())
        c = &e->context();
    else if (auto* e = ex.target<asio::strand<io_ex>>())
        c = &e->get_inner_executor().context();
    else if (auto* e = ex.target<asio::any_io_executor>())
        c = ctx(*e);
    else if (auto* e = ex.target<asio::strand<asio::any_io_executor>>())
        c = ctx(e->get_inner_executor());
    return c == &ioc;
}

// An operation with abort(why): it gives its own outcome for being ended (a call's result
// saying why) where cancel() gives operation_aborted.
template <class Op>
concept abortable = requires(Op& op) {
    op.abort(error_code());
};

// Ends `op` for a stop of the node: abort(errc::shutting_down) where the operation gives its
// own outcome for that (a call's result saying the node stopped), else cancel(). Before
// start() too: start() then finishes at once.
template <class Op>
void end_for_stop(Op& op) {
    if constexpr (abortable<Op>)
        op.abort(make_error_code(errc::shutting_down));
    else
        op.cancel();
}

// An operation known to the node until it finishes: node_core::abort_async_ops (stop) ends it
// (end_for_stop), and its completion then reports errc::shutting_down instead of
// operation_aborted. One started while the node stops or after it stopped is ended before it
// starts (started_stopping).
class tracked_op {
  public:
    template <class Op>
    tracked_op(node_core& core, const std::shared_ptr<Op>& op) : reg_(core.async_ops) {
        std::lock_guard lk(reg_->mu);
        if (reg_->stopping) {
            by_stop_ = true;
            return;
        }
        id_ = ++reg_->next_id;
        // Held strongly: an operation nothing else refers to (a wrapper) stays cancellable.
        // The entry goes when the operation finishes.
        reg_->ops.emplace(id_, [this_op = op, flag = stop_flag_] {
            flag->store(true);
            end_for_stop(*this_op);
        });
    }
    bool started_stopping() const { return by_stop_; }
    // Called first thing in the operation's completion: forgets the operation; if stop ended
    // it, operation_aborted becomes shutting_down. `ours`: a completion for the node's
    // io_context. Returns true if it is queued there and stop() waits for it (finish the wait
    // with completion_guard); false if that context runs no more completions (the node is not
    // started, or stopped), so it must go elsewhere.
    bool finished(error_code& ec, bool ours) {
        bool queued = false;
        {
            std::lock_guard lk(reg_->mu);
            if (id_) reg_->ops.erase(id_);
            if (ours && reg_->io_runs) {
                ++reg_->completions;
                queued = true;
            }
        }
        if ((by_stop_ || stop_flag_->load()) && ec == boost::asio::error::operation_aborted)
            ec = make_error_code(errc::shutting_down);
        return queued;
    }
    const std::shared_ptr<node_core::async_registry>& registry() const { return reg_; }

  private:
    std::shared_ptr<node_core::async_registry> reg_;
    std::shared_ptr<std::atomic<bool>> stop_flag_ = std::make_shared<std::atomic<bool>>(false);
    std::uint64_t id_ = 0;
    bool by_stop_ = false;
};

// Held by a completion queued for the node's io_context: its destruction (after the handler
// ran, or with the queue of a stopped context) is what stop() waits for.
class completion_guard {
  public:
    explicit completion_guard(std::shared_ptr<node_core::async_registry> reg)
        : reg_(std::move(reg)) {}
    completion_guard(completion_guard&& o) noexcept : reg_(std::move(o.reg_)) {}
    completion_guard(const completion_guard&) = delete;
    completion_guard& operator=(const completion_guard&) = delete;
    ~completion_guard() {
        if (!reg_) return;
        std::lock_guard lk(reg_->mu);
        if (--reg_->completions == 0) reg_->cv.notify_all();
    }

  private:
    std::shared_ptr<node_core::async_registry> reg_;
};

// Hands the operation's result to `handler` on its associated executor (never inline: the
// caller may still be inside the initiating function), lets cancellation of the types the
// operation supports reach it through the handler's cancellation slot (Asio's per-operation
// cancellation: the slot is assigned on the initiating thread and cleared on the handler's
// executor just before the handler runs, so emit and clear never race), and ends it with
// errc::shutting_down if the node stops first (stop() returns once that completion has run
// on the node's io_context). Started on a node that is stopping or stopped, it ends at once
// with errc::shutting_down. A completion bound for the node's own io_context while no thread
// runs that (before start, after stop) runs on Asio's system executor instead.
template <class Op, class... Args>
void launch(node_core& core, const std::shared_ptr<Op>& op,
            boost::asio::any_completion_handler<void(Args...)> handler) {
    namespace asio = boost::asio;
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) {
        // The slot holds the operation until the handler runs (the slot is cleared then).
        slot.assign([op](asio::cancellation_type t) {
            if ((t & cancellation_of<Op>()) == asio::cancellation_type::none) return;
            op->cancel();
        });
    }
    auto ex = asio::get_associated_executor(
        handler, asio::any_completion_executor(core.ioc().get_executor()));
    const bool ours = runs_on(ex, core.ioc());
    auto track = std::make_shared<tracked_op>(core, op);
    auto h = std::make_shared<asio::any_completion_handler<void(Args...)>>(std::move(handler));
    if (track->started_stopping()) end_for_stop(*op);
    op->start([h, ex, slot, track, ours](Args... args) mutable {
        auto t = std::make_tuple(std::move(args)...);
        const bool queued = track->finished(std::get<0>(t), ours);
        auto run = [h, slot, t = std::move(t),
                    g = std::make_shared<completion_guard>(queued ? track->registry()
                                                                  : nullptr)]() mutable {
            if (slot.is_connected()) slot.clear();
            std::apply([&](auto&&... a) { std::move (*h)(std::move(a)...); }, std::move(t));
        };
        // As asio::post does for an I/O executor (any_completion_executor can only prefer
        // blocking.never, so post() itself does not take it).
        if (ours && !queued)
            asio::prefer(asio::system_executor(), asio::execution::blocking.never)
                .execute(std::move(run));
        else
            asio::prefer(ex, asio::execution::blocking.never, asio::execution::relationship.fork)
                .execute(std::move(run));
    });
}

// The blocking form of an operation: starts it and waits on this thread for its result (no
// hop through an executor); a stop of the node ends it with errc::shutting_down. Must not run
// on a thread the operation needs (an I/O thread of a node with one thread).
template <class Op, class... Args>
std::tuple<Args...> run_blocking(node_core& core, const std::shared_ptr<Op>& op) {
    std::promise<std::tuple<Args...>> p;
    auto f = p.get_future();
    auto track = std::make_shared<tracked_op>(core, op);
    if (track->started_stopping()) end_for_stop(*op);
    op->start([&p, track](Args... args) {
        auto t = std::make_tuple(std::move(args)...);
        track->finished(std::get<0>(t), false);
        p.set_value(std::move(t));
    });
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

// `Op` giving `Result` instead of what follows its error_code, `map` turning the one into the
// other (a form of an operation with a result of its own). abort() reaches `Op` if it has one.
template <class Op, class Result, auto map>
class mapped_op {
  public:
    using done_fn = std::function<void(error_code, Result)>;
    explicit mapped_op(std::shared_ptr<Op> op) : op_(std::move(op)) {}
    void start(done_fn done) {
        op_->start(
            [done = std::move(done)](error_code ec, auto... r) { done(ec, map(std::move(r)...)); });
    }
    void cancel() { op_->cancel(); }
    void abort(error_code why) requires abortable<Op> { op_->abort(why); }

  private:
    std::shared_ptr<Op> op_;
};

}  // namespace erl::detail
