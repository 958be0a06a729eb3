// rpc client: C++ -> any node. Sends SPAWN_REQUEST for erpc:execute_call/4 with `monitor`
// (exactly what erpc:call does, erpc.erl call/5) and reads the result from the DOWN reason;
// peers without DFLAG_SPAWN get the older `rex` protocol ({'$gen_call', ..., {call, M, F, A,
// GL}}). Failures are returned as the exceptions erpc:call would raise.
#include "services/rpc_internal.hpp"

#include <future>
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

// One outstanding request from a temporary process.
struct pending {
    atom target;
    bool rex = false;
    bool local = false;
    reference req;    // spawn request id = monitor ref (rex: the monitor ref)
    reference alias;  // rex: the alias the reply goes to
    term res;         // erpc result ref; rex: the reply tag [alias|Alias]
    std::optional<call_result> done;
    std::future<call_result> local_result;
};

void start_one(node_core& core, const std::shared_ptr<process>& self, pending& pd, atom m, atom f,
               const term& args, std::chrono::milliseconds timeout) {
    const auto& a = A();
    if (pd.target == core.name) {
        // A call to ourselves runs in the local registry directly (as erpc runs local calls
        // in the calling process).
        pd.local = true;
        std::shared_ptr<server_state> st;
        {
            auto slot = slot_for(core);
            std::lock_guard lk(slot->mu);
            st = slot->server.lock();
        }
        auto prom = std::make_shared<std::promise<call_result>>();
        pd.local_result = prom->get_future();
        if (!st) {
            prom->set_value(call_result(make_exc(
                a.error, make_tuple({term(a.exception), term(a.undef), frame_stack(m, f, args)}),
                frame_stack(m, f, args))));
            return;
        }
        auto j = std::make_shared<job>();
        j->self = self->self;
        j->caller = self->self_term;
        j->m = m;
        j->f = f;
        j->args = args;
        const term ref = term(core.make_ref());
        j->done = [prom, ref](outcome o) {
            prom->set_value(from_down(ref, erpc_exit_reason(ref, o)));
        };
        st->run(std::move(j));
        return;
    }
    if (auto ec = core.connect(pd.target, timeout)) {
        pd.done = call_result(erpc_failure(a.noconnection));
        return;
    }
    if (runtime::supports_spawn(core, pd.target)) {
        // erpc:call: spawn_request(N, erpc, execute_call, [Res, M, F, A], [monitor]).
        pd.res = term(runtime::make_ref(core));
        pd.req = runtime::spawn_request(self, pd.target, a.erpc, a.execute_call,
                                        make_list({pd.res, term(m), term(f), args}),
                                        group_leader(core)->self_term, {.monitor = true});
        return;
    }
    // No SPAWN support: the rex server, called like gen_server:call with monitor + alias.
    pd.rex = true;
    pd.req = runtime::monitor(core, self, make_tuple({term(a.rex), term(pd.target)}));
    pd.alias = runtime::make_alias(self);
    pd.res = make_list({term(a.alias)}, term(pd.alias));
    runtime::send(*self, a.rex, pd.target,
                  make_tuple({term(a.gen_call), make_tuple({self->self_term, pd.res}),
                              make_tuple({term(a.call), term(m), term(f), args, term(a.user)})}));
}

