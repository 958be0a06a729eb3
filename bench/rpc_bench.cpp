// erlcpp-bench-rpc: the C++ client side of the rpc benchmark (scripts/bench-rpc).
//
//   erlcpp-bench-rpc --peer NODE --cookie C --epmd-port P [--what rpc|gen] [--n N]
//                    [--callers K] [--reps R]
//
// A C++ node calls NODE: `rpc` is erl::rpc::call(NODE, demo, echo, [x]); `gen` is
// erl::gen_server::call({counter, NODE}, get). With K callers, K threads each make N/K calls.
// Prints "result rtt_us X" (median over R runs of the mean round trip per call of one caller)
// and "result calls_per_s Y" (median throughput). Timings are for reporting only.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "bench_util.hpp"

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void usage(const std::string& m) {
    std::cerr << "erlcpp-bench-rpc: " << m
              << "\nusage: erlcpp-bench-rpc --peer NODE --cookie C --epmd-port P "
                 "[--what rpc|gen] [--n N] [--callers K] [--reps R]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string peer, cookie = "bench", what = "rpc";
    std::uint16_t epmd_port = 0;
    long n = 20000;
    int callers = 1, reps = 3;
    namespace b = erl_bench;
    b::parse_options(
        argc, argv, 1,
        {b::text("--peer", peer), b::text("--cookie", cookie), b::number("--epmd-port", epmd_port),
         b::text("--what", what), b::number("--n", n), b::number("--callers", callers, 1),
         b::number("--reps", reps, 1)},
        usage);
    if (peer.empty()) usage("--peer is required");
    erl::node node(erl_bench::client_options("bench_rpc", cookie, epmd_port, 2));
    if (auto ec = node.start()) usage("node start: " + ec.message());
    const erl::atom target(peer);
    if (auto ec = node.connect(target)) usage("connect: " + ec.message());

    const erl::term args = erl::list(erl::atom("x"));
    const erl::gen_server::dest counter(erl::atom("counter"), target);
    std::atomic<long> failures{0};
    auto one = [&] {
        if (what == "gen") {
            if (!erl::gen_server::call(node, counter, erl::atom("get"))) ++failures;
        } else {
            if (!erl::rpc::call(node, target, "demo", "echo", args)) ++failures;
        }
    };
    for (int i = 0; i < 200; ++i)
        one();  // warm-up
    std::vector<double> rtts, rates;
    for (int r = 0; r < reps; ++r) {
        const long per = n / callers;
        auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> ts;
        for (int c = 0; c < callers; ++c)
            ts.emplace_back([&] {
                for (long i = 0; i < per; ++i)
                    one();
            });
        for (auto& t : ts)
            t.join();
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rates.push_back(static_cast<double>(per * callers) / secs);
        rtts.push_back(secs * 1e6 / static_cast<double>(per));
    }
    std::sort(rtts.begin(), rtts.end());
    std::sort(rates.begin(), rates.end());
    std::cout << "result rtt_us " << rtts[rtts.size() / 2] << "\n"
              << "result calls_per_s " << rates[rates.size() / 2] << "\n"
              << "result failures " << failures.load() << std::endl;
    node.stop();
    return failures.load() ? 1 : 0;
}
