// erlcpp-call: call a function on an Erlang, Elixir or erlcpp node from the shell (erl_call's
// job): the result is printed in Erlang syntax and the exit code says what happened.
//
//   erlcpp-call -n demo@127.0.0.1 -c secret -a 'demo add [1, 2]'        -> 3
//   erlcpp-call -sname beam -a 'erlang node'                               -> beam@host
//   erlcpp-call -n beam@127.0.0.1 -e 'lists:seq(1, 3)'                    -> [1,2,3]
//   echo 'X = 2, X * 21.' | erlcpp-call -n beam@127.0.0.1 -e              -> 42
//
// Options and exit codes: help_text below (`erlcpp-call --help`) and docs/man/erlcpp-call.1.
#include <erl/node.hpp>
#include <erl/parse.hpp>
#include <erl/rpc.hpp>

#include <unistd.h>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace {

enum exit_code { ok = 0, raised = 1, usage_error = 2, timed_out = 3, no_connection = 4, other = 5 };

// The option summary; docs/man/erlcpp-call.1 documents the same options (a test compares them).
constexpr const char* help_text =
    "usage: erlcpp-call (-n|-name|-sname) NODE [-c COOKIE] [-t SECONDS]\n"
    "                   (-a 'Mod [Fun [Args]]' | -e [EXPR]) [-h NAME] [-epmd_port PORT]\n"
    "                   [-no_result_term] [-v]\n"
    "\n"
    "Calls a function on an Erlang, Elixir or erlcpp node and prints the result in Erlang\n"
    "syntax (erl_call's job).\n"
    "\n"
    "Options:\n"
    "  -n NODE, -name NODE     target node, long names (NAME@HOST; a bare NAME gets this host)\n"
    "  -sname NODE             target node, short names\n"
    "  -c COOKIE               cookie (default: ~/.erlang.cookie)\n"
    "  -a 'Mod [Fun [Args]]'   apply(Mod, Fun, Args); Args is a list in Erlang syntax\n"
    "                          (default Fun: start, Args: [])\n"
    "  -e [EXPR]               evaluate Erlang expressions on the target; without EXPR they\n"
    "                          are read from standard input\n"
    "  -t SECONDS, -timeout SECONDS\n"
    "                          call timeout (default: infinity); fractions allowed\n"
    "  -h NAME                 name of this client node (default: erlcpp_call_<pid>)\n"
    "  -epmd_port PORT         EPMD port (default: $ERL_EPMD_PORT or 4369)\n"
    "  -no_result_term         do not print the result\n"
    "  -v                      verbose (progress on standard error)\n"
    "  -help, --help           print this help and exit\n"
    "\n"
    "Exit status: 0 success; 1 the function raised; 2 usage or syntax error; 3 timeout;\n"
    "4 connection failure; 5 other rpc failures. See erlcpp-call(1).\n";

[[noreturn]] void usage(const std::string& msg) {
    std::cerr << "erlcpp-call: " << msg << "\n" << help_text;
    std::exit(usage_error);
}

std::vector<std::string> split_ws(const std::string& s, std::size_t max_parts) {
    // Mod, Fun, then the rest verbatim (the argument list may contain spaces).
    std::vector<std::string> out;
    std::size_t i = 0;
    while (out.size() + 1 < max_parts) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
            ++i;
        if (i >= s.size()) return out;
        std::size_t j = i;
        while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j])))
            ++j;
        out.push_back(s.substr(i, j - i));
        i = j;
    }
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
        ++i;
    if (i < s.size()) out.push_back(s.substr(i));
    return out;
}

std::string host_name(bool long_names) {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    std::string h = buf;
    if (!long_names) {
        auto dot = h.find('.');
        if (dot != std::string::npos) h.resize(dot);
    }
    return h;
}

int failure_code(const erl::rpc::exception_info& e) {
    if (e.code == erl::make_error_code(erl::errc::timeout)) return timed_out;
    if (e.code == erl::make_error_code(erl::errc::noconnection)) return no_connection;
    const auto& r = e.reason;
    if (e.class_ == erl::atom("error") && r.is_tuple(2) && r[0].is_atom(erl::atom("erpc")))
        return other;
    return raised;
}

}  // namespace

