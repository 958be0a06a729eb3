// erl::dispatch::dispatcher (include/erl/dispatch.hpp): the target set kept current from node
// up/down events, pg joins/leaves (pg.erl monitor_scope) and monitors on registered names. Each
// call is one operation (dispatch_op, node/async_op.hpp's shape): it picks a target
// (src/dist/balancer.hpp), starts the erpc / gen_server call there as a runtime operation and,
// when that ends undelivered and the call is idempotent, picks the next target, all without a
// thread of its own. The blocking members wait for the same operation.
#include <erl/dispatch.hpp>
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>

#include "dist/balancer.hpp"
#include "dist/op_completion.hpp"
#include "node/access.hpp"
#include "node/async_call.hpp"
#include "node/async_op.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "services/rpc_internal.hpp"

#include <boost/asio/error.hpp>

#include <boost/system/system_error.hpp>

#include <condition_variable>
#include <mutex>

namespace erl::dispatch {

targets targets::nodes(std::vector<atom> list) {
    targets t;
    t.kind_ = kind::nodes;
    t.nodes_ = std::move(list);
    return t;
}

targets targets::pg_group(atom scope, term group) {
    targets t;
    t.kind_ = kind::pg_group;
    t.scope_ = scope;
    t.group_ = std::move(group);
    return t;
}

targets targets::registered(atom name) {
    targets t;
    t.kind_ = kind::registered;
    t.name_ = name;
    return t;
}

namespace detail {

namespace runtime = erl::detail::runtime;

namespace {

const atom& dispatch_atom() {
    static const atom a("dispatch");
    return a;
}

rpc::call_result dispatch_failure(errc e) {
    // error {dispatch, overloaded | no_target}
    const atom what(to_string(e));
    return rpc::call_result(rpc::exception_info{erl::detail::A().error,
                                                make_tuple({term(dispatch_atom()), term(what)}),
                                                term(), make_error_code(e)});
}

}  // namespace

struct dispatcher_state : std::enable_shared_from_this<dispatcher_state> {
    dispatcher_state(erl::node& node, targets t, options o)
        : n(node), src(std::move(t)), opts(o), bal(o.how, o.max_in_flight, 100, o.seed) {}

    erl::node& n;
    const targets src;
    const options opts;

    mutable std::mutex mu;
    std::condition_variable changed;  // the target set changed
    balancer bal;                     // guarded by mu

    std::uint64_t node_sub = 0;
    std::uint64_t pg_sub = 0;
    // registered(Name): the process holding the monitors on {Name, Node}.
    std::shared_ptr<erl::detail::process> watcher;

    template <class F>
    void update(F&& f) {
        {
            std::lock_guard lk(mu);
            f(bal);
        }
        changed.notify_all();
    }

    void on_node(const node_event& ev) {
        if (ev.hidden) return;  // as pg and global, hidden peers are not part of the cluster
        switch (src.source()) {
            case targets::kind::nodes:
                update([&](balancer& b) { b.set_up(ev.node, ev.up); });
                return;
            case targets::kind::pg_group:
                // The scope reports the members' leave later; no call goes there meanwhile.
                if (!ev.up) update([&](balancer& b) { b.set_up(ev.node, false); });
                return;
            case targets::kind::registered:
                if (ev.up)
                    watch_name(ev.node);
                else
                    update([&](balancer& b) { b.remove(target{ev.node, std::nullopt}); });
                return;
        }
    }

    // A node that came up is a target until the monitor on {Name, Node} says the name is not
    // there (DOWN noproc at once) or its process ended.
    void watch_name(atom node) {
        update([&](balancer& b) { b.add(target{node, std::nullopt}); });
        runtime::monitor(erl::detail::access::core(n), watcher,
                         make_tuple({term(src.name()), term(node)}));
    }

    void on_watcher_message(const term& msg) {
        // {'DOWN', Ref, process, {Name, Node}, Reason}
        if (!msg.is_tuple(5) || !msg[0].is_atom(erl::detail::A().down)) return;
        const term& obj = msg[3];
        if (!obj.is_tuple(2) || !obj[1].is_atom()) return;
        update([&](balancer& b) { b.remove(target{obj[1].as_atom(), std::nullopt}); });
    }

