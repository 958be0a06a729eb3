// erl::gen_server — gen_server interop in both directions.
//
// Serving: derive from erl::gen_server::server and start it; Erlang's gen_server:call/cast and
// Elixir's GenServer.call/cast reach it (they send {'$gen_call', {From, Tag}, Request} and
// {'$gen_cast', Msg}; Tag may be a plain reference or OTP 24+'s [alias|Ref], and replies go to
// the alias when there is one, as gen:reply/2 does).
//
//     struct counter : erl::gen_server::server {
//         std::int64_t n = 0;
//         std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
//             return erl::term(n);
//         }
//         void handle_cast(const erl::term&) override { n = 0; }
//     };
//     auto ref = erl::gen_server::start(node, std::make_shared<counter>(), erl::atom("counter"));
//     %% erl:  gen_server:call({counter, 'cpp@host'}, get)
//
// Calling: erl::gen_server::call(node, dest, request, timeout) does what gen_server:call does:
// a monitor on the server plus an alias as reply tag; on timeout the monitor and the alias are
// removed, so a late reply is dropped and no monitor is left behind. cast() sends '$gen_cast'.
//
// sys: a server answers OTP's sys module as a BEAM gen_server does (sys:get_state,
// replace_state, get_status, suspend, resume, change_code, statistics, log, terminate; the
// messages are {system, From, Request}). While suspended it handles only system messages;
// calls, casts and other messages stay queued in order and are handled after sys:resume. The
// hooks state(), replace_state() and code_change() below give sys the server's state.
//
// Thread safety: a server's callbacks run one message at a time, on the server's own thread
// (or, with start_options::run_inline, on the thread delivering each message). call/cast may
// be used from any thread except the node's I/O threads; async_call anywhere.
#pragma once

#include <erl/error.hpp>
#include <erl/mailbox.hpp>
#include <erl/rpc.hpp>
#include <erl/term.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <variant>

namespace erl::gen_server {

// Where a gen_server:call came from: {Pid, Tag} as sent; reply with server::reply().
struct from {
    term pid;
    term tag;
    term as_term() const { return make_tuple({pid, tag}); }
};

class server {
  public:
    using from = erl::gen_server::from;
    virtual ~server() = default;

    // Called on the server's thread before the first message.
    virtual void init() {}
    // A call: return the reply, or nullopt to reply later with reply(from, value) (for example
    // from another thread: reply() is thread-safe).
    virtual std::optional<term> handle_call(const term& request, const from& caller) = 0;
    virtual void handle_cast(const term& request) {}
    // Any other message.
    virtual void handle_info(const term& msg) {}
    // Called once when the server stops (stop(), the process was killed, the node stopped, or
    // sys:terminate(P, Reason)).
    virtual void terminate(const term& reason) {}

    // sys hooks (called on the callbacks' thread, one message at a time like the others) -----
    // The state as a term: what sys:get_state/1 returns and sys:get_status/1 shows as "State".
    // nullopt (the default): the server's C++ type, {cpp_server, <<"TypeName">>}.
    virtual std::optional<term> state() const { return std::nullopt; }
    // sys:replace_state(P, StateFun). StateFun is an Erlang fun, which a C++ node cannot run; a
    // server may recognise funs it implements itself (say the export fun `fun mymod:reset/1`),
    // apply them and return the new state(). Throwing (erl::rpc::raise_error etc.) fails the
    // call as a crashing fun does on BEAM: sys:replace_state raises {callback_failed,
    // {gen_server, system_replace_state}, {Class, Reason}}. The default fails as a fun whose
    // code is not loaded does: {error, undef}.
    virtual term replace_state(const term& state_fun);
    // gen_server's code_change(OldVsn, State, Extra), run by sys:change_code(P, Module, OldVsn,
    // Extra) while the server is suspended. `state` is the state() of the code being replaced
    // (for a module server after an upgrade, the old version's; see erl::module). Return
    // nullopt when the change succeeded, or the error term: sys:change_code then returns
    // {error, Error} and the server keeps its code and state. A throw is caught as OTP's
    // `catch Mod:code_change(...)` does ({error, {'EXIT', Reason}}). Default: success with
    // nothing to convert.
    virtual std::optional<term> code_change(const term& old_vsn, const term& state,
                                            const term& extra) {
        return std::nullopt;
    }

  protected:
    // Sends a reply as gen_server:reply/2 does (to the alias for [alias|Ref] tags).
    void reply(const from& caller, term value) const;
    // Ends the server after the current callback with `reason`.
    void stop(term reason = term(atoms::normal()));
    // The server's process (pid, send, links...). Its messages go to the callbacks: never
    // receive on it.
    const mailbox& self() const noexcept { return mb_; }

