// Selective receive over a process's queue (Erlang reference manual, "receive"): the first
// message a predicate accepts is taken, the others stay queued in order. One scan position
// per waiting receiver, so a message it rejected is not looked at again (unless the queue was
// flushed or cleared meanwhile: process::queue_epoch says so). Shared by the blocking receive
// (condition variable) and the asynchronous one (wake-up callbacks).
#pragma once

#include <erl/term.hpp>

#include "node/process.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

namespace erl::detail {

class receive_cursor {
  public:
    // With p.mu held: removes and returns the first message from the scan position on that
    // pred accepts; nullopt if none (the position then is the end of the queue).
    template <class Pred>
    std::optional<term> take(process& p, Pred& pred) {
        if (p.queue_epoch != epoch_) {  // flushed or cleared meanwhile: positions are stale
            epoch_ = p.queue_epoch;
            scanned_ = 0;
        }
        for (; scanned_ < p.queue.size(); ++scanned_)
            if (pred(std::as_const(p.queue[scanned_]))) return p.queue.take(scanned_);
        return std::nullopt;
    }

  private:
    std::size_t scanned_ = 0;
    std::uint64_t epoch_ = 0;
};

}  // namespace erl::detail
