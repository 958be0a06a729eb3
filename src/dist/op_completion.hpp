// The completion half the operations of src/dist share (the shape of node/async_op.hpp): the
// function start() was given, the operation kept alive until that function has run, and a
// cancel() that may come before start(). Guarded by the owning operation's mutex.
#pragma once

#include <functional>
#include <memory>
#include <utility>

namespace erl::detail {

template <class Op, class... Args>
class op_completion {
  public:
    using done_fn = std::function<void(Args...)>;

    // Stores `done` and holds `self` until take(); true if cancel() came first.
    bool begin(done_fn done, std::shared_ptr<Op> self) {
        done_ = std::move(done);
        self_ = std::move(self);
        return cancelled_;
    }
    void cancel() noexcept { cancelled_ = true; }
    bool cancelled() const noexcept { return cancelled_; }
    // The function to call, once (null when taken already); `keep` holds the operation until
    // the caller has called it.
    done_fn take(std::shared_ptr<Op>& keep) {
        keep = std::move(self_);
        return std::exchange(done_, nullptr);
    }

  private:
    done_fn done_;
    std::shared_ptr<Op> self_;
    bool cancelled_ = false;
};

}  // namespace erl::detail
