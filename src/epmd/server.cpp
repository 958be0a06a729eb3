// The embeddable epmd server. Request handling follows OTP's erts/epmd/src/epmd_srv.c
// (do_read/do_request): one request per connection, answered and closed, except ALIVE2 whose
// connection is the registration's lifetime.
#include <erl/epmd.hpp>

#include "epmd/codec.hpp"
#include "epmd/io.hpp"
#include "epmd/registry.hpp"
#include "transport/cloexec.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <set>
#include <unordered_map>

namespace erl::epmd {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace detail;

struct server::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, options o)
        : strand(asio::make_strand(ex)), opts(std::move(o)), reg(opts.debug ? 5 : 1000) {}

    asio::any_io_executor strand;
    options opts;
    mutable std::mutex mutex;  // guards reg for registered() from other threads
    registry reg;
    std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
    std::unordered_map<std::uint64_t, std::shared_ptr<tcp::socket>> conns;
    std::set<std::uint64_t> waiting;  // conns that have not sent a complete request (oldest first)
    std::uint64_t next_id = 1;
    std::uint16_t bound_port = 0;
    bool stopped = false;

    void log(int level, const char* fmt, ...) __attribute__((format(printf, 3, 4))) {
        if (opts.debug < level || (level == 0 && opts.debug == 0 && !opts.log_errors)) return;
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        std::time_t now = std::time(nullptr);
        char ts[64];
        std::strftime(ts, sizeof ts, "%a %b %e %H:%M:%S %Y", std::localtime(&now));
        std::fprintf(stderr, "epmd: %s: %s\r\n", ts, msg);
    }

    erl::error_code bind_all();
    asio::awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor);
    asio::awaitable<void> session(std::shared_ptr<tcp::socket> sock, std::uint64_t id);
    asio::awaitable<bool> reply(tcp::socket& sock, std::string_view data);
    void close_conn(std::uint64_t id);
    void do_stop();
    static bool is_local_peer(const tcp::socket& sock);
};

// epmd_srv.c conn_open: local = peer in 127.0.0.0/8 (or ::1), or peer address == our own
// address on that connection (a connection from the host's IP address).
bool server::impl::is_local_peer(const tcp::socket& sock) {
    boost::system::error_code ec1, ec2;
    auto peer = sock.remote_endpoint(ec1);
    auto self = sock.local_endpoint(ec2);
    if (ec1 || ec2) return false;
    auto a = peer.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    if (a.is_loopback()) return true;
    auto b = self.address();
    if (b.is_v6() && b.to_v6().is_v4_mapped())
        b = asio::ip::make_address_v4(asio::ip::v4_mapped, b.to_v6());
    return a == b;
}

erl::error_code server::impl::bind_all() {
    std::vector<std::pair<asio::ip::address, bool>> addrs;  // (address, required)
    if (opts.addresses.empty()) {
        // OTP's epmd binds INADDR_ANY (and in6addr_any, v6-only, where IPv6 exists).
        addrs.emplace_back(asio::ip::address_v4::any(), true);
        addrs.emplace_back(asio::ip::address_v6::any(), false);
    } else {
        bool have_loopback = false;
        for (auto& s : opts.addresses) {
            boost::system::error_code ec;
            auto a = asio::ip::make_address(s, ec);
            if (ec) return erl::make_error_code(erl::errc::epmd_bad_request);
            have_loopback |= a.is_loopback();
            addrs.emplace_back(a, true);
        }
        // epmd_srv.c run(): the loopback address is always added to an -address list.
        if (!have_loopback) addrs.emplace_back(asio::ip::address_v4::loopback(), true);
    }
    std::uint16_t port = opts.port;
    for (auto& [addr, required] : addrs) {
        auto acc = std::make_shared<tcp::acceptor>(strand);
        boost::system::error_code ec;
        tcp::endpoint ep(addr, port);
        ec = erl::detail::open_cloexec(*acc, ep.protocol());
        if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
        if (!ec) acc->bind(ep, ec);
        if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            if (required) {
                for (auto& a : acceptors)
                    a->close();
                acceptors.clear();
                return ec;
            }
            log(1, "could not listen on %s: %s", addr.to_string().c_str(), ec.message().c_str());
            continue;
        }
        if (port == 0) port = acc->local_endpoint().port();
        acceptors.push_back(std::move(acc));
    }
    bound_port = port;
    return {};
}

