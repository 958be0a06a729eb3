// erlcpp-bench-tls: TLS distribution throughput and round trip, erlcpp <-> BEAM against
// BEAM <-> BEAM, in the same run (scripts/bench-tls).
//
//   erlcpp-bench-tls [--count N] [--big-count N] [--echo N] [--reps R] [--threads T] [--tcp]
//
// What runs (all on 127.0.0.1, private EPMD, certificates made with the openssl CLI in a
// temporary directory that is removed afterwards):
//   - a target BEAM node and an erl::node in this process, both with TLS distribution
//     (certificate of a test CA, verify_peer both ways), each offering
//       sink  counts messages; {done, Pid} -> Pid ! {count, N}
//       echo  {Pid, T} -> Pid ! T
//   - a driver BEAM node (TLS too) that measures against each target:
//       small: N messages {msg, I} to {sink, Target}, then {done, self()}, wait {count, N}
//       big:   N messages {msg, I, <<1 KiB>>}
//       echo:  sequential {self(), {ping, I}} round trips: median and p99 (microseconds)
//     R runs, each measuring both targets (which goes first alternates); median and spread.
// --tcp runs the same with plain TCP distribution (for the cost of TLS itself).
// Prints a Markdown table with the ratio erlcpp/BEAM per figure. Timings are for reporting
// only; nothing passes or fails on them.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/term.hpp>

#include "bench_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct args {
    long count = 100'000;
    long big_count = 20'000;
    long echo = 5'000;
    int reps = 3;
    unsigned threads = 2;
    bool tcp = false;
};

[[noreturn]] void usage(const std::string& msg) {
    std::cerr << "erlcpp-bench-tls: " << msg << "\n"
              << "usage: erlcpp-bench-tls [--count N] [--big-count N] [--echo N] [--reps R] "
                 "[--threads T] [--tcp]\n";
    std::exit(2);
}

