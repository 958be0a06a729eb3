// erl::node — a C++ distribution node that real Erlang/Elixir nodes connect to and accept.
//
// A node owns an io_context run by `threads` threads (or runs on the caller's io_context), a
// listening socket, its EPMD registration, a process table (mailboxes and registered names) and
// one connection per peer node. Connections are made on the first send to a node (as in
// Erlang) or by connect()/ping().
//
// Thread safety: every public member function may be called from any thread, including from
// inside handlers running on the node's own threads, except that blocking calls (connect,
// ping, mailbox::receive, rpc::call, gen_server::call) must not be made on the node's I/O
// threads (they would wait on themselves): their async_ forms may be used anywhere. See
// docs/node.md "Asynchronous operations" and "Errors".
// Lifetime: stop() (or the destructor) closes every connection — peers see nodedown and every
// link/monitor across them fires with `noconnection` — and unregisters from EPMD; it returns
// when the node's threads have finished (called on one of them, a thread of the node finishes
// the stop; start() and the destructor wait for it). A stopped node can be started again.
// See docs/node.md "Lifecycle".
#pragma once

#include <erl/detail/async.hpp>
#include <erl/epmd.hpp>
#include <erl/error.hpp>
#include <erl/log.hpp>
#include <erl/mailbox.hpp>
#include <erl/stats.hpp>
#include <erl/term.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace erl {

namespace detail {
struct access;
}

// How the node finds an EPMD when it starts (see docs/epmd.md): the start-up policy of the
// EPMD module under the name the node options have always used.
//   spawn_daemon:    like erl: if none answers, start `erlcpp-epmd -daemon` (outlives the node)
//   in_process:      if none answers, run an EPMD server inside this node (tests, embedding)
//   require_running: fail with epmd_unreachable if none answers
using epmd_mode = epmd::startup_mode;

// TLS distribution (OTP's inet_tls_dist): TCP connect, TLS at once, then the normal handshake
// with 4-byte lengths and 4-byte frames. EPMD stays plaintext. See docs/tls.md.
struct tls_options {
    bool enabled = false;
    std::string cert_file;  // PEM certificate (chain) this node presents, both roles
    std::string key_file;   // PEM private key of cert_file (unencrypted)
    std::string ca_file;    // PEM CA certificates a peer's certificate must chain to
    // Verify the peer's certificate against ca_file. Accepting side: also asks the peer for a
    // certificate (ssl verify_peer). Connecting side: the server certificate must verify.
    bool verify_peer = false;
    // Accepting side with verify_peer: refuse peers that present no certificate.
    bool fail_if_no_peer_cert = false;
    // Connecting side with verify_peer: the server certificate must name the host part of the
    // peer's node name (as an OTP 25 client checks it), e.g. DNS:127.0.0.1 for x@127.0.0.1.
    bool verify_host_name = true;
};

