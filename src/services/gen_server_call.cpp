// gen_server:call from C++ (gen_server.erl call/3 over gen.erl do_call/4): the runtime's
// gen_call_op (a monitor on the server, an alias as the reply tag, no monitor or alias left
// once it ends), with the outcome mapped to the exit gen_server:call raises.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>

#include "node/async_call.hpp"
#include "node/async_op.hpp"
#include "services/rpc_internal.hpp"

namespace erl::gen_server {

using rpc::detail::A;

namespace {

// What the exit of a failed call names.
struct call_info {
    term dest;
    term request;
    std::chrono::milliseconds timeout;
    atom node;

    // gen_server:call: the reply, or
    // exit({Reason, {gen_server, call, [Dest, Request, Timeout]}}).
    rpc::call_result outcome(error_code ec, term t) const {
        const auto& a = A();
        if (!ec) return rpc::call_result(std::move(t));
        if (ec == errc::timeout) return fail(term(a.timeout), ec);
        if (ec == errc::noproc) return fail(term(a.noproc), ec);
        if (ec == errc::noconnection || ec == errc::not_alive)
            return fail(make_tuple({term(a.nodedown), term(node)}), ec);
        if (ec == errc::shutting_down) return fail(term(a.shutdown), ec);  // this node stopped
        return fail(std::move(t), {});
    }
    rpc::call_result fail(term reason, error_code code) const {
        const auto& a = A();
        const term t =
            timeout == infinity ? term(a.infinity) : term(static_cast<long long>(timeout.count()));
        term full = make_tuple({std::move(reason), make_tuple({term(a.gen_server), term(a.call),
                                                               make_list({dest, request, t})})});
        return rpc::call_result(rpc::exception_info{a.exit, std::move(full), term(), code});
    }
};

class call_op {
  public:
    using done_fn = std::function<void(error_code, rpc::call_result)>;

    call_op(erl::node& n, const dest& to, term request, std::chrono::milliseconds timeout)
        : info_{to.to_term(), request, timeout, atom()} {
        auto& core = erl::detail::access::core(n);
        term target;
        if (auto* p = std::get_if<pid>(&to.v)) {
            target = term(*p);
            info_.node = p->node;
        } else if (auto* nm = std::get_if<atom>(&to.v)) {
            target = term(*nm);
            info_.node = core.name;
        } else {
            auto& nn = std::get<std::pair<atom, atom>>(to.v);
            target = term(nn.first);
            info_.node = nn.second;
        }
        op_ = std::make_shared<erl::detail::gen_call_op>(core.shared_from_this(), target,
                                                         info_.node, std::move(request), timeout);
    }

    void start(done_fn done) {
        op_->start([info = info_, done = std::move(done)](error_code ec, term t) {
            if (ec == boost::asio::error::operation_aborted) return done(ec, {});
            // A stop of the node is an outcome (for the blocking form) and an error.
            const error_code stopped = ec == errc::shutting_down ? ec : error_code();
            done(stopped, info.outcome(ec, std::move(t)));
        });
    }
    void cancel() { op_->cancel(); }
    void abort(error_code why) { op_->abort(why); }

  private:
    call_info info_;
    std::shared_ptr<erl::detail::gen_call_op> op_;
};

}  // namespace

rpc::call_result call(erl::node& n, const dest& to, term request,
                      std::chrono::milliseconds timeout) {
    auto op = std::make_shared<call_op>(n, to, std::move(request), timeout);
    return std::get<1>(erl::detail::run_blocking<call_op, error_code, rpc::call_result>(
        erl::detail::access::core(n), op));
}

void detail::initiate_call(erl::node& n, const dest& to, term request,
                           std::chrono::milliseconds timeout, rpc::detail::call_handler handler) {
    auto op = std::make_shared<call_op>(n, to, std::move(request), timeout);
    erl::detail::launch(erl::detail::access::core(n), op, std::move(handler));
}

}  // namespace erl::gen_server

namespace erl::rpc::detail {

std::shared_ptr<any_call_op> make_gen_call_op(erl::node& n, const erl::gen_server::dest& to,
                                              term request, std::chrono::milliseconds timeout) {
    return std::make_shared<any_call_op_of<erl::gen_server::call_op>>(
        std::make_shared<erl::gen_server::call_op>(n, to, std::move(request), timeout));
}

}  // namespace erl::rpc::detail
