// EPMD client: ALIVE2 registration kept open for the node's lifetime, PORT_PLEASE2, NAMES and
// raw requests for the tools. Each operation runs under one overall deadline.
#include <erl/epmd.hpp>

#include "epmd/codec.hpp"
#include "epmd/io.hpp"
#include "transport/cloexec.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <span>

namespace erl::epmd {

namespace asio = boost::asio;
using asio::ip::tcp;

std::uint16_t default_port() {
    // erl_epmd:epmd_port/0 reads ERL_EPMD_PORT; OTP's epmd does the same (get_port_no).
    if (const char* env = std::getenv("ERL_EPMD_PORT")) {
        std::string_view s(env);
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && p == s.data() + s.size() && v >= 1 && v <= 65535)
            return static_cast<std::uint16_t>(v);
    }
    return 4369;
}

namespace detail {

std::uint16_t effective_port(std::uint16_t port) {
    return port ? port : default_port();
}

asio::awaitable<erl::result<tcp::socket>> async_connect_epmd(std::string host, std::uint16_t port) {
    auto ex = co_await asio::this_coro::executor;
    if (host.empty()) host = "127.0.0.1";
    port = effective_port(port);
    tcp::socket sock(ex);
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (!ec) {
        const tcp::endpoint ep(addr, port);
        if (co_await erl::detail::async_connect_cloexec(sock, std::span(&ep, 1)))
            co_return erl::make_error_code(erl::errc::epmd_unreachable);
    } else {
        tcp::resolver resolver(ex);
        auto [rec, results] =
            co_await resolver.async_resolve(host, std::to_string(port), as_tuple_awaitable);
        if (rec) co_return erl::make_error_code(erl::errc::epmd_unreachable);
        if (co_await erl::detail::async_connect_cloexec(sock, results))
            co_return erl::make_error_code(erl::errc::epmd_unreachable);
    }
    sock.set_option(tcp::no_delay(true), ec);
    co_return std::move(sock);
}

namespace {

asio::awaitable<erl::error_code> send_all(tcp::socket& sock, const bytes& data) {
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(data), as_tuple_awaitable);
    if (ec) co_return erl::make_error_code(erl::errc::epmd_unreachable);
    co_return erl::error_code{};
}

// Sends `request` and feeds the reply to `reader` until it is complete or failed; a read
// error before that gives read_error(ec).
template <class Reader, class ReadError>
asio::awaitable<erl::error_code> exchange(tcp::socket& sock, const bytes& request, Reader& reader,
                                          ReadError read_error) {
    if (auto ec = co_await send_all(sock, request)) co_return ec;
    std::array<std::uint8_t, 512> buf;
    while (reader.state() == read_state::need_more) {
        auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), as_tuple_awaitable);
        if (ec) co_return read_error(ec);
        reader.feed(std::span<const std::uint8_t>(buf.data(), n));
    }
    if (reader.state() == read_state::failed) co_return reader.error();
    co_return erl::error_code{};
}

asio::awaitable<erl::result<registration>> do_register(std::string host, std::uint16_t port,
                                                       node_info info) {
    if (!valid_node_name(info.name)) co_return erl::make_error_code(erl::errc::bad_node_name);
    auto sock = co_await async_connect_epmd(std::move(host), port);
    if (!sock) co_return sock.error();
    alive2_reply_reader reader;
    // OTP's epmd closes without a reply for a malformed or non-local registration.
    if (auto ec = co_await exchange(*sock, encode_alive2_request(info), reader,
                                    [](const boost::system::error_code&) {
                                        return erl::make_error_code(erl::errc::epmd_refused);
                                    }))
        co_return ec;
    if (reader.value().result != 0) co_return erl::make_error_code(erl::errc::epmd_name_taken);
    co_return registration(std::move(*sock), reader.value().creation);
}

asio::awaitable<erl::result<node_info>> do_port_please(std::string host, std::uint16_t port,
                                                       std::string name) {
    auto sock = co_await async_connect_epmd(std::move(host), port);
    if (!sock) co_return sock.error();
    port2_reply_reader reader;
    if (auto ec = co_await exchange(*sock, encode_port_please2_request(name), reader,
                                    [](const boost::system::error_code& ec) {
                                        return erl::make_error_code(
                                            ec == asio::error::eof ? erl::errc::epmd_bad_reply
                                                                   : erl::errc::epmd_unreachable);
                                    }))
        co_return ec;
    co_return reader.value();
}

