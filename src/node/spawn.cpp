// C++ processes: thread bodies and coroutine bodies with their own mailbox
// (include/erl/process.hpp).
#include <erl/node.hpp>
#include <erl/process.hpp>

#include "common/block_pool.hpp"
#include "node/access.hpp"
#include "node/mfa_key.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "node/selective_receive.hpp"
#include "node/signals.hpp"

#include <boost/asio/co_spawn.hpp>
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

// State of a coroutine process shared by its frames and its wake-up. Holds only weak
// references to the process and node, so a suspended coroutine owned by the io_context (or by
// its process's `suspended` slot) never keeps the node (which owns the io_context) alive.
struct coroutine_state {
    coroutine_state(const std::shared_ptr<process>& p, node_core& n)
        : proc(p), self_term(p->self_term), exec(executor_for(n)) {}

    // A strand of the node's io_context; on a node whose one I/O thread runs everything (its
    // own io_context, threads == 1) the io_context's executor, which orders and never overlaps
    // the process's handlers as a strand does, without a strand's allocation and lock.
    static asio::any_io_executor executor_for(node_core& n) {
        if (!n.user_ioc && n.opts.threads <= 1) return n.ioc().get_executor();
        return asio::make_strand(n.ioc());
    }

    std::weak_ptr<process> proc;
    const term self_term;        // self() is its pid
    asio::any_io_executor exec;  // the process's handlers run here, one at a time
    // On exec only. The deadline of a receive with a finite timeout: made by the first one, so
    // a process that only ever waits without a timeout has no timer.
    std::unique_ptr<asio::steady_timer> timer;
    std::uint64_t waits = 0;  // on exec only: numbers the suspensions (a stale deadline is ignored)
    coroutine_wake_ptr spare;  // on exec only: the wake-up record of the last suspension, reused
};

// The handler of a suspended receive: resuming it resumes the coroutine.
using wake_handler = asio::async_result<asio::use_awaitable_t<>, void()>::handler_type;

struct coroutine_wake {
    std::optional<wake_handler> handler;  // the suspended coroutine
    coroutine_state* st = nullptr;        // lives as long as the coroutine's frames