    void on_pg(const pg::event& ev) {
        if (ev.group != src.group()) return;
        update([&](balancer& b) {
            for (auto& p : ev.joined)
                b.add(target{p.node, p});
            if (ev.left.empty()) return;
            // A pid that joined twice stays a member until it left as often.
            const auto still = pg::get_members(n, src.scope(), src.group());
            for (auto& p : ev.left)
                if (std::find(still.begin(), still.end(), p) == still.end())
                    b.remove(target{p.node, p});
        });
    }

    std::optional<gen_server::dest> gen_dest(const target& t) const {
        if (t.process) return gen_server::dest(*t.process);
        if (src.source() == targets::kind::registered) return gen_server::dest(src.name(), t.node);
        if (opts.server) return gen_server::dest(*opts.server, t.node);
        return std::nullopt;
    }
};

namespace {

using call_op_ptr = std::shared_ptr<rpc::detail::any_call_op>;

rpc::call_result exception(atom cls, term reason, error_code code) {
    return rpc::call_result(rpc::exception_info{cls, std::move(reason), term(), code});
}

// An attempt whose outcome is known when it starts (a cast sent, a target without a
// gen_server to call).
class ready_op final : public rpc::detail::any_call_op {
  public:
    explicit ready_op(rpc::call_result r) : r_(std::move(r)) {}
    void start(done_fn done) override { done({}, std::move(r_)); }
    void cancel() override {}

  private:
    rpc::call_result r_;
};

// erpc:cast as an attempt: the connection first (without blocking), then the request.
class cast_op final : public rpc::detail::any_call_op {
  public:
    cast_op(erl::node& n, atom target, atom m, atom f, term args, std::chrono::milliseconds left)
        : n_(n),
          target_(target),
          m_(m),
          f_(f),
          args_(std::move(args)),
          connect_(std::make_shared<erl::detail::connect_op>(
              erl::detail::access::core(n).shared_from_this(), target, left)) {}
    void start(done_fn done) override {
        connect_->start([&n = n_, target = target_, m = m_, f = f_, args = args_,
                         done = std::move(done)](error_code ec) {
            if (ec == boost::asio::error::operation_aborted) return done(ec, rpc::call_result());
            if (!ec)
                ec = rpc::detail::cast_connected(n, target, m, f, args);
            else
                ec = make_error_code(errc::noconnection);
            if (!ec) return done({}, rpc::call_result(term(erl::detail::A().ok)));
            done({},
                 exception(erl::detail::A().error,
                           make_tuple({term(erl::detail::A().erpc),
                                       term(ec == errc::noconnection ? erl::detail::A().noconnection
                                                                     : erl::detail::A().badarg)}),
                           ec));
        });
    }
    void cancel() override { connect_->cancel(); }

  private:
    erl::node& n_;
    atom target_, m_, f_;
    term args_;
    std::shared_ptr<erl::detail::connect_op> connect_;
};

}  // namespace

// One dispatched call or cast (the shape of node/async_op.hpp): an attempt on a chosen target,
// and after an undelivered idempotent attempt the next target, until one answers, a failure
// must not be retried, the deadline passes or nobody is left. `make` starts no I/O: it builds
// the attempt for a target and the time left.
class dispatch_op : public std::enable_shared_from_this<dispatch_op> {
  public:
    using done_fn = erl::detail::op_completion<dispatch_op, error_code, reply>::done_fn;
    using attempt_fn = std::function<call_op_ptr(const target&, std::chrono::milliseconds)>;

    dispatch_op(std::shared_ptr<dispatcher_state> st, const call_options& co, bool gen,
                attempt_fn make)
        : st_(std::move(st)),
          key_(co.key),
          idempotent_(co.idempotent),
          gen_(gen),
          make_(std::move(make)) {
        const auto timeout = co.timeout.value_or(st_->opts.timeout);
        infinite_ = timeout == infinity;
        deadline_ = infinite_ ? std::chrono::steady_clock::time_point::max()
                              : std::chrono::steady_clock::now() + timeout;
    }

