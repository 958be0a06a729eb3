// erlcpp-bench-rpc: the C++ client side of the rpc benchmark (scripts/bench-rpc).
//
//   erlcpp-bench-rpc --peers LABEL=NODE[,LABEL=NODE...] --cookie C --epmd-port P
//                    [--what rpc|gen] [--n N] [--callers K] [--reps R]
//
// One C++ node calls every NODE: `rpc` is erl::rpc::call(NODE, demo, echo, [x]); `gen` is
// erl::gen_server::call({counter, NODE}, get). With K callers, K threads each make N/K calls.
// The peers take turns in every one of the R runs, so a load change on the machine hits all of
// them alike. Prints, per run and peer, "run LABEL rtt_us RUN X" (mean round trip of one
// caller's call) and "run LABEL calls_per_s RUN Y". Timings are for reporting only.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "bench_util.hpp"

#include <unistd.h>
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
              << "\nusage: erlcpp-bench-rpc --peers LABEL=NODE[,LABEL=NODE...] --cookie C "
                 "--epmd-port P "
                 "[--what rpc|gen] [--n N] [--callers K] [--reps R]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string peers_arg, cookie = "bench", what = "rpc";
    std::uint16_t epmd_port = 0;
    long n = 20000;
    int callers = 1, reps = 3;
    namespace b = erl_bench;
    b::parse_options(
        argc, argv, 1,
        {b::text("--peers", peers_arg), b::text("--cookie", cookie),
         b::number("--epmd-port", epmd_port), b::text("--what", what), b::number("--n", n),
         b::number("--callers", callers, 1), b::number("--reps", reps, 1)},
        usage);
    struct peer {
        std::string label;
        erl::atom node;
        erl::gen_server::dest counter;
    };
    std::vector<peer> peers;
    for (std::size_t at = 0; at < peers_arg.size();) {
        auto comma = peers_arg.find(',', at);
        if (comma == std::string::npos) comma = peers_arg.size();
        const std::string one = peers_arg.substr(at, comma - at);
        const auto eq = one.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == one.size())
            usage("--peers wants LABEL=NODE, got " + one);
        const erl::atom target(one.substr(eq + 1));
        peers.push_back({one.substr(0, eq), target, {erl::atom("counter"), target}});
        at = comma + 1;
    }
    if (peers.empty()) usage("--peers is required");
    erl::node node(erl_bench::client_options("bench_rpc", cookie, epmd_port, 2));
    if (auto ec = node.start()) usage("node start: " + ec.message());

    const erl::term args = erl::list(erl::atom("x"));
    const erl::atom get("get");
    std::atomic<long> failures{0};
    auto one = [&](const peer& p) {
        if (what == "gen") {
            if (!erl::gen_server::call(node, p.counter, erl::term(get))) ++failures;
        } else {
            if (!erl::rpc::call(node, p.node, "demo", "echo", args)) ++failures;
        }
    };
    for (auto& p : peers) {
        if (auto ec = node.connect(p.node)) usage("connect " + p.label + ": " + ec.message());
        for (int i = 0; i < 200; ++i)
            one(p);  // warm-up
    }
    for (int r = 1; r <= reps; ++r) {
        for (auto& p : peers) {
            const long per = n / callers;
            auto t0 = std::chrono::steady_clock::now();
            std::vector<std::thread> ts;
            for (int c = 0; c < callers; ++c)
                ts.emplace_back([&] {
                    for (long i = 0; i < per; ++i)
                        one(p);
                });
            for (auto& t : ts)
                t.join();
            const double secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::cout << "run " << p.label << " rtt_us " << r << " "
                      << secs * 1e6 / static_cast<double>(per) << "\n"
                      << "run " << p.label << " calls_per_s " << r << " "
                      << static_cast<double>(per * callers) / secs << "\n";
        }
    }
    std::cout.flush();
    if (failures.load()) std::cerr << "erlcpp-bench-rpc: " << failures.load() << " calls failed\n";
    node.stop();
    return failures.load() ? 1 : 0;
}
