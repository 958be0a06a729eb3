// erl::supervisor: OTP supervisor semantics for C++ processes (include/erl/supervisor.hpp).
// The supervisor is a thread-bodied process trapping exits; all child bookkeeping happens on
// its thread. C++ callers hand it closures through a queue and wake it with a message.
#include <erl/node.hpp>
#include <erl/supervisor.hpp>

#include "node/access.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <mutex>

namespace erl {

namespace {

using clock = std::chrono::steady_clock;

struct child {
    child_spec spec;
    std::optional<pid> running;
    bool pending_restart = false;
};

}  // namespace

struct supervisor::state {
    node* n = nullptr;
    pid self;
    supervisor_flags flags;
    std::optional<pid> parent;
    std::mutex mu;
    std::deque<std::function<void()>> requests;  // run on the supervisor's thread
};

namespace {

// Everything below runs on the supervisor's thread only.
class sup_loop {
  public:
    sup_loop(std::shared_ptr<supervisor::state> st, mailbox& m) : st_(std::move(st)), m_(m) {}

    error_code init(std::vector<child_spec> specs) {
        for (auto& s : specs) {
            auto r = start_one(s);
            if (!r) {
                shutdown_all();
                return r.error();
            }
            children_.push_back({std::move(s), *r, false});
        }
        return {};
    }

    void run() {
        for (;;) {
            // Due restarts first: a restart without backoff happens before the next message is
            // handled, as in OTP (a which_children right after a crash sees the new pid).
            if (restart_due_ && clock::now() >= *restart_due_) do_restarts();
            auto timeout = infinity;
            if (restart_due_) {
                auto now = clock::now();
                timeout = *restart_due_ <= now
                              ? std::chrono::milliseconds(0)
                              : std::chrono::ceil<std::chrono::milliseconds>(*restart_due_ - now);
            }
            auto msg = m_.receive(timeout);
            if (m_.exited()) return;  // killed: linked children get the exit signal
            if (!msg) {
                if (restart_due_ && clock::now() >= *restart_due_) do_restarts();
                continue;
            }
            if (msg->is_tuple(3) && (*msg)[0].is_atom(detail::A().exit_tag) && (*msg)[1].is_pid()) {
                on_exit((*msg)[1].as_pid(), (*msg)[2]);
            } else if (msg->is_atom(detail::A().sup_request)) {
                drain_requests();
            } else if (msg->is_tuple(3) && (*msg)[0].is_atom(detail::A().gen_call)) {
                on_gen_call((*msg)[1], (*msg)[2]);
            }
            // Anything else is ignored, as OTP's supervisor logs and drops unexpected messages.
        }
    }

    // Requests --------------------------------------------------------------------------------
    result<pid> add_child(child_spec spec) {
        if (find(spec.id)) return make_error_code(errc::name_taken);
        auto r = start_one(spec);
        if (!r) return r.error();
        children_.push_back({std::move(spec), *r, false});
        return *r;
    }
    error_code terminate(atom id) {
        auto* c = find(id);
        if (!c) return make_error_code(errc::not_found);
        c->pending_restart = false;
        if (c->running) terminate_one(*c);
        if (c->spec.restart == restart_type::temporary) erase(id);
        return {};
    }
    error_code remove(atom id) {
        auto* c = find(id);
        if (!c) return make_error_code(errc::not_found);
        if (c->running || c->pending_restart) return make_error_code(errc::child_running);
        erase(id);
        return {};
    }
    result<pid> restart(atom id) {
        auto* c = find(id);
        if (!c) return make_error_code(errc::not_found);
        if (c->running) return make_error_code(errc::child_running);
        auto r = start_one(c->spec);
        if (!r) return r.error();
        c->running = *r;
        c->pending_restart = false;
        return *r;
    }
    std::vector<child_info> info() const {
        std::vector<child_info> out;
        for (auto& c : children_)
            out.push_back({c.spec.id, c.running, c.spec.restart, c.spec.is_supervisor});
        return out;
    }
    [[noreturn]] void stop() {
        shutdown_all();
        throw exit_exception(term(detail::A().shutdown));
    }