asio::awaitable<void> server::impl::accept_loop(std::shared_ptr<tcp::acceptor> acceptor) {
    auto self = shared_from_this();
    while (!stopped && acceptor->is_open()) {
        tcp::socket sock(strand);
        const auto ec = co_await erl::detail::async_accept_cloexec(*acceptor, sock);
        if (stopped) break;
        if (ec) {
            if (ec == asio::error::operation_aborted) break;
            // Out of descriptors and the like: back off instead of spinning.
            log(0, "error in accept: %s", ec.message().c_str());
            asio::steady_timer t(strand, std::chrono::milliseconds(100));
            co_await t.async_wait(as_tuple_awaitable);
            continue;
        }
        if (conns.size() >= opts.max_connections) {
            if (waiting.empty()) {
                log(0, "too many connections, closing a new one");
                boost::system::error_code ignore;
                sock.close(ignore);
                continue;
            }
            // Idle connections (no complete request yet) cannot lock out registrations and
            // lookups: the oldest gives way to the new one. OTP's epmd stops accepting instead
            // (new clients wait in the listen backlog until packet_timeout frees a slot).
            std::uint64_t oldest = *waiting.begin();
            log(0, "too many connections, closing the oldest idle one");
            close_conn(oldest);
            conns.erase(oldest);
            waiting.erase(waiting.begin());
        }
        auto id = next_id++;
        auto s = std::make_shared<tcp::socket>(std::move(sock));
        conns.emplace(id, s);
        waiting.insert(id);
        asio::co_spawn(strand, session(s, id), asio::detached);
    }
}

asio::awaitable<bool> server::impl::reply(tcp::socket& sock, std::string_view data) {
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(data), as_tuple_awaitable);
    if (ec) log(1, "failed to send reply: %s", ec.message().c_str());
    co_return !ec;
}

void server::impl::close_conn(std::uint64_t id) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    boost::system::error_code ec;
    it->second->shutdown(tcp::socket::shutdown_both, ec);
    it->second->close(ec);
}

