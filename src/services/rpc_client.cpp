// rpc client: C++ -> any node. Sends SPAWN_REQUEST for erpc:execute_call/4 with `monitor`
// (exactly what erpc:call does, erpc.erl call/5) and reads the result from the DOWN reason;
// peers without DFLAG_SPAWN get the older `rex` protocol ({'$gen_call', ..., {call, M, F, A,
// GL}}). Failures are returned as the exceptions erpc:call would raise.
#include "services/rpc_internal.hpp"

#include "node/async_call.hpp"
#include "node/async_op.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unordered_map>

namespace erl::rpc::detail {

// Chars of an io request (iolist of bytes/code points, or a binary) as UTF-8, for logging.
// The group leader answers every output request with ok so remote io:format calls never block.
struct group_leader_slot {  // per-node service state
    std::mutex mu;
    std::weak_ptr<process> proc;  // the table owns the process; it ends when the node stops
};

std::shared_ptr<process> group_leader(node_core& core) {
    auto slot = core.service_state<group_leader_slot>();
    std::lock_guard lk(slot->mu);
    if (auto p = slot->proc.lock()) {
        std::lock_guard plk(p->mu);
        if (!p->exited) return p;
    }
    std::weak_ptr<node_core> wcore = core.shared_from_this();
    auto self = std::make_shared<term>();
    auto p = *runtime::spawn_service(core, [wcore, self](term msg) {
        // io protocol: {io_request, From, ReplyAs, Request} -> From ! {io_reply, ReplyAs, R}.
        const auto& a = A();
        if (!msg.is_tuple(4) || !msg[0].is_atom(a.io_request) || !msg[1].is_pid()) return;
        const term& req = msg[3];
        term reply = term(a.ok);
        const bool output = req.is_tuple() && req.size() >= 2 &&
                            (req[0].is_atom(a.put_chars) || req[0].is_atom(a.requests));
        if (!output) reply = make_tuple({term(a.error), term(a.enotsup)});
        if (auto cr = wcore.lock())
            cr->send_pid(*self, msg[1].as_pid(), make_tuple({term(a.io_reply), msg[2], reply}));
    });  // anonymous: cannot fail
    *self = p->self_term;
    slot->proc = p;
    return p;
}

namespace {

exception_info make_exc(atom cls, term reason, term stack = term(), error_code code = {}) {
    return exception_info{cls, std::move(reason), std::move(stack), code};
}

exception_info erpc_failure(atom what) {
    // error {erpc, What}; `code` names the common cases for C++ callers.
    const auto& a = A();
    error_code code;
    if (what == a.timeout) code = make_error_code(errc::timeout);
    if (what == a.noconnection) code = make_error_code(errc::noconnection);
    if (what == a.badarg) code = make_error_code(errc::type_mismatch);
    if (what == a.system_limit) code = make_error_code(errc::limit_exceeded);
    return make_exc(a.error, make_tuple({term(a.erpc), term(what)}), term(), code);
}

// erpc.erl result/4 for a DOWN reason.
call_result from_down(const term& res, const term& reason) {
    const auto& a = A();
    if (reason.is_tuple() && reason.size() >= 3 && reason[0] == res) {
        const term& cls = reason[1];
        if (reason.size() == 3 && cls.is_atom(a.return_)) return call_result(reason[2]);
        if (reason.size() == 3 && cls.is_atom(a.throw_))
            return call_result(make_exc(a.throw_, reason[2]));
        if (reason.size() == 3 && cls.is_atom(a.exit))
            return call_result(make_exc(a.exit, make_tuple({term(a.exception), reason[2]})));
        if (reason.size() == 4 && cls.is_atom(a.error))
            return call_result(make_exc(
                a.error, make_tuple({term(a.exception), reason[2], reason[3]}), reason[3]));
        if (reason.size() == 3 && cls.is_atom(a.error) && reason[2].is_tuple(2) &&
            reason[2][0].is_atom(a.erpc))
            return call_result(make_exc(a.error, reason[2]));
    }
    if (reason.is_atom(a.noconnection)) return call_result(erpc_failure(a.noconnection));
    return call_result(make_exc(a.exit, make_tuple({term(a.signal), reason})));
}

// rex reply -> the exception erpc would have raised.
call_result from_rex(const term& reply) {
    const auto& a = A();
    if (reply.is_tuple(2) && reply[0].is_atom(a.badrpc)) {
        const term& x = reply[1];
        if (x.is_tuple(2) && x[0].is_atom(a.exit_tag)) {
            const term& r = x[1];
            if (r.is_tuple(2) && r[1].is_list())
                return call_result(
                    make_exc(a.error, make_tuple({term(a.exception), r[0], r[1]}), r[1]));
            return call_result(make_exc(a.exit, make_tuple({term(a.exception), r})));
        }
        if (x.is_atom()) return call_result(erpc_failure(x.as_atom()));
    }
    return call_result(reply);
}

// The server registry of this node, if an rpc::server runs on it.
std::shared_ptr<server_state> local_server(node_core& core) {
    auto slot = slot_for(core);
    std::lock_guard lk(slot->mu);
    return slot->server.lock();
}

// erpc:call / erpc:multicall to `targets` (erpc.erl call/5, multicall/5): per target, the
// connection first (so that a peer without DFLAG_SPAWN is known), then
// spawn_request(N, erpc, execute_call, [Res, M, F, A], [monitor]) from one temporary process
// whose messages (SPAWN_REPLY, DOWN) are handled as they arrive; peers without SPAWN get the
// `rex` server through gen_call_op; calls to this node run in the local registry (as erpc runs
// local calls in the calling process). One deadline for all. The calls run in parallel.
class calls_op : public std::enable_shared_from_this<calls_op> {
  public:
    using done_fn = std::function<void(error_code, std::vector<call_result>)>;

