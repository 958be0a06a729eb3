// rpc/erpc server: answers SPAWN_REQUEST for erpc:execute_call/4 and erpc:execute_cast/3 (what
// OTP 23+ rpc:call/cast/multicall and erpc:* send) by running registered C++ functions.
//
// erl_dist_protocol: SPAWN_REQUEST {29, ReqId, From, GroupLeader, {M, F, Arity}, OptList}
// + ArgList; the answer is SPAWN_REPLY {31, ReqId, From, Flags, Result} (Flags: 1 link
// established, 2 monitor established; Result: the new pid or an error atom). With `monitor`
// the monitor reference is ReqId: when the process ends its exit reason reaches the caller as
// MONITOR_P_EXIT / PAYLOAD_MONITOR_P_EXIT and erpc reads the result from that reason
// (erpc.erl execute_call/4 exits with {Ref, return, V} | {Ref, throw, V} | {Ref, exit, R} |
// {Ref, error, R, Stack}).
#include "observe/introspection.hpp"
#include "services/rpc_internal.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <thread>
#include <unordered_map>

namespace erl::rpc::detail {

term frame_stack(atom m, atom f, const term& arity_or_args) {
    return make_list({make_tuple({term(m), term(f), arity_or_args, term()})});
}

term erpc_exit_reason(const term& ref, const outcome& o) {
    const auto& a = A();
    if (o.returned()) return make_tuple({ref, term(a.return_), o.value});
    if (o.cls == a.error) return make_tuple({ref, term(a.error), o.value, o.stack});
    return make_tuple({ref, term(o.cls), o.value});
}

term rex_reply(const outcome& o) {
    const auto& a = A();
    if (o.returned() || o.cls == a.throw_) return o.value;
    if (o.cls == a.exit)
        return make_tuple({term(a.badrpc), make_tuple({term(a.exit_tag), o.value})});
    return make_tuple(
        {term(a.badrpc), make_tuple({term(a.exit_tag), make_tuple({o.value, o.stack})})});
}

term spawn_exit_reason(const outcome& o) {
    const auto& a = A();
    if (o.returned()) return term(a.normal);
    if (o.cls == a.exit) return o.value;
    if (o.cls == a.throw_) return make_tuple({make_tuple({term(a.nocatch), o.value}), o.stack});
    return make_tuple({o.value, o.stack});
}

std::shared_ptr<spawn_slot> slot_for(node_core& core) {
    return core.service_state<spawn_slot>();
}

// ------------------------------------------------------------------------------------------

server_state::server_state(erl::node& n, server_options o)
    : node(n), core(erl::detail::access::core(n)), opts(o), pool(o.threads ? o.threads : 1) {}

server_state::~server_state() = default;

std::shared_ptr<const entry> server_state::find(atom m, atom f, unsigned arity) const {
    std::shared_lock lk(mu);
    auto it = fns.find(key_of(m, f, arity));
    return it == fns.end() ? nullptr : it->second;
}

namespace {

outcome from_exception(std::exception_ptr ep, atom m, atom f, std::size_t arity_n) {
    const auto& a = A();
    const term arity(static_cast<long long>(arity_n));
    try {
        std::rethrow_exception(ep);
    } catch (const erlang_exception& e) {
        term stack = e.stacktrace();
        if (e.class_of() == a.error && stack.is_nil()) stack = frame_stack(m, f, arity);
        return {e.class_of(), e.reason(), stack};
    } catch (const std::exception& e) {
        return {a.error, make_tuple({term(a.cpp_exception), binary(e.what())}),
                frame_stack(m, f, arity)};
    } catch (...) {
        return {a.error, term(a.cpp_exception), frame_stack(m, f, arity)};
    }
}

// The argument list as a span of its elements (lists are contiguous); false if improper.
bool arg_span(const term& args, std::span<const term>& out) {
    if (!args.is_list() || !args.is_proper_list()) return false;
    out = args.as_list().elements;
    return true;
}

}  // namespace

outcome server_state::run_here(const entry* e, call_context& ctx,
                               std::span<const term> argv) const {
    if (!e || !e->sync) {
        // apply/3 of an unknown function: error:undef with the call as the only frame, as BEAM
        // reports it; an improper argument list is error:badarg.
        const auto& a = A();
        const bool proper = ctx.args().is_list() && ctx.args().is_proper_list();
        return {a.error, term(proper ? a.undef : a.badarg),
                frame_stack(ctx.module(), ctx.function(), ctx.args())};
    }
    try {
        return outcome{atom(), e->sync(ctx, argv), term()};
    } catch (...) {
        auto ep = std::current_exception();
        log_cpp_exception(ep, ctx.module(), ctx.function(), argv.size());
        return from_exception(std::move(ep), ctx.module(), ctx.function(), argv.size());
    }
}

// An erl::rpc::raise_* (an Erlang exception) is the function's answer and goes to the caller
// only, as BEAM logs nothing when an erpc-called function raises. Any other C++ exception is a
// fault in the program: the caller gets {cpp_exception, What} and the node logs it.
void server_state::log_cpp_exception(const std::exception_ptr& ep, atom m, atom f,
                                     std::size_t arity) const {
    if (!core.logs(log_level::warning)) return;
    std::string what;
    try {
        std::rethrow_exception(ep);
    } catch (const erlang_exception&) {
        return;
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "an exception not derived from std::exception";
    }
    core.log(log_level::warning, log_kind::process_crashed, {}, {},
             "rpc function " + std::string(m.str()) + ":" + std::string(f.str()) + "/" +
                 std::to_string(arity) + " threw: " + what);
}

void server_state::run(std::shared_ptr<job> j) {
    std::span<const term> argv;
    const bool proper = arg_span(j->args, argv);
    auto e = proper ? find(j->m, j->f, static_cast<unsigned>(argv.size())) : nullptr;
    dispatch(std::move(j), std::move(e), argv);
}

void server_state::dispatch(std::shared_ptr<job> j, std::shared_ptr<const entry> e,
                            std::span<const term> argv) {
    if (!e || e->run == run_on::io_thread) {
        // Nothing to wait for (undef / badarg), or a quick function registered to run inline.
        auto ctx = erl::detail::access::make<call_context>(&node, j->self, j->caller, j->m, j->f,
                                                           j->args, pool.get_executor(), j->proc);
        j->done(run_here(e.get(), ctx, argv));
        return;
    }
    if (e->async) {
        auto ctx = erl::detail::access::make_shared<call_context>(
            &node, j->self, j->caller, j->m, j->f, j->args, pool.get_executor(), j->proc);
        boost::asio::co_spawn(
            pool.get_executor(),
            [e, ctx, argv = std::vector<term>(argv.begin(), argv.end())]() mutable
            -> boost::asio::awaitable<term> { co_return co_await e->async(*ctx, std::move(argv)); },
            [j, ctx, e](std::exception_ptr ep, term v) {
                if (ep)
                    j->done(from_exception(ep, j->m, j->f, ctx->args().size()));
                else
                    j->done(outcome{atom(), std::move(v), term()});
            });
        return;
    }
    // j->args keeps the elements `argv` points at alive until the job is done.
    boost::asio::post(pool, [this, j = std::move(j), e = std::move(e), argv]() {
        auto ctx = erl::detail::access::make<call_context>(&node, j->self, j->caller, j->m, j->f,
                                                           j->args, pool.get_executor(), j->proc);
        j->done(run_here(e.get(), ctx, argv));
    });
}

bool server_state::on_spawn_request(const std::shared_ptr<erl::detail::connection>& c,
                                    const term& control, term* payload) {
    const auto& a = A();
    const auto arrived = std::chrono::steady_clock::now();
    foreign_call guard(*this);  // ~server waits for inline handlers (see foreign_mu)
    if (stopped.load()) return false;
    // {29, ReqId, From, GroupLeader, {M, F, Arity}, OptList} (+ token for 30).
    if (!control[1].is_reference() || !control[4].is_tuple(3) || !payload) return false;
    const term& req_id = control[1];
    const term& from = control[2];
    const term& mfa = control[4];
    if (!mfa[0].is_atom() || !mfa[1].is_atom()) return false;
    const atom sm = mfa[0].as_atom(), sf = mfa[1].as_atom();
    const term& args = *payload;
    if (!args.is_proper_list()) return false;
    auto lv = args.as_list();

    enum class kind : std::uint8_t { erpc_call, erpc_cast, plain } k;
    const term* ref = nullptr;
    atom m, f;
    const term* call_args;
    std::shared_ptr<const entry> plain_entry;
    if (sm == a.erpc && sf == a.execute_call && lv.elements.size() == 4 &&
        lv.elements[1].is_atom() && lv.elements[2].is_atom()) {
        k = kind::erpc_call;
        ref = &lv.elements[0];
        m = lv.elements[1].as_atom();
        f = lv.elements[2].as_atom();
        call_args = &lv.elements[3];
    } else if (sm == a.erpc && sf == a.execute_cast && lv.elements.size() == 3 &&
               lv.elements[0].is_atom() && lv.elements[1].is_atom()) {
        k = kind::erpc_cast;
        m = lv.elements[0].as_atom();
        f = lv.elements[1].as_atom();
        call_args = &lv.elements[2];
    } else if ((plain_entry = find(sm, sf, static_cast<unsigned>(lv.elements.size())))) {
        // spawn(CppNode, M, F, Args) of a registered function: runs it in a fresh process.
        k = kind::plain;
        m = sm;
        f = sf;
        call_args = &args;
    } else {
        // Any other function would need an Erlang runtime: the documented answer is the
        // spawn error `notsup` (the runtime sends it when we return false).
        return false;
    }

    bool want_link = false, want_monitor = false;
    if (control[5].is_list()) {
        for (const term& o : control[5].as_list().elements) {
            if (o.is_atom(a.link)) want_link = true;
            if (o.is_atom(a.monitor) || (o.is_tuple(2) && o[0].is_atom(a.monitor)))
                want_monitor = true;
        }
    }

    // The new process, with the link and monitor asked for; its SPAWN_REPLY leaves before
    // anything it sends.
    auto p =
        runtime::accept_spawn(core, c, req_id, from, {.monitor = want_monitor, .link = want_link});

    // The process ends with the exit reason a BEAM process running the same code would have.
    auto exit_reason = [k](const term* r, const outcome& o) {
        return k == kind::erpc_call ? erpc_exit_reason(*r, o)
               : k == kind::plain   ? spawn_exit_reason(o)
               : o.returned()       ? term(A().normal)
                                    : spawn_exit_reason(o);
    };

    std::span<const term> argv;
    const bool proper = arg_span(*call_args, argv);
    auto e = k == kind::plain ? std::move(plain_entry)
             : proper         ? find(m, f, static_cast<unsigned>(argv.size()))
                              : nullptr;
    if (!e || e->run == run_on::io_thread) {
        // Inline on this I/O thread: no job, no thread hand-off; the exit signal carrying the
        // result is queued behind the SPAWN_REPLY and both leave in one write.
        auto ctx = erl::detail::access::make<call_context>(&node, p->self, from, m, f, *call_args,
                                                           pool.get_executor(), p);
        const outcome o = run_here(e.get(), ctx, argv);
        if (k == kind::erpc_call)
            core.counters.rpc_done(std::chrono::steady_clock::now() - arrived, !o.returned());
        runtime::exit(p, exit_reason(ref, o));
        return true;
    }

    if (opts.introspection) {
        // process_info initial_call: erpc's entry point (as on BEAM) or the spawned function;
        // current_function: the function running.
        const auto n = static_cast<std::uint32_t>(argv.size());
        if (k == kind::erpc_call)
            erl::detail::introspection::describe(*p, a.erpc, a.execute_call, 4, m, f, n);
        else if (k == kind::erpc_cast)
            erl::detail::introspection::describe(*p, a.erpc, a.execute_cast, 3, m, f, n);
        else
            erl::detail::introspection::describe(*p, m, f, n, m, f, n);
    }
    auto j = std::make_shared<job>();
    j->proc = p;
    j->self = p->self;
    j->caller = from;
    j->m = m;
    j->f = f;
    j->args = *call_args;
    j->arrived = arrived;
    std::weak_ptr<node_core> wcore = core.shared_from_this();
    j->done = [wcore, p, exit_reason, k, arrived, ref = ref ? *ref : term()](outcome o) {
        auto cr = wcore.lock();
        if (!cr) return;
        // A call's reply is its process' exit reason (erpc); casts and spawns have none.
        if (k == kind::erpc_call)
            cr->counters.rpc_done(std::chrono::steady_clock::now() - arrived, !o.returned());
        runtime::exit(p, exit_reason(&ref, o));
    };
    dispatch(std::move(j), std::move(e), argv);  // argv points into j->args (same list)
    return true;
}

}  // namespace erl::rpc::detail

