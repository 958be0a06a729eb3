#include "node/connection_manager.hpp"

#include "node/async_call.hpp"
#include "node/async_op.hpp"
#include "node/connection.hpp"
#include "node/node_core.hpp"
#include "transport/cloexec.hpp"
#include "transport/dist_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace erl::detail {

connection_manager::connection_manager(node_core& core) : core_(core) {}

connection_manager::~connection_manager() = default;

// ------------------------------------------------------------------------------------------
// Starting

error_code connection_manager::configure(std::string& why) {
    const node_options& o = core_.opts;
    auto net = std::make_shared<net_state>();
    net->cookie = core_.cookie;
    net->max_connections = o.max_connections;
    for (auto& n : o.allow) {
        auto a = atom::make(n);
        if (!a || !split_node_name(n)) {
            why = "bad node name in allow-list: '" + n + "'";
            return make_error_code(errc::bad_node_name);
        }
        net->allow.insert(*a);
    }
    for (auto& [n, ck] : o.peer_cookies) {
        auto a = atom::make(n);
        if (!a || !split_node_name(n)) {
            why = "bad node name in peer_cookies: '" + n + "'";
            return make_error_code(errc::bad_node_name);
        }
        net->cookies[*a] = ck;
    }
    if (o.tls.enabled) {
        auto t = make_tls_contexts(o.tls, why);
        if (!t) return t.error();
        net->tls = std::move(*t);
    }
    net_ = std::move(net);
    return {};
}

error_code connection_manager::listen(std::string& why) {
    const node_options& o = core_.opts;
    error_code ec;
    auto addr = asio::ip::make_address(o.listen_address, ec);
    if (ec) {
        why = "bad listen_address '" + o.listen_address + "': " + ec.message();
        return ec;
    }
    acceptor_ = std::make_unique<tcp::acceptor>(core_.ioc());
    tcp::endpoint ep(addr, o.listen_port);
    ec = open_cloexec(*acceptor_, ep.protocol());
    if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        why = "cannot listen on " + o.listen_address + ":" + std::to_string(o.listen_port) + ": " +
              ec.message();
        acceptor_.reset();
        return ec;
    }
    port_ = acceptor_->local_endpoint().port();
    return {};
}

void connection_manager::start_accepting() {
    asio::co_spawn(
        core_.ioc(),
        [core = core_.shared_from_this(), this]() -> asio::awaitable<void> {
            while (!core->stopping) {
                error_code ec;
                tcp::socket s(core->ioc());
                ec = co_await async_accept_cloexec(*acceptor_, s);
                if (ec) {
                    if (core->stopping || ec == asio::error::operation_aborted) co_return;
                    continue;
                }
                if (!net_->try_acquire()) {
                    // max_connections: refuse before any TLS or handshake work.
                    error_code rec;
                    auto ep = s.remote_endpoint(rec);
                    if (core->logs(log_level::warning)) {
                        const std::string from =
                            rec ? std::string()
                                : ep.address().to_string() + ":" + std::to_string(ep.port());
                        core->log(log_level::warning, log_kind::limit_exceeded, from,
                                  make_error_code(errc::limit_exceeded),
                                  "incoming connection refused: max_connections (" +
                                      std::to_string(core->opts.max_connections) + ") reached");
                    }
                    s.close(rec);
                    continue;
                }
                auto conn = make(core, std::move(s));
                conn->hold_slot();
                conn->start_incoming();
            }
        },
        asio::detached);
}

// ------------------------------------------------------------------------------------------
// Lookup

template <class... Args>
std::shared_ptr<connection> connection_manager::make(Args&&... args) {
    {
        std::lock_guard lk(live_->mu);
        ++live_->live;
    }
    return std::shared_ptr<connection>(new connection(std::forward<Args>(args)...),
                                       [count = live_](connection* c) {
                                           delete c;
                                           std::lock_guard lk(count->mu);
                                           if (--count->live == 0) count->cv.notify_all();
                                       });
}

std::shared_ptr<connection> connection_manager::connection_to(atom peer, bool create) {
    if (peer == core_.name || core_.stopping || !net_) return nullptr;
    std::shared_ptr<connection> c;
    bool full = false;
    {
        std::lock_guard lk(mu_);
        auto it = conns_.find(peer);
        if (it != conns_.end() && !it->second->is_closed()) return it->second;
        if (!create) return nullptr;
        if (!split_node_name(peer.str())) return nullptr;
        c = make(core_.shared_from_this(), peer);
        if (!net_->try_acquire()) {
            // max_connections: the attempt fails at once (waiters see limit_exceeded).
            full = true;
        } else {
            c->hold_slot();
            conns_[peer] = c;
        }
    }
    if (full) {
        c->close(make_error_code(errc::limit_exceeded),
                 "not connecting to " + std::string(peer.str()) +
                     ": limit exceeded: max_connections (" +
                     std::to_string(core_.opts.max_connections) + ") reached");
        return c;
    }
    c->start_outgoing();
    return c;
}

