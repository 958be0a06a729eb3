// Command-line and node set-up shared by the benchmark drivers in bench/.
#pragma once

#include <erl/node.hpp>

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace erl_bench {

// Median and extremes of the runs of one figure.
struct spread {
    double median = 0, lo = 0, hi = 0;
};

inline spread spread_of(std::vector<double> v) {
    if (v.empty()) return {};
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v.front(), v.back()};
}

// One "result KEY VALUE" line on stdout, the form the bench scripts collect.
inline void result(const char* key, double value) {
    std::printf("result %s %.6g\n", key, value);
    std::fflush(stdout);
}

// A "Vm..." field of /proc/<pid>/status ("VmRSS", "VmHWM", ...) in bytes; -1 if absent.
inline double proc_status_bytes(long pid, std::string_view field) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    while (std::fgets(line, sizeof line, f)) {
        const std::string_view l(line);
        if (l.size() > field.size() && l.substr(0, field.size()) == field &&
            l[field.size()] == ':') {
            v = std::strtod(line + field.size() + 1, nullptr) * 1024;  // "NNN kB"
            break;
        }
    }
    std::fclose(f);
    return v;
}

// User-space instructions retired by the calling thread between start() and stop(), from the
// kernel's counter (perf_event_open). stop() gives 0 where the kernel does not allow a process
// to count its own instructions (perf_event_paranoid, containers without the PMU).
class instruction_counter {
  public:
    instruction_counter() {
        perf_event_attr a{};
        a.type = PERF_TYPE_HARDWARE;
        a.size = sizeof a;
        a.config = PERF_COUNT_HW_INSTRUCTIONS;
        a.disabled = 1;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        fd_ = static_cast<int>(::syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    }
    ~instruction_counter() {
        if (fd_ >= 0) ::close(fd_);
    }
    instruction_counter(const instruction_counter&) = delete;
    instruction_counter& operator=(const instruction_counter&) = delete;

    void start() {
        if (fd_ < 0) return;
        ::ioctl(fd_, PERF_EVENT_IOC_RESET, 0);
        ::ioctl(fd_, PERF_EVENT_IOC_ENABLE, 0);
    }
    std::uint64_t stop() {
        if (fd_ < 0) return 0;
        ::ioctl(fd_, PERF_EVENT_IOC_DISABLE, 0);
        std::uint64_t n = 0;
        if (::read(fd_, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) return 0;
        return n;
    }

  private:
    int fd_ = -1;
};

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
