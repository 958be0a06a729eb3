// erl::supervisor: OTP supervisor semantics for C++ processes (include/erl/supervisor.hpp).
// The supervisor is a thread-bodied process trapping exits; all child bookkeeping happens on
// its thread. C++ callers hand it closures through a queue and wake it with a message.
#include <erl/node.hpp>
#include <erl/supervisor.hpp>

#include "node/access.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "observe/introspection.hpp"
#include "services/supervisor_internal.hpp"
#include "services/sys_protocol.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>

namespace erl {

namespace {

using clock = std::chrono::steady_clock;
namespace sup = erl::detail::sup;

struct child {
    child_spec spec;
    std::optional<pid> running;
    bool pending_restart = false;
    std::optional<atom> lost_node;  // its last incarnation ended with noconnection there
};

// What a request gives: a C++ caller gets `ec`, an Erlang caller {error, reason} (the results
// and errors of supervisor.erl handle_call/3).
struct outcome {
    std::optional<pid> started;
    error_code ec;
    term reason;
    static outcome ok(std::optional<pid> p = std::nullopt) { return {p, {}, {}}; }
    static outcome fail(errc e, term reason) {
        return {std::nullopt, make_error_code(e), std::move(reason)};
    }
    static outcome fail(error_code ec) { return {std::nullopt, ec, sup::error_reason(ec)}; }
};

// Erlang's reasons of supervisor.erl handle_call/3.
struct call_atoms {
    atom start_child{"start_child"}, terminate_child{"terminate_child"},
        restart_child{"restart_child"}, delete_child{"delete_child"},
        get_childspec{"get_childspec"}, not_found{"not_found"}, running{"running"},
        already_present{"already_present"}, already_started{"already_started"},
        simple_one_for_one{"simple_one_for_one"}, badarg{"badarg"};
};
const call_atoms& CA() {
    static const call_atoms a;
    return a;
}

}  // namespace

struct supervisor::state {
    node* n = nullptr;
    pid self;
    supervisor_flags flags;
    std::optional<pid> parent;
    std::optional<atom> name;
    std::mutex mu;
    std::deque<std::function<void()>> requests;  // run on the supervisor's thread
};

namespace {

// Everything below runs on the supervisor's thread only.
class sup_loop final : public detail::sys::owner {
  public:
    // sys reports a supervisor as a gen_server (its module in get_status), as OTP's supervisor
    // is one; the parent is the link_to process, or the supervisor itself (gen.erl init_it/6).
    sup_loop(std::shared_ptr<supervisor::state> st, mailbox& m)
        : st_(std::move(st)),
          m_(m),
          sys_(detail::A().gen_server, term(m.self()),
               st_->parent ? term(*st_->parent) : term(m.self())) {}

