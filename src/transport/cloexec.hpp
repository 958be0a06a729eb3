// Sockets opened close-on-exec (SOCK_CLOEXEC), so that a program that forks and execs does not
// hand the node's sockets (listener, distribution connections, EPMD) to the child. Asio opens
// sockets with socket(2) and accept(2), which leave FD_CLOEXEC unset; setting it afterwards
// would leave a window in which a fork on another thread inherits the descriptor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace erl::detail {

// (Re)opens `s` (a socket or an acceptor) for `protocol` on a close-on-exec descriptor.
template <class Socket>
boost::system::error_code open_cloexec(Socket& s, const boost::asio::ip::tcp& protocol) {
    boost::system::error_code ec;
    if (s.is_open()) s.close(ec);
    const int fd = ::socket(protocol.family(), protocol.type() | SOCK_CLOEXEC, protocol.protocol());
    if (fd < 0) return {errno, boost::system::system_category()};
    s.assign(protocol, fd, ec);
    if (ec) ::close(fd);
    return ec;
}

// Connects `s` to the first of `endpoints` (resolver results or endpoints) that accepts, each
// attempt on a fresh close-on-exec socket (asio::async_connect would reopen it without).
template <class Endpoints>
boost::asio::awaitable<boost::system::error_code> async_connect_cloexec(
    boost::asio::ip::tcp::socket& s, const Endpoints& endpoints) {
    boost::system::error_code ec = boost::asio::error::host_not_found;
    for (const auto& entry : endpoints) {
        const boost::asio::ip::tcp::endpoint ep = entry;
        ec = open_cloexec(s, ep.protocol());
        if (ec) continue;
        co_await s.async_connect(ep, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        if (!ec) co_return ec;
        boost::system::error_code ignored;
        s.close(ignored);
    }
    co_return ec;
}

// The next connection on `a` as a close-on-exec socket, with accept4(2) once the listener is
// readable (the listener is switched to non-blocking, so a connection that went away
// meanwhile leaves nothing to block on).
inline boost::asio::awaitable<boost::system::error_code> async_accept_cloexec(
    boost::asio::ip::tcp::acceptor& a, boost::asio::ip::tcp::socket& s) {
    boost::system::error_code ec;
    a.non_blocking(true, ec);
    if (ec) co_return ec;
    for (;;) {
        co_await a.async_wait(boost::asio::ip::tcp::acceptor::wait_read,
                              boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        if (ec) co_return ec;
        const int fd = ::accept4(a.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            const auto protocol = a.local_endpoint(ec).protocol();
            if (!ec) s.assign(protocol, fd, ec);
            if (ec) ::close(fd);
            co_return ec;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
            continue;
        co_return boost::system::error_code(errno, boost::system::system_category());
    }
}

}  // namespace erl::detail
