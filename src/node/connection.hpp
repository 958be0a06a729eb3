// One distribution connection to a peer node: set-up (EPMD lookup, TCP, handshake), the frame
// reader loop, the batched writer, ticks, and tear-down. All protocol work is done by the
// sans-io cores in src/proto; this class only moves bytes and timers.
#pragma once

#include <erl/stats.hpp>
#include <erl/term.hpp>

#include "node/node_core.hpp"
#include "proto/dist_codec.hpp"
#include "proto/handshake.hpp"
#include "proto/handshake_gate.hpp"
#include "transport/dist_stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace erl::detail {

// Per-node transport and access state shared by its connections (connection_manager::net): TLS
// contexts, the allow-list, per-peer cookies, the connection count for max_connections and the
// pending (unauthenticated) incoming handshakes.
struct net_state {
    std::shared_ptr<tls_contexts> tls;              // null: plain TCP distribution
    std::unordered_set<atom> allow;                 // empty: every node may connect
    std::unordered_map<atom, std::string> cookies;  // per-peer cookies
    std::string cookie;                             // default cookie
    std::size_t max_connections = 0;                // 0: unlimited
    std::atomic<std::size_t> connections{0};
    proto::handshake_gate handshakes;       // max_pending_handshakes(_per_address)
    std::atomic<std::size_t> inflating{0};  // inflated bytes held by decodes (max_inflating_bytes)
    // Fragment bytes being reassembled (max_fragmented_bytes_total) and output encoded but not
    // yet written (output_total_limit), summed over all connections.
    std::atomic<std::size_t> fragmented{0};
    std::atomic<std::size_t> queued_output{0};

    bool allowed(atom peer) const { return allow.empty() || allow.count(peer) != 0; }
    const std::string& cookie_for(atom peer) const {
        auto it = cookies.find(peer);
        return it == cookies.end() ? cookie : it->second;
    }
    // Takes a connection slot; false when max_connections are open.
    bool try_acquire() {
        std::size_t n = connections.fetch_add(1) + 1;
        if (max_connections != 0 && n > max_connections) {
            connections.fetch_sub(1);
            return false;
        }
        return true;
    }
    void release() { connections.fetch_sub(1); }
};

// A message of an asynchronous send (mailbox::async_send, node::async_send) waiting for room
// on a busy connection. Whoever sets `claimed` first completes it: the connection when it
// queues the message (done({}), after the lock is released) or closes (errc::noconnection), the
// operation when it is cancelled (then the message is never sent).
struct async_send_req {
    term from;
    pid to;        // a pid, or
    atom to_name;  // a registered name on the connection's peer (by_name)
    bool by_name = false;
    term msg;
    std::function<void(error_code)> done;  // set before the request reaches a connection
    std::atomic<bool> claimed{false};
};

class connection : public std::enable_shared_from_this<connection> {
  public:
    enum class state : std::uint8_t { connecting, handshaking, up, closed };
    using strand_t = boost::asio::strand<boost::asio::io_context::executor_type>;

    // Outgoing: connects to `peer` when start_outgoing() runs.
    connection(std::shared_ptr<node_core> core, atom peer);
    // Incoming: an accepted socket; the peer's name is known after send_name.
    connection(std::shared_ptr<node_core> core, boost::asio::ip::tcp::socket sock);
    ~connection();

    void start_outgoing();
    void start_incoming();
    // The connection holds one of net_state's max_connections slots (released on close). An
    // incoming connection gives it back while it is unauthenticated (see run_incoming).
    void hold_slot() noexcept { holds_slot_ = true; }

    atom peer() const;
    std::uint64_t flags() const noexcept { return flags_.load(std::memory_order_acquire); }
    // The negotiated flags lack PUBLISHED: the peer (or this node) is hidden (dist_util.erl
    // publish_type/3), so the peer is not in nodes() and takes no part in global or pg.
    bool peer_hidden() const noexcept { return (flags() & proto::dflag::published) == 0; }
    bool is_up() const noexcept { return state_.load() == state::up; }
    bool is_closed() const noexcept { return state_.load() == state::closed; }
    bool is_outgoing() const noexcept { return outgoing_; }

