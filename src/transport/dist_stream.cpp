#include "transport/dist_stream.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

namespace erl::detail {

tls_contexts::tls_contexts() : server(ssl::context::tls_server), client(ssl::context::tls_client) {}

namespace {

// OTP 25 speaks TLS 1.2 and 1.3 for distribution; older versions are refused on both sides.
constexpr auto tls_ctx_options = ssl::context::default_workarounds | ssl::context::no_sslv2 |
                                 ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                                 ssl::context::no_tlsv1_1 | ssl::context::single_dh_use;

// False with `why` set when loading the TLS `what` from `file` failed with `ec`.
bool loaded(const error_code& ec, const char* what, const std::string& file, std::string& why) {
    if (!ec) return true;
    why = std::string("cannot load TLS ") + what + " " + file + ": " + ec.message();
    return false;
}

bool load_identity(ssl::context& ctx, const tls_options& o, std::string& why) {
    error_code ec;
    if (!o.cert_file.empty()) {
        ctx.use_certificate_chain_file(o.cert_file, ec);
        if (!loaded(ec, "certificate", o.cert_file, why)) return false;
    }
    if (!o.key_file.empty()) {
        ctx.use_private_key_file(o.key_file, ssl::context::pem, ec);
        if (!loaded(ec, "private key", o.key_file, why)) return false;
        if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
            why = "TLS private key " + o.key_file + " does not match certificate " + o.cert_file;
            return false;
        }
    }
    if (!o.ca_file.empty()) {
        ctx.load_verify_file(o.ca_file, ec);
        if (!loaded(ec, "CA file", o.ca_file, why)) return false;
    }
    return true;
}

}  // namespace

result<std::shared_ptr<tls_contexts>> make_tls_contexts(const tls_options& o, std::string& why) {
    auto t = std::make_shared<tls_contexts>();
    t->opts = o;
    if (o.cert_file.empty() || o.key_file.empty()) {
        // inet_tls_dist needs a server certificate: every node accepts connections.
        why = "TLS distribution needs tls.cert_file and tls.key_file";
        return make_error_code(errc::tls_failed);
    }
    if (o.verify_peer && o.ca_file.empty()) {
        why = "tls.verify_peer needs tls.ca_file";
        return make_error_code(errc::tls_failed);
    }
    for (auto* ctx : {&t->server, &t->client}) {
        ctx->set_options(tls_ctx_options);
        if (!load_identity(*ctx, o, why)) return make_error_code(errc::tls_failed);
    }
    // Accepting side (ssl verify_peer / fail_if_no_peer_cert): ask for a client certificate.
    int server_mode = ssl::verify_none;
    if (o.verify_peer) {
        server_mode = ssl::verify_peer;
        if (o.fail_if_no_peer_cert) server_mode |= ssl::verify_fail_if_no_peer_cert;
    }
    t->server.set_verify_mode(server_mode);
    t->client.set_verify_mode(o.verify_peer ? ssl::verify_peer : ssl::verify_none);
    return t;
}

std::string describe_tls_error(const error_code& ec, SSL* s) {
    std::string out = ec.message();
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated)
        out = "peer closed the connection during TLS";
    if (s) {
        long v = SSL_get_verify_result(s);
        if (v != X509_V_OK) {
            out += std::string(" (certificate verify failed: ") + X509_verify_cert_error_string(v) +
                   ")";
        }
    }
    return out;
}

void dist_stream::set_peer_host(const std::string& host) {
    if (!tls_) return;
    error_code ec;
    asio::ip::make_address(host, ec);
    if (ec) SSL_set_tlsext_host_name(tls_->native_handle(), host.c_str());  // SNI: names only
    if (tls_ctx_->opts.verify_peer && tls_ctx_->opts.verify_host_name)
        tls_->set_verify_callback(ssl::host_name_verification(host), ec);
}

asio::awaitable<error_code> dist_stream::async_start(bool server, std::string& why) {
    if (!tls_) co_return error_code{};
    error_code ec;
    co_await tls_->async_handshake(server ? ssl::stream_base::server : ssl::stream_base::client,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        why = "TLS handshake failed: " + describe_tls_error(ec, tls_->native_handle());
        co_return make_error_code(errc::tls_failed);
    }
    co_return error_code{};
}

void dist_stream::close() noexcept {
    error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
}

}  // namespace erl::detail
