// The `rex` registered process: the rpc server of OTP before erpc, still used by erl_call,
// ei_rpc (erl_interface) and any client calling gen_server:call({rex, Node}, ...).
// Protocol (rpc.erl handle_info/handle_call/handle_cast):
//   {From, {call, M, F, A, GL}}                    -> From ! {rex, Reply}
//   {'$gen_call', {From, Tag}, {call|block_call, M, F, A, GL}} -> gen reply {Tag, Reply}
//   {'$gen_cast', {cast, M, F, A, GL}}             -> run, no reply
//   {From, features_request}                       -> From ! {features_reply, node(), [erpc]}
// Reply is rpc:execute_call/3's: the value (or thrown value), {badrpc, {'EXIT', Reason}} for
// exit and {badrpc, {'EXIT', {Reason, Stack}}} for error. The group leader is ignored: C++
// functions do not do Erlang I/O.
#include "services/rpc_internal.hpp"

namespace erl::rpc::detail {

void server_state::start_rex() {
    const auto& a = A();
    std::weak_ptr<server_state> w = weak_from_this();
    auto p = runtime::spawn_service(
        core,
        [w](term msg) {
            if (auto st = w.lock()) st->on_rex_message(std::move(msg));
        },
        {}, a.rex);
    if (p) rex = std::move(*p);  // else someone else serves rex on this node
}

void server_state::on_rex_message(term msg) {
    const auto& a = A();
    foreign_call guard(*this);  // the sender's thread may run an inline handler
    if (stopped.load() || !msg.is_tuple()) return;
    auto is_call = [&](const term& r, atom tag) {
        return r.is_tuple(5) && r[0].is_atom(tag) && r[1].is_atom() && r[2].is_atom();
    };
    auto make_job = [&](const term& req, const term& caller) {
        auto j = std::make_shared<job>();
        j->self = rex->self;
        j->caller = caller;
        j->m = req[1].as_atom();
        j->f = req[2].as_atom();
        j->args = req[3];
        j->arrived = std::chrono::steady_clock::now();
        return j;
    };
    std::weak_ptr<node_core> wcore = core.shared_from_this();
    if (msg.is_tuple(3) && msg[0].is_atom(a.gen_call)) {
        const term& from = msg[1];
        const term& req = msg[2];
        if (!from.is_tuple(2) || !(is_call(req, a.call) || is_call(req, a.block_call))) return;
        auto j = make_job(req, from[0]);
        j->done = [wcore, from, arrived = j->arrived](outcome o) {
            if (auto cr = wcore.lock()) {
                cr->counters.rpc_done(std::chrono::steady_clock::now() - arrived, !o.returned());
                runtime::reply(*cr, from, rex_reply(o));
            }
        };
        run(std::move(j));
        return;
    }
    if (msg.is_tuple(2) && msg[0].is_atom(a.gen_cast)) {
        if (!is_call(msg[1], a.cast)) return;
        auto j = make_job(msg[1], term());
        j->done = [](outcome) {};
        run(std::move(j));
        return;
    }
    if (msg.is_tuple(2) && msg[0].is_pid()) {
        const term& from = msg[0];
        const term& req = msg[1];
        if (req.is_atom(a.features_request)) {
            runtime::send(
                *rex, from.as_pid(),
                make_tuple({term(a.features_reply), term(core.name), make_list({term(a.erpc)})}));
            return;
        }
        if (!is_call(req, a.call)) return;
        auto j = make_job(req, from);
        std::weak_ptr<process> wrex = rex;
        j->done = [wrex, wcore, from, arrived = j->arrived](outcome o) {
            auto r = wrex.lock();
            auto cr = wcore.lock();
            if (!r || !cr) return;
            cr->counters.rpc_done(std::chrono::steady_clock::now() - arrived, !o.returned());
            runtime::send(*r, from.as_pid(), make_tuple({term(A().rex), rex_reply(o)}));
        };
        run(std::move(j));
    }
}

}  // namespace erl::rpc::detail