    void start(done_fn done) {
        bool cancelled;
        {
            std::lock_guard lk(mu_);
            cancelled = completion_.begin(std::move(done), shared_from_this());
        }
        if (cancelled) return finish(make_error_code(boost::asio::error::operation_aborted));
        next();
    }

    // Terminal cancellation: the attempt in flight is cancelled (abandoned as on its timeout)
    // and the operation ends with operation_aborted; no further target is tried.
    void cancel() {
        call_op_ptr cur;
        {
            std::lock_guard lk(mu_);
            completion_.cancel();
            cur = current_;
        }
        if (cur) cur->cancel();
    }

  private:
    void next() {
        balancer::choice c;
        {
            std::lock_guard lk(st_->mu);
            c = st_->bal.pick(key_, tried_);
        }
        if (!c.target) {
            // A retry finding nobody left returns the failure that made it retry.
            if (!r_.target) r_.result = dispatch_failure(c.error);
            return finish({});
        }
        const auto t0 = std::chrono::steady_clock::now();
        auto left = infinite_
                        ? infinity
                        : std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - t0);
        if (!infinite_ && left.count() < 1) left = std::chrono::milliseconds(1);
        auto op = make_(c.target->id, left);
        {
            std::unique_lock lk(mu_);
            if (completion_.cancelled()) {
                lk.unlock();
                st_->update([&](balancer& b) { b.finish(c.target, {}, true); });
                return finish(make_error_code(boost::asio::error::operation_aborted));
            }
            current_ = op;
            chosen_ = std::move(c.target);
            t0_ = t0;
        }
        op->start([self = shared_from_this()](error_code ec, rpc::call_result res) {
            self->attempt_done(ec, std::move(res));
        });
    }

    void attempt_done(error_code ec, rpc::call_result res) {
        const auto lat = std::chrono::steady_clock::now() - t0_;
        std::shared_ptr<target_state> t;
        bool cancelled;
        {
            std::lock_guard lk(mu_);
            current_.reset();
            t = std::move(chosen_);
            cancelled = completion_.cancelled();
        }
        const bool aborted = cancelled || ec == boost::asio::error::operation_aborted;
        const error_code code = aborted || res.ok() ? error_code() : res.error().code;
        const bool lost = code == make_error_code(errc::noconnection);
        const bool undelivered =
            lost || (gen_ && code == make_error_code(errc::noproc) && !t->id.process);
        st_->update([&](balancer& b) {
            b.finish(t, lat, aborted || !res.ok());
            if (lost) b.set_up(t->id.node, false);  // until its next nodeup
        });
        if (aborted) return finish(make_error_code(boost::asio::error::operation_aborted));
        r_.result = std::move(res);
        r_.target = t->id;
        ++r_.attempts;
        if (!(idempotent_ && undelivered)) return finish({});
        if (!infinite_ && std::chrono::steady_clock::now() >= deadline_) return finish({});
        tried_.push_back(std::move(t));
        next();
    }

    void finish(error_code ec) {
        done_fn done;
        std::shared_ptr<dispatch_op> keep;
        {
            std::lock_guard lk(mu_);
            done = completion_.take(keep);
        }
        if (!done) return;
        if (ec) return done(ec, reply{});
        done({}, std::move(r_));
    }