asio::awaitable<erl::result<std::string>> do_raw(std::string host, std::uint16_t port,
                                                 std::string body) {
    auto sock = co_await async_connect_epmd(std::move(host), port);
    if (!sock) co_return sock.error();
    if (auto ec = co_await send_all(*sock, frame_request(body))) co_return ec;
    std::string out;
    std::array<char, 4096> buf;
    for (;;) {
        auto [ec, n] = co_await sock->async_read_some(asio::buffer(buf), as_tuple_awaitable);
        out.append(buf.data(), n);
        if (ec == asio::error::eof || ec == asio::error::connection_reset) break;
        if (ec) co_return erl::make_error_code(erl::errc::epmd_unreachable);
        if (out.size() > names_reply_reader::max_size)
            co_return erl::make_error_code(erl::errc::epmd_bad_reply);
    }
    co_return out;
}

template <class T>
T run_blocking(asio::awaitable<T> (*make)(std::string, std::uint16_t, std::string,
                                          std::chrono::milliseconds),
               std::string host, std::uint16_t port, std::string arg,
               std::chrono::milliseconds timeout) {
    asio::io_context io;
    std::optional<T> out;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            out.emplace(co_await make(std::move(host), port, std::move(arg), timeout));
        },
        asio::detached);
    io.run();
    return std::move(*out);
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// registration

registration::registration(tcp::socket socket, std::uint32_t creation)
    : socket_(std::make_unique<tcp::socket>(std::move(socket))), creation_(creation) {}

registration::~registration() {
    close();
}

bool registration::is_open() const noexcept {
    return socket_ && socket_->is_open();
}

void registration::close() {
    if (socket_ && socket_->is_open()) {
        boost::system::error_code ec;
        socket_->shutdown(tcp::socket::shutdown_both, ec);
        socket_->close(ec);
    }
}

asio::awaitable<void> registration::async_wait_closed() {
    if (!is_open()) co_return;
    std::array<std::uint8_t, 16> buf;
    for (;;) {
        auto [ec, n] =
            co_await socket_->async_read_some(asio::buffer(buf), detail::as_tuple_awaitable);
        if (ec) co_return;
    }
}

// ---------------------------------------------------------------------------------------------
// public operations

asio::awaitable<erl::result<registration>> async_register(std::string host, std::uint16_t epmd_port,
                                                          node_info info,
                                                          std::chrono::milliseconds timeout) {
    co_return co_await detail::with_timeout(
        detail::do_register(std::move(host), epmd_port, std::move(info)), timeout);
}

asio::awaitable<erl::result<node_info>> async_port_please(std::string host, std::uint16_t epmd_port,
                                                          std::string name,
                                                          std::chrono::milliseconds timeout) {
    co_return co_await detail::with_timeout(
        detail::do_port_please(std::move(host), epmd_port, std::move(name)), timeout);
}

asio::awaitable<erl::result<std::string>> async_raw_request(std::string host,
                                                            std::uint16_t epmd_port,
                                                            std::string body,
                                                            std::chrono::milliseconds timeout) {
    co_return co_await detail::with_timeout(
        detail::do_raw(std::move(host), epmd_port, std::move(body)), timeout);
}

asio::awaitable<erl::result<std::vector<std::pair<std::string, std::uint16_t>>>> async_names(
    std::string host, std::uint16_t epmd_port, std::chrono::milliseconds timeout) {
    auto raw = co_await async_raw_request(std::move(host), epmd_port,
                                          std::string(1, char(detail::names_req)), timeout);
    if (!raw) co_return raw.error();
    detail::names_reply_reader reader;
    reader.feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(raw->data()),
                                              raw->size()));
    if (reader.finish() != detail::read_state::done) co_return reader.error();
    co_return reader.value();
}

erl::result<node_info> port_please(std::string host, std::uint16_t epmd_port, std::string name,
                                   std::chrono::milliseconds timeout) {
    return detail::run_blocking(&async_port_please, std::move(host), epmd_port, std::move(name),
                                timeout);
}

erl::result<std::string> raw_request(std::string host, std::uint16_t epmd_port, std::string body,
                                     std::chrono::milliseconds timeout) {
    return detail::run_blocking(&async_raw_request, std::move(host), epmd_port, std::move(body),
                                timeout);
}

erl::result<std::vector<std::pair<std::string, std::uint16_t>>> names(
    std::string host, std::uint16_t epmd_port, std::chrono::milliseconds timeout) {
    asio::io_context io;
    std::optional<erl::result<std::vector<std::pair<std::string, std::uint16_t>>>> out;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            out.emplace(co_await async_names(std::move(host), epmd_port, timeout));
        },
        asio::detached);
    io.run();
    return std::move(*out);
}

bool answers(std::uint16_t epmd_port, std::chrono::milliseconds timeout) {
    auto r = names("127.0.0.1", epmd_port, timeout);
    return r.has_value();
}

}  // namespace erl::epmd