  private:
    result<pid> start_one(const child_spec& s) {
        if (!s.start) return make_error_code(errc::no_start_function);
        auto r = s.start(m_);
        if (!r) return r.error();
        m_.link(*r);  // a child that died already shows up as an 'EXIT' noproc
        return *r;
    }

    child* find(atom id) {
        for (auto& c : children_)
            if (c.spec.id == id) return &c;
        return nullptr;
    }
    void erase(atom id) {
        std::erase_if(children_, [&](const child& c) { return c.spec.id == id; });
    }

    // OTP supervisor shutdown: exit(Child, shutdown), wait up to the child's shutdown time for
    // it to end, then exit(Child, kill). brutal_kill kills at once.
    void terminate_one(child& c) {
        const pid p = *c.running;
        c.running.reset();
        auto is_exit_of = [&p](const term& t) {
            return t.is_tuple(3) && t[0].is_atom(detail::A().exit_tag) && t[1] == term(p);
        };
        if (c.spec.shutdown == brutal_kill) {
            m_.exit(p, term(detail::A().kill));
        } else {
            m_.exit(p, term(detail::A().shutdown));
            if (m_.receive_if(is_exit_of, c.spec.shutdown)) return;
            if (m_.exited()) return;
            m_.exit(p, term(detail::A().kill));
        }
        // A killed process ends at once; a remote one answers over the network.
        m_.receive_if(is_exit_of, std::chrono::seconds(30));
    }

    void shutdown_all() {
        for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
            it->pending_restart = false;
            if (it->running) terminate_one(*it);
        }
    }

    static bool is_shutdown_reason(const term& r) {
        return r.is_atom(atoms::normal()) || r.is_atom(detail::A().shutdown) ||
               (r.is_tuple(2) && r[0].is_atom(detail::A().shutdown));
    }

    void on_exit(const pid& from, const term& reason) {
        if (st_->parent && from == *st_->parent) {
            // The parent ended: terminate as OTP supervisors do, with the parent's reason.
            shutdown_all();
            throw exit_exception(reason);
        }
        auto it = std::find_if(children_.begin(), children_.end(),
                               [&](const child& c) { return c.running && *c.running == from; });
        if (it == children_.end()) return;  // not (or no longer) a child
        it->running.reset();
        const bool restart =
            it->spec.restart == restart_type::permanent ||
            (it->spec.restart == restart_type::transient && !is_shutdown_reason(reason));
        if (!restart) {
            if (it->spec.restart == restart_type::temporary) children_.erase(it);
            return;
        }
        count_restart();
        const auto idx = static_cast<std::size_t>(it - children_.begin());
        switch (st_->flags.strategy) {
            case restart_strategy::one_for_one:
                children_[idx].pending_restart = true;
                break;
            case restart_strategy::one_for_all:
                restart_group(0, idx);
                break;
            case restart_strategy::rest_for_one:
                restart_group(idx, idx);
                break;
        }
        schedule();
    }

    // Terminates children [from, end) except `failed` (reverse order) and marks them for
    // restart; temporary ones terminated this way are forgotten, as in OTP.
    void restart_group(std::size_t from, std::size_t failed) {
        for (std::size_t i = children_.size(); i-- > from;) {
            auto& c = children_[i];
            if (i != failed && c.running) terminate_one(c);
            c.pending_restart = true;
        }
        std::vector<child> kept;
        for (std::size_t i = 0; i < children_.size(); ++i) {
            auto& c = children_[i];
            if (i >= from && i != failed && c.spec.restart == restart_type::temporary) continue;
            kept.push_back(std::move(c));
        }
        children_ = std::move(kept);
    }

    // Restart intensity: more than `intensity` restarts within `period` ends the supervisor.
    void count_restart() {
        const auto now = clock::now();
        restarts_.push_back(now);
        while (!restarts_.empty() && now - restarts_.front() > st_->flags.period)
            restarts_.pop_front();
        if (static_cast<int>(restarts_.size()) > st_->flags.intensity) {
            shutdown_all();
            throw exit_exception(term(detail::A().shutdown));
        }
    }

