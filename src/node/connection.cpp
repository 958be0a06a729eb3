#include "node/connection.hpp"

#include "common/buffer_pool.hpp"
#include "node/decode_pool.hpp"
#include "node/signals.hpp"

#include "transport/cloexec.hpp"

#include <erl/epmd.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace erl::detail {

namespace {
// A read takes at most read_chunk bytes. A connection reads into a buffer of small_read_chunk
// bytes until a read fills it, then into one of read_chunk bytes until eight reads in a row
// find less than small_read_chunk: an idle or lightly used connection holds 4 KiB, not 64.
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t small_read_chunk = 4 * 1024;
}  // namespace

connection::connection(std::shared_ptr<node_core> core, atom peer)
    : core_(std::move(core)),
      net_(core_->connections.net()),
      strand_(asio::make_strand(core_->ioc())),
      stream_(strand_, net_ ? net_->tls : nullptr, /*server=*/false),
      tick_timer_(strand_),
      outgoing_(true),
      peer_(peer) {}

connection::connection(std::shared_ptr<node_core> core, tcp::socket sock)
    : core_(std::move(core)),
      net_(core_->connections.net()),
      strand_(asio::make_strand(core_->ioc())),
      stream_(strand_, net_ ? net_->tls : nullptr, /*server=*/true),
      tick_timer_(strand_),
      outgoing_(false) {
    // Re-home the accepted socket onto our strand.
    error_code ec;
    auto proto = sock.local_endpoint(ec).protocol();
    if (!ec) stream_.socket().assign(proto, sock.release(), ec);
}

connection::~connection() {
    if (accounted_ != 0) net_->queued_output.fetch_sub(accounted_, std::memory_order_relaxed);
}

atom connection::peer() const {
    std::lock_guard lk(mu_);
    return peer_;
}

void connection::start_outgoing() {
    asio::co_spawn(
        strand_, [self = shared_from_this()] { return self->run_outgoing(); }, asio::detached);
}

void connection::start_incoming() {
    asio::co_spawn(
        strand_, [self = shared_from_this()] { return self->run_incoming(); }, asio::detached);
}

// ------------------------------------------------------------------------------------------
// Set-up

namespace {
// Closes the connection if it is not up when net_setuptime expires.
// `counters` belongs to the connection's node, which the connection keeps alive.
void arm_setup_timer(const std::shared_ptr<connection>& c, asio::steady_timer& t,
                     std::chrono::milliseconds setuptime, node_counters& counters) {
    t.expires_after(setuptime);
    t.async_wait([w = std::weak_ptr<connection>(c), setuptime, &counters](error_code ec) {
        if (ec) return;
        if (auto c = w.lock(); c && !c->is_up() && !c->is_closed()) {
            counters.handshake_failed(make_error_code(errc::handshake_timeout));
            c->close(make_error_code(errc::handshake_timeout),
                     "connection set-up (TCP, TLS, handshake) not completed within "
                     "net_setuptime (" +
                         std::to_string(setuptime.count()) + " ms)");
        }
    });
}
}  // namespace

proto::handshake_config connection::handshake_setup(proto::handshake_role role,
                                                    const std::string& cookie) const {
    proto::handshake_config cfg;
    cfg.role = role;
    cfg.our_name = std::string(core_->name.str());
    cfg.our_creation = core_->creation.load();
    cfg.cookie = cookie;
    cfg.four_byte_lengths = stream_.is_tls();
    cfg.our_flags = proto::dflag::default_advertised(core_->opts.hidden);
    return cfg;
}

void connection::fail_setup(error_code ec, std::string why) {
    if (!is_closed()) core_->counters.handshake_failed(ec);
    close(ec, std::move(why));
}

