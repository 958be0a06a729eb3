#include "node/async_call.hpp"

#include "node/connection.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"

#include <boost/asio/error.hpp>

namespace asio = boost::asio;

namespace erl::detail {

// ------------------------------------------------------------------------------------------
// connect_op

connect_op::connect_op(std::shared_ptr<node_core> core, atom peer,
                       std::chrono::milliseconds timeout)
    : core_(std::move(core)), peer_(peer), timeout_(timeout), timer_(core_->ioc()) {}

void connect_op::start(done_fn done) {
    bool cancelled;
    {
        std::lock_guard lk(mu_);
        done_ = std::move(done);
        self_ = shared_from_this();
        cancelled = cancelled_;
    }
    if (cancelled) return cancel();
    auto& n = *core_;
    if (!n.alive) {
        std::unique_lock lk(n.life_mu);
        const bool stopping = n.state == node_core::life::stopping;
        lk.unlock();
        return finish(make_error_code(stopping ? errc::shutting_down : errc::not_alive));
    }
    if (peer_ == n.name) return finish({});
    auto c = n.connections.connection_to(peer_, true);
    if (!c) {
        // connection_to refuses a name that is not name@host, and any connection once the
        // node is stopping.
        return finish(make_error_code(n.stopping ? errc::shutting_down : errc::bad_node_name));
    }
    if (c->is_up()) return finish({});
    if (timeout_ != std::chrono::milliseconds::max()) {
        // Without a deadline the set-up's own (net_setuptime) ends the wait.
        std::lock_guard lk(mu_);
        if (!done_) return;
        timer_.expires_after(timeout_);
        timer_.async_wait([w = weak_from_this()](error_code ec) {
            if (ec) return;
            if (auto o = w.lock()) o->finish(make_error_code(errc::timeout));
        });
    }
    watch(c);
}

void connect_op::cancel() {
    {
        std::lock_guard lk(mu_);
        cancelled_ = true;  // before start(): start finishes at once
    }
    finish(make_error_code(asio::error::operation_aborted));
}

void connect_op::watch(const std::shared_ptr<connection>& c) {
    c->when_settled([w = weak_from_this(), c](bool up) {
        if (auto o = w.lock()) o->settled(c, up);
    });
}

void connect_op::settled(const std::shared_ptr<connection>& c, bool up) {
    if (up) return finish({});
    // A connection that lost a simultaneous connect (or was replaced) has a successor in the
    // table by the time it reports: the peer is reached through that one.
    auto next = core_->connections.connection_to(peer_, false);
    if (next && next != c) return watch(next);
    // Closed: wait_up returns at once with the reason it closed.
    finish(c->wait_up(std::chrono::milliseconds(0)));
}

void connect_op::finish(error_code ec) {
    done_fn done;
    std::shared_ptr<connect_op> keep;
    {
        std::lock_guard lk(mu_);
        if (!done_) return;
        done = std::move(done_);
        done_ = nullptr;
        keep = std::move(self_);
        timer_.cancel();
    }
    done(ec);
}

// ------------------------------------------------------------------------------------------
// gen_call_op

gen_call_op::gen_call_op(std::shared_ptr<node_core> core, term dest, atom dest_node, term request,
                         std::chrono::milliseconds timeout)
    : core_(std::move(core)),
      dest_(std::move(dest)),
      dest_node_(dest_node),
      request_(std::move(request)),
      timeout_(timeout),
      timer_(core_->ioc()) {}

void gen_call_op::start(done_fn done) {
    const auto& a = A();
    {
        std::unique_lock lk(mu_);
        done_ = std::move(done);
        self_ = shared_from_this();
        if (cancelled_) return finish(lk, aborted_, {});
        if (!core_->alive) return finish(lk, make_error_code(errc::not_alive), {});
    }
    // The calling process handles its messages inline (no thread waits for them). No lock is
    // held while the runtime sets up the monitor: a DOWN for a dead target arrives at once.
    auto p = *runtime::spawn_service(*core_, [w = weak_from_this()](term msg) {
        if (auto o = w.lock()) o->on_message(std::move(msg));
    });  // anonymous: cannot fail
    const bool local = !dest_.is_pid() && dest_node_ == core_->name;
    const reference mon = runtime::monitor(
        *core_, p, dest_.is_pid() || local ? dest_ : make_tuple({dest_, term(dest_node_)}));
    const reference alias = runtime::make_alias(p);
    const term tag = make_list({term(a.alias)}, term(alias));
    {
        std::unique_lock lk(mu_);
        proc_ = p;
        monitor_ = mon;
        alias_ = alias;
        tag_ = tag;
        ready_ = true;
        if (!done_) {
            // Cancelled meanwhile: finish() ran before the process was known.
            lk.unlock();
            runtime::exit(p, term(a.normal));
            return;
        }
        for (auto& m : std::exchange(early_, {}))
            if (handle(lk, m)) return;
        if (timeout_ != std::chrono::milliseconds::max()) {
            timer_.expires_after(timeout_);
            timer_.async_wait([w = weak_from_this()](error_code ec) {
                if (ec) return;
                auto o = w.lock();
                if (!o) return;
                std::unique_lock lk(o->mu_);
                if (o->done_) o->finish(lk, make_error_code(errc::timeout), {});
            });
        }
    }
    term msg = make_tuple({term(a.gen_call), make_tuple({p->self_term, tag}), request_});
    if (dest_.is_pid())
        runtime::send(*p, dest_.as_pid(), std::move(msg));
    else
        runtime::send(*p, dest_.as_atom(), dest_node_, std::move(msg));
}

void gen_call_op::cancel() {
    abort(make_error_code(asio::error::operation_aborted));
}

void gen_call_op::abort(error_code why) {
    std::unique_lock lk(mu_);
    cancelled_ = true;  // before start(): start finishes at once, with `why`
    aborted_ = why;
    if (done_) finish(lk, why, {});
}

void gen_call_op::on_message(term msg) {
    std::unique_lock lk(mu_);
    if (!done_) return;
    if (!ready_) {
        early_.push_back(std::move(msg));
        return;
    }
    handle(lk, msg);
}

bool gen_call_op::handle(std::unique_lock<std::mutex>& lk, const term& msg) {
    const auto& a = A();
    if (msg.is_tuple(2) && msg[0] == tag_) {
        finish(lk, {}, msg[1]);
        return true;
    }
    if (msg.is_tuple(5) && msg[0].is_atom(a.down) && msg[1] == term(monitor_)) {
        const term& r = msg[4];
        const errc why = r.is_atom(a.noconnection) ? errc::noconnection
                         : r.is_atom(a.noproc)     ? errc::noproc
                                                   : errc::exited;
        finish(lk, make_error_code(why), r);
        return true;
    }
    return false;  // anything else sent to the temporary process is dropped
}

void gen_call_op::finish(std::unique_lock<std::mutex>& lk, error_code ec, term value) {
    done_fn done = std::move(done_);
    done_ = nullptr;
    auto keep = std::move(self_);
    timer_.cancel();
    auto p = proc_;
    const bool ready = ready_;
    lk.unlock();
    if (p && ready) {
        // As gen:do_call: no monitor or alias outlives the call, so a late reply is dropped
        // at the alias table and no DOWN is left behind.
        runtime::remove_alias(p, alias_);
        runtime::demonitor(*core_, p, monitor_, false);
        runtime::exit(p, term(A().normal));
    }
    done(ec, std::move(value));
}

}  // namespace erl::detail