  private:
    friend class running;
    friend struct detail_access;
    mailbox mb_;
    std::optional<term> stop_reason_;
};

// A started server: its pid; stop() ends it (terminate runs) and joins its thread. Called from
// one of the server's own callbacks, stop() ends the server after that callback returns and
// the thread is joined by a later stop() or the destructor.
class running {
  public:
    running(const running&) = delete;
    running& operator=(const running&) = delete;
    ~running();  // stops the server

    const pid& self() const { return pid_; }
    void stop(term reason = term(atoms::normal()));
    bool alive() const;

  private:
    friend struct erl::detail::access;  // start() makes them (src/node/access.hpp)
    running(std::shared_ptr<server> impl, mailbox mb);
    running(std::shared_ptr<server> impl, mailbox mb, std::shared_ptr<void> inline_state);
    static void loop(server& s, mailbox& mb);
    std::shared_ptr<server> impl_;
    mailbox mb_;
    pid pid_;
    std::thread thread_;
    std::shared_ptr<void> inline_;  // run_inline servers: the state the process handler uses
};

struct start_options {
    // false (default): the callbacks run on the server's own thread; they may block.
    // true: no thread of its own — each message is handled right away on the thread that
    // delivers it (for calls from other nodes: the node's I/O thread that read it), under a
    // mutex that keeps callbacks one at a time. A remote gen_server:call then costs no thread
    // hand-off, but a callback that blocks stalls that connection (and others on the I/O
    // thread): only for quick callbacks that never wait (in particular never call
    // erl::gen_server::call, erl::rpc::call or receive). init() runs in start(); terminate()
    // runs on the thread that ends the process (stop(), a callback's stop/exception, an exit
    // signal, node stop). Replies and failures are those of the threaded server.
    bool run_inline = false;
};

// Starts `impl` in a new process (registered as `name` if given; errc::name_taken if in use).
result<std::unique_ptr<running>> start(erl::node& n, std::shared_ptr<server> impl,
                                       std::optional<atom> name = std::nullopt);
result<std::unique_ptr<running>> start(erl::node& n, std::shared_ptr<server> impl,
                                       std::optional<atom> name, start_options opts);

// A gen_server to call: a pid, a registered name on the local node, or {Name, Node}.
struct dest {
    dest(const pid& p) : v(p) {}
    dest(atom local_name) : v(local_name) {}
    dest(atom name, atom node) : v(std::pair<atom, atom>{name, node}) {}
    std::variant<pid, atom, std::pair<atom, atom>> v;
    term to_term() const;  // Pid | Name | {Name, Node}, as gen_server:call's first argument
};

/// gen_server:call(Dest, Request, Timeout), blocking this thread (the blocking form of
/// async_call). On failure the result holds the exit gen_server:call raises:
/// exit {Reason, {gen_server, call, [Dest, Request, Timeout]}} with Reason timeout, noproc,
/// {nodedown, Node} or the server's exit reason; exception_info::code is errc::timeout /
/// errc::noproc / errc::noconnection for the first three ({} for an exit reason).
rpc::call_result call(erl::node& n, const dest& to, term request,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

namespace detail {
void initiate_call(erl::node& n, const dest& to, term request, std::chrono::milliseconds timeout,
                   rpc::detail::call_handler handler);
}  // namespace detail

/// gen_server:call as an asynchronous operation: completes with (error_code, call_result) on
/// the token's associated executor (the node's executor if it has none). The error_code is {}
/// whenever the call has an outcome (call()'s, timeouts included, are in the call_result),
/// boost::asio::error::operation_aborted on terminal or partial cancellation through the
/// token's cancellation slot (the request has been sent, so not total; the monitor and the
/// alias are removed, a late reply is dropped), errc::shutting_down when the node stops first
/// (stop() returns after this completion has run on the node's io_context; the call_result is
/// exit {shutdown, {gen_server, call, [...]}} with code shutting_down, as call() returns).
/// Never blocks: a coroutine process may co_await it on the node's only I/O thread.
template <class Token>
auto async_call(erl::node& n, const dest& to, term request, std::chrono::milliseconds timeout,
                Token&& token) {
    return erl::detail::async_op<void(error_code, rpc::call_result)>(
        token, &detail::initiate_call, std::ref(n), to, std::move(request), timeout);
}
// gen_server:cast(Dest, Request): {'$gen_cast', Request}, never fails.
void cast(erl::node& n, const dest& to, term request);

}  // namespace erl::gen_server