// A child process in its own process group, killed (SIGKILL) with its group when destroyed.
struct child {
    pid_t pid = -1;
    child(std::vector<std::string> argv, const std::vector<std::string>& extra_env,
          const std::string& out_file) {
        pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) {
            ::setpgid(0, 0);
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (auto& e : extra_env)
                ::putenv(const_cast<char*>(e.c_str()));
            if (!out_file.empty()) {
                std::FILE* f = std::freopen(out_file.c_str(), "w", stdout);
                (void)f;
            }
            std::FILE* n = std::freopen("/dev/null", "r", stdin);
            (void)n;
            std::vector<char*> av;
            for (auto& a : argv)
                av.push_back(a.data());
            av.push_back(nullptr);
            ::execvp(av[0], av.data());
            std::_Exit(127);
        }
        ::setpgid(pid, pid);
    }
    int wait_exit(std::chrono::seconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            int st = 0;
            if (::waitpid(pid, &st, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return -1;
    }
    ~child() {
        if (pid > 0) {
            ::kill(-pid, SIGKILL);
            int st = 0;
            ::waitpid(pid, &st, 0);
        }
    }
};

int run(const std::vector<std::string>& argv) {
    std::string cmd;
    for (auto& a : argv)
        cmd += "'" + a + "' ";
    cmd += ">/dev/null 2>&1";
    return std::system(cmd.c_str());
}

std::uint16_t free_port() {
    // Bind 127.0.0.1:0, read the port the kernel chose, close.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

struct pki {
    std::string dir;
    pki() {
        std::string t = (fs::temp_directory_path() / "erlcpp-bench-tls-XXXXXX").string();
        if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
        dir = t;
        std::ofstream(dir + "/ext.cnf") << "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n"
                                           "extendedKeyUsage=serverAuth,clientAuth\n"
                                           "basicConstraints=CA:FALSE\n"
                                           "keyUsage=digitalSignature\n";
        const std::string ec = "ec_paramgen_curve:prime256v1";
        bool ok =
            run({"openssl", "req",
                 "-x509",   "-newkey",
                 "ec",      "-pkeyopt",
                 ec,        "-nodes",
                 "-keyout", dir + "/ca.key",
                 "-out",    dir + "/ca.pem",
                 "-days",   "2",
                 "-subj",   "/CN=erlcpp-bench-ca",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"}) == 0 &&
            run({"openssl", "req", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout",
                 dir + "/node.key", "-out", dir + "/node.csr", "-subj", "/CN=127.0.0.1"}) == 0 &&
            run({"openssl", "x509", "-req", "-in", dir + "/node.csr", "-CA", dir + "/ca.pem",
                 "-CAkey", dir + "/ca.key", "-CAcreateserial", "-out", dir + "/node.pem", "-days",
                 "2", "-extfile", dir + "/ext.cnf"}) == 0;
        if (!ok) throw std::runtime_error("openssl could not make the test certificates");
        std::string common = "{certfile, \"" + dir + "/node.pem\"}, {keyfile, \"" + dir +
                             "/node.key\"}, {cacertfile, \"" + dir +
                             "/ca.pem\"}, {verify, verify_peer}";
        std::ofstream(dir + "/dist.conf")
            << "[{server, [" << common << ", {fail_if_no_peer_cert, true}]},\n {client, [" << common
            << "]}].\n";
    }
    ~pki() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

// BEAM code of the target node's services (same protocol as the C++ ones below).
const char* beam_services =
    "Sink = fun S(N) -> receive {done, P} -> P ! {count, N}, S(0); _ -> S(N + 1) end end, "
    "register(sink, spawn(fun() -> Sink(0) end)), "
    "Echo = fun E() -> receive {P, T} -> P ! T, E() end end, "
    "register(echo, spawn(Echo)), "
    "receive stop -> ok end";

// The driver: prints "result Label Metric Value" lines.
std::string driver_code(const std::vector<std::pair<std::string, std::string>>& targets,
                        const args& a) {
    std::ostringstream o;
    o << "Reps = " << a.reps << ", SmallN = " << a.count << ", BigN = " << a.big_count
      << ", EchoN = " << a.echo << ", Pay = binary:copy(<<7>>, 1024), "
      << "Med = fun(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)) end, "
      << "Tput = fun(Node, N, Msg) -> "
         "  T0 = erlang:monotonic_time(microsecond), "
         "  lists:foreach(fun(I) -> {sink, Node} ! Msg(I) end, lists:seq(1, N)), "
         "  {sink, Node} ! {done, self()}, "
         "  receive {count, N} -> ok after 120000 -> exit(sink_timeout) end, "
         "  N * 1000000 / max(1, erlang:monotonic_time(microsecond) - T0) end, "
      << "Rtt = fun(Node) -> "
         "  Ts = [begin T0 = erlang:monotonic_time(nanosecond), {echo, Node} ! {self(), {ping, "
         "I}}, receive {ping, I} -> ok after 10000 -> exit(echo_timeout) end, "
         "erlang:monotonic_time(nanosecond) - T0 end || I <- lists:seq(1, EchoN)], "
         "  S = lists:sort(Ts), {lists:nth((length(S) + 1) div 2, S) / 1000, "
         "lists:nth(max(1, (length(S) * 99) div 100), S) / 1000} end, "
      << "Run = fun(Label, Node) -> "
         "  Small = Tput(Node, SmallN, fun(I) -> {msg, I} end), "
         "  Big = Tput(Node, BigN, fun(I) -> {msg, I, Pay} end), "
         "  {P50, P99} = Rtt(Node), "
         "  io:format(\"result ~s small ~.1f~nresult ~s big ~.1f~nresult ~s rtt50 ~.1f~n"
         "result ~s rtt99 ~.1f~n\", [Label, Small, Label, Big, Label, P50, Label, P99]) end, "
      << "Targets = [";
    for (std::size_t i = 0; i < targets.size(); ++i)
        o << (i ? ", " : "") << "{\"" << targets[i].first << "\", '" << targets[i].second << "'}";
    // Every repetition measures every target, which goes first alternating, so a change of
    // load reaches both sides of a ratio.
    o << "], try "
         "  [begin pong = net_adm:ping(N), Tput(N, 1000, fun(I) -> {msg, I} end) end "
         "   || {_, N} <- Targets], "
         "  lists:foreach(fun(Rep) -> "
         "    Order = case Rep rem 2 of 1 -> Targets; 0 -> lists:reverse(Targets) end, "
         "    [Run(L, N) || {L, N} <- Order] end, lists:seq(1, Reps)), "
         "  halt(0) "
         "catch C:E:St -> io:format(\"driver failed: ~p:~p ~p~n\", [C, E, St]), halt(1) "
         "end";
    return o.str();
}

void serve_sink(erl::mailbox mb) {
    const erl::atom done("done"), count("count");
    std::int64_t n = 0;
    while (auto m = mb.receive()) {
        if (m->is_tuple(2) && (*m)[0].is_atom(done) && (*m)[1].is_pid()) {
            mb.send((*m)[1].as_pid(), erl::tuple(count, n));
            n = 0;
        } else {
            ++n;
        }
    }
}

void serve_echo(erl::mailbox mb) {
    while (auto m = mb.receive())
        if (m->is_tuple(2) && (*m)[0].is_pid()) mb.send((*m)[0].as_pid(), (*m)[1]);
}

}  // namespace

int main(int argc, char** argv) {
    args a;
    namespace b = erl_bench;
    b::parse_options(argc, argv, 1,
                     {b::number("--count", a.count), b::number("--big-count", a.big_count),
                      b::number("--echo", a.echo), b::number("--reps", a.reps),
                      b::number("--threads", a.threads), b::flag("--tcp", a.tcp)},
                     usage);
    ::signal(SIGPIPE, SIG_IGN);
    try {
        pki certs;
        const std::uint16_t epmd_port = free_port();
        const std::string cookie = "benchtls" + std::to_string(::getpid());
        const std::string tag = std::to_string(::getpid());
        child epmd({"epmd", "-port", std::to_string(epmd_port)}, {}, "");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));

        std::vector<std::string> env = {"ERL_EPMD_PORT=" + std::to_string(epmd_port)};
        std::vector<std::string> dist;
        if (!a.tcp)
            dist = {"-proto_dist", "inet_tls", "-ssl_dist_optfile", certs.dir + "/dist.conf"};
        auto erl = [&](const std::string& name, const std::string& eval) {
            std::vector<std::string> v = {"erl",   "-noshell", "-start_epmd", "false",
                                          "-name", name,       "-setcookie",  cookie};
            v.insert(v.end(), dist.begin(), dist.end());
            v.push_back("-eval");
            v.push_back(eval);
            return v;
        };
        const std::string beam_target = "tlsbeam" + tag + "@127.0.0.1";
        child target(erl(beam_target, beam_services), env, "");

        erl::node_options o;
        o.name = "tlscpp" + tag + "@127.0.0.1";
        o.cookie = cookie;
        o.epmd_port = epmd_port;
        o.epmd = erl::epmd_mode::require_running;
        o.threads = a.threads;
        if (!a.tcp) {
            o.tls.enabled = true;
            o.tls.cert_file = certs.dir + "/node.pem";
            o.tls.key_file = certs.dir + "/node.key";
            o.tls.ca_file = certs.dir + "/ca.pem";
            o.tls.verify_peer = true;
            o.tls.fail_if_no_peer_cert = true;
        }
        erl::node node(o);
        if (auto ec = node.start()) {
            std::cerr << "erlcpp-bench-tls: node start failed: " << ec.message() << "\n";
            return 1;
        }
        auto sink = node.spawn_mailbox(erl::atom("sink"));
        auto echo = node.spawn_mailbox(erl::atom("echo"));
        std::thread ts(serve_sink, *sink), te(serve_echo, *echo);
        sink = {};
        echo = {};

        // Wait for the BEAM target to register with EPMD.
        for (int i = 0; i < 100; ++i) {
            if (node.ping(erl::atom(beam_target), std::chrono::seconds(2))) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        node.disconnect(erl::atom(beam_target));

        const std::string out = certs.dir + "/driver.out";
        child driver(
            erl("tlsdrv" + tag + "@127.0.0.1",
                driver_code({{"erlcpp", std::string(node.name().str())}, {"beam", beam_target}},
                            a)),
            env, out);
        int rc = driver.wait_exit(std::chrono::seconds(1800));
        std::ifstream in(out);
        std::map<std::string, std::map<std::string, std::vector<double>>> r;
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream ls(line);
            std::string word, label, metric;
            double v = 0;
            if (ls >> word >> label >> metric >> v && word == "result")
                r[label][metric].push_back(v);
            else if (!line.empty())
                std::cerr << line << "\n";
        }
        node.stop();
        ts.join();
        te.join();
        if (rc != 0 || r.size() != 2) {
            std::cerr << "erlcpp-bench-tls: driver failed (exit " << rc << ")\n";
            return 1;
        }
        const char* mode = a.tcp ? "TCP" : "TLS";
        std::printf(
            "%s distribution, BEAM driver -> target; %ld small / %ld x 1 KiB messages, "
            "%ld echo round trips per run, %d runs (both targets in each, which goes first "
            "alternating), %u I/O threads; cells: median [lowest-highest run]\n\n",
            mode, a.count, a.big_count, a.echo, a.reps, a.threads);
        std::printf("| figure | erlcpp target | BEAM target | erlcpp/BEAM |\n|---|---|---|---|\n");
        auto of = [&](const char* label, const char* key) {
            return erl_bench::spread_of(r[label][key]);
        };
        auto row = [&](const char* name, const char* key, const char* fmt, const char* note) {
            const erl_bench::spread c = of("erlcpp", key), b = of("beam", key);
            char cc[96], bc[96];
            std::snprintf(cc, sizeof cc, fmt, c.median, c.lo, c.hi);
            std::snprintf(bc, sizeof bc, fmt, b.median, b.lo, b.hi);
            std::printf("| %s | %s | %s | %.2f%s |\n", name, cc, bc,
                        b.median > 0 ? c.median / b.median : 0.0, note);
        };
        row("small msgs/s", "small", "%.0f [%.0f-%.0f]", "");
        row("1 KiB msgs/s", "big", "%.0f [%.0f-%.0f]", "");
        row("echo RTT median us", "rtt50", "%.1f [%.1f-%.1f]", " (lower is better)");
        row("echo RTT p99 us", "rtt99", "%.1f [%.1f-%.1f]", " (lower is better)");
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "erlcpp-bench-tls: " << e.what() << "\n";
        return 1;
    }
}