    calls_op(std::shared_ptr<node_core> core, std::vector<atom> targets, atom m, atom f, term args,
             std::chrono::milliseconds timeout)
        : core_(std::move(core)),
          m_(m),
          f_(f),
          args_(std::move(args)),
          timeout_(timeout),
          deadline_(timeout == infinity ? std::chrono::steady_clock::time_point::max()
                                        : std::chrono::steady_clock::now() + timeout),
          timer_(core_->ioc()),
          calls_(targets.size()) {
        for (std::size_t i = 0; i < targets.size(); ++i)
            calls_[i].target = targets[i];
    }

    void start(done_fn done) {
        const auto& a = A();
        {
            std::unique_lock lk(mu_);
            done_ = std::move(done);
            self_ = shared_from_this();
            left_ = calls_.size();
            if (cancelled_) {
                fail_unfinished(aborted_);
                return finish(lk, aborted_);
            }
            if (!args_.is_list()) {
                for (auto& c : calls_)
                    c.result = call_result(erpc_failure(a.badarg));
                return finish(lk, {});
            }
            if (calls_.empty()) return finish(lk, {});
        }
        auto p = *runtime::spawn_service(*core_, [w = weak_from_this()](term msg) {
            if (auto o = w.lock()) o->on_message(std::move(msg));
        });  // anonymous: cannot fail
        {
            std::unique_lock lk(mu_);
            proc_ = p;     // before any call starts; constant from here on
            if (!done_) {  // cancelled meanwhile
                lk.unlock();
                runtime::exit(p, term(a.normal));
                return;
            }
            if (timeout_ != infinity) {
                timer_.expires_at(deadline_);
                timer_.async_wait([w = weak_from_this()](error_code ec) {
                    if (ec) return;
                    if (auto o = w.lock()) o->stop_all(error_code{});
                });
            }
        }
        for (std::size_t i = 0; i < calls_.size(); ++i)
            start_one(i);
    }

