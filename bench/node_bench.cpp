// erlcpp-bench-node: the C++ side of the distribution benchmark (scripts/bench-node).
//
//   erlcpp-bench-node to-beam --peer NODE --cookie C --epmd-port P [--count N] [--reps R]
//       An erl::node sends N small messages {msg, I} to {sink, NODE} (a BEAM node), then
//       {done, Self} and waits for {count, N}. Prints the median rate over R runs.
//   erlcpp-bench-node local --cookie C --epmd-port P [--count N] [--reps R] [--threads T]
//       Two erl::node instances in this process, connected over TCP through EPMD on port P:
//       one mailbox on node A sends N small messages to a mailbox on node B, whose thread
//       receives them. Prints the median rate and the process CPU time per message. Then the
//       same with coroutine processes at both ends, on the nodes' I/O threads (the sender
//       yields to its I/O thread every 256 sends): no program thread in the loop.
//   erlcpp-bench-node floor [--mb M] [--reps R]
//       The floors of a large-message echo on this machine, no Erlang involved: the median time
//       of one memcpy of M MiB (default 64), and of an M MiB round trip over a loopback TCP
//       connection (one thread sends M MiB, the other reads all of it and sends it back: each
//       direction is the kernel's copy in and copy out).
//
// Output: one "result KEY VALUE" line per figure (read by bench/node_driver.erl). Timings are
// for reporting only; nothing here passes or fails on them.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/term.hpp>

#include "bench_util.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
namespace asio = boost::asio;

struct args {
    std::string mode;
    std::string peer;
    std::string cookie = "bench";
    std::uint16_t epmd_port = 0;
    long count = 200'000;
    int reps = 3;
    unsigned threads = 1;
    long mb = 64;
};

[[noreturn]] void usage(const char* msg) {
    std::cerr << "erlcpp-bench-node: " << msg << "\n"
              << "usage: erlcpp-bench-node to-beam --peer NODE --cookie C --epmd-port P "
                 "[--count N] [--reps R]\n"
                 "       erlcpp-bench-node local --cookie C --epmd-port P [--count N] "
                 "[--reps R] [--threads T]\n"
                 "       erlcpp-bench-node floor [--mb M] [--reps R]\n";
    std::exit(2);
}

args parse_args(int argc, char** argv) {
    args a;
    if (argc < 2) usage("missing mode");
    a.mode = argv[1];
    namespace b = erl_bench;
    b::parse_options(
        argc, argv, 2,
        {b::text("--peer", a.peer), b::text("--cookie", a.cookie),
         b::number("--epmd-port", a.epmd_port), b::number("--count", a.count),
         b::number("--reps", a.reps), b::number("--threads", a.threads), b::number("--mb", a.mb)},
        [](const std::string& m) { usage(m.c_str()); });
    if (a.epmd_port == 0 && a.mode != "floor") usage("--epmd-port is required (private EPMD)");
    return a;
}