    void schedule() {
        auto delay = std::chrono::milliseconds(0);
        const auto& f = st_->flags;
        const auto streak = restarts_.size();  // restarts in the current period
        if (f.backoff_initial.count() > 0 && (streak > 1 || f.backoff_first)) {
            const auto shift = std::min<std::size_t>(streak > 0 ? streak - 1 : 0, 30);
            delay = f.backoff_initial * (std::int64_t(1) << shift);
            if (f.backoff_max.count() > 0) delay = std::min(delay, f.backoff_max);
        }
        restart_due_ = clock::now() + delay;
    }

    void do_restarts() {
        restart_due_.reset();
        for (auto& c : children_) {
            if (!c.pending_restart) continue;
            auto r = start_one(c.spec);
            if (r) {
                c.running = *r;
                c.pending_restart = false;
            } else {
                // A failed restart counts toward the intensity and is tried again.
                count_restart();
                schedule();
                return;
            }
        }
    }

    void drain_requests() {
        for (;;) {
            std::function<void()> f;
            {
                std::lock_guard lk(st_->mu);
                if (st_->requests.empty()) return;
                f = std::move(st_->requests.front());
                st_->requests.pop_front();
            }
            f();
        }
    }

    // supervisor:which_children/1 and count_children/1 from BEAM (gen_server calls).
    void on_gen_call(const term& from, const term& req) {
        auto& core = erl::detail::access::core(*st_->n);
        const auto& a = detail::A();
        if (req.is_atom(a.which_children)) {
            std::vector<term> out;
            for (auto& c : children_) {
                term child_t = c.running ? term(*c.running)
                                         : term(c.pending_restart ? a.restarting : a.undefined);
                out.push_back(make_tuple({term(c.spec.id), child_t,
                                          term(c.spec.is_supervisor ? a.supervisor : a.worker),
                                          make_list({})}));
            }
            erl::detail::runtime::reply(core, from, make_list(std::move(out)));
        } else if (req.is_atom(a.count_children)) {
            std::int64_t active = 0, sups = 0;
            for (auto& c : children_) {
                if (c.running) ++active;
                if (c.spec.is_supervisor) ++sups;
            }
            const auto n = static_cast<std::int64_t>(children_.size());
            erl::detail::runtime::reply(
                core, from,
                make_list({tuple(a.specs, n), tuple(a.active, active), tuple(a.supervisors, sups),
                           tuple(a.workers, n - sups)}));
        } else {
            erl::detail::runtime::reply(core, from, tuple(atoms::error(), a.not_supported));
        }
    }

    std::shared_ptr<supervisor::state> st_;
    mailbox& m_;
    std::vector<child> children_;
    std::deque<clock::time_point> restarts_;
    std::optional<clock::time_point> restart_due_;

    friend struct erl::supervisor::state;

  public:
    // The loop object of the running supervisor, for request closures (same thread only).
    static thread_local sup_loop* current;
};

thread_local sup_loop* sup_loop::current = nullptr;

// Runs `f` on the supervisor's thread and waits for its result.
template <class R>
result<R> call(const std::shared_ptr<supervisor::state>& st, std::function<result<R>(sup_loop&)> f,
               std::chrono::milliseconds timeout) {
    if (!st) return make_error_code(errc::noproc);
    auto prom = std::make_shared<std::promise<result<R>>>();
    auto fut = prom->get_future();
    {
        std::lock_guard lk(st->mu);
        st->requests.push_back([prom, f = std::move(f)] {
            try {
                prom->set_value(f(*sup_loop::current));
            } catch (...) {
                // stop() ends the supervisor by throwing exit_exception: answer first.
                prom->set_value(make_error_code(errc::shutting_down));
                throw;
            }
        });
    }
    st->n->send(st->self, term(detail::A().sup_request));
    if (fut.wait_for(timeout) != std::future_status::ready) {
        auto p = erl::detail::access::core(*st->n).find_process(st->self);
        return make_error_code(p ? errc::timeout : errc::noproc);
    }
    return fut.get();
}

}  // namespace

