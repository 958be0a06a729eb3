// sys.erl's system messages for C++ processes (stdlib-4.2, OTP 25): handle_system_msg/8,
// do_cmd/6, debug_cmd/2, get_status/5, and gen_server.erl's format_status/2.
#include "services/sys_protocol.hpp"

#include <erl/rpc.hpp>

#include <ctime>
#include <iostream>
#include <string>

namespace erl::detail::sys {

namespace {

struct names {
    atom system{"system"}, suspend{"suspend"}, resume{"resume"}, get_state{"get_state"},
        replace_state{"replace_state"}, get_status{"get_status"}, debug{"debug"},
        terminate{"terminate"}, change_code{"change_code"},
        unknown_system_msg{"unknown_system_msg"}, callback_failed{"callback_failed"},
        system_get_state{"system_get_state"}, system_replace_state{"system_replace_state"},
        status{"status"}, module{"module"}, running{"running"}, suspended{"suspended"},
        header{"header"}, data{"data"}, trace{"trace"}, log{"log"}, log_to_file{"log_to_file"},
        statistics{"statistics"}, no_debug{"no_debug"}, install{"install"}, remove{"remove"},
        get{"get"}, print{"print"}, open_file{"open_file"}, unknown_debug{"unknown_debug"},
        no_statistics{"no_statistics"}, start_time{"start_time"}, current_time{"current_time"},
        reductions{"reductions"}, messages_in{"messages_in"}, messages_out{"messages_out"},
        in{"in"}, out{"out"}, cpp_exception{"cpp_exception"};
};
const names& N() {
    static const names n;
    return n;
}

term ok() {
    return term(atoms::ok());
}
term error(term why) {
    return make_tuple({term(atoms::error()), std::move(why)});
}
term int_term(std::uint64_t v) {
    return term(static_cast<long long>(v));
}

// {Class, Reason} of a failed callback, as `catch Cl:Exc` sees it in sys.erl.
term class_and_reason(std::exception_ptr ep) {
    try {
        std::rethrow_exception(ep);
    } catch (const rpc::erlang_exception& e) {
        return make_tuple({term(e.class_of()), e.reason()});
    } catch (const std::exception& e) {
        return make_tuple(
            {term(atoms::error()), make_tuple({term(N().cpp_exception), binary(e.what())})});
    } catch (...) {
        return make_tuple({term(atoms::error()), term(N().cpp_exception)});
    }
}

term callback_failed(atom module, atom fn, std::exception_ptr ep) {
    return error(make_tuple(
        {term(N().callback_failed), make_tuple({term(module), term(fn)}), class_and_reason(ep)}));
}

// pid_to_list/1 of a local pid: "<0.Id.Serial>".
std::string pid_text(const term& p) {
    if (!p.is_pid()) return p.to_string();
    const pid& v = p.as_pid();
    return "<0." + std::to_string(v.id) + "." + std::to_string(v.serial) + ">";
}

}  // namespace

// The result of `catch Mod:code_change(...)` for a throwing C++ hook (sys.erl do_change_code/5
// then answers {error, Else}): throw V gives V, exit R gives {'EXIT', R}, error R gives
// {'EXIT', {R, Stack}}.
term code_change_failure(std::exception_ptr ep) {
    const term exit_tag(atom("EXIT"));
    try {
        std::rethrow_exception(ep);
    } catch (const rpc::erlang_exception& e) {
        if (e.class_of() == atom("throw")) return e.reason();
        if (e.class_of() == atom("exit")) return make_tuple({exit_tag, e.reason()});
        const term stack = e.stacktrace().is_list() ? e.stacktrace() : term();
        return make_tuple({exit_tag, make_tuple({e.reason(), stack})});
    } catch (const std::exception& e) {
        return make_tuple(
            {exit_tag,
             make_tuple({make_tuple({term(N().cpp_exception), binary(e.what())}), term()})});
    } catch (...) {
        return make_tuple({exit_tag, make_tuple({term(N().cpp_exception), term()})});
    }
}

term localtime_term(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    return make_tuple({make_tuple({term(tm.tm_year + 1900), term(tm.tm_mon + 1), term(tm.tm_mday)}),
                       make_tuple({term(tm.tm_hour), term(tm.tm_min), term(tm.tm_sec)})});
}

protocol::protocol(atom module, term self, term parent)
    : module_(module), self_(std::move(self)), parent_(std::move(parent)) {}

bool protocol::is_system(const term& msg) noexcept {
    return msg.is_tuple(3) && msg[0].is_atom(N().system) && msg[1].is_tuple(2);
}

action protocol::handle(const term& msg, owner& o) {
    const auto& n = N();
    ++handled_;
    action a{msg[1], ok(), std::nullopt};
    const term& req = msg[2];
    if (req.is_atom(n.suspend)) {
        suspended_ = true;
    } else if (req.is_atom(n.resume)) {
        suspended_ = false;
    } else if (req.is_atom(n.get_state)) {
        try {
            a.reply = o.get_state();
        } catch (...) {
            a.reply = callback_failed(module_, n.system_get_state, std::current_exception());
        }
    } else if (req.is_tuple(2) && req[0].is_atom(n.replace_state)) {
        try {
            a.reply = o.replace_state(req[1]);
        } catch (...) {
            a.reply = callback_failed(module_, n.system_replace_state, std::current_exception());
        }
    } else if (req.is_atom(n.get_status)) {
        a.reply = get_status(o);
    } else if (req.is_tuple(2) && req[0].is_atom(n.debug)) {
        a.reply = debug(req[1]);
    } else if (req.is_tuple(2) && req[0].is_atom(n.terminate)) {
        a.terminate = req[1];
    } else if (suspended_ && req.is_tuple(4) && req[0].is_atom(n.change_code)) {
        // do_cmd(suspended, {change_code, ...}): a running process answers unknown_system_msg.
        std::optional<term> failed;
        try {
            failed = o.code_change(req[1], req[2], req[3]);
        } catch (...) {
            failed = code_change_failure(std::current_exception());
        }
        if (failed) a.reply = error(std::move(*failed));
    } else {
        a.reply = error(make_tuple({term(n.unknown_system_msg), req}));
    }
    return a;
}

void protocol::note_in(const term& msg) {
    ++handled_;
    if (stats_) ++stats_->in;
    if (log_ || trace_) {
        term ev = make_tuple({term(N().in), msg});
        if (trace_) std::clog << "*DBG* " << ev.to_string() << "\n";
        if (log_) {
            log_->push_back(std::move(ev));
            if (log_->size() > log_limit_) log_->pop_front();
        }
    }
}

void protocol::note_out(const term& reply, const term& to, owner& o) {
    if (stats_) ++stats_->out;
    if (log_ || trace_) {
        term state;
        try {
            state = o.get_state();
        } catch (...) {
            state = callback_failed(module_, N().system_get_state, std::current_exception());
        }
        term ev = make_tuple({term(N().out), reply, to, std::move(state)});
        if (trace_) std::clog << "*DBG* " << ev.to_string() << "\n";
        if (log_) {
            log_->push_back(std::move(ev));
            if (log_->size() > log_limit_) log_->pop_front();
        }
    }
}

term protocol::logged_events() const {
    std::vector<term> out;
    if (log_) out.assign(log_->begin(), log_->end());
    return make_list(std::move(out));
}

// The Debug list of get_status: the items installed by debug commands, newest first, as
// sys.erl's install_debug/3 conses them ({trace, true}, {log, NLog}, {statistics, StatData}).
term protocol::debug_list() const {
    const auto& n = N();
    std::vector<term> items;
    if (stats_)
        items.push_back(make_tuple(
            {term(n.statistics),
             make_tuple({stats_->start_time,
                         make_tuple({term(n.reductions), int_term(stats_->handled_at_start)}),
                         int_term(stats_->in), int_term(stats_->out)})}));
    if (log_) {
        // nlog's [Remaining | NewestFirst] form.
        std::vector<term> newest_first(log_->rbegin(), log_->rend());
        items.push_back(make_tuple(
            {term(n.log), make_list({int_term(log_limit_ - std::min(log_limit_, log_->size()))},
                                    make_list(std::move(newest_first)))}));
    }
    if (trace_) items.push_back(make_tuple({term(n.trace), term(atoms::true_())}));
    return make_list(std::move(items));
}

// sys.erl debug_cmd/2.
term protocol::debug(const term& what) {
    const auto& n = N();
    const term t(atoms::true_()), f(atoms::false_());
    if (what.is_tuple(2) && what[0].is_atom(n.trace) && what[1].is_bool()) {
        trace_ = what[1].as_bool();
        return ok();
    }
    if (what.is_tuple(2) && what[0].is_atom(n.log)) {
        const term& flag = what[1];
        if (flag == t) {
            if (!log_) log_.emplace();
            return ok();
        }
        if (flag.is_tuple(2) && flag[0] == t && flag[1].is_small() && flag[1].as_int64() >= 1) {
            log_limit_ = static_cast<std::size_t>(flag[1].as_int64());
            if (!log_) log_.emplace();
            while (log_->size() > log_limit_)
                log_->pop_front();
            return ok();
        }
        if (flag == f) {
            log_.reset();
            log_limit_ = 10;
            return ok();
        }
        if (flag.is_atom(n.get)) return make_tuple({ok(), logged_events()});
        if (flag.is_atom(n.print)) {
            if (log_)
                for (auto& ev : *log_)
                    std::clog << "*DBG* " << ev.to_string() << "\n";
            return ok();
        }
        return term(n.unknown_debug);
    }
    if (what.is_tuple(2) && what[0].is_atom(n.log_to_file)) {
        // The node does not write log files for peers: OTP's answer when the file cannot be
        // opened. {log_to_file, false} closes nothing and succeeds.
        return what[1] == f ? ok() : error(term(n.open_file));
    }
    if (what.is_tuple(2) && what[0].is_atom(n.statistics)) {
        const term& flag = what[1];
        if (flag == t) {
            // install_debug/3 keeps statistics that are already on.
            if (!stats_)
                stats_ = statistics{localtime_term(std::chrono::system_clock::now()), handled_};
            return ok();
        }
        if (flag == f) {
            stats_.reset();
            return ok();
        }
        if (flag.is_atom(n.get)) {
            if (!stats_) return make_tuple({ok(), term(n.no_statistics)});
            return make_tuple(
                {ok(), make_list({make_tuple({term(n.start_time), stats_->start_time}),
                                  make_tuple({term(n.current_time),
                                              localtime_term(std::chrono::system_clock::now())}),
                                  make_tuple({term(n.reductions),
                                              int_term(handled_ - stats_->handled_at_start)}),
                                  make_tuple({term(n.messages_in), int_term(stats_->in)}),
                                  make_tuple({term(n.messages_out), int_term(stats_->out)})})});
        }
        return term(n.unknown_debug);
    }
    if (what.is_atom(n.no_debug)) {
        trace_ = false;
        log_.reset();
        log_limit_ = 10;
        stats_.reset();
        return ok();
    }
    // {install, {Func, FuncState}} installs an Erlang fun, which a C++ process cannot run:
    // answered as an unknown command rather than accepted and never called. Removing a
    // function that is not installed is a no-op in sys.erl (lists:keydelete/3).
    if (what.is_tuple(2) && what[0].is_atom(n.remove)) return ok();
    return term(n.unknown_debug);
}

term protocol::gen_server_status(const term& state, std::optional<atom> name) const {
    const auto& n = N();
    // gen:format_status_header/2: "Status for generic server " ++ Name or pid_to_list(Pid).
    std::string header = "Status for generic server ";
    header += name ? std::string(name->str()) : pid_text(self_);
    return make_list(
        {make_tuple({term(n.header), charlist(header)}),
         make_tuple(
             {term(n.data), make_list({make_tuple({charlist("Status"),
                                                   term(suspended_ ? n.suspended : n.running)}),
                                       make_tuple({charlist("Parent"), parent_}),
                                       make_tuple({charlist("Logged events"), logged_events()})})}),
         make_tuple({term(n.data), make_list({make_tuple({charlist("State"), state})})})});
}

// sys.erl get_status/5: {status, Pid, {module, Mod}, [PDict, SysState, Parent, Debug, Misc]}.
// A C++ process has no process dictionary: PDict is [].
term protocol::get_status(owner& o) const {
    const auto& n = N();
    term state;
    try {
        state = o.get_state();
    } catch (...) {
        state = callback_failed(module_, n.system_get_state, std::current_exception());
    }
    return make_tuple({term(n.status), self_, make_tuple({term(n.module), term(module_)}),
                       make_list({term(), term(suspended_ ? n.suspended : n.running), parent_,
                                  debug_list(), gen_server_status(state, o.registered_name())})});
}

}  // namespace erl::detail::sys