erl::node_options make_opts(const args& a, const std::string& name) {
    erl::node_options o = erl_bench::client_options(name, a.cookie, a.epmd_port, a.threads);
    o.listen_address = "127.0.0.1";
    return o;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto tv = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

void result(const char* key, double value) {
    std::printf("result %s %.6g\n", key, value);
    std::fflush(stdout);
}

// N messages to {sink, Peer}, then {done, Self}; true when {count, N} comes back.
bool sink_run(erl::mailbox& mb, erl::atom peer, long n) {
    const erl::atom sink("sink"), msg("msg"), done("done"), count("count");
    for (long i = 0; i < n; ++i)
        mb.send(sink, peer, erl::tuple(msg, i));
    mb.send(sink, peer, erl::tuple(done, mb.self_term()));
    auto reply = mb.receive(std::chrono::seconds(120));
    return reply && reply->is_tuple(2) && (*reply)[0].is_atom(count) && (*reply)[1].is_small() &&
           (*reply)[1].as_int64() == n;
}

int to_beam(const args& a) {
    if (a.peer.empty()) usage("to-beam needs --peer");
    erl::node node(make_opts(a, "bsend"));
    if (auto ec = node.start()) {
        std::cerr << "cannot start node: " << ec.message() << "\n";
        return 1;
    }
    erl::atom peer(a.peer);
    if (auto ec = node.connect(peer)) {
        std::cerr << "cannot connect to " << a.peer << ": " << ec.message() << "\n";
        return 1;
    }
    auto mb = node.spawn_mailbox();
    if (!mb || !sink_run(*mb, peer, 1000)) {  // warm-up
        std::cerr << "warm-up failed\n";
        return 1;
    }
    std::vector<double> rates;
    for (int r = 0; r < a.reps; ++r) {
        auto t0 = clock_type::now();
        if (!sink_run(*mb, peer, a.count)) {
            std::cerr << "sink run failed (wrong count or timeout)\n";
            return 1;
        }
        std::chrono::duration<double> dt = clock_type::now() - t0;
        rates.push_back(double(a.count) / dt.count());
    }
    result("erlcpp_to_beam_small_rate", median(rates));
    mb = {};
    node.stop();
    return 0;
}

int local(const args& a) {
    erl::node na(make_opts(a, "lsend")), nb(make_opts(a, "lrecv"));
    if (auto ec = na.start()) {
        std::cerr << "cannot start node A: " << ec.message() << "\n";
        return 1;
    }
    if (auto ec = nb.start()) {
        std::cerr << "cannot start node B: " << ec.message() << "\n";
        return 1;
    }
    if (auto ec = na.connect(nb.name())) {
        std::cerr << "cannot connect A to B: " << ec.message() << "\n";
        return 1;
    }
    auto tx = na.spawn_mailbox();
    auto rx = nb.spawn_mailbox();
    if (!tx || !rx) return 1;
    const erl::atom msg("msg");
    const erl::pid to = rx->self();

    // One run: the receiver counts n messages; the clock runs from the first send to the last
    // receive.
    auto run = [&](long n) -> std::pair<double, bool> {
        bool ok = true;
        clock_type::time_point t_end;
        std::thread receiver([&] {
            for (long i = 0; i < n; ++i) {
                auto m = rx->receive(std::chrono::seconds(60));
                if (!m) {
                    ok = false;
                    break;
                }
            }
            t_end = clock_type::now();
        });
        auto t0 = clock_type::now();
        for (long i = 0; i < n; ++i)
            tx->send(to, erl::tuple(msg, i));
        receiver.join();
        return {std::chrono::duration<double>(t_end - t0).count(), ok};
    };
    // The same with a coroutine process at each end.
    auto run_coroutines = [&](long n) -> std::pair<double, bool> {
        std::promise<std::optional<clock_type::time_point>> received;
        auto got = received.get_future();
        auto receiver = erl::spawn(nb, [&, n](erl::process_context& ctx) -> asio::awaitable<void> {
            for (long i = 0; i < n; ++i)
                if (!co_await ctx.async_receive(std::chrono::seconds(60))) {
                    received.set_value(std::nullopt);
                    co_return;
                }
            received.set_value(clock_type::now());
        });
        if (!receiver) return {0, false};
        const erl::pid rto = *receiver;
        auto t0 = clock_type::now();
        auto sender =
            erl::spawn(na, [&, n, rto](erl::process_context& ctx) -> asio::awaitable<void> {
                for (long i = 0; i < n; ++i) {
                    ctx.send(rto, erl::tuple(msg, i));
                    if (i % 256 == 255)
                        co_await asio::post(ctx.get_executor(), asio::use_awaitable);
                }
            });
        if (!sender) return {0, false};
        auto end = got.get();
        if (!end) return {0, false};
        return {std::chrono::duration<double>(*end - t0).count(), true};
    };
    // Median rate, best rate and CPU per message of a.reps runs of `one`: KEY_rate,
    // KEY_rate_best and CPU_KEY.
    auto measure = [&](const char* key, const char* cpu_key, auto&& one) {
        if (!one(1000).second) {  // warm-up
            std::cerr << key << ": warm-up failed\n";
            return false;
        }
        std::vector<double> rates;
        double cpu = 0;
        for (int r = 0; r < a.reps; ++r) {
            double c0 = cpu_seconds();
            auto [secs, ok] = one(a.count);
            cpu += cpu_seconds() - c0;
            if (!ok) {
                std::cerr << key << ": a run lost messages\n";
                return false;
            }
            rates.push_back(double(a.count) / secs);
        }
        const std::string k(key);
        result((k + "_rate").c_str(), median(rates));
        result((k + "_rate_best").c_str(), *std::max_element(rates.begin(), rates.end()));
        result(cpu_key, cpu * 1e9 / (double(a.count) * a.reps));
        return true;
    };
    if (!measure("erlcpp_to_erlcpp_small", "erlcpp_to_erlcpp_cpu_ns_per_msg", run)) return 1;
    if (!measure("erlcpp_to_erlcpp_coroutines_small", "erlcpp_to_erlcpp_coroutines_cpu_ns_per_msg",
                 run_coroutines))
        return 1;
    tx = {};
    rx = {};
    na.stop();
    nb.stop();
    return 0;
}

// Writes or reads all of buf on fd; false on an error or end of stream.
bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

bool read_all(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t k = ::recv(fd, p, n, 0);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

// A connected loopback TCP pair (client, server), or {-1, -1}.
std::pair<int, int> tcp_pair() {
    const int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(l, 1) != 0 || ::getsockname(l, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
        return {-1, -1};
    const int c = ::socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return {-1, -1};
    const int s = ::accept(l, nullptr, nullptr);
    ::close(l);
    const int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return {c, s};
}

int floor_mode(const args& a) {
    const std::size_t n = static_cast<std::size_t>(a.mb) << 20;
    std::vector<std::uint8_t> src(n), dst(n), back(n);
    for (std::size_t i = 0; i < n; ++i)
        src[i] = static_cast<std::uint8_t>(i * 131);
    std::memcpy(dst.data(), src.data(), n);  // touch every page before timing
    std::vector<double> copy_ms, echo_ms;
    auto [c, s] = tcp_pair();
    if (c < 0 || s < 0) {
        std::cerr << "cannot make a loopback TCP connection\n";
        return 1;
    }
    std::thread echo([&, s = s] {
        for (int r = 0; r <= a.reps; ++r)
            if (!read_all(s, dst.data(), n) || !write_all(s, dst.data(), n)) return;
    });
    for (int r = 0; r <= a.reps; ++r) {  // run 0 warms the connection up
        auto t0 = clock_type::now();
        std::memcpy(back.data(), src.data(), n);
        auto t1 = clock_type::now();
        std::thread reader([&, c = c] { read_all(c, back.data(), n); });
        if (!write_all(c, src.data(), n)) std::abort();
        reader.join();
        auto t2 = clock_type::now();
        if (r == 0) continue;
        copy_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        echo_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    echo.join();
    ::close(c);
    ::close(s);
    if (std::memcmp(back.data(), src.data(), n) != 0) std::abort();
    result("memcpy_large_ms", median(copy_ms));
    result("tcp_echo_large_ms", median(echo_ms));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    args a = parse_args(argc, argv);
    if (a.mode == "to-beam") return to_beam(a);
    if (a.mode == "local") return local(a);
    if (a.mode == "floor") return floor_mode(a);
    usage("mode must be to-beam, local or floor");
}