    void cancel() { abort(make_error_code(boost::asio::error::operation_aborted)); }
    // Finishes with `why`: operation_aborted (no results) or, when the node stops,
    // shutting_down with every unfinished call failed as error {erpc, noconnection} (code
    // shutting_down).
    void abort(error_code why) {
        {
            std::lock_guard lk(mu_);
            cancelled_ = true;  // before start(): start finishes at once, with `why`
            aborted_ = why;
        }
        stop_all(why);
    }

  private:
    struct one {
        atom target;
        reference req;  // the spawn request id, also the monitor's reference
        term res;       // erpc's result reference
        bool erpc = false;
        std::shared_ptr<erl::detail::connect_op> connecting;
        std::shared_ptr<erl::detail::gen_call_op> rex;
        std::optional<call_result> result;
    };

    std::chrono::milliseconds left_time() const {
        if (timeout_ == infinity) return infinity;
        return std::max(std::chrono::milliseconds(0),
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline_ - std::chrono::steady_clock::now()));
    }

    void start_one(std::size_t i) {
        const atom target = calls_[i].target;
        if (target == core_->name) return start_local(i);
        auto conn = std::make_shared<erl::detail::connect_op>(core_, target, left_time());
        {
            std::lock_guard lk(mu_);
            if (!done_) return;
            calls_[i].connecting = conn;
        }
        conn->start([self = shared_from_this(), i](error_code ec) {
            // The deadline passing during the set-up is the call's timeout.
            if (ec == errc::timeout)
                return self->done_one(i, call_result(erpc_failure(A().timeout)));
            if (ec) return self->done_one(i, call_result(erpc_failure(A().noconnection)));
            self->connected(i);
        });
    }

    void start_local(std::size_t i) {
        const auto& a = A();
        auto st = local_server(*core_);
        if (!st)
            return done_one(i, call_result(make_exc(a.error,
                                                    make_tuple({term(a.exception), term(a.undef),
                                                                frame_stack(m_, f_, args_)}),
                                                    frame_stack(m_, f_, args_))));
        auto j = std::make_shared<job>();
        j->self = proc_->self;
        j->caller = proc_->self_term;
        j->m = m_;
        j->f = f_;
        j->args = args_;
        const term ref = term(core_->make_ref());
        j->done = [w = weak_from_this(), i, ref](outcome o) {
            if (auto self = w.lock()) self->done_one(i, from_down(ref, erpc_exit_reason(ref, o)));
        };
        st->run(std::move(j));
    }

    void connected(std::size_t i) {
        const auto& a = A();
        const atom target = calls_[i].target;
        if (!runtime::supports_spawn(*core_, target)) {
            // No SPAWN support: the rex server, {call, M, F, A, GL} as gen_server:call.
            auto rex = std::make_shared<erl::detail::gen_call_op>(
                core_, term(a.rex), target,
                make_tuple({term(a.call), term(m_), term(f_), args_, term(a.user)}), left_time());
            {
                std::lock_guard lk(mu_);
                if (!done_) return;
                calls_[i].rex = rex;
            }
            rex->start([self = shared_from_this(), i](error_code ec, term t) {
                self->done_one(i, from_rex_call(ec, t));
            });
            return;
        }
        const term res(runtime::make_ref(*core_));
        const reference req = runtime::spawn_request(
            proc_, target, a.erpc, a.execute_call, make_list({res, term(m_), term(f_), args_}),
            group_leader(*core_)->self_term, {.monitor = true});
        std::unique_lock lk(mu_);
        if (!done_) {
            lk.unlock();
            runtime::demonitor(*core_, proc_, req, false);
            return;
        }
        calls_[i].erpc = true;
        calls_[i].req = req;
        calls_[i].res = res;
        // Replies that arrived before the request id was known.
        auto early = std::exchange(early_, {});
        for (auto& m : early)
            if (!handle(lk, m)) early_.push_back(std::move(m));
    }