void wait_one(node_core& core, const std::shared_ptr<process>& self, mailbox& mb, pending& pd,
              std::chrono::steady_clock::time_point deadline, bool infinite) {
    const auto& a = A();
    if (pd.done) return;
    if (pd.local) {
        if (infinite) {
            pd.done = pd.local_result.get();
        } else if (pd.local_result.wait_until(deadline) == std::future_status::ready) {
            pd.done = pd.local_result.get();
        } else {
            pd.done = call_result(erpc_failure(a.timeout));
        }
        return;
    }
    const term req(pd.req);
    for (;;) {
        auto left = infinite ? infinity
                             : std::chrono::duration_cast<std::chrono::milliseconds>(
                                   deadline - std::chrono::steady_clock::now());
        if (!infinite && left.count() < 0) left = std::chrono::milliseconds(0);
        auto msg = mb.receive_if(
            [&](const term& t) {
                if (t.is_tuple(5) && t[0].is_atom(a.down) && t[1] == req) return true;
                if (pd.rex) return t.is_tuple(2) && t[0] == pd.res;
                return t.is_tuple(4) && t[0].is_atom(a.spawn_reply) && t[1] == req;
            },
            left);
        if (!msg) {
            // erpc.erl result(timeout, ...): abandon the request; a late DOWN or reply goes
            // to a process that no longer exists (or an alias that is gone) and is dropped.
            runtime::demonitor(core, self, pd.req, false);
            if (pd.rex) runtime::remove_alias(self, pd.alias);
            pd.done = call_result(erpc_failure(a.timeout));
            return;
        }
        const term& t = *msg;
        if (t[0].is_atom(a.spawn_reply)) {
            // The runtime now monitors the new pid under pd.req (or dropped the monitor).
            if (t[2].is_atom(a.ok) && t[3].is_pid()) continue;
            pd.done = call_result(erpc_failure(t[3].is_atom() ? t[3].as_atom() : a.notsup));
            return;
        }
        if (t[0].is_atom(a.down)) {
            if (pd.rex) {
                runtime::remove_alias(self, pd.alias);
                const term& r = t[4];
                pd.done = call_result(r.is_atom(a.noproc) ? erpc_failure(a.notsup)
                                      : r.is_atom(a.noconnection)
                                          ? erpc_failure(a.noconnection)
                                          : make_exc(a.exit, make_tuple({term(a.signal), r})));
            } else {
                pd.done = from_down(pd.res, t[4]);
            }
            return;
        }
        // rex reply
        runtime::demonitor(core, self, pd.req, false);
        runtime::remove_alias(self, pd.alias);
        pd.done = from_rex(t[1]);
        return;
    }
}

std::vector<call_result> run_calls(erl::node& n, const std::vector<atom>& targets, atom m, atom f,
                                   const term& args, std::chrono::milliseconds timeout) {
    const auto& a = A();
    std::vector<call_result> out;
    if (!args.is_list()) {
        for (std::size_t i = 0; i < targets.size(); ++i)
            out.emplace_back(erpc_failure(a.badarg));
        return out;
    }
    auto& core = erl::detail::access::core(n);
    mailbox mb = runtime::spawn_mailbox(core);
    const auto& self = erl::detail::access::proc(mb);
    const bool infinite = timeout == infinity;
    const auto deadline = infinite ? std::chrono::steady_clock::time_point::max()
                                   : std::chrono::steady_clock::now() + timeout;
    std::vector<pending> pds(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
        pds[i].target = targets[i];
        start_one(core, self, pds[i], m, f, args, timeout);
    }
    for (auto& pd : pds) {
        wait_one(core, self, mb, pd, deadline, infinite);
        out.push_back(std::move(*pd.done));
    }
    // Monitors still pending (none normally) are dropped with the process: the runtime sends
    // DEMONITOR_P for the ones whose pid is known.
    mb.exit();
    return out;
}

}  // namespace
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
    return std::move(detail::run_calls(n, {target}, module, function, args, timeout)[0]);
}

call_result call(erl::node& n, atom target, std::string_view module, std::string_view function,
                 term args, std::chrono::milliseconds timeout) {
    return call(n, target, atom(module), atom(function), std::move(args), timeout);
}

std::vector<call_result> multicall(erl::node& n, const std::vector<atom>& targets, atom module,
                                   atom function, term args, std::chrono::milliseconds timeout) {
    return detail::run_calls(n, targets, module, function, args, timeout);
}

error_code cast(erl::node& n, atom target, atom module, atom function, term args) {
    const auto& a = A();
    if (!args.is_list()) return make_error_code(errc::type_mismatch);
    auto& core = erl::detail::access::core(n);
    if (target == core.name) {
        std::shared_ptr<detail::server_state> st;
        {
            auto slot = detail::slot_for(core);
            std::lock_guard lk(slot->mu);
            st = slot->server.lock();
        }
        if (st) {
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