    const std::shared_ptr<dispatcher_state> st_;
    const std::optional<term> key_;
    const bool idempotent_;
    const bool gen_;
    const attempt_fn make_;
    bool infinite_ = false;
    std::chrono::steady_clock::time_point deadline_;
    // Touched by one attempt's completion at a time (attempts run one after the other).
    std::vector<std::shared_ptr<target_state>> tried_;
    reply r_;
    std::chrono::steady_clock::time_point t0_;
    std::mutex mu_;
    call_op_ptr current_;                   // under mu_: the attempt in flight
    std::shared_ptr<target_state> chosen_;  // under mu_: its target
    erl::detail::op_completion<dispatch_op, error_code, reply> completion_;  // under mu_
};

namespace {

std::shared_ptr<dispatch_op> make_call(const std::shared_ptr<dispatcher_state>& st, atom module,
                                       atom function, term args, const call_options& co) {
    erl::node& n = st->n;
    return std::make_shared<dispatch_op>(st, co, false,
                                         [&n, module, function, args = std::move(args)](
                                             const target& t, std::chrono::milliseconds left) {
                                             return rpc::detail::make_call_op(n, t.node, module,
                                                                              function, args, left);
                                         });
}

rpc::call_result no_server() {
    return exception(erl::detail::A().error, term(erl::detail::A().badarg),
                     make_error_code(errc::badarg));
}

// gen_server:call, or with `cast` gen_server:cast, to the target's server.
std::shared_ptr<dispatch_op> make_gen(const std::shared_ptr<dispatcher_state>& st, term request,
                                      const call_options& co, bool cast) {
    dispatcher_state* s = st.get();  // the operation holds the state
    return std::make_shared<dispatch_op>(
        st, co, true,
        [s, cast, request = std::move(request)](const target& t,
                                                std::chrono::milliseconds left) -> call_op_ptr {
            auto d = s->gen_dest(t);
            if (!d) return std::make_shared<ready_op>(no_server());
            if (!cast) return rpc::detail::make_gen_call_op(s->n, *d, request, left);
            gen_server::cast(s->n, *d, request);
            return std::make_shared<ready_op>(rpc::call_result(term(erl::detail::A().ok)));
        });
}

std::shared_ptr<dispatch_op> make_cast(const std::shared_ptr<dispatcher_state>& st, atom module,
                                       atom function, term args, const call_options& co) {
    erl::node& n = st->n;
    return std::make_shared<dispatch_op>(
        st, co, false,
        [&n, module, function, args = std::move(args)](
            const target& t, std::chrono::milliseconds left) -> call_op_ptr {
            if (t.node == n.name()) {
                const error_code ec = rpc::cast(n, t.node, module, function, args);
                return std::make_shared<ready_op>(
                    ec ? exception(erl::detail::A().error, term(erl::detail::A().badarg), ec)
                       : rpc::call_result(term(erl::detail::A().ok)));
            }
            return std::make_shared<cast_op>(n, t.node, module, function, args, left);
        });
}

reply run_blocking(erl::node& n, const std::shared_ptr<dispatch_op>& op) {
    return std::get<1>(erl::detail::run_blocking<dispatch_op, error_code, reply>(
        erl::detail::access::core(n), op));
}

error_code cast_code(const reply& r) {
    return r.result.ok() ? error_code() : r.result.error().code;
}

}  // namespace

void initiate_call(const std::shared_ptr<dispatcher_state>& st, atom module, atom function,
                   term args, call_options co, reply_handler handler) {
    erl::detail::launch(erl::detail::access::core(st->n),
                        make_call(st, module, function, std::move(args), co), std::move(handler));
}

void initiate_gen_call(const std::shared_ptr<dispatcher_state>& st, term request, call_options co,
                       reply_handler handler) {
    erl::detail::launch(erl::detail::access::core(st->n),
                        make_gen(st, std::move(request), co, false), std::move(handler));
}

// A cast completes with its error code alone.
class cast_result_op {
  public:
    using done_fn = std::function<void(error_code)>;
    explicit cast_result_op(std::shared_ptr<dispatch_op> op) : op_(std::move(op)) {}
    void start(done_fn done) {
        op_->start(
            [done = std::move(done)](error_code ec, reply r) { done(ec ? ec : cast_code(r)); });
    }
    void cancel() { op_->cancel(); }

  private:
    std::shared_ptr<dispatch_op> op_;
};

void initiate_cast(const std::shared_ptr<dispatcher_state>& st, atom module, atom function,
                   term args, call_options co, cast_handler handler) {
    erl::detail::launch(
        erl::detail::access::core(st->n),
        std::make_shared<cast_result_op>(make_cast(st, module, function, std::move(args), co)),
        std::move(handler));
}

void initiate_gen_cast(const std::shared_ptr<dispatcher_state>& st, term request, call_options co,
                       cast_handler handler) {
    erl::detail::launch(
        erl::detail::access::core(st->n),
        std::make_shared<cast_result_op>(make_gen(st, std::move(request), co, true)),
        std::move(handler));
}

}  // namespace detail