    // rex through gen_call_op -> what erpc would have raised.
    static call_result from_rex_call(error_code ec, const term& t) {
        const auto& a = A();
        if (!ec) return from_rex(t);
        if (ec == errc::timeout) return call_result(erpc_failure(a.timeout));
        if (ec == errc::noproc) return call_result(erpc_failure(a.notsup));
        if (ec == errc::noconnection || ec == errc::not_alive)
            return call_result(erpc_failure(a.noconnection));
        return call_result(make_exc(a.exit, make_tuple({term(a.signal), t})));
    }

    void on_message(term msg) {
        std::unique_lock lk(mu_);
        if (!done_) return;
        if (!handle(lk, msg)) early_.push_back(std::move(msg));
    }

    // Under mu_ (released when it finishes the whole operation): false if msg is for no
    // known request (yet).
    bool handle(std::unique_lock<std::mutex>& lk, const term& t) {
        const auto& a = A();
        const bool reply = t.is_tuple(4) && t[0].is_atom(a.spawn_reply);
        const bool down = t.is_tuple(5) && t[0].is_atom(a.down);
        if (!reply && !down) return true;  // not ours: dropped
        for (std::size_t i = 0; i < calls_.size(); ++i) {
            auto& c = calls_[i];
            if (!c.erpc || c.result || t[1] != term(c.req)) continue;
            if (reply) {
                // The runtime now monitors the new pid under req (or dropped the monitor).
                if (t[2].is_atom(a.ok) && t[3].is_pid()) return true;
                record(lk, i,
                       call_result(erpc_failure(t[3].is_atom() ? t[3].as_atom() : a.notsup)));
            } else {
                record(lk, i, from_down(c.res, t[4]));
            }
            return true;
        }
        return false;
    }

    void done_one(std::size_t i, call_result r) {
        std::unique_lock lk(mu_);
        if (!done_) return;
        record(lk, i, std::move(r));
    }

    void record(std::unique_lock<std::mutex>& lk, std::size_t i, call_result r) {
        auto& c = calls_[i];
        if (c.result) return;
        c.result = std::move(r);
        if (--left_ == 0) finish(lk, {});
    }

    // The deadline (ec {}: the calls not finished fail with erpc timeout), a cancellation or
    // a stop (see abort).
    void stop_all(error_code ec) {
        std::unique_lock lk(mu_);
        if (!done_) return;
        fail_unfinished(ec);
        finish(lk, ec);
    }

    // Under mu_: the calls without a result fail with erpc timeout, or noconnection (code
    // shutting_down) for a stop.
    void fail_unfinished(error_code ec) {
        const bool stop = ec == errc::shutting_down;
        for (auto& c : calls_) {
            if (c.result) continue;
            auto e = erpc_failure(stop ? A().noconnection : A().timeout);
            if (stop) e.code = ec;
            c.result = call_result(std::move(e));
        }
    }

    // With mu_ held (released here). erpc.erl result(timeout, ...): an abandoned request is
    // demonitored and its late DOWN dropped with the temporary process; rex and connection
    // set-ups in progress are cancelled.
    void finish(std::unique_lock<std::mutex>& lk, error_code ec) {
        done_fn done = std::move(done_);
        done_ = nullptr;
        auto keep = std::move(self_);
        timer_.cancel();
        std::vector<reference> abandoned;
        std::vector<std::shared_ptr<erl::detail::connect_op>> connecting;
        std::vector<std::shared_ptr<erl::detail::gen_call_op>> rex;
        std::vector<call_result> out;
        out.reserve(calls_.size());
        for (auto& c : calls_) {
            if (c.erpc) abandoned.push_back(c.req);
            if (c.connecting) connecting.push_back(std::move(c.connecting));
            if (c.rex) rex.push_back(std::move(c.rex));
            out.push_back(c.result ? std::move(*c.result) : call_result());
        }
        auto p = proc_;
        lk.unlock();
        for (auto& c : connecting)
            c->cancel();
        for (auto& r : rex)
            r->cancel();
        if (p) {
            for (auto& r : abandoned)
                runtime::demonitor(*core_, p, r, false);
            runtime::exit(p, term(A().normal));
        }
        if (ec == boost::asio::error::operation_aborted) out.clear();
        done(ec, std::move(out));
    }