asio::awaitable<void> server::impl::session(std::shared_ptr<tcp::socket> sock, std::uint64_t id) {
    using namespace asio::experimental::awaitable_operators;
    auto self = shared_from_this();
    const bool local = is_local_peer(*sock);
    log(2, local ? "Local peer connected" : "Non-local peer connected");

    struct cleanup {
        impl* s;
        std::uint64_t id;
        ~cleanup() {
            {
                std::lock_guard lock(s->mutex);
                if (s->reg.remove_by_conn(id))
                    s->log(1, "unregistering connection %llu", static_cast<unsigned long long>(id));
            }
            s->close_conn(id);
            s->conns.erase(id);
            s->waiting.erase(id);
        }
    } on_exit{this, id};

    request_reader reader;
    std::array<std::uint8_t, 1024> buf;
    asio::steady_timer timer(strand);
    std::size_t leftover = 0;
    // Read one request; a connection idle for packet_timeout is closed (epmd_srv.c run()).
    while (reader.state() == read_state::need_more) {
        timer.expires_after(opts.packet_timeout);
        auto r = co_await (sock->async_read_some(asio::buffer(buf), as_tuple_awaitable) ||
                           timer.async_wait(as_tuple_awaitable));
        if (r.index() == 1) {
            log(1, "closing because timed out on receive");
            co_return;
        }
        auto [ec, n] = std::get<0>(r);
        if (ec) {
            if (reader.buffered()) log(0, "got partial packet only (%zu bytes)", reader.buffered());
            co_return;
        }
        std::size_t used = reader.feed(std::span<const std::uint8_t>(buf.data(), n));
        leftover = n - used;
    }
    waiting.erase(id);
    if (reader.state() == read_state::failed) {
        log(0, "invalid request: %s", reader.error().message().c_str());
        co_return;
    }
    if (leftover) {
        // epmd_srv.c: "got %d bytes in packet, expected %d" — more than one request.
        log(0, "got more bytes than the request announced");
        co_return;
    }

    const request& req = reader.value();
    if (auto* a = std::get_if<alive2_request>(&req)) {
        log(1, "** got ALIVE2_REQ");
        if (!local) {
            log(0, "ALIVE2_REQ from non local address");
            co_return;
        }
        std::optional<std::uint32_t> creation;
        if (!alive2_acceptable(a->info)) {
            // epmd_srv.c node_reg2 refuses it; do_request answers with an error reply.
            log(0, "node name is too long or invalid (%zu bytes, extra %zu bytes)",
                a->info.name.size(), a->info.extra.size());
        } else {
            std::lock_guard lock(mutex);
            creation = reg.add(a->info, id);
            if (!creation) log(0, "node name already occupied %s", a->info.name.c_str());
        }
        auto out =
            encode_alive2_reply(creation.has_value(), creation.value_or(99), a->info.highest);
        if (!co_await reply(
                *sock, std::string_view(reinterpret_cast<const char*>(out.data()), out.size())))
            co_return;
        // OTP then keeps even a refused connection open (s->keep is set whatever node_reg2
        // said) until the client closes it; we close it, so refused requests cannot pin
        // connections. OTP's client closes it on an error reply anyway.
        if (!creation) co_return;
        log(1, "registering '%s:%u', port %u", a->info.name.c_str(), *creation, a->info.port);
        // The registration lives while the connection is open; EOF, an error or any further
        // byte ends it (epmd_srv.c do_read, s->keep).
        auto [ec, n] = co_await sock->async_read_some(asio::buffer(buf), as_tuple_awaitable);
        if (!ec) log(1, "got more than expected on ALIVE socket (%zu bytes)", n);
        co_return;
    }
    if (auto* p = std::get_if<port_please2_request>(&req)) {
        log(1, "** got PORT2_REQ");
        bytes out;
        {
            std::lock_guard lock(mutex);
            auto* e = reg.find(p->name);
            out = e ? encode_port2_reply(e->info) : encode_port2_not_found();
        }
        co_await reply(*sock,
                       std::string_view(reinterpret_cast<const char*>(out.data()), out.size()));
        co_return;
    }
    if (std::holds_alternative<names_request>(req)) {
        log(1, "** got NAMES_REQ");
        auto hdr = encode_names_header(bound_port);
        std::string out(hdr.begin(), hdr.end());
        {
            std::lock_guard lock(mutex);
            for (auto& e : reg.active())
                out += format_names_line(e.info.name, e.info.port);
        }
        co_await reply(*sock, out);
        co_return;
    }
    if (std::holds_alternative<dump_request>(req)) {
        log(1, "** got DUMP_REQ");
        if (!local) co_return;
        auto hdr = encode_names_header(bound_port);
        std::string out(hdr.begin(), hdr.end());
        std::lock_guard lock(mutex);
        // epmd_srv.c sends each line with its C string terminator (the NUL is on the wire).
        for (auto& e : reg.active()) {
            auto it = conns.find(e.conn_id);
            int fd = it != conns.end() ? static_cast<int>(it->second->native_handle()) : -1;
            out += "active name     <" + e.info.name + "> at port " + std::to_string(e.info.port) +
                   ", fd = " + std::to_string(fd) + "\n";
            out.push_back('\0');
        }
        for (auto& e : reg.unused()) {
            out += "old/unused name <" + e.info.name + ">, port = " + std::to_string(e.info.port) +
                   ", fd = -1 \n";
            out.push_back('\0');
        }
        co_await reply(*sock, out);
        co_return;
    }
    if (std::holds_alternative<kill_request>(req)) {
        if (!local) {
            log(0, "KILL_REQ from non local address");
            co_return;
        }
        log(1, "** got KILL_REQ");
        bool live;
        {
            std::lock_guard lock(mutex);
            live = !reg.empty();
        }
        if (!opts.relaxed_command_check && live) {
            log(0, "Disallowed KILL_REQ, live nodes");
            co_await reply(*sock, "NO");
            co_return;
        }
        co_await reply(*sock, "OK");
        log(0, "got KILL_REQ - terminates normal");
        do_stop();
        if (opts.on_kill) opts.on_kill();
        co_return;
    }
    if (auto* s = std::get_if<stop_request>(&req)) {
        log(1, "** got STOP_REQ");
        if (!local) co_return;
        if (!opts.relaxed_command_check) {
            log(0, "Disallowed STOP_REQ, no relaxed_command_check");
            co_return;
        }
        std::optional<std::uint64_t> victim;
        {
            std::lock_guard lock(mutex);
            victim = reg.remove_by_name(s->name);
        }
        if (!victim) {
            co_await reply(*sock, "NOEXIST");
            co_return;
        }
        close_conn(*victim);
        co_await reply(*sock, "STOPPED");
        co_return;
    }
}

void server::impl::do_stop() {
    if (stopped) return;
    stopped = true;
    boost::system::error_code ec;
    for (auto& a : acceptors)
        a->close(ec);
    for (auto& [id, s] : conns) {
        s->shutdown(tcp::socket::shutdown_both, ec);
        s->close(ec);
    }
}

// ---------------------------------------------------------------------------------------------

server::server(asio::any_io_executor ex, options o)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(o))) {}

server::~server() {
    stop();
}

erl::error_code server::start() {
    if (auto ec = impl_->bind_all()) return ec;
    for (auto& a : impl_->acceptors)
        asio::co_spawn(impl_->strand, impl_->accept_loop(a), asio::detached);
    impl_->log(2, "entering the main loop on port %u", impl_->bound_port);
    return {};
}

std::uint16_t server::port() const {
    return impl_->bound_port;
}

void server::stop() {
    auto i = impl_;
    asio::dispatch(i->strand, [i] { i->do_stop(); });
}

std::vector<node_info> server::registered() const {
    std::lock_guard lock(impl_->mutex);
    std::vector<node_info> out;
    for (auto& e : impl_->reg.active())
        out.push_back(e.info);
    return out;
}

}  // namespace erl::epmd
