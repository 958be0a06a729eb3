// erlang:spawn/4, spawn_link/4 and spawn_monitor/4 towards another node
// (include/erl/process.hpp). The request is the runtime's spawn_request (erl_dist_protocol
// SPAWN_REQUEST); as erlang.erl spawn_opt/5 does, the caller waits for the SPAWN_REPLY and
// link/monitor travel in the request's option list, so they exist before the process runs.
// One operation (spawn_op, the shape of node/async_op.hpp) does it without a thread: the
// connection (connect_op), the request, and a selective receive of the reply on the parent;
// the blocking forms wait for it on the calling thread.
#include <erl/node.hpp>
#include <erl/process.hpp>

#include "dist/op_completion.hpp"
#include "node/async_call.hpp"
#include "node/async_op.hpp"
#include "node/receive_op.hpp"
#include "services/rpc_internal.hpp"

#include <boost/asio/error.hpp>

namespace erl {
namespace {

using detail::A;
namespace runtime = detail::runtime;

struct spawn_mode {
    bool link = false;
    bool monitor = false;
};

// The reason of {spawn_reply, Ref, error, Reason} as an error code (erlang.erl spawn_opt/5:
// badopt is badarg; noconnection and notsup are the two that BEAM turns into a dead pid).
error_code spawn_error(const term& reason) {
    const auto& a = A();
    if (reason.is_atom(a.badopt) || reason.is_atom(a.badarg)) return make_error_code(errc::badarg);
    if (reason.is_atom(a.noconnection)) return make_error_code(errc::noconnection);
    if (reason.is_atom(a.system_limit)) return make_error_code(errc::limit_exceeded);
    return make_error_code(errc::notsup);
}

error_code aborted() {
    return make_error_code(boost::asio::error::operation_aborted);
}

class spawn_op : public std::enable_shared_from_this<spawn_op> {
  public:
    using done_fn = erl::detail::op_completion<spawn_op, error_code, pid, reference>::done_fn;

    // `parent` requests and receives the reply; has_parent: it is the caller's process (the
    // new one is linked to / monitored by it), not a temporary one.
    spawn_op(std::shared_ptr<detail::node_core> core, mailbox parent, bool has_parent, atom where,
             atom m, atom f, term args, spawn_mode mode, std::chrono::milliseconds timeout)
        : core_(std::move(core)),
          mb_(std::move(parent)),
          has_parent_(has_parent),
          where_(where),
          m_(m),
          f_(f),
          args_(std::move(args)),
          mode_(mode),
          timeout_(timeout),
          start_(std::chrono::steady_clock::now()) {}

    void start(done_fn done) {
        bool cancelled;
        {
            std::lock_guard lk(mu_);
            cancelled = completion_.begin(std::move(done), shared_from_this());
        }
        if (cancelled) return finish(aborted());
        auto& core = *core_;
        if (!core.alive) return finish(make_error_code(errc::not_alive));
        if (!args_.is_proper_list()) return finish(make_error_code(errc::badarg));
        const auto& self = detail::access::proc(mb_);
        if (!self) return finish(make_error_code(errc::not_alive));  // stopped meanwhile
        if (where_ == core.name) {  // erlang.erl spawn/4 on node(): a local spawn
            reference ref;
            auto r = runtime::spawn_kind_locally(core, has_parent_ ? &self : nullptr, m_, f_, args_,
                                                 mode_.link, mode_.monitor ? &ref : nullptr);
            if (!r) return finish(r.error());
            return finish({}, *r, ref);
        }
        auto conn = std::make_shared<detail::connect_op>(core_, where_, timeout_);
        {
            std::lock_guard lk(mu_);
            connect_ = conn;
        }
        conn->start([self = shared_from_this()](error_code ec) { self->connected(ec); });
    }

    void cancel() {
        std::shared_ptr<detail::connect_op> conn;
        std::shared_ptr<detail::any_receive_op> recv;
        {
            std::lock_guard lk(mu_);
            completion_.cancel();
            conn = connect_;
            recv = receive_;
        }
        if (conn) conn->cancel();
        if (recv) recv->cancel();
    }

  private:
    void connected(error_code ec) {
        {
            std::lock_guard lk(mu_);
            connect_.reset();
        }
        if (ec == boost::asio::error::operation_aborted) return finish(aborted());
        if (ec) return finish(make_error_code(errc::noconnection));
        if (!runtime::supports_spawn(*core_, where_)) return finish(make_error_code(errc::notsup));
        const auto& self = detail::access::proc(mb_);
        const reference req = runtime::spawn_request(
            self, where_, m_, f_, args_, rpc::detail::group_leader(*core_)->self_term,
            {.monitor = mode_.monitor, .reply = true, .link = mode_.link});
        auto left = timeout_;
        if (timeout_ != infinity) {
            left = timeout_ - std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - start_);
            if (left.count() < 0) left = std::chrono::milliseconds(0);
        }
        const term rt(req);
        auto recv = detail::make_receive_op(
            self,
            [rt](const term& t) {
                return t.is_tuple(4) && t[0].is_atom(A().spawn_reply) && t[1] == rt;
            },
            left);
        bool cancelled;
        {
            std::lock_guard lk(mu_);
            req_ = req;
            receive_ = recv;
            cancelled = completion_.cancelled();
        }
        if (cancelled) {
            runtime::spawn_request_abandon(self, req);
            return finish(aborted());
        }
        recv->start([self = shared_from_this()](error_code ec, term t) {
            self->replied(ec, std::move(t));
        });
    }

