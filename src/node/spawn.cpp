// C++ processes: thread bodies and coroutine bodies with their own mailbox
// (include/erl/process.hpp).
#include <erl/node.hpp>
#include <erl/process.hpp>

#include "node/access.hpp"
#include "node/mfa_key.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "node/selective_receive.hpp"
#include "node/signals.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <variant>

namespace asio = boost::asio;

namespace erl {
namespace detail {

// State of a coroutine process shared by its frame and its wake-up callbacks. Holds only weak
// references to the process and node, so a suspended coroutine owned by the io_context never
// keeps the node (which owns the io_context) alive.
struct coroutine_state {
    coroutine_state(const std::shared_ptr<process>& p, asio::io_context& ioc)
        : proc(p),
          self(p->self),
          self_term(p->self_term),
          strand(asio::make_strand(ioc)),
          timer(strand) {}

    std::weak_ptr<process> proc;
    const pid self;
    const term self_term;
    asio::strand<asio::io_context::executor_type> strand;
    asio::steady_timer timer;        // used on the strand only
    bool signaled = false;           // strand only: a wake-up arrived
    std::atomic<bool> armed{false};  // a waiter of ours sits in process::waiters
};

namespace {

// The exit reason of a body that threw, reported as OTP reports a crashed process
// ("Error in process <0.1.0> with exit value: ...", erts' error logger).
term crash_reason(const process& p, const char* what) {
    term reason = make_tuple({term(A().cpp_exception), binary(what ? what : "")});
    if (p.node->logs(log_level::error))
        p.node->log(log_level::error, log_kind::process_crashed, {}, {},
                    "process " + to_string(p.self_term) +
                        " exited: " + to_string(reason, {.strings = true, .max_depth = 16}));
    return reason;
}

// Creates the process and applies the options that must hold before the body runs.
result<std::shared_ptr<process>> prepare(node_core& core, const spawn_options& o) {
    if (!core.alive) return make_error_code(errc::not_alive);
    std::shared_ptr<process> p;
    if (o.name) {
        auto named = core.new_named_process(*o.name);
        if (!named) return named.error();
        p = std::move(*named);
    } else {
        p = core.new_process();
    }
    if (o.trap_exit || o.max_message_queue_len || o.message_queue_limit) {
        std::lock_guard lk(p->mu);
        if (o.trap_exit) p->trap_exit = true;
        if (o.max_message_queue_len) p->max_queue_len = *o.max_message_queue_len;
        if (o.message_queue_limit)
            p->drop_over_limit = *o.message_queue_limit == message_queue_limit_action::drop;
    }
    if (o.link_to) link(core, p, *o.link_to);
    return p;
}

void start_thread(const std::shared_ptr<process>& p, process_body body) {
    // The thread holds the process, and through it the node: node_core::live_bodies stays
    // valid until the thread has counted itself out.
    node_core& core = *p->node;
    {
        std::lock_guard lk(core.bodies_mu);
        ++core.live_bodies;
    }
    std::thread([p = p, body = std::move(body)]() mutable {
        term reason(atoms::normal());
        {
            mailbox mb = access::handle(p);  // dropping it does not end the process
            try {
                body(mb);
            } catch (const exit_exception& e) {
                reason = e.reason();
            } catch (const std::exception& e) {
                reason = crash_reason(*p, e.what());
            } catch (...) {
                reason = crash_reason(*p, "unknown exception");
            }
        }
        auto core = p->node;
        core->process_exit(p, reason);
        body = nullptr;  // the body's captures go before join_processes() returns
        p.reset();
        std::lock_guard lk(core->bodies_mu);
        if (--core->live_bodies == 0) core->bodies_cv.notify_all();
    }).detach();
}

asio::awaitable<void> run_coroutine(std::shared_ptr<coroutine_state> st, coroutine_body body) {
    term reason(atoms::normal());
    {
        process_context ctx(st);
        try {
            co_await body(ctx);
        } catch (const exit_exception& e) {
            reason = e.reason();
        } catch (const std::exception& e) {
            if (auto p = st->proc.lock()) reason = crash_reason(*p, e.what());
        } catch (...) {
            if (auto p = st->proc.lock()) reason = crash_reason(*p, "unknown exception");
        }
    }
    if (auto p = st->proc.lock()) p->node->process_exit(p, reason);
}

void start_coroutine(const std::shared_ptr<process>& p, coroutine_body body) {
    auto st = std::make_shared<coroutine_state>(p, p->node->ioc());
    asio::co_spawn(st->strand, run_coroutine(st, std::move(body)), asio::detached);
}

template <class Body>
result<pid> do_spawn(node_core& n, Body body, const spawn_options& o, const mailbox* parent,
                     reference* monitor_ref) {
    auto p = prepare(n, o);
    if (!p) return p.error();
    if (parent) {
        if (monitor_ref)
            *monitor_ref = parent->monitor((*p)->self);
        else
            parent->link((*p)->self);
    }
    const pid id = (*p)->self;
    if constexpr (std::is_same_v<Body, process_body>)
        start_thread(*p, std::move(body));
    else
        start_coroutine(*p, std::move(body));
    return id;
}

// The C++ process kinds of a node (erl::add_spawnable), by M:F/Arity.
struct spawnable_registry {
    using body = std::variant<spawnable_body, spawnable_coroutine>;
    mutable std::shared_mutex mu;
    std::unordered_map<mfa_key, std::shared_ptr<const body>, mfa_key_hash> kinds;

