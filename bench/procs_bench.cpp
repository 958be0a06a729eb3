// erlcpp-bench-procs: the C++ side of the process-scale benchmark (scripts/bench-procs).
//
//   erlcpp-bench-procs --count N --cookie C --epmd-port P [--threads T] [--spawner thread|process]
//                      [--io-spin US]
//       One erl::node (private EPMD on port P) spawns N coroutine processes. Each sends `ready`
//       to a parent mailbox and waits in async_receive; once all N are ready the parent
//       measures the process's RSS, sends each `stop`, and waits for N `done` replies.
//       --spawner thread (default): the program's main thread is the parent (a mailbox): it
//       calls erl::spawn N times, each start posted to the node's I/O thread, and receives with
//       the blocking API; process: the parent is a coroutine process on the I/O thread that
//       spawns, receives and sends as BEAM's parent process does (no OS thread in the loop).
//
// The same workload runs on BEAM in bench/procs_beam.erl; the script runs both in fresh OS
// processes, taking turns, and prints the ratios. Output: one "result KEY VALUE" line per
// figure. Timings are for reporting only; nothing here passes or fails on them.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/term.hpp>

#include <boost/asio/awaitable.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void usage(const std::string& msg) {
    std::cerr << "erlcpp-bench-procs: " << msg << "\n"
              << "usage: erlcpp-bench-procs --count N --cookie C --epmd-port P [--threads T] "
                 "[--spawner thread|process] [--io-spin US]\n";
    std::exit(2);
}

// Resident set size of this process in bytes (/proc/self/statm, second field).
double rss_bytes() {
    std::ifstream f("/proc/self/statm");
    long size = 0, resident = 0;
    f >> size >> resident;
    return double(resident) * double(::sysconf(_SC_PAGESIZE));
}

void result(const char* key, double value) {
    std::printf("result %s %.6g\n", key, value);
    std::fflush(stdout);
}

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    long count = 0;
    std::string cookie = "bench";
    int epmd_port = 0;
    unsigned threads = 1;
    std::string spawner = "thread";
    std::chrono::microseconds io_spin{0};
    for (int i = 1; i < argc; i += 2) {
        const std::string k = argv[i];
        if (i + 1 >= argc) usage("missing value for " + k);
        const std::string v = argv[i + 1];
        if (k == "--count")
            count = std::stol(v);
        else if (k == "--cookie")
            cookie = v;
        else if (k == "--epmd-port")
            epmd_port = std::stoi(v);
        else if (k == "--threads")
            threads = static_cast<unsigned>(std::stoi(v));
        else if (k == "--spawner" && (v == "thread" || v == "process"))
            spawner = v;
        else if (k == "--io-spin")
            io_spin = std::chrono::microseconds(std::stoll(v));
        else
            usage("unknown option " + k);
    }
    if (count <= 0 || epmd_port <= 0) usage("--count and --epmd-port are required");

    erl::node_options o;
    o.name = "procs_" + std::to_string(::getpid()) + "@127.0.0.1";
    o.cookie = cookie;
    o.epmd_port = static_cast<std::uint16_t>(epmd_port);
    o.epmd = erl::epmd_mode::require_running;
    o.listen_address = "127.0.0.1";
    o.io_spin = io_spin;
    o.threads = threads;
    erl::node node(o);
    if (auto ec = node.start()) {
        std::cerr << "cannot start node: " << ec.message() << "\n";
        return 1;
    }
    const erl::atom ready("ready"), stop("stop"), done("done");
    // Figures of one run, filled by whichever parent runs it.
    struct figures {
        double spawn_s = 0, ready_s = 0, stop_s = 0, rss0 = 0, rss1 = 0;
    } fig;
    std::vector<erl::pid> pids;
    pids.reserve(static_cast<std::size_t>(count));
    auto child = [ready, done](erl::pid to) {
        return [to, ready, done](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            ctx.send(to, erl::term(ready));
            co_await ctx.async_receive();
            ctx.send(to, erl::term(done));
        };
    };
    // Spawns the N processes, each reporting to `to`; false if one fails.
    auto spawn_all = [&](const erl::pid& to) {
        auto body = child(to);
        for (long i = 0; i < count; ++i) {
            auto p = erl::spawn(node, body);
            if (!p) {
                std::cerr << "spawn failed: " << p.error().message() << "\n";
                return false;
            }
            pids.push_back(*p);
        }
        return true;
    };
    if (spawner == "thread") {
        auto parent = node.spawn_mailbox();
        if (!parent) return 1;
        fig.rss0 = rss_bytes();
        const auto t0 = clock_type::now();
        if (!spawn_all(parent->self())) return 1;
        fig.spawn_s = seconds_since(t0);
        for (long i = 0; i < count; ++i)
            if (!parent->receive(std::chrono::seconds(120))) {
                std::cerr << "a process did not report ready\n";
                return 1;
            }
        fig.ready_s = seconds_since(t0);
        fig.rss1 = rss_bytes();
        const auto t1 = clock_type::now();
        for (const auto& p : pids)
            parent->send(p, erl::term(stop));
        for (long i = 0; i < count; ++i)
            if (!parent->receive(std::chrono::seconds(120))) {
                std::cerr << "a process did not answer stop\n";
                return 1;
            }
        fig.stop_s = seconds_since(t1);
    } else {
        std::promise<const char*> finished;  // nullptr, or what went wrong
        auto f = finished.get_future();
        auto parent = [&](erl::process_context& ctx) -> boost::asio::awaitable<void> {
            fig.rss0 = rss_bytes();
            const auto t0 = clock_type::now();
            if (!spawn_all(ctx.self())) {
                finished.set_value("spawn failed");
                co_return;
            }
            fig.spawn_s = seconds_since(t0);
            for (long i = 0; i < count; ++i)
                if (!co_await ctx.async_receive(std::chrono::seconds(120))) {
                    finished.set_value("a process did not report ready");
                    co_return;
                }
            fig.ready_s = seconds_since(t0);
            fig.rss1 = rss_bytes();
            const auto t1 = clock_type::now();
            for (const auto& p : pids)
                ctx.send(p, erl::term(stop));
            for (long i = 0; i < count; ++i)
                if (!co_await ctx.async_receive(std::chrono::seconds(120))) {
                    finished.set_value("a process did not answer stop");
                    co_return;
                }
            fig.stop_s = seconds_since(t1);
            finished.set_value(nullptr);
        };
        if (!erl::spawn(node, parent)) return 1;
        if (const char* err = f.get()) {
            std::cerr << err << "\n";
            return 1;
        }
    }

    result("spawn_rate", double(count) / fig.spawn_s);
    result("ready_rate", double(count) / fig.ready_s);
    result("rss_per_process", (fig.rss1 - fig.rss0) / double(count));
    result("stop_rate", double(count) / fig.stop_s);
    node.stop();
    return 0;
}
