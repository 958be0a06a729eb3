// EPMD (Erlang Port Mapper Daemon): client, embeddable server and start-up policy.
//
// Protocol: erts/doc erl_dist_protocol "EPMD Protocol"; behaviour follows OTP's
// erts/epmd/src/epmd_srv.c and kernel's erl_epmd.erl. The byte-level codecs (sans-io) live in
// src/epmd/codec.hpp; this header is the I/O layer built on Boost.Asio coroutines.
//
// Errors: erl::errc::epmd_unreachable (nothing accepted the connection or it broke before a
// reply), epmd_name_taken (ALIVE2 refused), epmd_not_found (PORT_PLEASE2: unknown name),
// epmd_bad_reply (malformed reply), errc::timeout (the whole operation exceeded its timeout).
//
// Thread safety: the free functions are independent operations; a registration and a server
// must each be used from one strand (their executor) at a time.
#pragma once

#include <erl/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace erl::epmd {

// ERL_EPMD_PORT if set to a valid port (1..65535), else 4369 — as erl_epmd:epmd_port/0.
std::uint16_t default_port();

// Every function taking an epmd_port treats 0 as default_port().

enum class node_type : std::uint8_t { normal = 77, hidden = 72 };

struct node_info {
    std::string name;  // the part before '@'
    std::uint16_t port = 0;
    node_type type = node_type::normal;
    std::uint8_t protocol = 0;  // 0 = TCP/IPv4
    std::uint16_t highest = 6, lowest = 6;
    std::string extra;
    friend bool operator==(const node_info&, const node_info&) = default;
};

// A live ALIVE2 registration: epmd keeps the name registered while this object holds the
// connection open (erl_dist_protocol: "the connection to EPMD must be kept as long as the node
// is a distributed node"). Move-only; destroying it or calling close() unregisters.
class registration {
  public:
    registration() = default;
    registration(boost::asio::ip::tcp::socket socket, std::uint32_t creation);
    registration(registration&&) noexcept = default;
    registration& operator=(registration&&) noexcept = default;
    ~registration();

    // Creation from ALIVE2_X_RESP ('v', 32 bits) or ALIVE2_RESP ('y', 16 bits).
    std::uint32_t creation() const noexcept { return creation_; }
    bool is_open() const noexcept;
    void close();  // unregisters (closes the socket)

    // Completes when epmd closes the connection (e.g. epmd was killed or `epmd -stop name`),
    // so the node can notice it lost its registration.
    boost::asio::awaitable<void> async_wait_closed();

  private:
    std::unique_ptr<boost::asio::ip::tcp::socket> socket_;
    std::uint32_t creation_ = 0;
};

boost::asio::awaitable<erl::result<registration>> async_register(std::string host,
                                                                 std::uint16_t epmd_port,
                                                                 node_info info,
                                                                 std::chrono::milliseconds timeout);

boost::asio::awaitable<erl::result<node_info>> async_port_please(std::string host,
                                                                 std::uint16_t epmd_port,
                                                                 std::string name,
                                                                 std::chrono::milliseconds timeout);

boost::asio::awaitable<erl::result<std::vector<std::pair<std::string, std::uint16_t>>>> async_names(
    std::string host, std::uint16_t epmd_port, std::chrono::milliseconds timeout);

// Sends one request body (without the 2-byte length, which is added) and returns every byte
// epmd sent until it closed the connection. Used by the tools for NAMES/DUMP/KILL/STOP, whose
// raw text they print as OTP's epmd does.
boost::asio::awaitable<erl::result<std::string>> async_raw_request(
    std::string host, std::uint16_t epmd_port, std::string body, std::chrono::milliseconds timeout);

// Blocking conveniences: each runs its own io_context. For tools and tests.
erl::result<node_info> port_please(std::string host, std::uint16_t epmd_port, std::string name,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(5));
erl::result<std::vector<std::pair<std::string, std::uint16_t>>> names(
    std::string host, std::uint16_t epmd_port,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));
erl::result<std::string> raw_request(std::string host, std::uint16_t epmd_port, std::string body,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
// True if an epmd answers a NAMES request on 127.0.0.1:epmd_port within `timeout`.
bool answers(std::uint16_t epmd_port,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

// The daemon, embeddable. All work runs on the given executor (use a strand or a
// single-threaded io_context). Behaviour follows OTP's epmd_srv.c: registration, KILL, STOP and
// DUMP only from local peers; a registration lives while its connection is open and ends when
// the peer closes it or sends any further byte; oversized (>= 3060 bytes), partial (idle for
// packet_timeout) and garbage requests close only that connection.
class server {
  public:
    struct options {
        std::uint16_t port = 0;  // 0: an ephemeral port (see port())
        // Addresses to listen on. Empty: 0.0.0.0 and :: (as OTP's epmd). Non-empty: these plus
        // the loopback address, which OTP always adds.
        std::vector<std::string> addresses;
        bool relaxed_command_check = false;  // allow KILL with live nodes and STOP
        int debug = 0;                       // >0: log to stderr (like epmd -d)
        bool log_errors = false;  // log refused/malformed requests even without debug (OTP's
                                  // foreground epmd does; the embedded default is silent)
        std::chrono::seconds packet_timeout{60};
        std::size_t max_connections = 16384;  // further accepts are closed at once
        // Called after KILL was accepted and the server stopped (the daemon exits here).
        std::function<void()> on_kill;
    };

    server(boost::asio::any_io_executor ex, options o);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds and starts accepting. Returns an error if no address could be bound (for example
    // address in use).
    erl::error_code start();
    std::uint16_t port() const;
    void stop();  // closes every listener and connection (all registrations end)

    // Snapshot of the registered nodes, newest first (the order NAMES reports).
    std::vector<node_info> registered() const;

    struct impl;

  private:
    std::shared_ptr<impl> impl_;
};

// Start-up like erl's (erl starts `epmd -daemon` when none answers).
enum class startup_mode {
    spawn_daemon,     // default: if none answers, start `erlcpp-epmd -daemon -port P`
    in_process,       // if none answers, run a server on the given executor (returned)
    require_running,  // if none answers, fail with epmd_unreachable
};

// Ensures an epmd answers on 127.0.0.1:port (0 = default_port()) according to mode. Returns the
// in-process server when one was started (keep it alive as long as the node), else nullptr.
// spawn_daemon finds the binary via daemon_path, then env ERLCPP_EPMD, then next to
// /proc/self/exe, then PATH; it waits (up to 10 s) until the daemon answers.
boost::asio::awaitable<erl::result<std::unique_ptr<server>>> async_ensure_epmd(
    std::uint16_t port, startup_mode mode, std::string daemon_path = {});

}  // namespace erl::epmd