    std::shared_ptr<node_core> core_;
    const atom m_, f_;
    const term args_;
    const std::chrono::milliseconds timeout_;
    const std::chrono::steady_clock::time_point deadline_;
    std::mutex mu_;
    boost::asio::steady_timer timer_;  // under mu_
    std::shared_ptr<process> proc_;    // set in start() before any call starts
    std::vector<one> calls_;           // under mu_ (target is constant)
    std::size_t left_ = 0;             // calls without a result
    std::vector<term> early_;          // messages for requests not recorded yet
    bool cancelled_ = false;
    error_code aborted_;  // why, once cancelled_
    done_fn done_;        // null once finished
    std::shared_ptr<calls_op> self_;
};

call_result first_result(std::vector<call_result> r) {
    return r.empty() ? call_result() : std::move(r[0]);
}

// erpc:call: calls_op with one target.
using call_op = erl::detail::mapped_op<calls_op, call_result, &first_result>;

std::shared_ptr<calls_op> make_calls(erl::node& n, std::vector<atom> targets, atom m, atom f,
                                     term args, std::chrono::milliseconds timeout) {
    auto& core = erl::detail::access::core(n);
    return std::make_shared<calls_op>(core.shared_from_this(), std::move(targets), m, f,
                                      std::move(args), timeout);
}

}  // namespace

std::shared_ptr<any_call_op> make_call_op(erl::node& n, atom target, atom module, atom function,
                                          term args, std::chrono::milliseconds timeout) {
    return std::make_shared<any_call_op_of<call_op>>(std::make_shared<call_op>(
        make_calls(n, {target}, module, function, std::move(args), timeout)));
}

}  // namespace erl::rpc::detail