    using send_mode = detail::send_mode;  // node_core.hpp

    // Sends a control message (+ payload). Before the connection is up the message is queued
    // (as terms, counted at their ETF size under the output bounds, with the same busy rules);
    // if set-up fails it is dropped, as Erlang drops messages to unreachable nodes.
    error_code send(const term& control, const term* payload, send_mode mode = send_mode::queue);
    // A message to a pid (SEND_SENDER, or SEND without DFLAG_SEND_SENDER) or to a registered
    // name (REG_SEND), encoded without building the control tuple when the connection is up.
    error_code send_to_pid(const term& from, const pid& to, const term& msg,
                           send_mode mode = send_mode::queue);
    error_code send_to_name(const term& from, atom to_name, const term& msg,
                            send_mode mode = send_mode::queue);

    // True while a send would wait (send_mode::wait) or report would_block (send_mode::try_):
    // the output bound is reached, or asynchronous sends are waiting for room.
    bool busy() const;
    // An asynchronous send: queues r's message now, as send_to_pid / send_to_name with
    // send_mode::wait would, when the connection is not busy and no other asynchronous send
    // waits on it (r->done({}) is called before this returns); else r waits in FIFO order
    // behind those and is queued, on the thread whose write made room, once the connection is
    // not busy. A blocking send or try_send finds the connection busy while any wait, and a
    // send that does not wait (send_mode::queue) queues the waiting ones first, so messages
    // leave in the order they were sent. Completes with errc::noconnection if the connection
    // closes first (the message is dropped, as a blocking send's is); a closed connection
    // drops the message and reports success, as send() does.
    void send_async(std::shared_ptr<async_send_req> r);
    // A waiting request that its operation has claimed (cancelled) leaves the queue.
    void forget_async(const async_send_req* r);
    // The hook for asynchronous sends: calls `ready(ec)` once the connection is not busy
    // (ec empty: append now; the message is not reserved, so a racing sender may make it busy
    // again and the caller re-checks with send_mode::try_) or has closed (ec = the close
    // reason). At once, on the calling thread, when that holds already; else later, without
    // locks held, on the thread whose write drained the queue or that closed the connection.
    void when_writable(std::function<void(error_code)> ready);
    // Closes the connection; `why` is logged and reported in the nodedown event.
    void close(error_code why, std::string reason = {});

    // Waits until up or closed (for node::connect / ping). Returns the failure, if any.
    error_code wait_up(std::chrono::milliseconds timeout);
    // Calls `done(true)` once the connection is up, or `done(false)` once it has closed
    // (without coming up, or later); at once, on this thread, if that has happened already.
    // Called without locks held, on the thread that brings the connection up or closes it.
    void when_settled(std::function<void(bool up)> done);

    // Messages queued before the handshake completed move with a superseding connection
    // (simultaneous connect).
    void adopt_pending_from(connection& other);

    // Counters and queue sizes for node::stats(). `buffer_bytes` gets the capacity of the
    // connection's read and write buffers.
    connection_stats stats(std::size_t& buffer_bytes) const;