    void replied(error_code ec, term t) {
        reference req;
        {
            std::lock_guard lk(mu_);
            receive_.reset();
            req = req_;
        }
        if (ec) {
            // No reply in time, cancelled, or the parent ended: the request is abandoned (a
            // linked process spawned for it later gets exit `abandoned`).
            runtime::spawn_request_abandon(detail::access::proc(mb_), req);
            if (ec == boost::asio::error::operation_aborted) return finish(aborted());
            if (ec == errc::exited) return finish(ec);
            return finish(make_error_code(errc::timeout));
        }
        if (!t[2].is_atom(A().ok) || !t[3].is_pid()) return finish(spawn_error(t[3]));
        // erlang:spawn_monitor/4: the monitor reference is the request id.
        finish({}, t[3].as_pid(), mode_.monitor ? req : reference());
    }

    void finish(error_code ec, pid p = {}, reference ref = {}) {
        done_fn done;
        std::shared_ptr<spawn_op> keep;
        {
            std::lock_guard lk(mu_);
            done = completion_.take(keep);
        }
        if (done) done(ec, p, ref);
    }

    const std::shared_ptr<detail::node_core> core_;
    const mailbox mb_;  // holds a temporary requester alive until the reply
    const bool has_parent_;
    const atom where_, m_, f_;
    const term args_;
    const spawn_mode mode_;
    const std::chrono::milliseconds timeout_;
    const std::chrono::steady_clock::time_point start_;
    std::mutex mu_;
    std::shared_ptr<detail::connect_op> connect_;      // under mu_: the set-up in progress
    std::shared_ptr<detail::any_receive_op> receive_;  // under mu_: waiting for the reply
    reference req_;                                    // under mu_
    erl::detail::op_completion<spawn_op, error_code, pid, reference> completion_;  // under mu_
};

std::shared_ptr<spawn_op> make_spawn(node& n, atom where, atom m, atom f, term args,
                                     std::chrono::milliseconds timeout) {
    auto& core = detail::access::core(n);
    // A temporary process sends the request and takes the reply; it ends with the operation.
    mailbox mb = core.alive ? runtime::spawn_mailbox(core) : mailbox();
    return std::make_shared<spawn_op>(core.shared_from_this(), std::move(mb), false, where, m, f,
                                      std::move(args), spawn_mode{}, timeout);
}

std::shared_ptr<spawn_op> make_spawn(const mailbox& parent, atom where, atom m, atom f, term args,
                                     spawn_mode mode, std::chrono::milliseconds timeout) {
    auto& core = *detail::access::proc(parent)->node;
    return std::make_shared<spawn_op>(core.shared_from_this(), parent, true, where, m, f,
                                      std::move(args), mode, timeout);
}

pid pid_of(pid p, reference) {
    return p;
}
spawned spawned_of(pid p, reference r) {
    return spawned{p, r};
}

// The spawn op's result for spawn / spawn_link (the pid) and for spawn_monitor.
using pid_op = detail::mapped_op<spawn_op, pid, &pid_of>;
using spawned_op = detail::mapped_op<spawn_op, spawned, &spawned_of>;

result<pid> wait_pid(detail::node_core& core, std::shared_ptr<spawn_op> op) {
    auto [ec, p] = detail::run_blocking<pid_op, error_code, pid>(
        core, std::make_shared<pid_op>(std::move(op)));
    if (ec) return ec;
    return p;
}

}  // namespace

result<pid> spawn(node& n, atom where, atom module, atom function, term args,
                  std::chrono::milliseconds timeout) {
    return wait_pid(detail::access::core(n),
                    make_spawn(n, where, module, function, std::move(args), timeout));
}

result<pid> spawn_link(const mailbox& parent, atom where, atom module, atom function, term args,
                       std::chrono::milliseconds timeout) {
    return wait_pid(
        *detail::access::proc(parent)->node,
        make_spawn(parent, where, module, function, std::move(args), {.link = true}, timeout));
}

result<spawned> spawn_monitor(const mailbox& parent, atom where, atom module, atom function,
                              term args, std::chrono::milliseconds timeout) {
    auto op = std::make_shared<spawned_op>(
        make_spawn(parent, where, module, function, std::move(args), {.monitor = true}, timeout));
    auto [ec, s] = detail::run_blocking<spawned_op, error_code, spawned>(
        *detail::access::proc(parent)->node, op);
    if (ec) return ec;
    return s;
}

namespace detail {

void initiate_spawn(node& n, atom where, atom module, atom function, term args,
                    std::chrono::milliseconds timeout, pid_handler handler) {
    detail::launch(
        access::core(n),
        std::make_shared<pid_op>(make_spawn(n, where, module, function, std::move(args), timeout)),
        std::move(handler));
}

void initiate_spawn_link(const mailbox& parent, atom where, atom module, atom function, term args,
                         std::chrono::milliseconds timeout, pid_handler handler) {
    auto& core = *access::proc(parent)->node;
    detail::launch(core,
                   std::make_shared<pid_op>(make_spawn(parent, where, module, function,
                                                       std::move(args), {.link = true}, timeout)),
                   std::move(handler));
}

void initiate_spawn_monitor(const mailbox& parent, atom where, atom module, atom function,
                            term args, std::chrono::milliseconds timeout, spawned_handler handler) {
    auto& core = *access::proc(parent)->node;
    detail::launch(
        core,
        std::make_shared<spawned_op>(make_spawn(parent, where, module, function, std::move(args),
                                                {.monitor = true}, timeout)),
        std::move(handler));
}

}  // namespace detail

}  // namespace erl