asio::awaitable<void> connection::run_outgoing() {
    auto self = shared_from_this();
    asio::steady_timer setup_timer(strand_);
    arm_setup_timer(self, setup_timer, core_->opts.net_setuptime, core_->counters);

    const atom peer = this->peer();
    auto parts = split_node_name(peer.str());
    if (!parts) {
        close(parts.error(), "bad node name '" + std::string(peer.str()) + "'");
        co_return;
    }
    const auto& [alive_name, host] = *parts;
    if (!net_->allowed(peer)) {
        // net_kernel:allow/1 restricts both directions: we do not dial nodes outside the list.
        close(make_error_code(errc::node_not_allowed),
              "not connecting: " + std::string(peer.str()) + " is not in the allow-list");
        co_return;
    }
    auto info = co_await epmd::async_port_please(host, core_->opts.epmd_port, alive_name,
                                                 core_->opts.net_setuptime);
    if (!info) {
        close(info.error(), "epmd on " + host + " does not know " + alive_name);
        co_return;
    }
    if (is_closed()) co_return;

    error_code ec;
    tcp::resolver resolver(strand_);
    auto endpoints = co_await resolver.async_resolve(host, std::to_string(info->port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) ec = co_await async_connect_cloexec(stream_.socket(), endpoints);
    if (ec) {
        close(make_error_code(errc::connection_closed),
              "connect to " + host + ":" + std::to_string(info->port) + " failed: " + ec.message());
        co_return;
    }
    stream_.socket().set_option(tcp::no_delay(true), ec);
    state_ = state::handshaking;
    // inet_tls_dist: TLS starts right after the TCP connect.
    stream_.set_peer_host(host);
    {
        std::string why;
        ec = co_await stream_.async_start(/*server=*/false, why);
        if (ec) {
            fail_setup(ec, std::move(why));
            co_return;
        }
    }
    if (is_closed()) co_return;

    auto cfg = handshake_setup(proto::handshake_role::initiator, net_->cookie_for(peer));
    cfg.peer_name = std::string(peer.str());
    // "alive": the peer already has a connection up with us. dist_util answers
    // net_kernel:is_pending/1: continue (true, the peer's connection is stale: we restarted or
    // lost it) only while this attempt is still our connection to the peer. If a connection
    // the peer opened towards us has meanwhile replaced it (crossing attempts that both got
    // past the simultaneous-connect check), answer false: continuing would make each side
    // replace its working connection with the other's doomed one.
    cfg.on_alive = [this, peer](std::string_view) {
        return core_->connections.is_current(peer, this);
    };
    proto::handshake hs(std::move(cfg));
    hs.start();
    ec = co_await run_handshake(hs);
    if (ec) {
        if (ec == make_error_code(errc::nok)) {
            // Simultaneous connect lost: the peer's own attempt is arriving as an incoming
            // connection that will supersede this one and take over the queued messages. Keep
            // this object pending until then (or until set-up times out).
            stream_.close();
            co_return;
        }
        fail_setup(ec, hs.reason().empty() ? handshake_why_ : hs.reason());
        co_return;
    }
    setup_timer.cancel();
    if (!become_up(hs)) co_return;
    asio::co_spawn(strand_, run_ticker(), asio::detached);
    co_await run_reader(std::move(handshake_leftover_));
}

namespace {
// Leaves the pending-handshake gate however the coroutine ends.
struct gate_ticket {
    proto::handshake_gate& gate;
    proto::handshake_gate::ticket t;
    ~gate_ticket() { gate.leave(t); }
};
}  // namespace

asio::awaitable<void> connection::run_incoming() {
    auto self = shared_from_this();
    asio::steady_timer setup_timer(strand_);
    arm_setup_timer(self, setup_timer, core_->opts.net_setuptime, core_->counters);
    error_code ec;
    // Until the peer has proven the cookie it holds a pending-handshake place, not one of the
    // max_connections slots the accept loop took for it: unauthenticated connections must not
    // lock authenticated peers out.
    if (holds_slot_.exchange(false)) net_->release();
    std::string from;
    if (auto ep = stream_.socket().remote_endpoint(ec); !ec) from = ep.address().to_string();
    const auto& o = core_->opts;
    gate_ticket ticket{net_->handshakes,
                       net_->handshakes.enter(
                           from,
                           [w = weak_from_this(), lim = o.max_pending_handshakes,
                            per = o.max_pending_handshakes_per_address] {
                               // Not up: it may have authenticated since it was chosen.
                               if (auto c = w.lock(); c && !c->is_up())
                                   c->close(
                                       make_error_code(errc::limit_exceeded),
                                       "unauthenticated, closed to make room for a newer incoming "
                                       "connection: limit exceeded: max_pending_handshakes (" +
                                           std::to_string(lim) + ", " + std::to_string(per) +
                                           " per address)");
                           },
                           {o.max_pending_handshakes, o.max_pending_handshakes_per_address})};
    if (is_closed()) co_return;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    state_ = state::handshaking;
    {
        std::string why;
        ec = co_await stream_.async_start(/*server=*/true, why);
        if (ec) {
            error_code rec;
            auto ep = stream_.socket().remote_endpoint(rec);
            if (!rec) why += " (from " + ep.address().to_string() + ")";
            fail_setup(ec, std::move(why));
            co_return;
        }
    }
    if (is_closed()) co_return;

    auto cfg = handshake_setup(proto::handshake_role::acceptor, net_->cookie);
    proto::handshake* hsp = nullptr;
    cfg.on_peer_name = [this, &hsp](std::string_view name, std::uint64_t, std::uint32_t) {
        return decide_status(name, *hsp);
    };
    proto::handshake hs(std::move(cfg));
    hsp = &hs;
    hs.start();
    ec = co_await run_handshake(hs);
    if (ec) {
        fail_setup(ec, hs.reason().empty() ? handshake_why_ : hs.reason());
        co_return;
    }
    // Authenticated: from here on the connection counts towards max_connections.
    net_->handshakes.leave(ticket.t);
    if (!net_->try_acquire()) {
        close(
            make_error_code(errc::limit_exceeded),
            "limit exceeded: max_connections (" + std::to_string(o.max_connections) + ") reached");
        co_return;
    }
    holds_slot_ = true;
    if (is_closed()) {
        // Closed meanwhile by another thread, which did not see the slot.
        if (holds_slot_.exchange(false)) net_->release();
        co_return;
    }
    setup_timer.cancel();
    if (!become_up(hs)) co_return;
    asio::co_spawn(strand_, run_ticker(), asio::detached);
    co_await run_reader(std::move(handshake_leftover_));
}

namespace {
// A read or write failed during the distribution handshake. Inside TLS this is where a peer
// that refused our certificate shows up (TLS 1.3 sends its alert after the handshake).
error_code handshake_io_error_impl(const error_code& ec, bool tls, std::string& why) {
    if (tls && (ec.category() == asio::error::get_ssl_category() ||
                ec.category() == asio::ssl::error::get_stream_category())) {
        why = "TLS failed: " + describe_tls_error(ec, nullptr);
        return make_error_code(errc::tls_failed);
    }
    why = ec == asio::error::eof ? "peer closed the connection during the handshake"
                                 : "handshake I/O failed: " + ec.message();
    return make_error_code(errc::connection_closed);
}
}  // namespace

asio::awaitable<error_code> connection::run_handshake(proto::handshake& hs) {
    std::vector<std::uint8_t> buf(4096);
    error_code ec;
    auto handshake_io_error = [this](const error_code& e, proto::handshake&) {
        return handshake_io_error_impl(e, stream_.is_tls(), handshake_why_);
    };
    for (;;) {
        if (hs.has_output()) {
            auto out = hs.take_output();
            const std::size_t written = co_await stream_.async_write(
                asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
            {
                std::lock_guard lk(mu_);
                bytes_sent_ += written;
            }
            touch();
            if (ec) {
                if (is_closed()) co_return close_reason_;
                co_return handshake_io_error(ec, hs);
            }
        }
        if (hs.done()) co_return error_code{};
        if (hs.failed()) co_return hs.error();
        if (is_closed()) co_return close_reason_;
        std::size_t n = co_await stream_.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        bytes_received_.fetch_add(n, std::memory_order_relaxed);
        touch();
        if (ec) {
            if (is_closed()) co_return close_reason_;
            co_return handshake_io_error(ec, hs);
        }
        std::size_t off = 0;
        while (off < n && !hs.done() && !hs.failed()) {
            std::size_t used = 0;
            hs.feed(std::span<const std::uint8_t>(buf.data() + off, n - off), used);
            off += used;
            if (used == 0) break;
        }
        if (hs.done() && off < n) handshake_leftover_.assign(buf.begin() + off, buf.begin() + n);
    }
}

proto::handshake_status connection::decide_status(std::string_view peer_name,
                                                  proto::handshake& hs) {
    // The peer has not proven the cookie yet: nothing here may add to shared state, so the
    // name is compared as text and only looked up as an existing atom (the allow-list, the
    // per-peer cookies and the connection table are keyed by atoms that exist already). The
    // atom is made in become_up, after the challenge reply checked out. OTP's dist_util
    // (recv_name_new) checks `allowed` before list_to_atom but makes the atom before the
    // challenge; this is stricter.
    if (!split_node_name(peer_name) || peer_name == core_->name.str())
        return proto::handshake_status::not_allowed;
    auto pa = atom::existing(peer_name);
    if (!net_->allow.empty() && (!pa || !net_->allowed(*pa))) {
        // net_kernel:allow/1: dist_util answers "not_allowed" to nodes outside the list.
        core_->log(log_level::warning, log_kind::handshake_refused, peer_name,
                   make_error_code(errc::node_not_allowed), "not in the allow-list (not_allowed)");
        return proto::handshake_status::not_allowed;
    }
    // No connection to or from a node whose name is not an atom yet, so no simultaneous
    // connect or stale connection to resolve; become_up registers this one.
    if (!pa) return proto::handshake_status::ok;
    const atom peer = *pa;
    // Per-peer cookie (erlang:set_cookie/2): the digests of this handshake use it.
    hs.set_cookie(net_->cookie_for(peer));
    std::shared_ptr<connection> loser;
    const auto status = core_->connections.accept_pending(peer, shared_from_this(), loser);
    if (status == proto::handshake_status::nok) return status;
    {
        std::lock_guard lk(mu_);
        peer_ = peer;
    }
    if (loser) loser->close(make_error_code(errc::nok), {});
    return status;
}

void connection::adopt_pending_from(connection& other) {
    std::scoped_lock lk(mu_, other.mu_);
    for (auto& p : other.pending_)
        pending_.push_back(std::move(p));
    other.pending_.clear();
    pending_bytes_ += std::exchange(other.pending_bytes_, 0);
    // Asynchronous sends waiting on `other` wait here now, behind what it had queued.
    for (auto& r : other.async_q_)
        async_q_.push_back(std::move(r));
    other.async_q_.clear();
    other.account_locked();
    account_locked();
    // In the same critical section: from now on sends to `other` forward to its successor.
    other.superseded_ = true;
}

bool connection::become_up(const proto::handshake& hs) {
    std::vector<std::function<void(bool)>> settled;
    auto self = shared_from_this();
    auto pa = atom::make(hs.peer_name());
    if (!pa) {
        close(pa.error(), "cannot make an atom of the peer's name " + hs.peer_name());
        return false;
    }
    const atom peer = *pa;
    std::shared_ptr<connection> replaced = core_->connections.take_slot(peer, self);
    if (replaced) {
        {
            // A replaced attempt that never came up hands over what was queued on it; those
            // messages were sent before anything queued here, so they go first.
            std::scoped_lock lk(mu_, replaced->mu_);
            if (!replaced->is_up()) {
                replaced->superseded_ = true;
                pending_.insert(pending_.begin(),
                                std::make_move_iterator(replaced->pending_.begin()),
                                std::make_move_iterator(replaced->pending_.end()));
                replaced->pending_.clear();
                pending_bytes_ += std::exchange(replaced->pending_bytes_, 0);
                async_q_.insert(async_q_.begin(),
                                std::make_move_iterator(replaced->async_q_.begin()),
                                std::make_move_iterator(replaced->async_q_.end()));
                replaced->async_q_.clear();
                replaced->account_locked();
                account_locked();
            }
        }
        replaced->close(make_error_code(errc::connection_closed),
                        "replaced by a new connection from the same node");
    }
    {
        std::unique_lock lk(mu_);
        peer_ = peer;
        flags_.store(hs.negotiated_flags(), std::memory_order_release);
        writer_.emplace(hs.negotiated_flags());
        writer_->gather_into(&wout_, core_->opts.min_gathered_binary);
        state_ = state::up;
        flush_locked();
        settled.swap(settled_);
        // Senders that waited for the queue to drain re-check it against the written output.
        if (send_waiters_ != 0) writable_cv_.notify_all();
        after_progress(lk);
    }
    up_cv_.notify_all();
    for (auto& f : settled)
        f(true);
    if (core_->logs(log_level::info))
        core_->log(log_level::info, log_kind::connection_up, peer.str(), {},
                   std::string(outgoing_ ? "outgoing" : "incoming") +
                       (peer_hidden() ? ", hidden peer" : ""));
    core_->connections.on_up(self);
    return true;
}

// ------------------------------------------------------------------------------------------
// Reading

namespace {
// What a decode worker hands back to the reader.
struct offloaded {
    error_code ec;
    proto::dist_message msg;
    std::size_t new_atoms = 0;  // atoms the decode added to the table
};

// Decodes `m` on the node's decode workers and resumes the reader on its own executor with
// the result. The worker counts the atoms it creates under `atom_cap` as the reader does on
// its own thread (the counter is per thread). `net` keeps the node-wide inflating bound the
// limits point to alive while the decode runs.
template <class Token>
auto async_decode(decode_pool& pool, proto::deferred_message m, etf::limits lim,
                  std::size_t atom_cap, std::shared_ptr<net_state> net, Token&& token) {
    return asio::async_initiate<Token, void(offloaded)>(
        [&pool](auto handler, proto::deferred_message m, etf::limits lim, std::size_t atom_cap,
                std::shared_ptr<net_state> net) {
            auto work = asio::make_work_guard(asio::get_associated_executor(handler));
            pool.post([h = std::move(handler), work = std::move(work), m = std::move(m), lim,
                       atom_cap, net = std::move(net)]() mutable {
                offloaded r;
                const std::size_t before = atoms_created_by_this_thread();
                set_thread_atom_creation_cap(before + atom_cap);
                r.ec = proto::decode_deferred(m, lim, r.msg);
                set_thread_atom_creation_cap(SIZE_MAX);
                r.new_atoms = atoms_created_by_this_thread() - before;
                proto::deferred_message().storage.swap(m.storage);  // freed here, not there
                auto ex = work.get_executor();
                // Everything the job holds moves into the completion: the worker keeps no
                // reference to the connection (or the node) once it has posted it.
                asio::post(ex, [h = std::move(h), r = std::move(r), work = std::move(work),
                                net = std::move(net)]() mutable { std::move(h)(std::move(r)); });
            });
        },
        token, std::move(m), lim, atom_cap, std::move(net));
}
}  // namespace

asio::awaitable<void> connection::run_reader(std::vector<std::uint8_t> leftover) {
    auto self = shared_from_this();
    const auto& o = core_->opts;
    proto::reader_limits lim;
    lim.max_frame_size = o.max_message_size;
    lim.max_fragment_sequences = o.max_fragment_sequences;
    lim.max_fragmented_bytes = o.max_fragmented_bytes;
    lim.fragmented_total = &net_->fragmented;
    lim.max_fragmented_total =
        o.max_fragmented_bytes_total ? o.max_fragmented_bytes_total : SIZE_MAX;
    lim.max_message_size = o.max_message_size;
    lim.term_limits.inflating = &net_->inflating;
    lim.term_limits.max_inflating = o.max_inflating_bytes ? o.max_inflating_bytes : SIZE_MAX;
    if (core_->decoder) lim.offload_above = o.decode_offload_threshold;
    lim.min_shared_binary = o.min_shared_binary;
    proto::dist_reader reader(flags(), lim);
    // The reader's own copy, with max_uncompressed capped by max_message_size as it does.
    etf::limits term_limits = lim.term_limits;
    term_limits.max_uncompressed = std::min(term_limits.max_uncompressed, o.max_message_size);
    std::vector<proto::dist_message> msgs;
    delivery_batch batch;
    std::size_t new_atoms = 0;  // atoms this peer added to the global table
    const std::size_t budget = o.max_new_atoms_per_connection;
    // How many more atoms this peer's data may create now. Peer data may fill the atom table
    // only up to a headroom below its limit: the runtime itself interns a few atoms lazily
    // (reasons, service names) and must not be the one to find the table full.
    auto atom_allowance = [&] {
        const std::size_t limit = atom_table_limit();
        const std::size_t peer_limit = limit - std::min<std::size_t>(4096, limit / 4);
        const std::size_t size_now = atom_table_size();
        std::size_t allowed = peer_limit > size_now ? peer_limit - size_now : 0;
        if (budget != 0) allowed = std::min(allowed, budget - std::min(budget, new_atoms));
        return allowed;
    };
    auto dispatch = [&] {
        messages_received_.fetch_add(msgs.size(), std::memory_order_relaxed);
        if (!msgs.empty()) {
            begin_dispatch();
            for (auto& m : msgs) {
                if (is_closed()) break;
                core_->on_dist_message(self, m, batch);
            }
            batch.flush();
            end_dispatch();
        }
    };
    auto fail = [&](error_code ec, std::string_view exceeded) {
        if (ec == errc::atom_table_full && budget != 0 && new_atoms >= budget) {
            close(make_error_code(errc::limit_exceeded),
                  "limit exceeded: peer sent more than max_new_atoms_per_connection " +
                      std::to_string(budget) + " new atoms");
        } else {
            close(ec, limit_reason(ec, exceeded));
        }
    };
    // Dispatches what a chunk produced; a protocol violation or an exceeded limit closes this
    // connection only. A message the reader deferred is decoded by the node's workers while
    // this coroutine waits (reading nothing more: later messages cannot overtake it, and the
    // peer has at most one message there); then the rest of the chunk is parsed.
    auto consume = [&](std::span<const std::uint8_t> data) -> asio::awaitable<bool> {
        while (!data.empty()) {
            // Decoding runs on this thread from here to the end of feed(), so the thread's
            // atom counter difference is exactly what this peer created, and a thread cap
            // enforces max_new_atoms_per_connection while decoding (network atoms this peer
            // made and that were freed again still count: the budget is for creations).
            const std::size_t atoms_before = atoms_created_by_this_thread();
            set_thread_atom_creation_cap(atoms_before + atom_allowance());
            std::size_t used = 0;
            auto ec = reader.feed(data, msgs, used);
            set_thread_atom_creation_cap(SIZE_MAX);
            frames_received_.store(reader.frames_received(), std::memory_order_relaxed);
            ticks_received_.store(reader.ticks_received(), std::memory_order_relaxed);
            new_atoms += atoms_created_by_this_thread() - atoms_before;
            dispatch();
            msgs.clear();
            if (ec) {
                fail(ec, reader.exceeded_limit());
                co_return false;
            }
            data = data.subspan(used);
            if (is_closed()) co_return false;
            if (!reader.has_deferred()) continue;
            {
                std::lock_guard lk(mu_);
                decoding_ = true;
            }
            auto r = co_await async_decode(*core_->decoder, reader.take_deferred(), term_limits,
                                           atom_allowance(), net_, asio::use_awaitable);
            {
                std::lock_guard lk(mu_);
                decoding_ = false;
                read_since_tick_ = true;
            }
            new_atoms += r.new_atoms;
            if (r.ec) {
                fail(r.ec, {});
                co_return false;
            }
            msgs.push_back(std::move(r.msg));
            dispatch();
            // A large term that no process took (its destination is gone) is freed by a
            // worker too: destroying ten million list cells takes as long as making them.
            core_->decoder->post([m = std::move(msgs)]() mutable { m.clear(); });
            msgs.clear();
        }
        co_return true;
    };
    if (!leftover.empty() && !co_await consume(leftover)) co_return;
    // Not zero-filled: a read only exposes what it wrote.
    std::size_t buf_size = small_read_chunk;
    auto buf = std::make_unique_for_overwrite<std::uint8_t[]>(buf_size);
    int small_reads = 0;  // consecutive reads below small_read_chunk
    read_buffer_bytes_.store(buf_size, std::memory_order_relaxed);
    struct released {
        std::atomic<std::size_t>& bytes;
        ~released() { bytes.store(0, std::memory_order_relaxed); }
    } release_buf{read_buffer_bytes_};
    error_code ec;
    // Each read takes at most read_chunk bytes, and its completion is queued behind the
    // handlers already waiting on the io_context: a peer that floods the connection gets one
    // chunk's worth of frames dispatched per turn, never a run of the thread.
    while (!is_closed()) {
        std::size_t n = co_await stream_.async_read_some(
            asio::buffer(buf.get(), buf_size), asio::redirect_error(asio::use_awaitable, ec));
        bytes_received_.fetch_add(n, std::memory_order_relaxed);
        touch();
        if (ec) {
            std::string why = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                                  ? "peer closed the connection"
                              : stream_.is_tls() ? tls_reason(ec)
                                                 : ec.message();
            close(make_error_code(errc::connection_closed), why);
            co_return;
        }
        {
            std::lock_guard lk(mu_);
            read_since_tick_ = true;
        }
        if (!co_await consume(std::span<const std::uint8_t>(buf.get(), n))) co_return;
        // Back to the small buffer after a run of small reads, not at the first one: a busy
        // connection's reads are sometimes short, and trading buffers is not free.
        small_reads = n < small_read_chunk ? small_reads + 1 : 0;
        const std::size_t want = n == buf_size      ? read_chunk
                                 : small_reads >= 8 ? small_read_chunk
                                                    : buf_size;
        if (want != buf_size) {
            buf_size = want;
            buf = std::make_unique_for_overwrite<std::uint8_t[]>(buf_size);
            read_buffer_bytes_.store(buf_size, std::memory_order_relaxed);
        }
    }
}

std::string connection::limit_reason(const error_code& ec, std::string_view exceeded) const {
    const auto& o = core_->opts;
    if (ec == errc::frame_too_large)
        return "limit exceeded: message (frame or reassembled fragments) larger than "
               "max_message_size (" +
               std::to_string(o.max_message_size) + " bytes)";
    if (ec == errc::limit_exceeded && exceeded == "max_fragment_sequences")
        return "limit exceeded: fragmented messages in flight above max_fragment_sequences (" +
               std::to_string(o.max_fragment_sequences) + ")";
    if (ec == errc::limit_exceeded && exceeded == "max_fragmented_total")
        return "limit exceeded: fragments being reassembled on all connections above "
               "max_fragmented_bytes_total (" +
               std::to_string(o.max_fragmented_bytes_total) + ")";
    if (ec == errc::limit_exceeded)
        return "limit exceeded: fragments being reassembled on this connection above "
               "max_fragmented_bytes (" +
               std::to_string(o.max_fragmented_bytes) + ")";
    if (ec == errc::too_large)
        return "limit exceeded: term too large (a length beyond the data, a compressed term "
               "inflating to more than max_message_size (" +
               std::to_string(o.max_message_size) +
               " bytes), or inflated data of all connections above max_inflating_bytes (" +
               std::to_string(o.max_inflating_bytes) + "))";
    if (ec == errc::atom_table_full)
        return "limit exceeded: atom table full (limit " + std::to_string(atom_table_limit()) +
               " atoms, max_atoms; peers may use all but a headroom kept for the runtime)";
    return "bad distribution data from peer: " + ec.message();
}

std::string connection::tls_reason(const error_code& ec) {
    return describe_tls_error(ec, nullptr);
}

// ------------------------------------------------------------------------------------------
// Writing

// One write path (docs/node.md "Writes"). Senders encode into wbuf_ under mu_. At most one
// party holds the write turn: nobody (turn_ none), the reader while it dispatches a read chunk,
// or the strand while an async_write is in flight. A sender that finds the turn free writes
// wbuf_ itself with one non-blocking send(2) under mu_ (plain TCP; close() shuts the socket
// under mu_, so the descriptor is still ours) and hands what the kernel did not take to the
// strand; a sender that finds the turn held only appends, and the holder writes it: the reader
// after its chunk, the strand when its write completes (everything queued meanwhile in one
// write). TLS streams are not thread-safe, so there the free turn always goes to the strand.

error_code connection::send(const term& control, const term* payload, send_mode mode) {
    atom successor_peer;
    {
        std::unique_lock lk(mu_);
        if (superseded_) {
            // A simultaneous connect replaced this attempt and its queue moved to the winner;
            // a sender that still held this object must not lose its message here.
            successor_peer = peer_;
        } else {
            switch (state_.load()) {
                case state::closed:
                    return {};
                case state::up:
                    return append_up(
                        lk, [&] { writer_->append_message(wbuf_, control, payload); }, mode);
                default:
                    return queue_pending(lk, control, payload, mode);
            }
        }
    }
    if (auto next = core_->connections.connection_to(successor_peer, true);
        next && next.get() != this)
        return next->send(control, payload, mode);
    return {};
}

// Before the handshake completes the message is kept as terms (the encoding depends on the
// flags the handshake negotiates), counted at its ETF size with the encoded output, so the
// same busy state, waits and bounds apply as once the connection is up (docs/node.md
// "Writes").
error_code connection::queue_pending(std::unique_lock<std::mutex>& lk, const term& control,
                                     const term* payload, send_mode mode) {
    bool changed = false;
    if (auto ec = wait_writable_locked(lk, mode, changed)) return ec;
    if (changed) {
        // Up, or superseded by a simultaneous connect, while the sender waited: the message
        // goes the way a send made now would.
        lk.unlock();
        return send(control, payload, mode);
    }
    const std::size_t before = queued_locked();
    if (!async_q_.empty()) admit_async_locked(true);
    const std::size_t admitted = queued_locked();
    push_pending_locked(control, payload ? std::optional<term>(*payload) : std::nullopt);
    largest_append_ = std::max(largest_append_, queued_locked() - admitted);
    account_locked();
    if (auto ec = check_output_bounds(lk, before)) return ec;
    if (!admitted_.empty()) complete_admitted(lk);
    return {};
}

template <class Append, class MakeControl>
error_code connection::send_fast(Append&& append, MakeControl&& make_control, const term& msg,
                                 send_mode mode) {
    {
        std::unique_lock lk(mu_);
        if (!superseded_ && state_.load() == state::up)
            return append_up(
                lk, [&] { append(*writer_, wbuf_); }, mode);
        if (!superseded_ && state_.load() == state::closed) return {};
    }
    // Not up yet, or superseded by a simultaneous connect (possibly after it came up): the
    // general path queues or forwards the message with its control tuple, built only now.
    return send(make_control(), &msg, mode);
}

error_code connection::send_to_pid(const term& from, const pid& to, const term& msg,
                                   send_mode mode) {
    // SEND_SENDER needs the flag; before the handshake the flags are unknown (0) and SEND,
    // which every version accepts, is used.
    const bool sender = flags() & proto::dflag::send_sender;
    return send_fast(
        [&](proto::dist_writer& w, std::vector<std::uint8_t>& out) {
            w.append_send(out, from, to, msg, sender);
        },
        [&] { return send_control(from, to, sender); }, msg, mode);
}

error_code connection::send_to_name(const term& from, atom to_name, const term& msg,
                                    send_mode mode) {
    return send_fast(
        [&](proto::dist_writer& w, std::vector<std::uint8_t>& out) {
            w.append_reg_send(out, from, to_name, msg);
        },
        [&] { return reg_send_control(from, to_name); }, msg, mode);
}

// Busy as erts' dist entry is busy at dist_buf_busy_limit: this connection's unwritten bytes at
// output_busy_limit, or the node's at output_total_limit (then only connections with output of
// their own queued are busy: one that has written everything is never held back by others).
bool connection::busy_locked() const {
    return !async_q_.empty() || bytes_busy_locked();
}

bool connection::bytes_busy_locked() const {
    const std::size_t q = queued_locked();
    if (q == 0) return false;
    const auto& o = core_->opts;
    return (o.output_busy_limit != 0 && q >= o.output_busy_limit) ||
           (o.output_total_limit != 0 &&
            net_->queued_output.load(std::memory_order_relaxed) >= o.output_total_limit);
}

bool connection::busy() const {
    std::lock_guard lk(mu_);
    return busy_locked();
}

void connection::account_locked() {
    const std::size_t q = queued_locked();
    if (q == 0) largest_append_ = 0;
    if (q > accounted_)
        net_->queued_output.fetch_add(q - accounted_, std::memory_order_relaxed);
    else if (q < accounted_)
        net_->queued_output.fetch_sub(accounted_ - q, std::memory_order_relaxed);
    accounted_ = q;
}

error_code connection::wait_writable_locked(std::unique_lock<std::mutex>& lk, send_mode mode,
                                            bool& changed) {
    changed = false;
    if (!busy_locked()) return {};
    if (mode == send_mode::try_) return make_error_code(errc::would_block);
    // A thread waits; an I/O thread never does: the write that would wake it may be the one
    // this thread is to make (the reader's turn) or need this thread to run.
    if (mode != send_mode::wait || core_->on_io_thread()) return {};
    const bool was_up = state_.load() == state::up;
    auto moved_on = [&] { return !was_up && (superseded_ || state_.load() == state::up); };
    ++send_waiters_;
    writable_cv_.wait(lk, [&] { return is_closed() || moved_on() || !busy_locked(); });
    --send_waiters_;
    if (moved_on()) {
        changed = true;
        return {};
    }
    if (is_closed()) return close_reason_ ? close_reason_ : make_error_code(errc::noconnection);
    return {};
}

// Hard bounds, for sends that did not wait: they apply to a connection that was busy already
// (`before`: its queue before the append), so any single message may still go to a connection
// that is keeping up, and output_queue_limit bounds the bytes queued besides the largest
// message in the queue (a large message may be followed by others before any write is made:
// a process's next sends, or the replies its reader dispatches in the same turn). Closes the
// connection (mu_ held in lk; released then) when one is passed.
error_code connection::check_output_bounds(std::unique_lock<std::mutex>& lk, std::size_t before) {
    const auto& o = core_->opts;
    std::string why;
    if (o.output_busy_limit != 0 && before >= o.output_busy_limit) {
        const std::size_t total = net_->queued_output.load(std::memory_order_relaxed);
        const char* whose = state_.load() == state::up
                                ? " bytes of output queued for the peer"
                                : " bytes of output queued for the peer while the connection "
                                  "is being set up";
        const std::size_t q = queued_locked();
        const std::size_t besides = q - std::min(q, largest_append_);
        if (o.output_queue_limit != 0 && besides > o.output_queue_limit)
            why = "limit exceeded: " + std::to_string(q) + whose + " (" + std::to_string(besides) +
                  " besides its largest message), above output_queue_limit (" +
                  std::to_string(o.output_queue_limit) +
                  (state_.load() == state::up ? "): the peer is not reading" : ")");
        else if (o.output_total_limit != 0 && total > o.output_total_limit)
            why = "limit exceeded: output queued for all peers (" + std::to_string(total) +
                  " bytes) above output_total_limit (" + std::to_string(o.output_total_limit) +
                  "), this peer holding " + std::to_string(queued_locked()) + " bytes";
    }
    if (why.empty()) return {};
    lk.unlock();
    close(make_error_code(errc::limit_exceeded), why);
    return make_error_code(errc::limit_exceeded);
}

template <class Append>
error_code connection::append_up(std::unique_lock<std::mutex>& lk, Append&& append,
                                 send_mode mode) {
    bool changed = false;
    if (auto ec = wait_writable_locked(lk, mode, changed)) return ec;
    const std::size_t before = queued_locked();
    // A send that did not wait for asynchronous sends waiting here takes them along first.
    if (!async_q_.empty()) admit_async_locked(true);
    const std::size_t admitted = queued_locked();
    append();
    largest_append_ = std::max(largest_append_, queued_locked() - admitted);
    account_locked();
    if (auto ec = check_output_bounds(lk, before)) return ec;
    write_locked();
    if (!admitted_.empty()) complete_admitted(lk);
    return {};
}

namespace {
// After a burst, do not keep a large buffer per connection.
void release_if_large(std::vector<std::uint8_t>& b, std::size_t keep) {
    if (b.empty() && b.capacity() > keep) std::vector<std::uint8_t>().swap(b);
}
}  // namespace

void connection::write_locked() {
    if (wbuf_empty_locked() || is_closed()) return;
    const bool direct = !stream_.is_tls() && stream_.socket().is_open();
    if (turn_ == write_turn::strand) {
        // A stream whose queue makes the connection busy before the strand has started its
        // write: the kernel is offered the queue now, so a sender told the connection is busy
        // is told so with the kernel's buffers full.
        if (direct && inflight_.empty() && bytes_busy_locked()) send_direct_locked();
        return;
    }
    if (turn_ != write_turn::none) return;
    // A second write with no input dispatched in between is a stream (a thread sending in a
    // loop): the strand writes it, so what senders append meanwhile leaves in one write.
    if (direct && !direct_since_input_) {
        direct_since_input_ = true;
        send_direct_locked();
        if (wbuf_empty_locked()) return;
    }
    start_strand_write_locked();
}

void connection::send_direct_locked() {
    // The queue in order: wbuf_ from wbuf_head_, with the large binaries of wout_ between its
    // bytes; one sendmsg(2) takes what fits in its iovec.
    constexpr int max_iov = 64;
    iovec iov[max_iov];
    int cnt = 0;
    wout_.for_each_piece(wbuf_, wbuf_head_, [&](const std::uint8_t* p, std::size_t n) {
        iov[cnt++] = {const_cast<std::uint8_t*>(p), n};
        return cnt < max_iov;
    });
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = static_cast<std::size_t>(cnt);
    const ssize_t n = ::sendmsg(stream_.socket().native_handle(), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    // A short write leaves the rest, and an error everything, to the strand's writer (which
    // then reports the error).
    if (n <= 0) return;
    wout_.consume(wbuf_head_, wbuf_.size(), static_cast<std::size_t>(n));
    if (wbuf_head_ == wbuf_.size() && wout_.refs.empty()) {
        wbuf_.clear();
        wbuf_head_ = 0;
    } else if (wout_.refs.empty() && wbuf_.size() - wbuf_head_ <= 64 * 1024) {
        // A small rest moves to the front (refs' offsets would move with it: only without).
        wbuf_.erase(wbuf_.begin(), wbuf_.begin() + static_cast<std::ptrdiff_t>(wbuf_head_));
        wbuf_head_ = 0;
    }
    wrote_since_tick_ = true;
    bytes_sent_ += static_cast<std::uint64_t>(n);
    touch();
    account_locked();
    release_if_large(wbuf_, core_->opts.output_busy_limit);
}

void connection::start_strand_write_locked() {
    turn_ = write_turn::strand;
    asio::post(strand_, [self = shared_from_this()] {
        std::unique_lock lk(self->mu_);
        if (self->is_closed()) return;
        if (self->wbuf_empty_locked()) {  // a sender's direct write took it all meanwhile
            self->turn_ = write_turn::none;
            self->direct_since_input_ = false;
            self->after_progress(lk);
            return;
        }
        self->write_inflight_locked();
    });
}

void connection::write_inflight_locked() {
    inflight_.swap(wbuf_);
    inflight_head_ = wbuf_head_;
    wbuf_head_ = 0;
    std::swap(inflight_out_, wout_);  // wout_ gets the empty one (its address stays the writer's)
    inflight_bufs_.clear();
    inflight_out_.for_each_piece(inflight_, inflight_head_,
                                 [&](const std::uint8_t* p, std::size_t n) {
                                     inflight_bufs_.emplace_back(p, n);
                                     return true;
                                 });
    stream_.async_write(
        inflight_bufs_,
        asio::bind_executor(strand_, [self = shared_from_this()](error_code ec, std::size_t n) {
            self->on_write_done(ec, n);
        }));
}

void connection::on_write_done(error_code ec, std::size_t written) {
    touch();
    std::unique_lock lk(mu_);
    bytes_sent_ += written;
    inflight_.clear();
    inflight_head_ = 0;
    inflight_out_.clear();
    inflight_bufs_.clear();
    release_if_large(inflight_, core_->opts.output_busy_limit);
    if (ec || is_closed()) {
        turn_ = write_turn::none;
        wbuf_.clear();
        wbuf_head_ = 0;
        wout_.clear();
        account_locked();
        lk.unlock();
        if (ec) close(make_error_code(errc::connection_closed), "write failed: " + ec.message());
        return;
    }
    wrote_since_tick_ = true;
    if (!wbuf_empty_locked()) {
        write_inflight_locked();
    } else {
        turn_ = write_turn::none;
        direct_since_input_ = false;  // the stream has drained: the next sender writes itself
    }
    account_locked();
    after_progress(lk);
}

void connection::after_progress(std::unique_lock<std::mutex>& lk) {
    // Asynchronous senders first, in the order they came: they waited longest.
    if (!async_q_.empty() && !is_closed() && !superseded_) admit_async_locked(false);
    if (busy_locked() && !is_closed()) {
        if (!admitted_.empty()) complete_admitted(lk);
        return;
    }
    if (send_waiters_ != 0) writable_cv_.notify_all();
    if (writable_.empty() && admitted_.empty()) return;
    auto ready = std::move(writable_);
    writable_.clear();
    auto admitted = std::move(admitted_);
    admitted_.clear();
    const error_code ec =
        !is_closed() ? error_code{}
                     : (close_reason_ ? close_reason_ : make_error_code(errc::noconnection));
    lk.unlock();
    for (auto& f : admitted)
        f({});
    for (auto& f : ready)
        f(ec);
}

void connection::admit_async_locked(bool all) {
    while (!async_q_.empty() && (all || !bytes_busy_locked())) {
        auto r = std::move(async_q_.front());
        async_q_.pop_front();
        if (r->claimed.exchange(true)) continue;  // cancelled: its message is not sent
        append_async_locked(*r);
        admitted_.push_back(std::move(r->done));
        // Written (or handed to the turn's holder) before the next is admitted, so what the
        // kernel takes at once makes room for it.
        if (!all && state_.load() == state::up) write_locked();
    }
}

void connection::append_async_locked(async_send_req& r) {
    const bool sender = flags() & proto::dflag::send_sender;
    if (state_.load() == state::up) {
        if (r.by_name)
            writer_->append_reg_send(wbuf_, r.from, r.to_name, r.msg);
        else
            writer_->append_send(wbuf_, r.from, r.to, r.msg, sender);
    } else {
        // Before the handshake, as send_fast's general path: SEND or REG_SEND as terms.
        push_pending_locked(
            r.by_name ? reg_send_control(r.from, r.to_name) : send_control(r.from, r.to, sender),
            std::move(r.msg));
    }
    r.msg = term();
    account_locked();
}

void connection::push_pending_locked(term control, std::optional<term> payload) {
    pending_bytes_ += etf::encoded_size(control) + (payload ? etf::encoded_size(*payload) : 0);
    pending_.emplace_back(std::move(control), std::move(payload));
}

void connection::complete_admitted(std::unique_lock<std::mutex>& lk) {
    auto admitted = std::move(admitted_);
    admitted_.clear();
    lk.unlock();
    for (auto& f : admitted)
        f({});
}

void connection::send_async(std::shared_ptr<async_send_req> r) {
    std::unique_lock lk(mu_);
    if (!superseded_ && !is_closed()) {
        if (busy_locked()) {
            async_q_.push_back(std::move(r));
            return;
        }
        if (r->claimed.exchange(true)) return;  // cancelled meanwhile
        append_async_locked(*r);
        admitted_.push_back(std::move(r->done));
        if (state_.load() == state::up) write_locked();
        complete_admitted(lk);
        return;
    }
    const bool superseded = superseded_;
    const atom successor_peer = peer_;
    lk.unlock();
    if (superseded) {
        // As send(): the message goes to the connection that replaced this attempt.
        if (auto next = core_->connections.connection_to(successor_peer, true);
            next && next.get() != this)
            return next->send_async(std::move(r));
    }
    // Closed: dropped, as send() drops a message to a connection that has gone.
    if (!r->claimed.exchange(true)) std::exchange(r->done, nullptr)({});
}

void connection::forget_async(const async_send_req* r) {
    std::lock_guard lk(mu_);
    for (auto it = async_q_.begin(); it != async_q_.end(); ++it) {
        if (it->get() != r) continue;
        async_q_.erase(it);
        if (send_waiters_ != 0 && !busy_locked()) writable_cv_.notify_all();
        return;
    }
}

void connection::when_writable(std::function<void(error_code)> ready) {
    std::unique_lock lk(mu_);
    if (!is_closed() && busy_locked()) {
        writable_.push_back(std::move(ready));
        return;
    }
    const error_code ec =
        !is_closed() ? error_code{}
                     : (close_reason_ ? close_reason_ : make_error_code(errc::noconnection));
    lk.unlock();
    ready(ec);
}

void connection::begin_dispatch() {
    std::lock_guard lk(mu_);
    direct_since_input_ = false;
    if (turn_ == write_turn::none) turn_ = write_turn::reader;
}

void connection::end_dispatch() {
    std::unique_lock lk(mu_);
    if (turn_ != write_turn::reader) return;
    turn_ = write_turn::none;
    write_locked();
    after_progress(lk);
}

void connection::flush_locked() {
    for (auto& [control, payload] : pending_)
        writer_->append_message(wbuf_, control, payload ? &*payload : nullptr);
    pending_.clear();
    pending_bytes_ = 0;
    account_locked();
    write_locked();
}

// ------------------------------------------------------------------------------------------
// Ticks (erl_dist_protocol: a frame of length 0; net_kernel sends one per ticktime/4 of
// silence and declares the peer dead after 4 tick periods without input).

asio::awaitable<void> connection::run_ticker() {
    auto self = shared_from_this();
    const auto interval = std::max(core_->opts.net_ticktime / 4, std::chrono::milliseconds(50));
    error_code ec;
    while (!is_closed()) {
        tick_timer_.expires_after(interval);
        co_await tick_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec || is_closed()) co_return;
        erl::detail::buffer_pool::trim();  // large buffers idle for long go back to the system
        bool dead = false;
        std::size_t stalled = 0;  // bytes queued when declared stalled
        {
            std::lock_guard lk(mu_);
            if (!wrote_since_tick_ && turn_ == write_turn::none && wbuf_empty_locked()) {
                proto::dist_writer::append_tick(wbuf_);
                ++ticks_sent_;
                account_locked();
                write_locked();
            }
            wrote_since_tick_ = false;
            // A peer that sends but never reads keeps the connection alive by its input; its
            // output then stays queued with nothing written. The same four tick periods
            // declare it stalled (stricter than OTP, whose senders stay suspended).
            if (queued_locked() != 0 && bytes_sent_ == sent_at_tick_)
                ++stalled_ticks_;
            else
                stalled_ticks_ = 0;
            sent_at_tick_ = bytes_sent_;
            if (stalled_ticks_ >= 4) stalled = queued_locked();
            // While a decode worker holds this connection's message the reader reads nothing,
            // but the peer is not silent: its data is being decoded.
            if (read_since_tick_ || decoding_) {
                silent_ticks_ = 0;
            } else if (++silent_ticks_ >= 4) {
                dead = true;
            }
            read_since_tick_ = false;
        }
        if (dead) {
            close(make_error_code(errc::tick_timeout),
                  "no data or tick received for " +
                      std::to_string(core_->opts.net_ticktime.count()) + " ms (net_ticktime)");
            co_return;
        }
        if (stalled != 0) {
            close(make_error_code(errc::tick_timeout),
                  "peer not reading: " + std::to_string(stalled) +
                      " bytes of output queued and nothing written for " +
                      std::to_string(core_->opts.net_ticktime.count()) + " ms (net_ticktime)");
            co_return;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Tear-down

// One event per connection that ends for a reason worth telling (<erl/log.hpp>): a limit, a
// failed or refused handshake, or the loss of an established connection.
void connection::log_close(bool was_up, atom peer, error_code why, std::string& reason) const {
    const bool limit = why == errc::limit_exceeded || why == errc::frame_too_large ||
                       why == errc::too_large || why == errc::atom_table_full;
    const log_level level = limit || !was_up ? log_level::warning : log_level::notice;
    if (!core_->logs(level)) return;
    const log_kind kind = limit    ? log_kind::limit_exceeded
                          : was_up ? log_kind::connection_down
                                   : log_kind::handshake_refused;
    if (peer.empty())
        reason.insert(0, outgoing_ ? "outgoing connection: " : "incoming connection: ");
    core_->log(level, kind, peer.str(), why, std::move(reason));
}

void connection::close(error_code why, std::string reason) {
    state prev;
    bool superseded;
    atom peer;
    std::vector<std::function<void(bool)>> settled;
    std::vector<std::function<void(error_code)>> writable;
    std::vector<std::function<void(error_code)>> admitted;
    std::deque<std::shared_ptr<async_send_req>> waiting;
    {
        // The state and its reason change together: whoever sees the connection closed (under
        // mu_: wait_up, when_settled) also sees why.
        std::lock_guard lk(mu_);
        prev = state_.exchange(state::closed);
        if (prev == state::closed) return;
        close_reason_ = why;
        if (!pending_.empty() && !reason.empty())
            reason += " (" + std::to_string(pending_.size()) + " messages, " +
                      std::to_string(pending_bytes_) +
                      " bytes, queued for the peer before the connection was up are dropped)";
        pending_.clear();
        pending_bytes_ = 0;
        std::vector<std::uint8_t>().swap(wbuf_);  // inflight_ goes when its write completes
        wbuf_head_ = 0;
        wout_.clear();
        account_locked();
        superseded = superseded_;
        peer = peer_;
        settled.swap(settled_);
        writable.swap(writable_);
        admitted.swap(admitted_);
        waiting.swap(async_q_);
    }
    if (holds_slot_.exchange(false)) net_->release();
    up_cv_.notify_all();
    writable_cv_.notify_all();
    asio::post(strand_, [self = shared_from_this()] {
        {
            std::lock_guard lk(self->mu_);  // no direct write (write_locked) meanwhile
            self->stream_.close();
        }
        self->tick_timer_.cancel();
    });
    if (!superseded && !reason.empty()) log_close(prev == state::up, peer, why, reason);
    core_->connections.on_down(shared_from_this(), why, prev == state::up && !superseded);
    // After on_down: a successor (simultaneous connect) is in the table by now.
    for (auto& f : settled)
        f(false);
    for (auto& f : writable)
        f(why);
    // Queued before the close (dropped with the queue, as any queued message): sent as far as
    // the sender can tell. Still waiting: the message never left, as a blocking send's does not.
    for (auto& f : admitted)
        f({});
    for (auto& r : waiting)
        if (!r->claimed.exchange(true))
            std::exchange(r->done, nullptr)(make_error_code(errc::noconnection));
}

void connection::when_settled(std::function<void(bool up)> done) {
    bool up;
    {
        std::lock_guard lk(mu_);
        const state s = state_.load();
        if (s != state::up && s != state::closed) {
            settled_.push_back(std::move(done));
            return;
        }
        up = s == state::up;
    }
    done(up);
}

void connection::touch() noexcept {
    last_activity_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count(),
                            std::memory_order_relaxed);
}

connection_stats connection::stats(std::size_t& buffer_bytes) const {
    connection_stats s;
    s.up = is_up();
    s.tls = stream_.is_tls();
    s.bytes_received = bytes_received_.load(std::memory_order_relaxed);
    s.messages_received = messages_received_.load(std::memory_order_relaxed);
    s.frames_received = frames_received_.load(std::memory_order_relaxed);
    s.ticks_received = ticks_received_.load(std::memory_order_relaxed);
    s.last_activity = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(last_activity_ns_.load(std::memory_order_relaxed))));
    buffer_bytes = read_buffer_bytes_.load(std::memory_order_relaxed);
    std::lock_guard lk(mu_);
    s.peer = peer_;
    s.bytes_sent = bytes_sent_;
    s.ticks_sent = ticks_sent_;
    s.messages_sent = writer_ ? writer_->messages_written() : 0;
    s.frames_sent = (writer_ ? writer_->frames_written() : 0) + ticks_sent_;
    s.send_queue_bytes = queued_locked();
    buffer_bytes += wbuf_.capacity() + inflight_.capacity();
    return s;
}

error_code connection::wait_up(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    auto settled = [&] { return state_.load() == state::up || state_.load() == state::closed; };
    // Without a deadline the set-up's own (net_setuptime) ends the wait; milliseconds::max()
    // would overflow a steady_clock deadline.
    if (timeout == std::chrono::milliseconds::max())
        up_cv_.wait(lk, settled);
    else if (!up_cv_.wait_for(lk, timeout, settled))
        return make_error_code(errc::timeout);
    if (state_.load() == state::up) return {};
    return close_reason_ ? close_reason_ : make_error_code(errc::noconnection);
}

}  // namespace erl::detail