  private:
    // The reader and writers stamp the time of their last socket I/O here.
    void touch() noexcept;
    boost::asio::awaitable<void> run_outgoing();
    boost::asio::awaitable<void> run_incoming();
    boost::asio::awaitable<error_code> run_handshake(proto::handshake& hs);
    // The handshake settings both directions share: this node's name, creation and flags.
    proto::handshake_config handshake_setup(proto::handshake_role role,
                                            const std::string& cookie) const;
    // A failed TLS start or handshake: counted (unless the connection closed meanwhile), then
    // closed with `why`.
    void fail_setup(error_code ec, std::string why);
    boost::asio::awaitable<void> run_reader(std::vector<std::uint8_t> leftover);
    boost::asio::awaitable<void> run_ticker();
    // False when the connection was closed instead (the peer's name cannot become an atom).
    bool become_up(const proto::handshake& hs);
    // Appends with `append` when up, else queues or forwards make_control() as send() does.
    template <class Append, class MakeControl>
    error_code send_fast(Append&& append, MakeControl&& make_control, const term& msg,
                         send_mode mode);
    // The common part of every send once the connection is up, mu_ held in `lk`: applies
    // `mode` when busy, calls append(), then writes or leaves the bytes to the writer
    // (docs/node.md "Writes"). Returns would_block (try_), or the close reason when the
    // connection closed while waiting or passed a hard bound.
    template <class Append>
    error_code append_up(std::unique_lock<std::mutex>& lk, Append&& append, send_mode mode);
    // A send before the connection is up (mu_ held in lk): queues the message as terms under
    // the same busy rules and bounds as encoded output.
    error_code queue_pending(std::unique_lock<std::mutex>& lk, const term& control,
                             const term* payload, send_mode mode);
    // Applies `mode` when the connection is busy (mu_ held in lk): a thread waits with
    // send_mode::wait, try_ gets would_block, the rest go on. Returns the close reason if the
    // connection closed while waiting; `changed` is set when a connection that was not up came
    // up or was superseded meanwhile (the caller sends again).
    error_code wait_writable_locked(std::unique_lock<std::mutex>& lk, send_mode mode,
                                    bool& changed);
    // output_queue_limit / output_total_limit after an append (mu_ held in lk; released and the
    // connection closed when passed).
    error_code check_output_bounds(std::unique_lock<std::mutex>& lk, std::size_t before);
    // Encodes what was queued before the handshake completed and writes it (at become_up).
    void flush_locked();
    bool busy_locked() const;
    // busy_locked() from the queued bytes alone (the output bounds).
    bool bytes_busy_locked() const;
    // Queues waiting asynchronous sends in order (mu_ held): while the connection is not
    // busy by its bytes, or all of them with `all` (before a send that does not wait). Their
    // completions are collected in admitted_, to be called without the lock.
    void admit_async_locked(bool all);
    // Queues r's message on this connection as it is now (up: encoded; else kept as terms).
    void append_async_locked(async_send_req& r);
    // Queues a message for the handshake's end (mu_ held): pending_ and its byte count.
    void push_pending_locked(term control, std::optional<term> payload);
    // Calls the completions of admitted asynchronous sends (mu_ held in lk; released).
    void complete_admitted(std::unique_lock<std::mutex>& lk);
    std::size_t queued_locked() const noexcept {
        return (wbuf_.size() - wbuf_head_) + wout_.ref_bytes + (inflight_.size() - inflight_head_) +
               inflight_out_.ref_bytes + pending_bytes_;
    }
    bool wbuf_empty_locked() const noexcept {
        return wbuf_.size() == wbuf_head_ && wout_.refs.empty();
    }
    // Brings net_state::queued_output up to date with this connection's queue (mu_ held).
    void account_locked();
    // The write turn (mu_ held): if nobody holds it, writes wbuf_ now (plain TCP, a
    // non-blocking send(2) under mu_) and hands what is left to the strand.
    void write_locked();
    // One non-blocking send(2) of wbuf_ (plain TCP; mu_ held); what the kernel takes leaves the
    // queue (erased, or skipped by wbuf_head_ when the rest is large).
    void send_direct_locked();
    void start_strand_write_locked();
    // The strand's next async_write: wbuf_ becomes inflight_ (mu_ held, on the strand).
    void write_inflight_locked();
    void on_write_done(error_code ec, std::size_t written);
    // After bytes left the queue (mu_ held in lk; released on return): wakes waiting senders
    // and calls when_writable hooks once the connection is no longer busy.
    void after_progress(std::unique_lock<std::mutex>& lk);
    // Around dispatching one read chunk: the reader holds the write turn, so what handlers
    // send on this connection meanwhile (an rpc reply, a SPAWN_REPLY) leaves in one write
    // after the chunk.
    void begin_dispatch();
    void end_dispatch();
    proto::handshake_status decide_status(std::string_view peer_name, proto::handshake& hs);
    std::string tls_reason(const error_code& ec);
    // Limit violations found by the reader, in words naming the option that was exceeded.
    // `exceeded`: dist_reader::exceeded_limit() after errc::limit_exceeded.
    std::string limit_reason(const error_code& ec, std::string_view exceeded) const;
    void log_close(bool was_up, atom peer, error_code why, std::string& reason) const;