struct node_options {
    // "name@host". A name without '@' gets this machine's host name (short names) or its fully
    // qualified name (long names), as erl -sname / -name do.
    std::string name;
    bool long_names = true;
    // The cookie, first found of: this option; the environment variable named by cookie_env
    // (if set and non-empty); the file cookie_file (empty: ~/.erlang.cookie, created with 20
    // random letters and mode 0400 when missing, as OTP's auth module does; a cookie file
    // readable by group or others is refused, as OTP refuses it).
    std::string cookie;
    std::string cookie_env = "ERLANG_COOKIE";
    std::string cookie_file;
    // Per-peer cookies (erlang:set_cookie/2): node name -> cookie used with that node, both
    // for connections we make and for connections it makes to us.
    std::vector<std::pair<std::string, std::string>> peer_cookies;
    std::uint16_t epmd_port = 0;  // 0: ERL_EPMD_PORT or 4369
    epmd_mode epmd = epmd_mode::spawn_daemon;
    std::string epmd_daemon_path;  // erlcpp-epmd to spawn; empty: next to this executable, PATH
    std::string listen_address = "0.0.0.0";
    std::uint16_t listen_port = 0;  // 0: any free port
    unsigned threads = 1;           // I/O threads running the node's io_context
    // How long an I/O thread that has run out of work keeps looking for more before it sleeps
    // (as BEAM's schedulers busy-wait, +sbwt). Work another thread hands it meanwhile (a send,
    // a spawn, a call from a program thread) is picked up without waking it, which costs tens of
    // microseconds on some machines; the price is CPU time while it looks (docs/node.md "I/O
    // threads"). 0 (the default): it sleeps at once. Not used on the caller's io_context.
    std::chrono::microseconds io_spin{0};
    // Large messages are decoded off the I/O threads: a distribution frame of more than
    // decode_offload_threshold bytes, or a message holding a compressed term (ETF tag 80,
    // whose cost is what it inflates to, whatever its frame's size), is decoded by one of
    // up to decode_threads worker threads of the node (started on first use, also for a node
    // on the caller's io_context), so that it does not delay the other connections. Its
    // connection reads nothing more until it is decoded and delivered, so messages from one
    // peer keep their order and a peer has at most one message in the workers at a time.
    // SIZE_MAX (or decode_threads 0): everything is decoded on the I/O thread that reads it.
    std::size_t decode_offload_threshold = std::size_t{256} << 10;
    unsigned decode_threads = 2;
    // A received binary of at least min_shared_binary bytes (and at least a quarter of its
    // frame) is not copied out of a frame the node had to buffer (one spanning several reads,
    // or reassembled from fragments): it refers to that buffer, which is freed with the last
    // term referring to it (erl::shared_binary; docs/node.md "Large binaries"). SIZE_MAX:
    // every binary is copied.
    std::size_t min_shared_binary = std::size_t{64} << 10;
    // A binary of at least min_gathered_binary bytes in a message to a peer is not copied into
    // the connection's output: the write takes its bytes from where they are, between the
    // message's other bytes (one gathered write, docs/node.md "Large binaries"), so the term
    // must stay unchanged while queued, as every term does (an erl::shared_binary's owner
    // keeps its bytes unchanged). On TLS the bytes go to the encryption from where they are.
    // SIZE_MAX: every binary is copied.
    std::size_t min_gathered_binary = std::size_t{64} << 10;
    // Hidden nodes (erl -hidden) do not join the global cluster view: peers list them in
    // nodes(hidden), not nodes(). false = published. A visible node with erl::cluster::start
    // takes part in the cluster's `global` (a session with every visible peer, the cluster's
    // names and locks, connect_all, prevent_overlapping_partitions) and in the overlay of its
    // pg scopes; a hidden one keeps its names, locks and groups local and sends peers no
    // global or pg message (<erl/cluster.hpp>, docs/global.md, docs/pg.md).
    bool hidden = false;
    std::chrono::milliseconds net_ticktime{60'000};  // peer declared dead after this silence
    std::chrono::milliseconds net_setuptime{7'000};  // TCP + TLS + handshake deadline
    tls_options tls;

    // Access control (net_kernel:allow/1): when non-empty, only these nodes may connect to us
    // (others get "not_allowed" in the handshake) and we connect to no other node.
    std::vector<std::string> allow;

    // Resource limits. Exceeding one closes that connection (with a log line saying which
    // limit); the node and its other connections carry on.
    std::size_t max_message_size = 256u << 20;  // largest distribution frame accepted
    // Fragmented messages being reassembled at once per connection, and their buffered bytes.
    std::size_t max_fragment_sequences = 64;
    std::size_t max_fragmented_bytes = 256u << 20;
    // The same buffered bytes summed over all connections (refused before buffering: the
    // connection whose fragment would exceed it is closed). 0 = no node-wide bound.
    std::size_t max_fragmented_bytes_total = std::size_t{1} << 30;
    // Output encoded for a peer but not yet written to its socket (docs/node.md "Writes").
    // At output_busy_limit bytes queued on a connection, or output_total_limit queued on all
    // connections together, the connection is busy (erts dist_buf_busy_limit, 1 MiB): a
    // blocking send from a thread waits until it is not, try_send reports would_block. Sends
    // that must not wait (signals, sends on I/O threads) still queue; a busy connection whose
    // queue then holds more than output_queue_limit besides its largest message, or whose
    // append passes output_total_limit, is closed. A connection with output queued and
    // nothing written for net_ticktime is closed.
    std::size_t output_busy_limit = std::size_t{1} << 20;
    std::size_t output_queue_limit = std::size_t{64} << 20;
    std::size_t output_total_limit = std::size_t{256} << 20;
    // Compressed terms: one may inflate to at most max_message_size; all connections together
    // may hold at most this many inflated bytes at once (checked while inflating, before the
    // memory is allocated; a connection that would exceed it is closed). 0 = no node-wide bound.
    std::size_t max_inflating_bytes = std::size_t{1} << 30;
    // Atoms a single connection may add to the (global) atom table over its life, counting
    // network atoms that have been freed again; 0 = no per-connection bound. The global bound
    // is max_atoms (on live atoms).
    std::size_t max_new_atoms_per_connection = 0;
    // If non-zero, erl::set_atom_table_limit(max_atoms) at start() (a process-wide setting).
    std::size_t max_atoms = 0;
    // Connections at once (authenticated incoming ones, and outgoing ones from the first
    // attempt); 0 = unlimited. Further incoming connections are closed at once (or right after
    // their handshake), further outgoing ones fail with limit_exceeded.
    std::size_t max_connections = 1024;
    // Incoming connections not yet authenticated (TCP accepted, TLS and distribution handshake
    // under way), node-wide and per source address; 0 = unbounded. They do not count towards
    // max_connections. When a bound is full the oldest pending handshake is closed to make
    // room, so a flood of idle connections cannot lock out real peers (docs/security.md).
    std::size_t max_pending_handshakes = 64;
    std::size_t max_pending_handshakes_per_address = 16;
    // Messages a process's queue may hold (spawn_options::max_message_queue_len per process);
    // 0 = unbounded, as in OTP. A message that finds the queue full is handled as
    // message_queue_limit says, with a limit_exceeded log event (docs/security.md). Messages
    // made from signals (DOWN, EXIT, nodedown) are always queued. Service processes, which
    // handle their messages as they arrive, have no queue.
    std::size_t max_message_queue_len = 0;
    message_queue_limit_action message_queue_limit = message_queue_limit_action::kill;
    // Logging (<erl/log.hpp>): events at log_level or above go to `logger` when it is set;
    // otherwise each is formatted as one line (erl::format_log_line) and passed to `log`, or
    // printed to stderr when `log` is empty too. Called on the thread where the event happens
    // (often an I/O thread): keep both cheap.
    erl::log_level log_level = erl::log_level::notice;
    std::function<void(const log_event&)> logger;
    std::function<void(std::string_view)> log;
};

// Node up/down events delivered to subscribers (node::monitor_nodes).
//
// Ordering contract, the guarantee OTP's net_kernel gives its {nodeup, Node} and
// {nodedown, Node} messages and the one global and pg are built on
// (src/node/connection_manager.cpp on_up / on_down implement it;
// tests/unit/cluster_ordering_test.cpp checks it):
//  1. A peer's nodeup is reported after its handshake and before any message or signal that
//     arrives on that connection is delivered to a local process.
//  2. When an established connection is lost, every link and monitor across it fires first
//     ('DOWN' with noconnection, 'EXIT' noconnection to trapping processes, {nodedown, Node}
//     of monitor_node), then the nodedown is reported.
//  3. When the connection is lost on its own strand (the peer closed it or disconnected us, a
//     read error, bad input, a tick timeout), every message read from it before the loss has
//     been delivered before the nodedown. When another thread closes it (node::disconnect,
//     stop), a message the reader is delivering at that moment may reach its process after
//     the nodedown; the reader delivers nothing more after that one.
// Callbacks run on the thread that brings the connection up or down (an I/O thread, or the
// thread calling disconnect/stop); they must not block.
struct node_event {
    bool up = false;
    atom node;
    error_code reason;  // why a node went down (connection_closed, tick_timeout, ...)
    // The peer is a hidden node (erl -hidden, or this node is hidden itself): as in OTP, it is
    // listed by nodes(node_type::hidden) and takes no part in global or pg.
    bool hidden = false;
};

// Which connected peers nodes() lists (erlang:nodes/1).
enum class node_type {
    connected,  // every peer with a connection up
    visible,    // peers that are published (not hidden), as erlang:nodes() lists them
    hidden,     // peers that are hidden
};

class node {
  public:
    /// A node that runs its own io_context on node_options::threads threads.
    explicit node(node_options opts);
    /// A node on the caller's io_context: it starts no thread (node_options::threads is not
    /// used) and every handler of the node runs wherever the caller runs `ioc`. `ioc` must
    /// outlive the node. start() and stop() wait for work done on `ioc`, so they must be called
    /// while some other thread runs it (async_start needs no other thread; stop() called on a
    /// thread that runs it starts the stop and returns; a later start() or the destructor waits
    /// for the rest). stop() never stops
    /// `ioc`: it returns once everything the node started there has finished.
    node(node_options opts, boost::asio::io_context& ioc);
    ~node();
    node(const node&) = delete;
    node& operator=(const node&) = delete;

    /// Listens, ensures an EPMD, registers. Until start() succeeds the node is not alive.
    /// Errors: bad_node_name (the name, or one in allow/peer_cookies), cookie_file_error,
    /// tls_failed, an address or socket error, epmd_unreachable, epmd_name_taken,
    /// shutting_down (called from a handler while the node stops).
    error_code start();
    /// start() that also says why it failed: which file, option, address or EPMD reply
    /// (the text node_options::log gets too). Cleared on success.
    error_code start(diagnostics& diag);
    /// start() as an asynchronous operation completing with (error_code) on the token's
    /// associated executor (the node's executor if it has none; Asio's system executor when
    /// the start failed on a node with its own threads, whose io_context then runs no more).
    /// Nothing on the calling thread waits: a node on the caller's io_context can be started
    /// from the one thread that runs it, before or inside run(). Errors: start()'s, and
    /// shutting_down if a stop is in progress. Started while another start is in progress, it
    /// completes with that start's outcome; on a started node, with {} at once. `diag` (kept
    /// alive by the caller until the completion) receives start(diagnostics&)'s text. Not
    /// cancellable (the start is short and leaves the node either started or stopped).
    template <class Token>
    auto async_start(diagnostics& diag, Token&& token) {
        return detail::async_op<void(error_code)>(token, &node::initiate_start, this, &diag);
    }
    template <class Token>
    auto async_start(Token&& token) {
        return detail::async_op<void(error_code)>(token, &node::initiate_start, this, nullptr);
    }
    void stop();
    bool alive() const noexcept;

    atom name() const noexcept;
    std::uint32_t creation() const noexcept;
    std::uint16_t listen_port() const noexcept;
    const node_options& options() const noexcept;
    boost::asio::any_io_executor executor() const;
    // Reports `e` through this node's logging (node_options::logger / log / stderr) if its
    // level is at least node_options::log_level; an empty e.node becomes this node's name.
    void log(log_event e) const;

    // Processes -------------------------------------------------------------------------------
    // A new process with its own mailbox. With a name, the name is registered (error name_taken
    // if it is in use). The process exits (links/monitors fire with `normal`) when the last
    // mailbox handle is destroyed or mailbox::exit is called.
    result<mailbox> spawn_mailbox(std::optional<atom> name = std::nullopt);
    error_code register_name(atom name, const pid& p);
    bool unregister_name(atom name);
    std::optional<pid> whereis(atom name) const;
    std::vector<atom> registered() const;

    reference make_ref();

    // Sending (from no particular process: the sender is the node's anonymous pid) ------------
    // Messages to dead processes or unreachable nodes are dropped silently, as in Erlang. To a
    // busy connection they wait as mailbox::send does.
    void send(const pid& to, term msg);
    void send(atom registered_name, term msg);                // local registered name
    void send(atom registered_name, atom to_node, term msg);  // {Name, Node}
    void send_alias(const reference& alias, term msg);
    /// send() as an asynchronous operation: completes with (error_code) once the message is
    /// queued within the connection's output bound, as mailbox::async_send (same outcomes and
    /// ordering; the sender is the node's anonymous pid). A node that is not running sends
    /// nothing and reports {} (as send()).
    template <class Token>
    auto async_send(const pid& to, term msg, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [this](auto handler, const pid& to, term msg) {
                initiate_send(&to, atom(), atom(), std::move(msg),
                              detail::error_handler(std::move(handler)));
            },
            token, to, std::move(msg));
    }
    template <class Token>
    auto async_send(atom registered_name, atom to_node, term msg, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [this](auto handler, atom name, atom to_node, term msg) {
                initiate_send(nullptr, name, to_node, std::move(msg),
                              detail::error_handler(std::move(handler)));
            },
            token, registered_name, to_node, std::move(msg));
    }

