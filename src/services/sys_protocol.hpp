// The system-message side of stdlib's sys.erl for a C++ process (gen_server, supervisor):
// what sys:get_state, replace_state, get_status, suspend, resume, change_code, statistics,
// log, trace and terminate send, and the answers OTP 25's sys.erl / gen_server.erl give.
//
// sys:Func(Name, ...) is gen:call(Name, system, Request): the message {system, From, Request}
// with From = {Pid, Tag}, answered with gen:reply/2 (runtime::reply). The protocol is sans-io:
// handle() takes the message and the owner's callbacks and returns the reply to send and what
// the process must do next; the owner's loop sends it and, while suspended(), handles only
// system messages and leaves every other message queued in arrival order (sys:suspend_loop/6).
//
// Threads: one protocol belongs to one process and is used by whatever runs its callbacks,
// one message at a time (not thread-safe).
#pragma once

#include <erl/term.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <optional>

namespace erl::detail::sys {

// The callback module's side (gen_server.erl system_get_state/1, system_replace_state/2,
// system_code_change/4, format_status/2).
class owner {
  public:
    virtual ~owner() = default;
    // system_get_state: the state sys:get_state returns. May throw (rpc::erlang_exception or
    // any std::exception): sys answers {error, {callback_failed, {Mod, system_get_state},
    // {Class, Reason}}}, which sys:get_state raises in the caller.
    virtual term get_state() = 0;
    // system_replace_state: applies StateFun to the state and returns the new state. Throwing
    // answers {error, {callback_failed, {Mod, system_replace_state}, {Class, Reason}}}.
    virtual term replace_state(const term& state_fun) = 0;
    // system_code_change(Misc, Module, OldVsn, Extra) (only while suspended): nullopt when the
    // code change succeeded; otherwise the term `Else` that sys:change_code returns as
    // {error, Else} (the process keeps its old code and state).
    virtual std::optional<term> code_change(const term& module, const term& old_vsn,
                                            const term& extra) = 0;
    // The name shown in get_status's header: the registered name, or nullopt for the pid.
    virtual std::optional<atom> registered_name() const = 0;
};

// What handle() asks of the owner: send `reply` to `from` (gen:reply/2) first, then, if
// `terminate` is set, end the process with that reason as Mod:system_terminate/4 does (a
// gen_server runs terminate/2 with it).
struct action {
    term from;
    term reply;
    std::optional<term> terminate;
};

class protocol {
  public:
    // `module`: the generic module sys reports ({module, gen_server} for gen_servers and
    // supervisors); `self`: the process; `parent`: its parent (the supervisor, or the process
    // itself for one started without a link, as gen.erl's init_it/6 sets it).
    protocol(atom module, term self, term parent);

    // {system, From, Request} with From = {Pid, Tag}?
    static bool is_system(const term& msg) noexcept;
    // Handles one system message (is_system(msg) must hold). Callbacks of `o` run here.
    action handle(const term& msg, owner& o);

    bool suspended() const noexcept { return suspended_; }

    // Debug events of the owner's loop (sys:handle_debug/4): count only while statistics are
    // on, and record only while the log is on; nothing is done (or built) otherwise.
    // A non-system message taken for handling ({in, Msg}).
    void note_in(const term& msg);
    // A reply sent by the owner ({out, Reply, To, State}: State from o.get_state() only while
    // the log is on).
    void note_out(const term& reply, const term& to, owner& o);
    bool debugging() const noexcept { return stats_.has_value() || log_.has_value(); }

    // gen_server.erl format_status/2 for `state`: [{header, "Status for generic server " ++
    // Name}, {data, [{"Status", SysState}, {"Parent", Parent}, {"Logged events", Log}]},
    // {data, [{"State", State}]}]. Exposed for owners that shape their status the same way.
    term gen_server_status(const term& state, std::optional<atom> name) const;

  private:
    term get_status(owner& o) const;
    term debug(const term& what);
    term debug_list() const;
    term logged_events() const;

    struct statistics {
        term start_time;  // {{Y, M, D}, {H, Mi, S}}, local time
        std::uint64_t handled_at_start = 0;
        std::uint64_t in = 0, out = 0;
    };

    atom module_;
    term self_, parent_;
    bool suspended_ = false;
    bool trace_ = false;
    // Messages handled (system ones included): sys:statistics' `reductions` for a C++ process.
    std::uint64_t handled_ = 0;
    std::optional<statistics> stats_;
    std::size_t log_limit_ = 10;
    std::optional<std::deque<term>> log_;  // oldest first, at most log_limit_
};

// What `catch Mod:code_change(...)` gives for a code_change that threw (sys.erl do_change_code/5
// answers {error, Else} with it): throw V gives V, exit R {'EXIT', R}, error R {'EXIT', {R,
// Stack}}; other C++ exceptions are errors {cpp_exception, <<what()>>}. For owners that must
// turn the exception into a term while the code that threw it is still loaded.
term code_change_failure(std::exception_ptr ep);

// Local time {{Year, Month, Day}, {Hour, Minute, Second}} as erlang:localtime/0 gives it.
term localtime_term(std::chrono::system_clock::time_point t);

}  // namespace erl::detail::sys
