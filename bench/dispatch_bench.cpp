// erlcpp-bench-dispatch: the cost of erl::dispatch (scripts/bench-dispatch).
//
//   erlcpp-bench-dispatch --peers N1,N2,N3,N4 --cookie C --epmd-port P [--n N] [--reps R]
//                         [--callers K] [--only direct|dispatch]
//
// A C++ node calls erlang:node/0 on the peers (BEAM or erlcpp nodes alike):
//   direct      erl::rpc::call to N1, one caller
//   dispatch_1  erl::dispatch::dispatcher over [N1], round robin, one caller
//   tput_T      calls/s of a dispatcher over the first T peers (T = 1, 2, 4), K callers
//   async_tput_4  calls/s of dispatcher::async_call over the 4 peers from no thread of its
//               own: K calls kept in flight, each completion (on the node's I/O threads)
//               starting the next
// Round trips alternate direct and dispatched calls call by call (median of the per-call times
// of each repetition); every repetition runs each throughput figure once, in rotating order, so
// a load change on a shared machine hits all of them. Prints "result KEY MEDIAN MIN MAX" lines
// (median, lowest and highest over the repetitions). Timings are for reporting only.
// --only runs nothing but a short warm-up and N blocking calls of one kind to N1 from one
// caller, for instruction counts (scripts/bench-dispatch CALLGRIND=1 runs it under callgrind).
#include <erl/dispatch.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "bench_util.hpp"

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void usage(const std::string& m) {
    std::cerr << "erlcpp-bench-dispatch: " << m
              << "\nusage: erlcpp-bench-dispatch --peers N1,N2,N3,N4 --cookie C --epmd-port P "
                 "[--n N] [--reps R] [--callers K]\n";
    std::exit(2);
}

using clock_type = std::chrono::steady_clock;

// Runs `n` calls of `one` from `callers` threads; returns the seconds taken.
double timed(long n, int callers, const std::function<bool()>& one, std::atomic<long>& failures) {
    std::atomic<long> next{0};
    const auto t0 = clock_type::now();
    std::vector<std::thread> ts;
    for (int i = 0; i < callers; ++i)
        ts.emplace_back([&] {
            while (next.fetch_add(1) < n)
                if (!one()) ++failures;
        });
    for (auto& t : ts)
        t.join();
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Runs `n` async_calls on `x` with `window` of them in flight at a time; returns the seconds.
double timed_async(long n, int window, erl::dispatch::dispatcher& x, const erl::term& args,
                   std::atomic<long>& failures) {
    std::atomic<long> started{0}, finished{0};
    std::promise<void> all;
    std::function<void()> next = [&] {
        if (started.fetch_add(1) >= n) return;
        x.async_call(erl::atom("erlang"), erl::atom("node"), args, {.idempotent = true},
                     [&](erl::error_code ec, erl::dispatch::reply r) {
                         if (ec || !r.result.ok()) ++failures;
                         if (finished.fetch_add(1) + 1 == n)
                             all.set_value();
                         else
                             next();
                     });
    };
    const auto t0 = clock_type::now();
    for (int i = 0; i < window; ++i)
        next();
    all.get_future().wait();
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    std::string peers_arg, cookie = "bench";
    std::uint16_t epmd_port = 0;
    long n = 20000;
    int reps = 5, callers = 8;
    std::string only;
    namespace b = erl_bench;
    b::parse_options(
        argc, argv, 1,
        {b::text("--peers", peers_arg), b::text("--cookie", cookie),
         b::number("--epmd-port", epmd_port), b::number("--n", n, 1L), b::number("--reps", reps, 1),
         b::number("--callers", callers, 1), b::text("--only", only)},
        usage);
    std::vector<erl::atom> peers;
    {
        std::stringstream ss(peers_arg);
        std::string p;
        while (std::getline(ss, p, ','))
            if (!p.empty()) peers.emplace_back(p);
    }
    if (peers.size() < 4) usage("--peers needs four nodes");

    erl::node node(erl_bench::client_options("bench_dispatch", cookie, epmd_port, 2));
    if (auto ec = node.start()) usage("node start: " + ec.message());
    for (auto p : peers)
        if (auto ec = node.connect(p))
            usage("connect " + std::string(p.str()) + ": " + ec.message());

    const erl::term args = erl::list();
    namespace d = erl::dispatch;
    d::dispatcher one(node, d::targets::nodes({peers[0]}));
    d::dispatcher two(node, d::targets::nodes({peers[0], peers[1]}));
    d::dispatcher four(node, d::targets::nodes(peers));
    std::atomic<long> failures{0};
    auto direct = [&] { return erl::rpc::call(node, peers[0], "erlang", "node", args).ok(); };
    auto via = [&](d::dispatcher& x) {
        return [&x, &args] {
            return x.call("erlang", "node", args, {.idempotent = true}).result.ok();
        };
    };
    if (!only.empty()) {
        if (only != "direct" && only != "dispatch") usage("--only direct or --only dispatch");
        auto f = only == "direct" ? std::function<bool()>(direct) : via(one);
        timed(200, 1, direct, failures);
        timed(200, 1, via(one), failures);
        timed(n, 1, f, failures);
        node.stop();
        return failures.load() == 0 ? 0 : 1;
    }
    // Warm-up: connections, atom caches, the peers' code paths.
    timed(1000, 1, direct, failures);
    timed(1000, callers, via(four), failures);

    std::map<std::string, std::vector<double>> runs;
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[(v.size() - 1) / 2];
    };
    auto dispatch_one = via(one);
    for (int r = 0; r < reps; ++r) {
        // Round trips: direct and dispatched calls alternate call by call, each timed on its
        // own; the median per repetition shrugs off the load spikes of a shared machine.
        std::vector<double> d_us, x_us;
        for (long i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            if (!direct()) ++failures;
            auto t1 = clock_type::now();
            if (!dispatch_one()) ++failures;
            auto t2 = clock_type::now();
            d_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
            x_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
        }
        const double dm = median(d_us), xm = median(x_us);
        runs["direct_rtt_us"].push_back(dm);
        runs["dispatch_1_rtt_us"].push_back(xm);
        runs["overhead_us"].push_back(xm - dm);
        // Throughput: each figure once per repetition, the order rotating between them.
        std::vector<std::pair<std::string, std::function<bool()>>> tputs{{"direct_tput", direct},
                                                                         {"tput_1", via(one)},
                                                                         {"tput_2", via(two)},
                                                                         {"tput_4", via(four)}};
        tputs.emplace_back("async_tput_4", nullptr);
        std::rotate(tputs.begin(), tputs.begin() + (r % tputs.size()), tputs.end());
        for (auto& [key, f] : tputs)
            runs[key].push_back(n / (f ? timed(n, callers, f, failures)
                                       : timed_async(n, callers, four, args, failures)));
    }
    for (auto& [key, v] : runs) {
        std::sort(v.begin(), v.end());
        std::cout << "result " << key << " " << v[(v.size() - 1) / 2] << " " << v.front() << " "
                  << v.back() << "\n";
    }
    std::cout << "result failures " << failures.load() << " 0 0\n";
    node.stop();
    return failures.load() == 0 ? 0 : 1;
}