bool connection_manager::is_up(atom peer) const {
    std::lock_guard lk(mu_);
    auto it = conns_.find(peer);
    return it != conns_.end() && it->second->is_up();
}

std::vector<atom> connection_manager::connected_nodes(node_type which) const {
    std::vector<atom> out;
    std::lock_guard lk(mu_);
    for (auto& [peer, c] : conns_) {
        if (!c->is_up()) continue;
        if (which == node_type::connected || (which == node_type::hidden) == c->peer_hidden())
            out.push_back(peer);
    }
    return out;
}

std::vector<std::shared_ptr<connection>> connection_manager::snapshot() const {
    std::vector<std::shared_ptr<connection>> out;
    std::lock_guard lk(mu_);
    out.reserve(conns_.size());
    for (const auto& [peer, c] : conns_)
        out.push_back(c);
    return out;
}

error_code connection_manager::connect(atom peer, std::chrono::milliseconds timeout) {
    auto op = std::make_shared<connect_op>(core_.shared_from_this(), peer, timeout);
    return std::get<0>(run_blocking<connect_op, error_code>(core_, op));
}

// ------------------------------------------------------------------------------------------
// Transitions

bool connection_manager::is_current(atom peer, const connection* c) const {
    std::lock_guard lk(mu_);
    auto it = conns_.find(peer);
    return it != conns_.end() && it->second.get() == c;
}

proto::handshake_status connection_manager::accept_pending(atom peer,
                                                           const std::shared_ptr<connection>& c,
                                                           std::shared_ptr<connection>& loser) {
    std::lock_guard lk(mu_);
    auto it = conns_.find(peer);
    if (it == conns_.end() || it->second->is_closed()) {
        conns_[peer] = c;
        return proto::handshake_status::ok;
    }
    if (it->second == c) return proto::handshake_status::ok;
    if (it->second->is_up()) {
        // Already connected: the peer restarted or lost the connection before we noticed.
        // Ask it ("alive"); if it continues, the new connection replaces the old one.
        return proto::handshake_status::alive;
    }
    // Simultaneous connect (net_kernel's accept_pending rule): the node with the greater name
    // keeps its own outgoing attempt.
    auto other = it->second;
    if (other->is_outgoing() && proto::we_win_simultaneous(core_.name.str(), peer.str()))
        return proto::handshake_status::nok;
    c->adopt_pending_from(*other);  // also marks it superseded, atomically
    it->second = c;
    loser = std::move(other);
    return loser->is_outgoing() ? proto::handshake_status::ok_simultaneous
                                : proto::handshake_status::ok;
}

std::shared_ptr<connection> connection_manager::take_slot(atom peer,
                                                          const std::shared_ptr<connection>& c) {
    std::lock_guard lk(mu_);
    auto& slot = conns_[peer];
    std::shared_ptr<connection> replaced;
    if (slot && slot != c) replaced = slot;
    slot = c;
    return replaced;
}

void connection_manager::on_up(const std::shared_ptr<connection>& c) {
    notify(node_event{true, c->peer(), {}, c->peer_hidden()});
}

void connection_manager::on_down(const std::shared_ptr<connection>& c, error_code why,
                                 bool was_up) {
    const atom peer = c->peer();
    {
        std::lock_guard lk(mu_);
        auto it = conns_.find(peer);
        if (it != conns_.end() && it->second == c) conns_.erase(it);
    }
    if (was_up) {
        // The contract's second half: every 'DOWN'/'EXIT' noconnection and {nodedown, Node}
        // of monitor_node is delivered before the nodedown event.
        core_.on_node_down_signals(peer);
        notify(node_event{false, peer, why, c->peer_hidden()});
    }
}

// ------------------------------------------------------------------------------------------
// Node events

std::uint64_t connection_manager::subscribe(std::function<void(const node_event&)> cb) {
    std::lock_guard lk(events_mu_);
    const auto id = next_event_id_++;
    subscribers_[id] = std::move(cb);
    return id;
}

void connection_manager::unsubscribe(std::uint64_t id) {
    std::lock_guard lk(events_mu_);
    subscribers_.erase(id);
}

void connection_manager::notify(const node_event& ev) {
    std::vector<std::function<void(const node_event&)>> cbs;
    {
        std::lock_guard lk(events_mu_);
        for (auto& [id, cb] : subscribers_)
            cbs.push_back(cb);
    }
    for (auto& cb : cbs)
        cb(ev);
}

// ------------------------------------------------------------------------------------------
// Stopping

void connection_manager::close_all(error_code why) {
    for (auto& c : snapshot())
        c->close(why, {});
}

void connection_manager::close_listener() {
    error_code ec;
    if (acceptor_) acceptor_->close(ec);
}

void connection_manager::release() {
    {
        std::lock_guard lk(mu_);
        conns_.clear();
    }
    acceptor_.reset();
}

void connection_manager::wait_connections_gone() {
    std::unique_lock lk(live_->mu);
    live_->cv.wait(lk, [&] { return live_->live == 0; });
}

}  // namespace erl::detail