// ----------------------------------------------------------------------------------------------
// Public facade.

namespace erl::rpc {

using detail::A;

erlang_exception::erlang_exception(atom cls, term reason, term stack)
    : class_(cls), reason_(std::move(reason)), stack_(std::move(stack)) {
    what_ = std::string(class_.str()) + ":" + reason_.to_string();
}

void raise_error(term reason) {
    throw erlang_exception(A().error, std::move(reason));
}
void raise_exit(term reason) {
    throw erlang_exception(A().exit, std::move(reason));
}
void raise_throw(term value) {
    throw erlang_exception(A().throw_, std::move(value));
}

namespace detail {
void raise_badarg(const call_context& ctx) {
    throw erlang_exception(A().error, term(A().badarg),
                           frame_stack(ctx.module(), ctx.function(), ctx.args()));
}
}  // namespace detail

bool call_context::cancelled() const noexcept {
    if (!proc_) return false;
    std::lock_guard lk(proc_->mu);
    return proc_->exited;
}

server::server(erl::node& n, server_options opts)
    : node_(n), st_(std::make_shared<detail::server_state>(n, opts)) {
    if (opts.builtins) {
        erl::node* np = &n;
        add_raw(A().erlang, A().node, 0,
                [np](call_context&, std::span<const term>) { return term(np->name()); });
        add_raw(A().erlang, A().nodes, 0, [np](call_context&, std::span<const term>) {
            std::vector<term> out;
            for (auto& x : np->nodes())
                out.emplace_back(x);
            return make_list(std::move(out));
        });
    }
    if (opts.introspection)
        erl::detail::introspection::install(*this, opts.threads ? opts.threads : 1);
    if (opts.serve_rex) st_->start_rex();
    auto slot = detail::slot_for(st_->core);
    {
        std::lock_guard lk(slot->mu);
        slot->server = st_;
    }
    st_->core.set_spawn_handler([slot](const std::shared_ptr<erl::detail::connection>& c,
                                       const term& control, term* payload) {
        std::shared_ptr<detail::server_state> st;
        {
            std::lock_guard lk(slot->mu);
            st = slot->server.lock();
        }
        return st && st->on_spawn_request(c, control, payload);
    });
}

server::~server() {
    st_->stopped = true;
    {
        auto slot = detail::slot_for(st_->core);
        std::lock_guard lk(slot->mu);
        if (slot->server.lock() == st_) slot->server.reset();
    }
    // Handlers running inline on I/O threads (run_on::io_thread) finish before we return, as
    // pool handlers do below; new ones see `stopped` and are refused.
    st_->wait_foreign_calls();
    if (st_->rex) detail::runtime::exit(st_->rex, term(A().normal));
    // A stopped node has nobody left to answer: abandon suspended coroutines (a long
    // demo:sleep must not hold up shutdown). Otherwise let running handlers finish.
    if (!node_.alive()) st_->pool.stop();
    st_->pool.join();
}

void server::add_raw(atom module, atom function, unsigned arity, sync_handler fn,
                     function_options opts) {
    auto e = std::make_shared<detail::entry>();
    e->arity = arity;
    e->run = opts.run;
    e->sync = std::move(fn);
    std::unique_lock lk(st_->mu);
    st_->fns[detail::key_of(module, function, arity)] = std::move(e);
}

void server::add_raw_async(atom module, atom function, unsigned arity, async_handler fn) {
    auto e = std::make_shared<detail::entry>();
    e->arity = arity;
    e->async = std::move(fn);
    std::unique_lock lk(st_->mu);
    st_->fns[detail::key_of(module, function, arity)] = std::move(e);
}

bool server::remove(atom module, atom function, unsigned arity) {
    std::unique_lock lk(st_->mu);
    return st_->fns.erase(detail::key_of(module, function, arity)) > 0;
}

bool server::contains(atom module, atom function, unsigned arity) const {
    return st_->find(module, function, arity) != nullptr;
}

boost::asio::any_io_executor server::executor() const {
    return st_->pool.get_executor();
}

}  // namespace erl::rpc