    std::shared_ptr<node_core> core_;
    // The node's transport and access state as it was when this connection was made
    // (connection_manager::net()).
    std::shared_ptr<net_state> net_;
    strand_t strand_;
    dist_stream stream_;
    boost::asio::steady_timer tick_timer_;
    const bool outgoing_;
    std::atomic<bool> holds_slot_{false};
    std::atomic<state> state_{state::connecting};
    std::atomic<std::uint64_t> flags_{0};
    // Written only by the reader (relaxed: counters, read by stats()).
    std::atomic<std::uint64_t> bytes_received_{0};
    std::atomic<std::uint64_t> messages_received_{0};
    std::atomic<std::uint64_t> frames_received_{0};
    std::atomic<std::uint64_t> ticks_received_{0};
    std::atomic<std::size_t> read_buffer_bytes_{0};
    std::atomic<std::int64_t> last_activity_ns_{0};  // system_clock, since the epoch

    mutable std::mutex mu_;  // guards everything below
    atom peer_;
    std::optional<proto::dist_writer> writer_;
    std::vector<std::pair<term, std::optional<term>>> pending_;  // queued before up
    std::size_t pending_bytes_ = 0;       // their ETF size, counted as queued output
    std::vector<std::uint8_t> wbuf_;      // encoded, not yet written
    std::vector<std::uint8_t> inflight_;  // being written
    // Bytes at the front of wbuf_ (inflight_) written already: a direct send that leaves a large
    // rest does not move it to the front.
    std::size_t wbuf_head_ = 0;
    std::size_t inflight_head_ = 0;
    // The large binaries of the queued messages, written from where they are between the bytes
    // of wbuf_ (inflight_): the writer appends to wout_ (docs/node.md "Large binaries").
    proto::gathered_output wout_;
    proto::gathered_output inflight_out_;
    std::vector<boost::asio::const_buffer> inflight_bufs_;  // inflight_ with its binaries
    // Who may write the socket now: nobody (the next sender writes directly), the reader
    // (dispatching a chunk; it writes after the chunk) or the strand (an async_write).
    enum class write_turn : std::uint8_t { none, reader, strand };
    write_turn turn_ = write_turn::none;
    // A sender wrote the socket directly since the reader last dispatched input or the
    // strand's writes last drained the queue; the next write goes to the strand.
    bool direct_since_input_ = false;
    std::size_t accounted_ = 0;  // this connection's share of net_state::queued_output
    // The largest single append since the queue was last empty: output_queue_limit bounds what
    // is queued besides it, so one large message followed by small ones before a write is made
    // does not close a connection that is keeping up.
    std::size_t largest_append_ = 0;
    std::condition_variable writable_cv_;                    // send_mode::wait senders
    std::size_t send_waiters_ = 0;                           // threads waiting on writable_cv_
    std::vector<std::function<void(error_code)>> writable_;  // when_writable hooks
    std::deque<std::shared_ptr<async_send_req>> async_q_;    // asynchronous sends waiting
    std::vector<std::function<void(error_code)>> admitted_;  // their completions, once queued
    std::uint64_t sent_at_tick_ = 0;  // bytes_sent_ at the previous tick (stall check)
    int stalled_ticks_ = 0;           // ticks with output queued and none written
    bool wrote_since_tick_ = false;
    bool read_since_tick_ = false;
    bool decoding_ = false;  // the reader waits for a decode worker (input, for the ticker)
    int silent_ticks_ = 0;
    std::uint64_t bytes_sent_ = 0;  // to the socket, handshake included
    std::uint64_t ticks_sent_ = 0;
    error_code close_reason_;
    std::condition_variable up_cv_;
    std::vector<std::function<void(bool)>> settled_;  // when_settled callbacks not yet called
    bool superseded_ = false;    // replaced by another connection to the same peer
    std::string handshake_why_;  // why the handshake's I/O failed (for the log line)
    std::vector<std::uint8_t>
        handshake_leftover_;  // stream bytes read with the last handshake message
};

}  // namespace erl::detail
