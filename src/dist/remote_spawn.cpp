// erlang:spawn/4, spawn_link/4 and spawn_monitor/4 towards another node
// (include/erl/process.hpp). The request is the runtime's spawn_request (erl_dist_protocol
// SPAWN_REQUEST); as erlang.erl spawn_opt/5 does, the caller waits for the SPAWN_REPLY and
// link/monitor travel in the request's option list, so they exist before the process runs.
#include <erl/node.hpp>
#include <erl/process.hpp>

#include "services/rpc_internal.hpp"

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

result<pid> spawn_on(detail::node_core& core, mailbox mb, atom where, atom m, atom f,
                     const term& args, spawn_mode mode, std::chrono::milliseconds timeout,
                     reference* monitor_ref, bool has_parent) {
    if (!core.alive) return make_error_code(errc::not_alive);
    if (!args.is_proper_list()) return make_error_code(errc::badarg);
    const auto& self = detail::access::proc(mb);
    if (where == core.name)  // erlang.erl spawn/4 on node(): a local spawn
        return runtime::spawn_kind_locally(core, has_parent ? &self : nullptr, m, f, args,
                                           mode.link, mode.monitor ? monitor_ref : nullptr);
    const auto start = std::chrono::steady_clock::now();
    if (core.connect(where, timeout)) return make_error_code(errc::noconnection);
    if (!runtime::supports_spawn(core, where)) return make_error_code(errc::notsup);
    const reference req =
        runtime::spawn_request(self, where, m, f, args, rpc::detail::group_leader(core)->self_term,
                               {.monitor = mode.monitor, .reply = true, .link = mode.link});
    auto left = timeout;
    if (timeout != infinity) {
        left = timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start);
        if (left.count() < 0) left = std::chrono::milliseconds(0);
    }
    const term rt(req);
    auto msg = mb.receive_if(
        [&](const term& t) { return t.is_tuple(4) && t[0].is_atom(A().spawn_reply) && t[1] == rt; },
        left);
    if (!msg) {
        runtime::spawn_request_abandon(self, req);
        return make_error_code(errc::timeout);
    }
    const term& t = *msg;
    if (!t[2].is_atom(A().ok) || !t[3].is_pid()) return spawn_error(t[3]);
    if (monitor_ref) *monitor_ref = req;  // erlang:spawn_monitor/4: the request id
    return t[3].as_pid();
}

}  // namespace

result<pid> spawn(node& n, atom where, atom module, atom function, term args,
                  std::chrono::milliseconds timeout) {
    auto& core = detail::access::core(n);
    if (!core.alive) return make_error_code(errc::not_alive);
    // A temporary process sends the request and takes the reply; it ends when it returns.
    mailbox mb = runtime::spawn_mailbox(core);
    return spawn_on(core, mb, where, module, function, args, {}, timeout, nullptr, false);
}

result<pid> spawn_link(const mailbox& parent, atom where, atom module, atom function, term args,
                       std::chrono::milliseconds timeout) {
    auto& core = *detail::access::proc(parent)->node;
    return spawn_on(core, parent, where, module, function, args, {.link = true}, timeout, nullptr,
                    true);
}

result<spawned> spawn_monitor(const mailbox& parent, atom where, atom module, atom function,
                              term args, std::chrono::milliseconds timeout) {
    auto& core = *detail::access::proc(parent)->node;
    reference ref;
    auto r = spawn_on(core, parent, where, module, function, args, {.monitor = true}, timeout, &ref,
                      true);
    if (!r) return r.error();
    return spawned{*r, ref};
}

}  // namespace erl