namespace erl::rpc {

using detail::A;

term exception_info::to_term() const {
    return make_tuple({term(class_), reason});
}

term exception_info::to_badrpc() const {
    // rpc.erl rpcify_exception/2.
    const auto& a = A();
    const term exit_tag(a.exit_tag);
    if (class_ == a.throw_) {
        return reason;
    }
    if (class_ == a.exit && reason.is_tuple(2) &&
        (reason[0].is_atom(a.exception) || reason[0].is_atom(a.signal)))
        return make_tuple({term(a.badrpc), make_tuple({exit_tag, reason[1]})});
    if (class_ == a.error && reason.is_tuple(3) && reason[0].is_atom(a.exception))
        return make_tuple(
            {term(a.badrpc), make_tuple({exit_tag, make_tuple({reason[1], reason[2]})})});
    if (class_ == a.error && reason.is_tuple(2) && reason[0].is_atom(a.erpc)) {
        const term& r = reason[1];
        if (r.is_atom(a.noconnection)) return make_tuple({term(a.badrpc), term(a.nodedown)});
        if (r.is_atom(a.timeout) || r.is_atom(a.notsup)) return make_tuple({term(a.badrpc), r});
        return make_tuple({term(a.badrpc), make_tuple({exit_tag, r})});
    }
    return make_tuple({term(a.badrpc), make_tuple({exit_tag, reason})});
}

std::string exception_info::to_string() const {
    print_options po;
    po.strings = true;  // stack frames name files as "erl_eval.erl", not as code points
    return std::string(class_.str()) + ": " + erl::to_string(reason, po);
}

const term& call_result::value() const {
    if (!ok()) {
        const auto& e = std::get<1>(v_);
        throw erlang_exception(e.class_, e.reason, e.stacktrace);
    }
    return std::get<0>(v_);
}

const exception_info& call_result::error() const {
    if (ok()) throw std::logic_error("call_result::error() on a successful result");
    return std::get<1>(v_);
}

term call_result::to_term() const {
    if (ok()) return make_tuple({term(A().ok), std::get<0>(v_)});
    return std::get<1>(v_).to_term();
}

term call_result::to_rpc_term() const {
    if (ok()) {
        // rpc:call turns a returned {'EXIT', _} into {badrpc, {'EXIT', _}}.
        const term& v = std::get<0>(v_);
        if (v.is_tuple(2) && v[0].is_atom(A().exit_tag)) return make_tuple({term(A().badrpc), v});
        return v;
    }
    return std::get<1>(v_).to_badrpc();
}

call_result call(erl::node& n, atom target, atom module, atom function, term args,
                 std::chrono::milliseconds timeout) {
    auto op = std::make_shared<detail::call_op>(
        detail::make_calls(n, {target}, module, function, std::move(args), timeout));
    return std::get<1>(erl::detail::run_blocking<detail::call_op, error_code, call_result>(
        erl::detail::access::core(n), op));
}

call_result call(erl::node& n, atom target, std::string_view module, std::string_view function,
                 term args, std::chrono::milliseconds timeout) {
    return call(n, target, atom(module), atom(function), std::move(args), timeout);
}

std::vector<call_result> multicall(erl::node& n, const std::vector<atom>& targets, atom module,
                                   atom function, term args, std::chrono::milliseconds timeout) {
    auto op = detail::make_calls(n, targets, module, function, std::move(args), timeout);
    return std::get<1>(
        erl::detail::run_blocking<detail::calls_op, error_code, std::vector<call_result>>(
            erl::detail::access::core(n), op));
}

void detail::initiate_call(erl::node& n, atom target, atom module, atom function, term args,
                           std::chrono::milliseconds timeout, call_handler handler) {
    auto op = std::make_shared<call_op>(
        make_calls(n, {target}, module, function, std::move(args), timeout));
    erl::detail::launch(erl::detail::access::core(n), op, std::move(handler));
}

void detail::initiate_multicall(erl::node& n, std::vector<atom> targets, atom module, atom function,
                                term args, std::chrono::milliseconds timeout,
                                multicall_handler handler) {
    auto op = make_calls(n, std::move(targets), module, function, std::move(args), timeout);
    erl::detail::launch(erl::detail::access::core(n), op, std::move(handler));
}

error_code cast(erl::node& n, atom target, atom module, atom function, term args) {
    if (!args.is_list()) return make_error_code(errc::type_mismatch);
    auto& core = erl::detail::access::core(n);
    if (target == core.name) {
        if (auto st = detail::local_server(core)) {
            auto j = std::make_shared<detail::job>();
            j->self = core.node_process->self;
            j->caller = core.node_process->self_term;
            j->m = module;
            j->f = function;
            j->args = args;
            j->done = [](detail::outcome) {};
            st->run(std::move(j));
        }
        return {};
    }
    if (auto ec = n.connect(target)) return make_error_code(errc::noconnection);
    return detail::cast_connected(n, target, module, function, std::move(args));
}

error_code detail::cast_connected(erl::node& n, atom target, atom module, atom function,
                                  term args) {
    const auto& a = A();
    if (!args.is_list()) return make_error_code(errc::type_mismatch);
    auto& core = erl::detail::access::core(n);
    if (detail::runtime::supports_spawn(core, target)) {
        // erpc:cast: spawn_request(N, erpc, execute_cast, [M, F, A], [{reply, no}]); the
        // reply option is local to the caller, so nothing but the request goes on the wire.
        detail::runtime::spawn_request(core.node_process, target, a.erpc, a.execute_cast,
                                       make_list({term(module), term(function), args}),
                                       detail::group_leader(core)->self_term, {.reply = false});
    } else {
        detail::runtime::send(
            *core.node_process, a.rex, target,
            make_tuple({term(a.gen_cast), make_tuple({term(a.cast), term(module), term(function),
                                                      args, term(a.user)})}));
    }
    return {};
}

}  // namespace erl::rpc
