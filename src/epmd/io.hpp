// Small Asio helpers shared by the EPMD client, server and start-up code.
#pragma once

#include <erl/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <string>

namespace erl::epmd::detail {

// Completion token: errors are returned as values, never thrown (also on cancellation).
inline constexpr auto as_tuple_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

// Runs `op` under a deadline; when the timer fires first, op is cancelled (its pending I/O
// completes with operation_aborted) and errc::timeout is returned.
template <class T>
boost::asio::awaitable<erl::result<T>> with_timeout(boost::asio::awaitable<erl::result<T>> op,
                                                    std::chrono::milliseconds timeout) {
    using namespace boost::asio::experimental::awaitable_operators;
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, timeout);
    auto r = co_await (std::move(op) || timer.async_wait(as_tuple_awaitable));
    if (r.index() == 0) co_return std::move(std::get<0>(r));
    co_return erl::make_error_code(erl::errc::timeout);
}

std::uint16_t effective_port(std::uint16_t port);  // 0 -> default_port()

boost::asio::awaitable<erl::result<boost::asio::ip::tcp::socket>> async_connect_epmd(
    std::string host, std::uint16_t port);

}  // namespace erl::epmd::detail
