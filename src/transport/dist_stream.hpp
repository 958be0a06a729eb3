// The byte stream under one distribution connection: a plain TCP socket, or TLS over it
// (OTP's inet_tls_dist: TCP connect, TLS handshake at once with no plaintext preamble, then
// the distribution handshake with 4-byte lengths and the usual 4-byte frames).
//
// One type for both, so the connection code (handshake driver, reader loop, batched writer,
// ticks) is the same for TCP and TLS. All operations must run on the executor the stream was
// made with (the connection's strand): an ssl::stream allows one read and one write in flight
// at a time, serialized by that strand.
#pragma once

#include <erl/error.hpp>
#include <erl/node.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <string>

namespace erl::detail {

// Server and client TLS contexts built from tls_options (certificates loaded once per node).
struct tls_contexts {
    tls_contexts();
    boost::asio::ssl::context server;
    boost::asio::ssl::context client;
    tls_options opts;
};

// Loads certificates and keys; on failure returns errc::tls_failed and sets `why`.
result<std::shared_ptr<tls_contexts>> make_tls_contexts(const tls_options& o, std::string& why);

// Text for a failed TLS operation: OpenSSL's reason plus, when certificate verification
// failed, the verifier's reason ("certificate verify failed: unable to get local issuer
// certificate").
std::string describe_tls_error(const error_code& ec, SSL* ssl);

class dist_stream {
  public:
    using tcp = boost::asio::ip::tcp;
    using executor_type = tcp::socket::executor_type;

    template <class Executor>
    dist_stream(const Executor& ex, std::shared_ptr<tls_contexts> tls, bool server)
        : sock_(ex), tls_ctx_(std::move(tls)) {
        if (tls_ctx_)
            tls_ = std::make_unique<boost::asio::ssl::stream<tcp::socket&>>(
                sock_, server ? tls_ctx_->server : tls_ctx_->client);
    }

    tcp::socket& socket() noexcept { return sock_; }
    bool is_tls() const noexcept { return tls_ != nullptr; }

    // Connecting side: the host the certificate must name (when verify_host_name) and the
    // SNI sent in the ClientHello (for names that are not IP addresses).
    void set_peer_host(const std::string& host);

    // Runs the TLS handshake (no-op for TCP). Returns a readable reason in `why` on failure.
    boost::asio::awaitable<error_code> async_start(bool server, std::string& why);

    template <class Buffers, class Token>
    auto async_read_some(const Buffers& b, Token&& token) {
        if (tls_) return tls_->async_read_some(b, std::forward<Token>(token));
        return sock_.async_read_some(b, std::forward<Token>(token));
    }

    template <class Buffers, class Token>
    auto async_write(const Buffers& b, Token&& token) {
        if (tls_) return boost::asio::async_write(*tls_, b, std::forward<Token>(token));
        return boost::asio::async_write(sock_, b, std::forward<Token>(token));
    }

    // Closes the TCP socket (no TLS close_notify: a closing distribution connection does not
    // wait for its peer, and the peer sees the TCP close either way).
    void close() noexcept;

  private:
    tcp::socket sock_;
    std::shared_ptr<tls_contexts> tls_ctx_;
    std::unique_ptr<boost::asio::ssl::stream<tcp::socket&>> tls_;
};

}  // namespace erl::detail
