// The HTTP side of the metrics endpoint: Boost.Beast on a strand of the caller's executor.
#include <erl/metrics_endpoint.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "transport/cloexec.hpp"

#include <list>
#include <mutex>

namespace erl {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct metrics_endpoint::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, metrics_endpoint_options o, std::function<std::string()> r)
        : strand(asio::make_strand(ex)),
          acceptor(strand),
          opts(std::move(o)),
          render(std::move(r)) {}

    asio::strand<asio::any_io_executor> strand;
    tcp::acceptor acceptor;
    const metrics_endpoint_options opts;
    std::uint16_t port = 0;

    // render() runs under render_mu; stop() takes it too, so once stop() returns no render is
    // running or will start.
    std::mutex render_mu;
    std::function<std::string()> render;
    bool stopped = false;  // under render_mu

    // On the strand: client connections being served (counted from accept, so the bound holds
    // even before a new client's coroutine has started) and their streams, for stop().
    std::size_t active = 0;
    std::list<boost::beast::tcp_stream*> clients;
    bool closed = false;  // set on the strand by stop(): a client accepted before it is dropped

    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(tcp::socket sock);
    http::response<http::string_body> answer(const http::request<http::empty_body>& req);
    std::string render_now();
};

std::string metrics_endpoint::impl::render_now() {
    std::lock_guard lk(render_mu);
    if (stopped) return {};
    return render();
}

http::response<http::string_body> metrics_endpoint::impl::answer(
    const http::request<http::empty_body>& req) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "erlcpp");
    const bool head = req.method() == http::verb::head;
    if (req.method() != http::verb::get && !head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain");
        res.body() = "method not allowed\n";
    } else if (std::string_view path = req.target(); path.substr(0, path.find('?')) != opts.path) {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain");
        res.body() = "not found\n";
    } else {
        res.result(http::status::ok);
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = render_now();
    }
    res.prepare_payload();
    if (head) res.body().clear();  // Content-Length stays that of the GET answer
    return res;
}

asio::awaitable<void> metrics_endpoint::impl::serve(tcp::socket sock) {
    auto self = shared_from_this();
    if (closed) {
        --active;
        co_return;
    }
    boost::beast::tcp_stream stream(std::move(sock));
    clients.push_front(&stream);
    const auto me = clients.begin();
    boost::beast::flat_buffer buf(8192);
    for (;;) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(8192);
        parser.body_limit(0);  // a scrape carries no body
        stream.expires_after(opts.request_timeout);
        boost::system::error_code ec;
        co_await http::async_read(stream, buf, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
            ec == boost::beast::error::timeout || ec == asio::error::connection_reset) {
            break;
        }
        if (ec) {
            http::response<http::string_body> bad{http::status::bad_request, 11};
            bad.set(http::field::content_type, "text/plain");
            bad.body() = "bad request\n";
            bad.keep_alive(false);
            bad.prepare_payload();
            stream.expires_after(opts.request_timeout);
            co_await http::async_write(stream, bad, asio::redirect_error(asio::use_awaitable, ec));
            break;
        }
        auto res = answer(parser.get());
        const bool keep = res.keep_alive();
        stream.expires_after(opts.request_timeout);
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !keep) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    clients.erase(me);
    --active;
}

asio::awaitable<void> metrics_endpoint::impl::accept_loop() {
    auto self = shared_from_this();
    for (;;) {
        boost::system::error_code ec;
        // Close-on-exec: a listening socket held by a child the application forks and execs
        // would keep accepting (into nowhere) after stop() closed ours.
        tcp::socket sock(strand);
        ec = co_await detail::async_accept_cloexec(acceptor, sock);
        if (ec == asio::error::operation_aborted || closed) break;
        if (ec) continue;  // e.g. the client reset before accept completed
        if (active >= opts.max_connections) {
            sock.close(ec);  // bounded: a flood of idle clients cannot take more
            continue;
        }
        ++active;
        asio::co_spawn(strand, serve(std::move(sock)), asio::detached);
    }
}

result<metrics_endpoint> metrics_endpoint::start(asio::any_io_executor ex,
                                                 metrics_endpoint_options opts,
                                                 std::function<std::string()> render) {
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(opts.address, ec);
    if (ec) return ec;
    auto p = std::make_shared<impl>(std::move(ex), std::move(opts), std::move(render));
    const tcp::endpoint ep(addr, p->opts.port);
    ec = detail::open_cloexec(p->acceptor, ep.protocol());
    if (!ec) p->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) p->acceptor.bind(ep, ec);
    if (!ec) p->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return ec;
    p->port = p->acceptor.local_endpoint().port();
    asio::co_spawn(p->strand, p->accept_loop(), asio::detached);
    return metrics_endpoint(std::move(p));
}

metrics_endpoint::metrics_endpoint(std::shared_ptr<impl> p) noexcept : impl_(std::move(p)) {}
metrics_endpoint::metrics_endpoint(metrics_endpoint&&) noexcept = default;
metrics_endpoint& metrics_endpoint::operator=(metrics_endpoint&& o) noexcept {
    if (this != &o) {
        stop();
        impl_ = std::move(o.impl_);
    }
    return *this;
}
metrics_endpoint::~metrics_endpoint() {
    stop();
}

std::uint16_t metrics_endpoint::port() const noexcept {
    return impl_ ? impl_->port : 0;
}

void metrics_endpoint::stop() {
    if (!impl_) return;
    {
        std::lock_guard lk(impl_->render_mu);
        if (impl_->stopped) return;
        impl_->stopped = true;
    }
    // Sockets are touched on the strand only; the coroutines end as their operations abort.
    asio::post(impl_->strand, [p = impl_] {
        boost::system::error_code ec;
        p->closed = true;
        p->acceptor.close(ec);
        for (auto* s : p->clients)
            s->socket().close(ec);
    });
}

}  // namespace erl
