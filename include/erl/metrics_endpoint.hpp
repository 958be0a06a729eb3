// erl::metrics_endpoint — a small HTTP server for a Prometheus scraper.
//
//   GET /metrics  ->  200, Content-Type: text/plain; version=0.0.4, body = render()
//   HEAD          ->  the same without the body; other paths 404, other methods 405,
//                     a malformed or oversized request 400 and the connection is closed.
//
// It runs on the executor it is given (e.g. erl::node::executor()), serialized on a strand of
// its own, and is bounded: at most max_connections clients at once (further ones are closed on
// accept), request headers up to 8 KiB, and a client has request_timeout to send each request.
//
// Thread safety: start/stop/port may be called from any thread. `render` is called on the
// executor's threads, one call at a time; after stop() returns it is never called again.
#pragma once

#include <erl/error.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace erl {

struct metrics_endpoint_options {
    std::string address = "127.0.0.1";  // listen address; "0.0.0.0" for every interface
    std::uint16_t port = 0;             // 0: any free port (see port())
    std::string path = "/metrics";
    std::size_t max_connections = 16;
    std::chrono::milliseconds request_timeout{5'000};
};

class metrics_endpoint {
  public:
    // Listens and serves until stop() or destruction. Errors are Asio's, as the socket calls
    // return them: an address that does not parse, a port that cannot be bound.
    static result<metrics_endpoint> start(boost::asio::any_io_executor ex,
                                          metrics_endpoint_options opts,
                                          std::function<std::string()> render);

    metrics_endpoint(metrics_endpoint&&) noexcept;
    metrics_endpoint& operator=(metrics_endpoint&&) noexcept;
    ~metrics_endpoint();  // stop()

    std::uint16_t port() const noexcept;
    // Closes the listening socket and every client connection. Idempotent.
    void stop();

    struct impl;

  private:
    explicit metrics_endpoint(std::shared_ptr<impl> p) noexcept;
    std::shared_ptr<impl> impl_;
};

}  // namespace erl