child_spec child_spec::worker(atom id, process_body body, spawn_options opts, restart_type r) {
    child_spec s;
    s.id = id;
    s.restart = r;
    s.start = [body = std::move(body), opts](const mailbox& sup) {
        return spawn_link(sup, body, opts);
    };
    return s;
}

child_spec child_spec::worker(atom id, coroutine_body body, spawn_options opts, restart_type r) {
    child_spec s;
    s.id = id;
    s.restart = r;
    s.start = [body = std::move(body), opts](const mailbox& sup) {
        return spawn_link(sup, body, opts);
    };
    return s;
}

result<supervisor> supervisor::start(node& n, supervisor_flags flags,
                                     std::vector<child_spec> children, spawn_options opts) {
    auto st = std::make_shared<state>();
    st->n = &n;
    st->flags = flags;
    st->parent = opts.link_to;
    auto init = std::make_shared<std::promise<error_code>>();
    auto init_done = init->get_future();
    opts.trap_exit = true;
    auto p = spawn(
        n,
        [st, init, children = std::move(children)](mailbox& m) mutable {
            sup_loop loop(st, m);
            sup_loop::current = &loop;
            auto ec = loop.init(std::move(children));
            init->set_value(ec);
            if (ec)
                throw exit_exception(
                    tuple(detail::A().shutdown, detail::A().failed_to_start_child));
            loop.run();
        },
        opts);
    if (!p) return p.error();
    st->self = *p;  // written before the first request can be queued by our caller
    auto ec = init_done.get();
    if (ec) return ec;
    return supervisor(std::move(st));
}

const pid& supervisor::self() const noexcept {
    return st_->self;
}

result<pid> supervisor::start_child(child_spec spec, std::chrono::milliseconds timeout) {
    auto shared = std::make_shared<child_spec>(std::move(spec));
    return call<pid>(
        st_, [shared](sup_loop& l) { return l.add_child(std::move(*shared)); }, timeout);
}

error_code supervisor::terminate_child(atom id, std::chrono::milliseconds timeout) {
    auto r = call<int>(
        st_,
        [id](sup_loop& l) -> result<int> {
            if (auto ec = l.terminate(id)) return ec;
            return 1;
        },
        timeout);
    return r ? error_code{} : r.error();
}

error_code supervisor::delete_child(atom id, std::chrono::milliseconds timeout) {
    auto r = call<int>(
        st_,
        [id](sup_loop& l) -> result<int> {
            if (auto ec = l.remove(id)) return ec;
            return 1;
        },
        timeout);
    return r ? error_code{} : r.error();
}

result<pid> supervisor::restart_child(atom id, std::chrono::milliseconds timeout) {
    return call<pid>(
        st_, [id](sup_loop& l) { return l.restart(id); }, timeout);
}

result<std::vector<child_info>> supervisor::which_children(std::chrono::milliseconds timeout) {
    return call<std::vector<child_info>>(
        st_, [](sup_loop& l) -> result<std::vector<child_info>> { return l.info(); }, timeout);
}

error_code supervisor::stop(std::chrono::milliseconds timeout) {
    if (!st_) return make_error_code(errc::noproc);
    auto watcher = st_->n->spawn_mailbox();
    if (!watcher) return watcher.error();
    auto ref = watcher->monitor(st_->self);
    {
        std::lock_guard lk(st_->mu);
        st_->requests.push_back([] { sup_loop::current->stop(); });
    }
    st_->n->send(st_->self, term(detail::A().sup_request));
    auto down = watcher->receive_if(
        [&](const term& t) { return t.is_tuple(5) && t[1] == term(ref); }, timeout);
    return down ? error_code{} : make_error_code(errc::timeout);
}

}  // namespace erl
