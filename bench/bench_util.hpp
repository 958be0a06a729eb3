// Command-line and node set-up shared by the benchmark drivers in bench/.
#pragma once

#include <erl/node.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace erl_bench {

// One option of a benchmark's command line: "--name value", or "--name" alone for a flag.
struct option {
    std::string_view name;
    std::function<void(const std::string&)> set;
    bool flag = false;
};

// An option whose value is stored as text in `out`.
inline option text(std::string_view name, std::string& out) {
    return {name, [&out](const std::string& v) { out = v; }};
}

// An option whose value is a whole number stored in `out`, raised to `least` when below it.
template <class T>
option number(std::string_view name, T& out, T least = std::numeric_limits<T>::lowest()) {
    return {name, [&out, least](const std::string& v) {
                const long long x = std::stoll(v);
                if (x < static_cast<long long>(std::numeric_limits<T>::lowest()) ||
                    x > static_cast<long long>(std::numeric_limits<T>::max()))
                    throw std::out_of_range(v);
                out = std::max(least, static_cast<T>(x));
            }};
}

// An option without a value that sets `out`.
inline option flag(std::string_view name, bool& out) {
    return {name, [&out](const std::string&) { out = true; }, true};
}

// Reads argv[first..argc) against `opts`; `fail` (which does not return) is called with the
// reason for a missing or bad value or an unknown option; reading stops there.
template <class Fail>
void parse_options(int argc, char** argv, int first, const std::vector<option>& opts, Fail&& fail) {
    for (int i = first; i < argc; ++i) {
        const std::string k = argv[i];
        auto o =
            std::find_if(opts.begin(), opts.end(), [&](const option& x) { return x.name == k; });
        if (o == opts.end()) return fail("unknown option " + k);
        std::string v;
        if (!o->flag) {
            if (i + 1 >= argc) return fail("missing value for " + k);
            v = argv[++i];
        }
        try {
            o->set(v);
        } catch (const std::logic_error&) {
            return fail("bad value for " + k + ": " + v);
        }
    }
}

// Options of a benchmark's own node on 127.0.0.1: named NAME_PID, with the EPMD on `epmd_port`
// that must already run.
inline erl::node_options client_options(const std::string& name, const std::string& cookie,
                                        std::uint16_t epmd_port, unsigned threads) {
    erl::node_options o;
    o.name = name + "_" + std::to_string(::getpid()) + "@127.0.0.1";
    o.cookie = cookie;
    o.epmd_port = epmd_port;
    o.epmd = erl::epmd_mode::require_running;
    o.threads = threads;
    return o;
}

}  // namespace erl_bench