    // Nodes -----------------------------------------------------------------------------------
    std::vector<atom> nodes() const;  // every connected peer (nodes(node_type::connected))
    std::vector<atom> nodes(node_type which) const;
    bool is_connected(atom peer) const;
    /// Connects (handshake) if not connected yet; waits up to timeout on this thread (the
    /// blocking form of async_connect, with its errors).
    error_code connect(atom peer, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// Connects to `peer` if not connected yet, as an asynchronous operation completing with
    /// (error_code) on the token's associated executor (the node's executor if it has none).
    /// Errors: not_alive (not started), shutting_down (the node stopped first; stop() returns
    /// after this completion has run on the node's io_context), bad_node_name, timeout
    /// (`timeout` passed; the set-up itself goes on), boost::asio::error::operation_aborted
    /// (terminal or partial cancellation through the token's cancellation slot; the set-up
    /// goes on; total is not supported), or why the set-up failed:
    /// bad_cookie, not_allowed, node_not_allowed, handshake_timeout (net_setuptime),
    /// tls_failed, limit_exceeded, connection_closed, noconnection, epmd_not_found, ...
    /// A connection to the node itself succeeds at once.
    template <class Token>
    auto async_connect(atom peer, std::chrono::milliseconds timeout, Token&& token) {
        return detail::async_op<void(error_code)>(token, &node::initiate_connect, this, peer,
                                                  timeout);
    }
    /// net_adm:ping: true for pong (the blocking form of async_ping).
    bool ping(atom peer, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// net_adm:ping (gen:call(net_kernel, {is_auth, node()}) on `peer`) as an asynchronous
    /// operation: completes with {} for pong, else why it was pang: async_connect's errors,
    /// timeout (no answer in time), pang (the peer's net_kernel answered `no`), noproc (no
    /// net_kernel), noconnection (the connection was lost), operation_aborted (terminal or
    /// partial cancellation, as async_connect and gen_server::async_call), shutting_down (the
    /// node stopped first).
    template <class Token>
    auto async_ping(atom peer, std::chrono::milliseconds timeout, Token&& token) {
        return detail::async_op<void(error_code)>(token, &node::initiate_ping, this, peer, timeout);
    }
    void disconnect(atom peer);
    // Subscribe to node up/down; returns an id for unsubscribe. Called on I/O threads.
    std::uint64_t monitor_nodes(std::function<void(const node_event&)> cb);
    void demonitor_nodes(std::uint64_t id);

    // Observability ---------------------------------------------------------------------------
    // A snapshot of the node's counters: every connection (pending or up) with its bytes,
    // messages, frames and ticks each way, send queue and last activity; processes, atoms,
    // connection buffer memory, rpc calls served/failed with their durations, and handshake
    // failures by reason (see <erl/stats.hpp>, docs/observability.md). Counters start at 0
    // when the node is constructed and survive stop()/start().
    node_stats stats() const;

  private:
    void initiate_start(diagnostics* diag, detail::error_handler handler);
    friend struct detail::access;  // src/node/access.hpp
    void initiate_connect(atom peer, std::chrono::milliseconds timeout,
                          detail::error_handler handler);
    void initiate_ping(atom peer, std::chrono::milliseconds timeout, detail::error_handler handler);
    void initiate_send(const pid* to, atom to_name, atom to_node, term msg,
                       detail::error_handler handler);
    struct impl;
    std::shared_ptr<impl> impl_;
};

// Parses "name@host"; errc::bad_node_name if not of that form.
result<std::pair<std::string, std::string>> split_node_name(std::string_view full);

}  // namespace erl
