// gen_server interop (gen.erl / gen_server.erl, OTP 25):
//   call:  {'$gen_call', {From, Tag}, Request}, Tag = Ref or [alias|Ref]; reply {Tag, Reply}
//          (to the alias when the tag carries one, gen:reply/2).
//   cast:  {'$gen_cast', Request}.
// The client side monitors the server, uses the monitor reference as an alias and as the reply
// tag [alias|Ref] (gen:do_call/4 with erlang:monitor(process, P, [{alias, demonitor}])).
#include <erl/gen_server.hpp>
#include <erl/node.hpp>

#include "observe/introspection.hpp"
#include "services/gen_server_internal.hpp"
#include "services/rpc_internal.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <typeinfo>

namespace erl::gen_server {

using rpc::detail::A;

namespace {
struct sys_atoms {
    atom cpp_server{"cpp_server"};
};
const sys_atoms& SA() {
    static const sys_atoms a;
    return a;
}
}  // namespace

void detail_access::handle(server& s, erl::detail::sys::protocol& sys, const term& t) {
    const auto& a = A();
    if (erl::detail::sys::protocol::is_system(t)) {
        // sys:handle_system_msg/8: reply first, then system_terminate for {terminate, R}.
        sys_owner o(s);
        auto act = sys.handle(t, o);
        const auto& p = erl::detail::access::proc(s.mb_);
        erl::detail::runtime::reply(*p->node, act.from, std::move(act.reply));
        if (act.terminate) s.stop_reason_ = std::move(*act.terminate);
        return;
    }
    sys.note_in(t);
    if (t.is_tuple(3) && t[0].is_atom(a.gen_call) && t[1].is_tuple(2)) {
        from f{t[1][0], t[1][1]};
        if (auto r = s.handle_call(t[2], f)) {
            if (sys.debugging()) {
                sys_owner o(s);
                sys.note_out(*r, t[1], o);
            }
            s.reply(f, std::move(*r));
        }
    } else if (t.is_tuple(2) && t[0].is_atom(a.gen_cast)) {
        s.handle_cast(t[1]);
    } else {
        s.handle_info(t);
    }
}

term detail_access::state_of(const server& s) {
    if (auto v = s.state()) return std::move(*v);
    // The dynamic type, demangled: what a server without a state() is.
    const char* mangled = typeid(s).name();
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(
        abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return make_tuple({term(SA().cpp_server), binary(status == 0 && name ? name.get() : mangled)});
}

erl::detail::sys::protocol detail_access::make_sys(const mailbox& mb) {
    return erl::detail::sys::protocol(A().gen_server, mb.self_term(), mb.self_term());
}

term server::replace_state(const term&) {
    // What BEAM raises for a fun whose code is not loaded (error_handler:undefined_lambda/3).
    rpc::raise_error(term(A().undef));
}

namespace {

// Exit reason of a server whose callback threw (as gen_server's process would exit).
term reason_of(std::exception_ptr ep) {
    const auto& a = A();
    try {
        std::rethrow_exception(ep);
    } catch (const rpc::erlang_exception& e) {
        return e.class_of() == a.exit ? e.reason() : make_tuple({e.reason(), e.stacktrace()});
    } catch (const std::exception& e) {
        return make_tuple({term(a.cpp_exception), binary(e.what())});
    } catch (...) {
        return term(a.cpp_exception);
    }
}

// A run_inline server: its process is a service process whose handler runs the callbacks on
// the delivering thread. `mu` keeps them one at a time; it is recursive because ending the
// process from inside a callback runs the exit hook (terminate) on the same thread.
struct inline_state {
    std::recursive_mutex mu;
    std::shared_ptr<server> impl;
    std::shared_ptr<erl::detail::process> proc;     // cleared when the server ends (no cycle)
    bool ended = false;                             // terminate has run
    std::optional<erl::detail::sys::protocol> sys;  // set before the first message
    // Messages that arrived while suspended (or behind such messages), in arrival order: an
    // inline process has no queue of its own, so they wait here for sys:resume.
    std::deque<term> deferred;
    bool draining = false;

    // Runs terminate once, when the process has ended (for whatever reason).
    void on_exit(const term& reason) {
        std::lock_guard lk(mu);
        if (ended) return;
        ended = true;
        deferred.clear();
        impl->terminate(reason);
        proc.reset();
    }
    void on_message(term msg) {
        std::lock_guard lk(mu);
        if (ended) return;
        // sys:suspend_loop/6: while suspended only system messages are handled; the others
        // keep their order behind those already waiting.
        if (!erl::detail::sys::protocol::is_system(msg) &&
            (sys->suspended() || !deferred.empty())) {
            deferred.push_back(std::move(msg));
            if (!sys->suspended()) drain();
            return;
        }
        run(msg);
        if (!deferred.empty() && !sys->suspended()) drain();
    }
    // Handles the deferred messages once resumed (not from inside another drain: a callback
    // that sends to itself appends behind them).
    void drain() {
        if (draining) return;
        draining = true;
        while (!ended && !sys->suspended() && !deferred.empty()) {
            term m = std::move(deferred.front());
            deferred.pop_front();
            run(m);
        }
        draining = false;
    }
    void run(const term& msg) {
        auto& s = *impl;
        std::optional<term> reason;
        try {
            detail_access::handle(s, *sys, msg);
            if (auto& r = detail_access::stop_reason(s)) reason = *r;
        } catch (...) {
            reason = reason_of(std::current_exception());
        }
        if (reason) end(std::move(*reason));
    }
    // Ends the process with `reason`; terminate runs through the exit hook.
    void end(term reason) {
        std::shared_ptr<erl::detail::process> p = proc;
        if (p) erl::detail::runtime::exit(p, std::move(reason));
    }
};

}  // namespace

void server::reply(const from& caller, term value) const {
    const auto& p = erl::detail::access::proc(mb_);
    erl::detail::runtime::reply(*p->node, caller.as_term(), std::move(value));
}

void server::stop(term reason) {
    stop_reason_ = std::move(reason);
}

running::running(std::shared_ptr<server> impl, mailbox mb)
    : impl_(std::move(impl)), mb_(std::move(mb)), pid_(mb_.self()) {
    impl_->mb_ = mb_;
    // The loop holds its own references, never `this`: a callback may destroy this handle.
    thread_ = std::thread([impl = impl_, mb = mb_]() mutable { loop(*impl, mb); });
}

running::running(std::shared_ptr<server> impl, mailbox mb, std::shared_ptr<void> inline_state)
    : impl_(std::move(impl)),
      mb_(std::move(mb)),
      pid_(mb_.self()),
      inline_(std::move(inline_state)) {}

running::~running() {
    if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id()) {
        // Destroyed by one of its own callbacks: the server ends after that callback returns
        // and its thread cannot join itself; the loop owns everything it still uses.
        impl_->stop(term(A().normal));
        thread_.detach();
        return;
    }
    if (thread_.joinable() || inline_) stop();
}

void running::loop(server& s, mailbox& mb) {
    const auto& a = A();
    term reason(a.normal);
    auto sys = detail_access::make_sys(mb);
    const std::function<bool(const term&)> is_system = &erl::detail::sys::protocol::is_system;
    try {
        s.init();
        while (!s.stop_reason_) {
            // sys:suspend_loop/6: while suspended only system messages are taken; the others
            // stay queued in order.
            auto m = sys.suspended() ? mb.receive_if(is_system) : mb.receive();
            if (!m) {  // killed, or the node stopped
                reason = mb.exit_reason().value_or(term(a.normal));
                break;
            }
            detail_access::handle(s, sys, *m);
        }
        if (s.stop_reason_) reason = *s.stop_reason_;
    } catch (...) {
        reason = reason_of(std::current_exception());
    }
    s.terminate(reason);
    mb.exit(reason);
}

void running::stop(term reason) {
    if (inline_) {
        // Ends the process; the exit hook runs terminate (after a callback in progress, which
        // holds the state's mutex), so no callback runs once stop() returns.
        auto st = std::static_pointer_cast<inline_state>(inline_);
        st->end(std::move(reason));
        std::lock_guard lk(st->mu);  // the exit hook may run on another thread: wait for it
        return;
    }
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
        // From one of its own callbacks: the loop ends after it returns (terminate runs with
        // `reason`); the thread is joined by a later stop() or the destructor.
        impl_->stop(std::move(reason));
        return;
    }
    // Ends the process; the loop sees its mailbox close and runs terminate with `reason`.
    mb_.exit(std::move(reason));
    thread_.join();
}

