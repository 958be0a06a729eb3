// Test helper shared by the unit and interop tests of the completion-token API.
#pragma once

#include <future>
#include <memory>
#include <tuple>
#include <utility>

namespace erl::test {

// A completion handler that hands an operation's arguments to a future (Boost 1.81's use_future
// does not combine with as_tuple, and drops the error code of a (error_code, T) signature).
template <class... Args>
struct future_handler {
    std::shared_ptr<std::promise<std::tuple<Args...>>> p;
    void operator()(Args... a) const { p->set_value(std::make_tuple(std::move(a)...)); }
};

// The handler and the future its call fills: auto [h, f] = tuple_future<error_code, term>().
template <class... Args>
std::pair<future_handler<Args...>, std::future<std::tuple<Args...>>> tuple_future() {
    auto p = std::make_shared<std::promise<std::tuple<Args...>>>();
    auto f = p->get_future();
    return {future_handler<Args...>{p}, std::move(f)};
}

}  // namespace erl::test