    std::shared_ptr<const body> find(atom m, atom f, unsigned arity) const {
        std::shared_lock lk(mu);
        auto it = kinds.find(mfa_key_of(m, f, arity));
        return it == kinds.end() ? nullptr : it->second;
    }
};

std::shared_ptr<spawnable_registry> registry(node_core& n) {
    return n.service_state<spawnable_registry>();
}

// Runs a registered kind's body with its arguments in `p`, which already exists.
void start_kind(const std::shared_ptr<process>& p, const spawnable_registry::body& b,
                std::vector<term> args) {
    if (auto* tb = std::get_if<spawnable_body>(&b)) {
        start_thread(p, [tb = *tb, args = std::move(args)](mailbox& mb) mutable {
            tb(mb, std::move(args));
        });
    } else {
        start_coroutine(p, [cb = std::get<spawnable_coroutine>(b), args = std::move(args)](
                               process_context& ctx) { return cb(ctx, args); });
    }
}

}  // namespace

bool serve_spawnable(node_core& n, const std::shared_ptr<connection>& c, const term& control,
                     term* payload) {
    // {29, ReqId, From, GroupLeader, {M, F, Arity}, OptList} + ArgList (erl_dist_protocol).
    if (!control[1].is_reference() || !control[4].is_tuple(3) || !payload) return false;
    const term& mfa = control[4];
    if (!mfa[0].is_atom() || !mfa[1].is_atom() || !payload->is_proper_list()) return false;
    auto args = payload->as_list().elements;
    auto b =
        registry(n)->find(mfa[0].as_atom(), mfa[1].as_atom(), static_cast<unsigned>(args.size()));
    if (!b) return false;
    runtime::accept_opts opts;
    if (control[5].is_list()) {
        for (const term& o : control[5].as_list().elements) {
            if (o.is_atom(A().link)) opts.link = true;
            if (o.is_atom(A().monitor) || (o.is_tuple(2) && o[0].is_atom(A().monitor)))
                opts.monitor = true;
        }
    }
    auto p = runtime::accept_spawn(n, c, control[1], control[2], opts);
    start_kind(p, *b, std::vector<term>(args.begin(), args.end()));
    return true;
}

namespace runtime {

result<pid> spawn_kind_locally(node_core& n, const std::shared_ptr<process>* parent, atom m, atom f,
                               const term& args, bool link, reference* monitor_ref) {
    if (!n.alive) return make_error_code(errc::not_alive);
    if (!args.is_proper_list()) return make_error_code(errc::badarg);
    auto argv = args.as_list().elements;
    auto b = registry(n)->find(m, f, static_cast<unsigned>(argv.size()));
    if (!b) return make_error_code(errc::notsup);
    auto p = n.new_process();
    if (parent) {
        if (monitor_ref)
            *monitor_ref = detail::monitor(n, *parent, term(p->self));
        else if (link)
            detail::link(n, *parent, p->self);
    }
    start_kind(p, *b, std::vector<term>(argv.begin(), argv.end()));
    return p->self;
}

}  // namespace runtime
}  // namespace detail

namespace detail {
namespace {
void add_kind(node& n, atom module, atom function, unsigned arity, spawnable_registry::body b) {
    auto r = registry(access::core(n));
    std::unique_lock lk(r->mu);
    r->kinds[mfa_key_of(module, function, arity)] =
        std::make_shared<const spawnable_registry::body>(std::move(b));
}
}  // namespace
}  // namespace detail

void add_spawnable(node& n, atom module, atom function, unsigned arity, spawnable_body body) {
    detail::add_kind(n, module, function, arity, std::move(body));
}
void add_spawnable(node& n, atom module, atom function, unsigned arity, spawnable_coroutine body) {
    detail::add_kind(n, module, function, arity, std::move(body));
}

bool remove_spawnable(node& n, atom module, atom function, unsigned arity) {
    auto r = detail::registry(detail::access::core(n));
    std::unique_lock lk(r->mu);
    return r->kinds.erase(detail::mfa_key_of(module, function, arity)) > 0;
}

// ------------------------------------------------------------------------------------------
// process_context

const pid& process_context::self() const noexcept {
    return st_->self;
}
const term& process_context::self_term() const noexcept {
    return st_->self_term;
}
asio::any_io_executor process_context::get_executor() const {
    return st_->strand;
}
mailbox process_context::handle() const {
    return detail::access::handle(st_->proc.lock());
}
bool process_context::exited() const {
    auto p = st_->proc.lock();
    return !p || p->exited;
}

asio::awaitable<std::optional<term>> process_context::async_receive(
    std::chrono::milliseconds timeout) const {
    return async_receive_if([](const term&) { return true; }, timeout);
}

asio::awaitable<std::optional<term>> process_context::async_receive_if(
    std::function<bool(const term&)> pred, std::chrono::milliseconds timeout) const {
    auto st = st_;  // the frame keeps the state alive across suspensions
    const auto deadline = timeout == infinity ? std::chrono::steady_clock::time_point::max()
                                              : std::chrono::steady_clock::now() + timeout;
    detail::receive_cursor cursor;  // messages already rejected stay rejected
    for (;;) {
        {
            auto p = st->proc.lock();
            if (!p) co_return std::nullopt;
            std::lock_guard lk(p->mu);
            if (auto t = cursor.take(*p, pred)) co_return t;
            if (p->exited) co_return std::nullopt;
            if (std::chrono::steady_clock::now() >= deadline) co_return std::nullopt;
            // One waiter per process at most: it is one-shot, and re-armed on the next wait.
            if (!st->armed.exchange(true)) {
                std::weak_ptr<detail::coroutine_state> w = st;
                p->waiters.push_back([w] {
                    auto s = w.lock();
                    if (!s) return;
                    s->armed = false;
                    asio::post(s->strand, [s] {
                        s->signaled = true;
                        s->timer.cancel();
                    });
                });
            }
        }
        // On the strand: a wake-up posted before this point has already run and set signaled.
        if (st->signaled) {
            st->signaled = false;
            continue;
        }
        st->timer.expires_at(deadline);
        error_code ec;
        co_await st->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        st->signaled = false;
        if (!ec) {
            // Deadline: a last look at what arrived meanwhile.
            auto p = st->proc.lock();
            if (!p) co_return std::nullopt;
            std::lock_guard lk(p->mu);
            co_return cursor.take(*p, pred);
        }
    }
}

asio::awaitable<void> process_context::async_sleep(std::chrono::milliseconds d) const {
    asio::steady_timer t(st_->strand, d);
    error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

void process_context::send(const pid& to, term msg) const {
    if (auto m = handle()) m.send(to, std::move(msg));
}
void process_context::send(atom registered_name, term msg) const {
    if (auto m = handle()) m.send(registered_name, std::move(msg));
}
void process_context::send(atom registered_name, atom to_node, term msg) const {
    if (auto m = handle()) m.send(registered_name, to_node, std::move(msg));
}
void process_context::link(const pid& other) const {
    if (auto m = handle()) m.link(other);
}
void process_context::unlink(const pid& other) const {
    if (auto m = handle()) m.unlink(other);
}
reference process_context::monitor(const pid& target) const {
    if (auto m = handle()) return m.monitor(target);
    return {};
}
reference process_context::monitor(atom registered_name, atom node) const {
    if (auto m = handle()) return m.monitor(registered_name, node);
    return {};
}
bool process_context::demonitor(const reference& ref, bool flush) const {
    if (auto m = handle()) return m.demonitor(ref, flush);
    return false;
}
bool process_context::trap_exit(bool on) const {
    if (auto m = handle()) return m.trap_exit(on);
    return false;
}
void process_context::exit(const pid& to, term reason) const {
    if (auto m = handle()) m.exit(to, std::move(reason));
}

// ------------------------------------------------------------------------------------------
// spawn

result<pid> spawn(node& n, process_body body, spawn_options opts) {
    return detail::do_spawn(detail::access::core(n), std::move(body), opts, nullptr, nullptr);
}
result<pid> spawn(node& n, coroutine_body body, spawn_options opts) {
    return detail::do_spawn(detail::access::core(n), std::move(body), opts, nullptr, nullptr);
}
result<pid> spawn_link(const mailbox& parent, process_body body, spawn_options opts) {
    return detail::do_spawn(*detail::access::proc(parent)->node, std::move(body), opts, &parent,
                            nullptr);
}
result<pid> spawn_link(const mailbox& parent, coroutine_body body, spawn_options opts) {
    return detail::do_spawn(*detail::access::proc(parent)->node, std::move(body), opts, &parent,
                            nullptr);
}
result<spawned> spawn_monitor(const mailbox& parent, process_body body, spawn_options opts) {
    reference ref;
    auto r =
        detail::do_spawn(*detail::access::proc(parent)->node, std::move(body), opts, &parent, &ref);
    if (!r) return r.error();
    return spawned{*r, ref};
}
result<spawned> spawn_monitor(const mailbox& parent, coroutine_body body, spawn_options opts) {
    reference ref;
    auto r =
        detail::do_spawn(*detail::access::proc(parent)->node, std::move(body), opts, &parent, &ref);
    if (!r) return r.error();
    return spawned{*r, ref};
}

bool join_processes(node& n, std::chrono::milliseconds timeout) {
    auto& core = detail::access::core(n);
    std::unique_lock lk(core.bodies_mu);
    auto done = [&] { return core.live_bodies == 0; };
    if (timeout == infinity) {
        core.bodies_cv.wait(lk, done);
        return true;
    }
    return core.bodies_cv.wait_for(lk, timeout, done);
}

}  // namespace erl