    error_code init(std::vector<child_spec> specs) {
        if (simple()) {
            // supervisor.erl init_dynamic/2: exactly one child spec, the template.
            if (specs.size() != 1) return make_error_code(errc::badarg);
            template_ = std::move(specs.front());
            return {};
        }
        for (auto& s : specs) {
            auto r = start_one(s);
            if (!r) {
                shutdown_all();
                return r.error();
            }
            children_.push_back({std::move(s), *r, false, {}});
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
            if (sys_.suspended()) {
                suspended_loop();
                continue;
            }
            auto msg = m_.receive(timeout);
            if (m_.exited()) return;  // killed: linked children get the exit signal
            if (!msg) {
                if (restart_due_ && clock::now() >= *restart_due_) do_restarts();
                continue;
            }
            if (detail::sys::protocol::is_system(*msg)) {
                on_system(*msg);
                continue;
            }
            if (sys_.debugging()) sys_.note_in(*msg);
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

    // Requests (from C++ through closures, from Erlang as gen_server calls) ------------------
    result<pid> add_child(child_spec spec) { return pid_of(start_spec(std::move(spec))); }
    result<pid> add_dynamic(const term& extra) { return pid_of(start_dynamic(extra)); }
    error_code terminate(const term& id) { return terminate_child(id).ec; }
    error_code remove(const term& id) { return delete_child(id).ec; }
    result<pid> restart(const term& id) { return pid_of(restart_child(id)); }
    std::vector<child_info> info() const {
        std::vector<child_info> out;
        for (auto& c : children_)
            out.push_back({c.spec.id, c.running, c.spec.restart, c.spec.is_supervisor,
                           c.pending_restart,
                           c.running && c.spec.remote_mfa ? std::optional<atom>(c.running->node)
                                                          : c.lost_node});
        return out;
    }
    [[noreturn]] void stop() {
        shutdown_all();
        throw exit_exception(term(detail::A().shutdown));
    }

  private:
    bool simple() const { return st_->flags.strategy == restart_strategy::simple_one_for_one; }
    static result<pid> pid_of(const outcome& o) {
        if (o.ec) return o.ec;
        return o.started.value_or(pid{});
    }

    // supervisor.erl handle_start_child/2.
    outcome start_spec(child_spec spec) {
        if (simple()) return outcome::fail(errc::notsup, CA().simple_one_for_one);
        if (auto* c = find(spec.id))
            return c->running
                       ? outcome::fail(errc::name_taken, tuple(CA().already_started, *c->running))
                       : outcome::fail(errc::name_taken, CA().already_present);
        auto r = start_one(spec);
        if (!r)
            return {std::nullopt, r.error(),
                    tuple(sup::error_reason(r.error()), sup::spec_term(spec))};
        children_.push_back({std::move(spec), *r, false, {}});
        return outcome::ok(*r);
    }
    // supervisor.erl handle_call({start_child, EArgs}, ...) of a simple_one_for_one.
    outcome start_dynamic(const term& extra) {
        if (!simple()) return outcome::fail(errc::notsup, CA().badarg);
        if (!extra.is_proper_list()) return outcome::fail(errc::badarg, CA().badarg);
        child_spec s = *template_;
        s.id = atoms::undefined();
        std::vector<term> args(s.args.as_list().elements.begin(), s.args.as_list().elements.end());
        for (const auto& a : extra.as_list().elements)
            args.push_back(a);
        s.args = make_list(std::move(args));
        auto r = start_one(s);
        if (!r) return outcome::fail(r.error());
        children_.push_back({std::move(s), *r, false, {}});
        return outcome::ok(*r);
    }
    // handle_call({terminate_child, Id}, ...): by id, or by pid (the only way for a
    // simple_one_for_one). The child is forgotten if temporary or dynamic, as del_child/2 does.
    outcome terminate_child(const term& id) {
        if (simple() && !id.is_pid()) return outcome::fail(errc::notsup, CA().simple_one_for_one);
        auto* c = id.is_pid() ? find_running(id.as_pid()) : find(id);
        if (!c) return outcome::fail(errc::not_found, CA().not_found);
        c->pending_restart = false;
        if (c->running) terminate_one(*c);
        if (simple() || c->spec.restart == restart_type::temporary) erase(c);
        return outcome::ok();
    }
    // handle_call({delete_child, Id}, ...).
    outcome delete_child(const term& id) {
        if (simple()) return outcome::fail(errc::notsup, CA().simple_one_for_one);
        auto* c = find(id);
        if (!c) return outcome::fail(errc::not_found, CA().not_found);
        if (c->running) return outcome::fail(errc::child_running, CA().running);
        if (c->pending_restart) return outcome::fail(errc::child_running, detail::A().restarting);
        erase(c);
        return outcome::ok();
    }
    // handle_call({restart_child, Id}, ...).
    outcome restart_child(const term& id) {
        if (simple()) return outcome::fail(errc::notsup, CA().simple_one_for_one);
        auto* c = find(id);
        if (!c) return outcome::fail(errc::not_found, CA().not_found);
        if (c->running) return outcome::fail(errc::child_running, CA().running);
        if (c->pending_restart) return outcome::fail(errc::child_running, detail::A().restarting);
        auto r = start_one(c->spec, c->lost_node);
        if (!r) return outcome::fail(r.error());
        c->running = *r;
        c->lost_node.reset();
        return outcome::ok(*r);
    }

    result<pid> start_one(const child_spec& s, std::optional<atom> lost = std::nullopt) {
        if (s.remote_mfa) return start_remote(s, lost);
        result<pid> r = make_error_code(errc::no_start_function);
        if (s.start_with_args)
            r = s.start_with_args(m_, s.args);
        else if (s.start)
            r = s.start(m_);
        else
            return make_error_code(errc::no_start_function);
        if (!r) return r.error();
        m_.link(*r);  // a child that died already shows up as an 'EXIT' noproc
        return *r;
    }

    // spawn_link(Node, M, F, Args) on the first candidate node that can start it
    // (sup::placement_order); the link is set up with the spawn (SPAWN_REQUEST with link).
    result<pid> start_remote(const child_spec& s, std::optional<atom> lost) {
        const auto& rm = *s.remote_mfa;
        auto& n = *st_->n;
        std::vector<pid> members;
        if (rm.where.pg_group) members = pg::get_members(n, rm.where.pg_scope, *rm.where.pg_group);
        auto connected = n.nodes();
        connected.push_back(n.name());
        std::vector<sup::node_load> load;
        for (const auto& c : children_)
            if (c.running) load.push_back({c.running->node, 1});
        error_code last = make_error_code(errc::no_target);  // no candidate at all
        // One deadline for the whole start: the supervisor handles nothing else meanwhile.
        const bool bounded = rm.where.start_timeout != infinity;
        const auto deadline = bounded ? clock::now() + rm.where.start_timeout : clock::time_point{};
        for (atom where :
             sup::placement_order(sup::candidate_nodes(rm.where, members), connected, load, lost)) {
            auto left = infinity;
            if (bounded) {
                const auto now = clock::now();
                if (now >= deadline) return make_error_code(errc::timeout);
                left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
            }
            auto r = spawn_link(m_, where, rm.module, rm.function, s.args, left);
            if (r) return *r;
            last = r.error();
            // Only a node that cannot be reached, does not answer or cannot spawn this sends us
            // to the next one; any other error (badarg) would be the same everywhere.
            if (last != errc::noconnection && last != errc::timeout && last != errc::notsup)
                return last;
        }
        return last;
    }

    child* find(const term& id) {
        for (auto& c : children_)
            if (c.spec.id == id) return &c;
        return nullptr;
    }
    child* find_running(const pid& p) {
        for (auto& c : children_)
            if (c.running && *c.running == p) return &c;
        return nullptr;
    }
    void erase(const child* victim) {
        std::erase_if(children_, [&](const child& c) { return &c == victim; });
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
        if (simple()) return shutdown_dynamic();
        for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
            it->pending_restart = false;
            if (it->running) terminate_one(*it);
        }
    }

    // supervisor.erl terminate_dynamic_children/1: every dynamic child is told at once (exit
    // shutdown, or kill for brutal_kill), then those still running after the template's
    // shutdown time are killed.
    void shutdown_dynamic() {
        std::vector<pid> left;
        const bool brutal = template_->shutdown == brutal_kill;
        for (auto& c : children_) {
            c.pending_restart = false;
            if (!c.running) continue;
            left.push_back(*c.running);
            m_.exit(*c.running, term(brutal ? detail::A().kill : detail::A().shutdown));
            c.running.reset();
        }
        auto wait_all = [&](std::chrono::milliseconds limit) {
            const auto deadline =
                limit == infinity ? clock::time_point::max() : clock::now() + limit;
            while (!left.empty() && !m_.exited()) {
                auto now = clock::now();
                auto wait = deadline == clock::time_point::max()
                                ? infinity
                                : std::chrono::ceil<std::chrono::milliseconds>(
                                      std::max(deadline - now, clock::duration::zero()));
                auto msg = m_.receive_if(
                    [&](const term& t) {
                        return t.is_tuple(3) && t[0].is_atom(detail::A().exit_tag) &&
                               t[1].is_pid() &&
                               std::find(left.begin(), left.end(), t[1].as_pid()) != left.end();
                    },
                    wait);
                if (!msg) return;
                std::erase(left, (*msg)[1].as_pid());
            }
        };
        wait_all(brutal ? std::chrono::seconds(30) : template_->shutdown);
        if (left.empty() || m_.exited()) return;
        for (const auto& p : left)
            m_.exit(p, term(detail::A().kill));
        // A killed process ends at once; a remote one answers over the network.
        wait_all(std::chrono::seconds(30));
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
        // The node went away under a remote child: restart it elsewhere if there is a choice.
        if (reason.is_atom(detail::A().noconnection) && from.node != st_->n->name())
            it->lost_node = from.node;
        const bool restart =
            it->spec.restart == restart_type::permanent ||
            (it->spec.restart == restart_type::transient && !is_shutdown_reason(reason));
        if (!restart) {
            // del_child/2: a dynamic child is forgotten, a static one kept unless temporary.
            if (simple() || it->spec.restart == restart_type::temporary) children_.erase(it);
            return;
        }
        count_restart();
        const auto idx = static_cast<std::size_t>(it - children_.begin());
        switch (st_->flags.strategy) {
            case restart_strategy::one_for_one:
            case restart_strategy::simple_one_for_one:
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
            auto r = start_one(c.spec, c.lost_node);
            if (r) {
                c.running = *r;
                c.pending_restart = false;
                c.lost_node.reset();
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

    // OTP's supervisor calls from BEAM (supervisor.erl handle_call/3, gen_server calls).
    void on_gen_call(const term& from, const term& req) {
        auto& core = erl::detail::access::core(*st_->n);
        auto reply = answer(req);
        if (sys_.debugging() && from.is_tuple(2)) sys_.note_out(reply, from[0], *this);
        erl::detail::runtime::reply(core, from, std::move(reply));
    }

    // sys (sys.erl handle_system_msg/8) ------------------------------------------------------
    void on_system(const term& msg) {
        auto act = sys_.handle(msg, *this);
        erl::detail::runtime::reply(erl::detail::access::core(*st_->n), act.from, act.reply);
        if (act.terminate) {
            // gen_server system_terminate/4 runs the supervisor's terminate/2: children first.
            shutdown_all();
            throw exit_exception(*act.terminate);
        }
    }
    // sys:suspend_loop/6: only system messages and the parent's 'EXIT' until resumed; the rest
    // (children's exits, calls, C++ requests, due restarts) waits in the queue.
    void suspended_loop() {
        const auto& a = detail::A();
        auto msg = m_.receive_if([&](const term& t) {
            return detail::sys::protocol::is_system(t) ||
                   (st_->parent && t.is_tuple(3) && t[0].is_atom(a.exit_tag) &&
                    t[1] == term(*st_->parent));
        });
        if (!msg) return;  // killed
        if (detail::sys::protocol::is_system(*msg))
            on_system(*msg);
        else
            on_exit((*msg)[1].as_pid(), (*msg)[2]);
    }

    // sys::owner: sys:get_state gives a map that describes this supervisor (OTP gives its
    // #state record, whose layout is private to supervisor.erl):
    //   #{strategy => S, intensity => I, period_ms => P, restarts => N (in the current period),
    //     children => which_children/1's list}.
    term get_state() override {
        const auto& f = st_->flags;
        static const char* const strategies[] = {"one_for_one", "one_for_all", "rest_for_one",
                                                 "simple_one_for_one"};
        return make_map({{atom("strategy"), atom(strategies[static_cast<int>(f.strategy)])},
                         {atom("intensity"), f.intensity},
                         {atom("period_ms"), static_cast<long long>(f.period.count())},
                         {atom("restarts"), static_cast<long long>(restarts_.size())},
                         {atom("children"), which_children_term()}});
    }
    // The children and restart history are the supervisor's own; sys:replace_state cannot
    // stand in for them.
    term replace_state(const term&) override {
        throw std::runtime_error("an erlcpp supervisor's state cannot be replaced");
    }
    std::optional<term> code_change(const term&, const term&, const term&) override {
        return term(detail::A().not_supported);  // no Erlang callback module to reload
    }
    std::optional<atom> registered_name() const override { return st_->name; }

    term answer(const term& req) {
        const auto& a = detail::A();
        const auto& ca = CA();
        if (req.is_atom(a.which_children)) return which_children_term();
        if (req.is_atom(a.count_children)) return count_children_term();
        auto result_term = [](const outcome& o) {
            if (o.ec) return tuple(atoms::error(), o.reason);
            return o.started ? tuple(atoms::ok(), *o.started) : term(atoms::ok());
        };
        if (req.is_tuple(2) && req[0].is_atom()) {
            const atom op = req[0].as_atom();
            const term& arg = req[1];
            if (op == ca.start_child) {
                if (simple()) return result_term(start_dynamic(arg));
                auto parsed = sup::parse_spec(arg, st_->n->name());
                if (!parsed.spec) return tuple(atoms::error(), parsed.error);
                return result_term(start_spec(std::move(*parsed.spec)));
            }
            if (op == ca.terminate_child) return result_term(terminate_child(arg));
            if (op == ca.restart_child) return result_term(restart_child(arg));
            if (op == ca.delete_child) return result_term(delete_child(arg));
            if (op == ca.get_childspec) {
                // find_child/2: a simple_one_for_one finds its template by id or by the pid of
                // one of its children.
                const child_spec* s = nullptr;
                if (simple()) {
                    if ((arg.is_pid() && find_running(arg.as_pid())) || arg == template_->id)
                        s = &*template_;
                } else if (auto* c = arg.is_pid() ? find_running(arg.as_pid()) : find(arg)) {
                    s = &c->spec;
                }
                if (!s) return tuple(atoms::error(), ca.not_found);
                return tuple(atoms::ok(), sup::spec_term(*s));
            }
        }
        return tuple(atoms::error(), a.not_supported);
    }

    // which_children/1: {Id, Child, Type, Modules}, Id undefined for dynamic children.
    term which_children_term() const {
        const auto& a = detail::A();
        std::vector<term> out;
        for (auto& c : children_) {
            term child_t =
                c.running ? term(*c.running) : term(c.pending_restart ? a.restarting : a.undefined);
            out.push_back(make_tuple({c.spec.id, child_t,
                                      term(c.spec.is_supervisor ? a.supervisor : a.worker),
                                      sup::modules_term(c.spec)}));
        }
        return make_list(std::move(out));
    }

    // count_children/1. A simple_one_for_one counts one spec, its children by the template's
    // type, and as active those not waiting for a restart.
    term count_children_term() const {
        const auto& a = detail::A();
        std::int64_t active = 0, sups = 0;
        for (auto& c : children_) {
            if (c.running) ++active;
            if (c.spec.is_supervisor) ++sups;
        }
        const auto n = static_cast<std::int64_t>(children_.size());
        const std::int64_t specs = simple() ? 1 : n;
        return make_list({tuple(a.specs, specs), tuple(a.active, active),
                          tuple(a.supervisors, sups), tuple(a.workers, n - sups)});
    }

    std::shared_ptr<supervisor::state> st_;
    mailbox& m_;
    detail::sys::protocol sys_;
    std::vector<child> children_;         // start order; the dynamic ones of a simple_one_for_one
    std::optional<child_spec> template_;  // simple_one_for_one
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

// A worker whose start spawns `body` (a thread or a coroutine) linked to the supervisor.
template <class Body>
child_spec linked_worker(term id, Body body, spawn_options opts, restart_type r) {
    child_spec s;
    s.id = std::move(id);
    s.restart = r;
    s.start = [body = std::move(body), opts = std::move(opts)](const mailbox& sup) {
        return spawn_link(sup, body, opts);
    };
    return s;
}

}  // namespace

child_spec child_spec::worker(term id, process_body body, spawn_options opts, restart_type r) {
    return linked_worker(std::move(id), std::move(body), std::move(opts), r);
}

child_spec child_spec::worker(term id, coroutine_body body, spawn_options opts, restart_type r) {
    return linked_worker(std::move(id), std::move(body), std::move(opts), r);
}

child_spec child_spec::worker(term id, args_process_body body, spawn_options opts, restart_type r) {
    child_spec s;
    s.id = id;
    s.restart = r;
    s.start_with_args = [body = std::move(body), opts](const mailbox& sup, const term& args) {
        return spawn_link(
            sup, [body, args](mailbox& m) { body(m, args); }, opts);
    };
    return s;
}

child_spec child_spec::remote(term id, atom module, atom function, term args, placement where,
                              restart_type r) {
    child_spec s;
    s.id = std::move(id);
    s.restart = r;
    s.args = std::move(args);
    s.remote_mfa = remote_start{module, function, std::move(where)};
    return s;
}

result<supervisor> supervisor::start(node& n, supervisor_flags flags,
                                     std::vector<child_spec> children, spawn_options opts) {
    auto st = std::make_shared<state>();
    st->n = &n;
    st->flags = flags;
    st->parent = opts.link_to;
    st->name = opts.name;
    auto init = std::make_shared<std::promise<error_code>>();
    auto init_done = init->get_future();
    opts.trap_exit = true;
    auto p = spawn(
        n,
        [st, init, children = std::move(children)](mailbox& m) mutable {
            detail::introspection::describe_gen_server(*detail::access::proc(m));
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

result<pid> supervisor::start_child(const std::vector<term>& extra_args,
                                    std::chrono::milliseconds timeout) {
    auto extra = make_list(extra_args);
    return call<pid>(
        st_, [extra](sup_loop& l) { return l.add_dynamic(extra); }, timeout);
}

error_code supervisor::terminate_child(const term& id, std::chrono::milliseconds timeout) {
    auto r = call<int>(
        st_,
        [id](sup_loop& l) -> result<int> {
            if (auto ec = l.terminate(id)) return ec;
            return 1;
        },
        timeout);
    return r ? error_code{} : r.error();
}

error_code supervisor::delete_child(const term& id, std::chrono::milliseconds timeout) {
    auto r = call<int>(
        st_,
        [id](sup_loop& l) -> result<int> {
            if (auto ec = l.remove(id)) return ec;
            return 1;
        },
        timeout);
    return r ? error_code{} : r.error();
}

result<pid> supervisor::restart_child(const term& id, std::chrono::milliseconds timeout) {
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