bool running::alive() const {
    return mb_ && !mb_.exited();
}

result<std::unique_ptr<running>> start(erl::node& n, std::shared_ptr<server> impl,
                                       std::optional<atom> name) {
    return start(n, std::move(impl), name, start_options{});
}

result<std::unique_ptr<running>> start(erl::node& n, std::shared_ptr<server> impl,
                                       std::optional<atom> name, start_options opts) {
    if (!opts.run_inline) {
        auto mb = n.spawn_mailbox(name);
        if (!mb) return mb.error();
        erl::detail::introspection::describe_gen_server(*erl::detail::access::proc(*mb));
        return erl::detail::access::make_unique<running>(std::move(impl), std::move(*mb));
    }
    auto& core = erl::detail::access::core(n);
    if (!core.alive) return make_error_code(errc::not_alive);
    auto st = std::make_shared<inline_state>();
    st->impl = impl;
    std::weak_ptr<inline_state> w = st;
    // Messages reach the callbacks as soon as the pid or name is known, so init() runs first,
    // under the state's mutex, before the name is registered.
    std::unique_lock init_lk(st->mu);
    auto p = *erl::detail::runtime::spawn_service(  // anonymous: cannot fail
        core,
        [w](term msg) {
            if (auto s = w.lock()) s->on_message(std::move(msg));
        },
        [w](const term& reason) {
            if (auto s = w.lock()) s->on_exit(reason);
        });
    st->proc = p;
    erl::detail::introspection::describe_gen_server(*p);
    mailbox mb = erl::detail::runtime::owning_handle(p);
    detail_access::set_self(*impl, mb);
    st->sys.emplace(detail_access::make_sys(mb));
    if (name) {
        // Taken names fail before init() runs, as spawn_mailbox does for threaded servers.
        if (erl::detail::runtime::whereis(core, *name)) {
            st->ended = true;  // init never ran: no terminate either
            st->end(term(A().normal));
            return make_error_code(errc::name_taken);
        }
    }
    try {
        impl->init();
    } catch (...) {
        // As a threaded server whose init throws: terminate runs (exit hook, this thread) and
        // the returned server is no longer alive.
        st->end(reason_of(std::current_exception()));
        return erl::detail::access::make_unique<running>(std::move(impl), std::move(mb),
                                                         std::move(st));
    }
    // init may have stopped it already (noproc then: the server is returned, not alive).
    if (name && erl::detail::runtime::register_name(core, *name, p) == errc::name_taken) {
        st->end(term(A().normal));  // registered meanwhile by someone else
        return make_error_code(errc::name_taken);
    }
    return erl::detail::access::make_unique<running>(std::move(impl), std::move(mb), std::move(st));
}

term dest::to_term() const {
    if (auto* p = std::get_if<pid>(&v)) return term(*p);
    if (auto* a = std::get_if<atom>(&v)) return term(*a);
    auto& nn = std::get<std::pair<atom, atom>>(v);
    return make_tuple({term(nn.first), term(nn.second)});
}

void cast(erl::node& n, const dest& to, term request) {
    term msg = make_tuple({term(A().gen_cast), std::move(request)});
    if (auto* p = std::get_if<pid>(&to.v)) {
        n.send(*p, std::move(msg));
    } else if (auto* nm = std::get_if<atom>(&to.v)) {
        n.send(*nm, std::move(msg));
    } else {
        auto& nn = std::get<std::pair<atom, atom>>(to.v);
        n.send(nn.first, nn.second, std::move(msg));
    }
}

}  // namespace erl::gen_server