int main(int argc, char** argv) {
    std::string target, cookie, apply, expr, client_name;
    bool long_names = true, have_target = false, eval = false, eval_stdin = false;
    bool print_result = true, verbose = false;
    std::chrono::milliseconds timeout = erl::infinity;
    std::uint16_t epmd_port = 0;
    const std::vector<std::string> option_names = {
        "-n", "-name",      "-sname",          "-c", "-a", "-e", "-t", "-timeout",
        "-h", "-epmd_port", "-no_result_term", "-v"};
    auto is_option = [&](const std::string& s) {
        return std::find(option_names.begin(), option_names.end(), s) != option_names.end();
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage("missing value for " + a);
            return argv[++i];
        };
        if (a == "-n" || a == "-name" || a == "--name") {
            target = value();
            long_names = true;
            have_target = true;
        } else if (a == "-sname" || a == "--sname") {
            target = value();
            long_names = false;
            have_target = true;
        } else if (a == "-c" || a == "--cookie") {
            cookie = value();
        } else if (a == "-a") {
            apply = value();
        } else if (a == "-e") {
            eval = true;
            if (i + 1 < argc && !is_option(argv[i + 1]))
                expr = argv[++i];
            else
                eval_stdin = true;
        } else if (a == "-t" || a == "-timeout" || a == "--timeout") {
            std::string v = value();
            char* end = nullptr;
            double secs = std::strtod(v.c_str(), &end);
            if (end == v.c_str() || *end || secs < 0 || !std::isfinite(secs))
                usage("bad timeout " + v);
            timeout = std::chrono::milliseconds(static_cast<long long>(secs * 1000));
        } else if (a == "-h") {
            client_name = value();
        } else if (a == "-epmd_port" || a == "--epmd-port") {
            epmd_port = static_cast<std::uint16_t>(std::atoi(value().c_str()));
        } else if (a == "-no_result_term") {
            print_result = false;
        } else if (a == "-v") {
            verbose = true;
        } else if (a == "--help" || a == "-help") {
            std::cout << help_text;
            return ok;
        } else {
            usage("unknown option " + a);
        }
    }
    if (!have_target) usage("no target node (-n, -name or -sname)");
    if (apply.empty() == !eval) usage("give exactly one of -a and -e");
    if (target.find('@') == std::string::npos) target += "@" + host_name(long_names);

    // What to call --------------------------------------------------------------------------
    erl::atom mod, fun;
    erl::term args;
    if (!apply.empty()) {
        auto parts = split_ws(apply, 3);
        if (parts.empty()) usage("empty -a");
        mod = erl::atom(parts[0]);
        fun = erl::atom(parts.size() > 1 ? parts[1] : "start");
        args = erl::term();
        if (parts.size() > 2) {
            erl::parse_error perr;
            auto parsed = erl::parse(parts[2], perr);
            if (!parsed) {
                std::cerr << "erlcpp-call: cannot parse arguments at offset " << perr.offset << ": "
                          << perr.message << "\n";
                return usage_error;
            }
            if (!parsed->is_proper_list()) {
                std::cerr << "erlcpp-call: arguments must be a list, e.g. [1, two, \"three\"]\n";
                return usage_error;
            }
            args = *parsed;
        }
    } else if (eval_stdin) {
        expr.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }

    // Local node ------------------------------------------------------------------------------
    erl::node_options o;
    o.name = (client_name.empty() ? "erlcpp_call_" + std::to_string(::getpid()) : client_name);
    if (o.name.find('@') == std::string::npos) o.name += "@" + target.substr(target.find('@') + 1);
    o.long_names = long_names;
    o.cookie = cookie;
    o.epmd_port = epmd_port;
    o.epmd = erl::epmd_mode::require_running;
    o.hidden = true;
    o.threads = 1;
    std::string last_log;
    o.log = [&](std::string_view m) {
        last_log = std::string(m);
        if (verbose) std::cerr << "erlcpp-call: " << m << "\n";
    };
    erl::node node(o);
    if (auto ec = node.start()) {
        std::cerr << "erlcpp-call: cannot start the client node: " << ec.message() << "\n";
        return no_connection;
    }
    const erl::atom target_atom(target);
    const auto connect_timeout =
        timeout == erl::infinity ? std::chrono::milliseconds(10000) : timeout;
    if (auto ec = node.connect(target_atom, connect_timeout)) {
        std::cerr << "erlcpp-call: cannot connect to " << target << ": " << ec.message();
        if (!last_log.empty()) std::cerr << " (" << last_log << ")";
        std::cerr << "\n";
        return no_connection;
    }
    if (verbose) std::cerr << "erlcpp-call: connected to " << target << "\n";

    // Call --------------------------------------------------------------------------------------
    erl::rpc::call_result res;
    if (!apply.empty()) {
        if (verbose)
            std::cerr << "erlcpp-call: " << mod.str() << ":" << fun.str() << " " << args << "\n";
        res = erl::rpc::call(node, target_atom, mod, fun, args, timeout);
    } else {
        // erl_scan:string/1, erl_parse:parse_exprs/1 and erl_eval:exprs/2 on the target, so
        // the text is read by the same Erlang that runs it.
        std::string text = expr;
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
            text.pop_back();
        if (text.empty() || text.back() != '.') text += ".";
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        auto left = [&] {
            if (timeout == erl::infinity) return erl::infinity;
            auto l = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            return l.count() > 0 ? l : std::chrono::milliseconds(0);
        };
        auto step = [&](const char* m, const char* f, erl::term a) {
            return erl::rpc::call(node, target_atom, m, f, std::move(a), left());
        };
        res = step("erl_scan", "string", erl::list(erl::charlist(text)));
        if (res && res.value().is_tuple(3) && res.value()[0].is_atom(erl::atoms::ok())) {
            res = step("erl_parse", "parse_exprs", erl::list(res.value()[1]));
            if (res && res.value().is_tuple(2) && res.value()[0].is_atom(erl::atoms::ok())) {
                res = step("erl_eval", "exprs", erl::list(res.value()[1], erl::term()));
                if (res && res.value().is_tuple(3)) res = erl::rpc::call_result(res.value()[1]);
            } else if (res) {
                std::cerr << "erlcpp-call: syntax error: " << res.value() << "\n";
                return usage_error;
            }
        } else if (res) {
            std::cerr << "erlcpp-call: scan error: " << res.value() << "\n";
            return usage_error;
        }
    }

    erl::print_options po;
    po.strings = true;
    if (res) {
        if (print_result) std::cout << erl::to_string(res.value(), po) << std::endl;
        return ok;
    }
    const auto& e = res.error();
    if (print_result) std::cout << erl::to_string(res.to_rpc_term(), po) << std::endl;
    std::cerr << "erlcpp-call: " << e.to_string() << "\n";
    return failure_code(e);
}