    static void* operator new(std::size_t n) { return block_pool::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { block_pool::deallocate(p, n); }
};

void coroutine_wake_deleter::operator()(coroutine_wake* w) const noexcept {
    delete w;
}

namespace {
// On the process's executor: resumes the coroutine; the record goes back to its state for the next
// wait.
void resume(coroutine_wake_ptr w) {
    coroutine_state* st = w->st;
    wake_handler h = std::move(*w->handler);
    w->handler.reset();
    st->spare = std::move(w);
    std::move(h)();
}
}  // namespace

void wake_coroutine(coroutine_wake_ptr w) {
    const auto ex = w->st->exec;
    asio::post(ex, [w = std::move(w)]() mutable { resume(std::move(w)); });
}

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

// The exit reason of a body that ended with exception e: exit_exception's reason, or a crash.
term exit_reason_of(const process& p, std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const exit_exception& x) {
        return x.reason();
    } catch (const std::exception& x) {
        return crash_reason(p, x.what());
    } catch (...) {
        return crash_reason(p, "unknown exception");
    }
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
            } catch (...) {
                reason = exit_reason_of(*p, std::current_exception());
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

// The body of a coroutine process, called on the process's executor by co_spawn's entry point,
// whose frame holds this object for as long as the body runs: the body's captures and the
// context it gets by reference stay where they are, with no frame of our own around the body.
struct coroutine_entry {
    coroutine_body body;
    process_context ctx;
    asio::awaitable<void> operator()() { return body(ctx); }
};

// How the body ended, reported as the process's exit (the body's frame is gone by then).
struct coroutine_exit {
    std::weak_ptr<process> proc;
    void operator()(std::exception_ptr e) const {
        auto p = proc.lock();
        if (!p) return;
        p->node->process_exit(p, e ? exit_reason_of(*p, e) : term(atoms::normal()));
    }
};

// The posted first step of a coroutine process.
struct coroutine_start {
    coroutine_entry entry;
    coroutine_exit exit;
    void operator()() {
        auto ex = entry.ctx.get_executor();
        asio::co_spawn(ex, std::move(entry), std::move(exit));
    }
};

// The body first runs from the executor's queue, never inside the spawn: co_spawn dispatches
// its first step, which on the I/O thread of a one-thread node would run the new process's body
// before spawn returns, and a chain of processes each spawning the next would nest on that
// thread's stack until it overflowed.
void start_coroutine(const std::shared_ptr<process>& p, coroutine_body body) {
    auto st = std::allocate_shared<coroutine_state>(block_pool::allocator<coroutine_state>(), p,
                                                    *p->node);
    auto ex = st->exec;
    asio::post(ex, coroutine_start{coroutine_entry{std::move(body), process_context(std::move(st))},
                                   coroutine_exit{p}});
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

// do_spawn with `parent` linked to the new process, or monitoring it when `monitor_ref` is set.
template <class Body>
result<pid> spawn_from(const mailbox& parent, Body body, const spawn_options& o,
                       reference* monitor_ref) {
    return do_spawn(*access::proc(parent)->node, std::move(body), o, &parent, monitor_ref);
}

template <class Body>
result<spawned> spawn_monitored(const mailbox& parent, Body body, const spawn_options& o) {
    reference ref;
    auto r = spawn_from(parent, std::move(body), o, &ref);
    if (!r) return r.error();
    return spawned{*r, ref};
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
    return st_->self_term.as_pid();
}
const term& process_context::self_term() const noexcept {
    return st_->self_term;
}
asio::any_io_executor process_context::get_executor() const {
    return st_->exec;
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

namespace detail {
namespace {
// Suspends a coroutine receive until the process gets a message, exits, or `deadline` passes
// (then completes without saying which: the receive scans again either way). `size` and
// `epoch` are the queue as the receive last scanned it (under mu): had anything arrived or
// left since, it completes at once, so no delivery between that scan and this falls between.
struct wait_for_message {
    std::shared_ptr<coroutine_state> st;
    std::size_t size;
    std::uint64_t epoch;
    std::chrono::steady_clock::time_point deadline;

    void operator()(wake_handler h) const {
        coroutine_wake_ptr w = std::move(st->spare);
        if (!w) w.reset(new coroutine_wake);
        w->handler.emplace(std::move(h));
        w->st = st.get();
        auto p = st->proc.lock();
        if (p) {
            std::lock_guard lk(p->mu);
            if (!p->exited && p->queue.size() == size && p->queue_epoch == epoch) {
                p->suspended = std::move(w);  // one receive at a time per process
            }
        }
        if (w) return wake_coroutine(std::move(w));
        const std::uint64_t id = ++st->waits;
        if (deadline == std::chrono::steady_clock::time_point::max()) return;
        if (!st->timer) st->timer = std::make_unique<asio::steady_timer>(st->exec);
        st->timer->expires_at(deadline);
        st->timer->async_wait([ws = std::weak_ptr<coroutine_state>(st), id](error_code ec) {
            if (ec) return;
            auto s = ws.lock();
            if (!s || s->waits != id) return;
            auto p = s->proc.lock();
            if (!p) return;
            coroutine_wake_ptr w;
            {
                std::lock_guard lk(p->mu);
                w = std::move(p->suspended);  // none: a wake-up is on its way
            }
            if (w) resume(std::move(w));
        });
    }
};
}  // namespace
}  // namespace detail

asio::awaitable<std::optional<term>> process_context::async_receive_if(
    std::function<bool(const term&)> pred, std::chrono::milliseconds timeout) const {
    auto st = st_;  // the frame keeps the state alive across suspensions
    const auto deadline = timeout == infinity ? std::chrono::steady_clock::time_point::max()
                                              : std::chrono::steady_clock::now() + timeout;
    detail::receive_cursor cursor;  // messages already rejected stay rejected
    for (;;) {
        std::size_t size;
        std::uint64_t epoch;
        {
            auto p = st->proc.lock();
            if (!p) co_return std::nullopt;
            std::lock_guard lk(p->mu);
            if (auto t = cursor.take(*p, pred)) co_return t;
            if (p->exited) co_return std::nullopt;
            if (deadline != std::chrono::steady_clock::time_point::max() &&
                std::chrono::steady_clock::now() >= deadline)
                co_return std::nullopt;
            size = p->queue.size();
            epoch = p->queue_epoch;
        }
        // A named initiation: the GCC 12 this builds with destroys a braced temporary in the
        // co_await expression twice (its shared_ptr then gives up a reference twice).
        detail::wait_for_message wait{st, size, epoch, deadline};
        co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(std::move(wait),
                                                                             asio::use_awaitable);
        if (deadline != std::chrono::steady_clock::time_point::max()) st->timer->cancel();
    }
}

asio::awaitable<void> process_context::async_sleep(std::chrono::milliseconds d) const {
    asio::steady_timer t(st_->exec, d);
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
    return detail::spawn_from(parent, std::move(body), opts, nullptr);
}
result<pid> spawn_link(const mailbox& parent, coroutine_body body, spawn_options opts) {
    return detail::spawn_from(parent, std::move(body), opts, nullptr);
}
result<spawned> spawn_monitor(const mailbox& parent, process_body body, spawn_options opts) {
    return detail::spawn_monitored(parent, std::move(body), opts);
}
result<spawned> spawn_monitor(const mailbox& parent, coroutine_body body, spawn_options opts) {
    return detail::spawn_monitored(parent, std::move(body), opts);
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
