// A runtime operation behind an abstract interface (the shape of node/async_op.hpp: start(done)
// once, cancel() any time, `done` on whichever thread finishes it), for services that compose
// operations of several kinds without knowing their types.
#pragma once

#include <erl/error.hpp>

#include <functional>

namespace erl::detail {

// An operation whose result is an error_code and `Result...`.
template <class... Result>
class any_op {
  public:
    using done_fn = std::function<void(error_code, Result...)>;
    virtual ~any_op() = default;
    virtual void start(done_fn done) = 0;
    virtual void cancel() = 0;
};

}  // namespace erl::detail