dispatcher::dispatcher(erl::node& n, targets t, options o)
    : st_(std::make_shared<detail::dispatcher_state>(n, std::move(t), o)) {
    auto& st = *st_;
    std::weak_ptr<detail::dispatcher_state> w = st_;
    if (st.src.source() == targets::kind::registered) {
        auto& core = erl::detail::access::core(n);
        auto p = erl::detail::runtime::spawn_service(core, [w](term msg) {
            if (auto s = w.lock()) s->on_watcher_message(msg);
        });
        if (!p) throw boost::system::system_error(p.error(), "erl::dispatch::dispatcher");
        st.watcher = *p;
    }
    // Subscribe before reading the current state, so no change falls in between (a change
    // seen twice is harmless: add and remove are idempotent).
    st.node_sub = n.monitor_nodes([w](const node_event& ev) {
        if (auto s = w.lock()) s->on_node(ev);
    });
    switch (st.src.source()) {
        case targets::kind::nodes: {
            std::vector<target> ts;
            for (auto a : st.src.node_list())
                ts.push_back(target{a, std::nullopt});
            st.update([&](detail::balancer& b) { b.assign(ts); });
            break;
        }
        case targets::kind::pg_group: {
            st.pg_sub = pg::subscribe(n, st.src.scope(), [w](const pg::event& ev) {
                if (auto s = w.lock()) s->on_pg(ev);
            });
            if (st.pg_sub == 0) {
                n.demonitor_nodes(st.node_sub);
                throw boost::system::system_error(make_error_code(errc::noproc),
                                                  "erl::dispatch::dispatcher: pg scope");
            }
            const auto members = pg::get_members(n, st.src.scope(), st.src.group());
            st.update([&](detail::balancer& b) {
                for (auto& p : members)
                    b.add(target{p.node, p});
            });
            break;
        }
        case targets::kind::registered: {
            // This node too, if the name is registered here.
            std::vector<atom> ns = n.nodes(node_type::visible);
            ns.push_back(n.name());
            for (auto a : ns)
                st.watch_name(a);
            break;
        }
    }
}

dispatcher::~dispatcher() {
    st_->n.demonitor_nodes(st_->node_sub);
    if (st_->pg_sub) pg::unsubscribe(st_->n, st_->src.scope(), st_->pg_sub);
    if (st_->watcher) erl::detail::runtime::exit(st_->watcher, term(erl::detail::A().normal));
}

reply dispatcher::call(atom module, atom function, term args, call_options co) {
    return detail::run_blocking(st_->n,
                                detail::make_call(st_, module, function, std::move(args), co));
}

reply dispatcher::call(std::string_view module, std::string_view function, term args,
                       call_options co) {
    return call(atom(module), atom(function), std::move(args), std::move(co));
}

reply dispatcher::gen_call(term request, call_options co) {
    return detail::run_blocking(st_->n, detail::make_gen(st_, std::move(request), co, false));
}

error_code dispatcher::cast(atom module, atom function, term args, call_options co) {
    return detail::cast_code(detail::run_blocking(
        st_->n, detail::make_cast(st_, module, function, std::move(args), co)));
}

error_code dispatcher::gen_cast(term request, call_options co) {
    return detail::cast_code(
        detail::run_blocking(st_->n, detail::make_gen(st_, std::move(request), co, true)));
}

void dispatcher::report_load(atom node, double load) {
    st_->update([&](detail::balancer& b) { b.report_load(node, load); });
}

std::vector<target_stats> dispatcher::stats() const {
    std::lock_guard lk(st_->mu);
    return st_->bal.stats();
}

std::vector<target> dispatcher::live_targets() const {
    std::lock_guard lk(st_->mu);
    return st_->bal.targets(true);
}

bool dispatcher::wait_targets(const std::function<bool(const std::vector<target>&)>& pred,
                              std::chrono::milliseconds timeout) {
    std::unique_lock lk(st_->mu);
    auto ok = [&] { return pred(st_->bal.targets(true)); };
    if (timeout == infinity) {
        st_->changed.wait(lk, ok);
        return true;
    }
    return st_->changed.wait_for(lk, timeout, ok);
}

}  // namespace erl::dispatch
