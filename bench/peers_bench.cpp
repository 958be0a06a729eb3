// erlcpp-bench-peers: the driver of the peer-connection benchmark (scripts/bench-peers).
//
//   erlcpp-bench-peers run --target NODE --os-pid PID --peers K --cookie C --epmd-port P
//                      [--duration S | --count N] [--threads T] [--sndbuf BYTES] [--visible]
//       K raw distribution clients in this one OS process, each with a node name of its own,
//       connect one after the other to NODE (looked up in the EPMD on port P) with the
//       project's own handshake (src/proto/handshake.hpp), then:
//         1. idle: each sends one {Self, {ping, I}} to NODE's `echo` and waits for {ping, I};
//            the RSS of OS process PID is read then and before the first connection;
//         2. load: T driver threads (epoll, non-blocking sockets) write pre-encoded REG_SEND
//            frames of {msg, I} to NODE's `sink` on every connection as fast as the sockets
//            take them, for S seconds (default 3) or N messages in all;
//         3. count: one more echo round trip on every connection (so the target has taken
//            every earlier message of that connection off its socket and queued it for the
//            sink), then {done, Self} to `sink` on the first connection, whose {count, M}
//            answer is the number of messages the sink received; M must equal the number sent.
//       The sink's rate is M over the time from the first load write to that answer. The
//       driver's own figures say whether it or the target set the pace: its send rate, the
//       share of the load it spent waiting in epoll_wait for a socket with room (a driver
//       that never waits is the bottleneck) and its threads' CPU time.
//       --sndbuf sets each socket's SO_SNDBUF (default 64 KiB, so that the kernel holds little
//       beyond what the target is reading; 0 leaves it to the kernel's autotuning); --visible
//       makes the peers published nodes instead of hidden ones.
//       Output: one "result KEY VALUE" line per figure; progress on stderr.
//   erlcpp-bench-peers summary --results FILE --peers "1 10 100"
//       Reads "TARGET K KEY VALUE" lines (TARGET beam or erlcpp, one line per figure and run)
//       and prints, per K and figure, the median [lowest-highest] of each target and the
//       erlcpp/BEAM ratio of the medians (and, from the second K on, the idle RSS growth per
//       connection added since the previous K), then who set the pace for each K.
//
// The sink and echo semantics are those of bench/node_peer.erl and examples/demo.cpp (the
// targets of scripts/bench-node): `sink` counts every message, {done, Pid} -> Pid ! {count, N}
// and the count resets. Timings are for reporting only; nothing here passes or fails on them.
#include <erl/epmd.hpp>
#include <erl/term.hpp>

#include "bench_util.hpp"
#include "proto/dist_codec.hpp"
#include "proto/handshake.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
namespace proto = erl::proto;

[[noreturn]] void usage(const std::string& msg) {
    std::cerr << "erlcpp-bench-peers: " << msg << "\n"
              << "usage: erlcpp-bench-peers run --target NODE --os-pid PID --peers K --cookie C "
                 "--epmd-port P [--duration S | --count N] [--threads T] [--sndbuf BYTES] "
                 "[--visible]\n"
                 "       erlcpp-bench-peers summary --results FILE --peers \"1 10 100\"\n";
    std::exit(2);
}

[[noreturn]] void fail(const std::string& msg) {
    std::cerr << "erlcpp-bench-peers: " << msg << std::endl;
    std::exit(1);
}

double seconds(clock_type::duration d) {
    return std::chrono::duration<double>(d).count();
}

double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// Milliseconds left until `deadline` for poll/epoll_wait (0 once it passed).
int ms_until(clock_type::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
    return static_cast<int>(std::max<long long>(0, std::min<long long>(left.count(), 1000)));
}

// One peer: a distribution connection to the target with a node name of its own.
struct peer {
    int fd = -1;
    std::string name;
    erl::term self;  // the pid {name, 1, 0, creation} replies are sent to
    std::unique_ptr<proto::dist_reader> reader;
    std::unique_ptr<proto::dist_writer> writer;
    std::vector<proto::dist_message> inbox;
    std::uint64_t ticks_seen = 0;
    // The load: a block of whole frames written over and over.
    std::vector<std::uint8_t> block;
    std::size_t frame_size = 0;
    std::uint64_t written = 0;         // load bytes written
    std::uint64_t quota = UINT64_MAX;  // load bytes to write in all
    bool finished = false;
};

// Reads what the socket has (non-blocking) into the peer's reader; false on EOF or an error.
bool read_some(peer& p, std::string& why) {
    std::uint8_t buf[64 * 1024];
    for (;;) {
        const ssize_t n = ::recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            if (auto ec = p.reader->feed({buf, static_cast<std::size_t>(n)}, p.inbox)) {
                why = p.name + ": bad distribution data: " + ec.message();
                return false;
            }
            if (static_cast<std::size_t>(n) < sizeof buf) return true;
            continue;
        }
        if (n == 0) {
            why = p.name + ": the target closed the connection";
            return false;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        why = p.name + ": recv: " + std::strerror(errno);
        return false;
    }
}

// Writes all of `data` to a non-blocking socket, waiting for room; reads meanwhile so that the
// target is never blocked writing to us.
void write_all(peer& p, std::span<const std::uint8_t> data, clock_type::time_point deadline) {
    std::string why;
    while (!data.empty()) {
        const ssize_t n = ::send(p.fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data = data.subspan(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            fail(p.name + ": send: " + std::strerror(errno));
        if (clock_type::now() >= deadline) fail(p.name + ": timed out writing to the target");
        pollfd pf{p.fd, POLLOUT | POLLIN, 0};
        ::poll(&pf, 1, ms_until(deadline));
        if ((pf.revents & (POLLIN | POLLHUP | POLLERR)) && !read_some(p, why)) fail(why);
    }
}

// Answers the target's ticks (as every node does, so that an idle connection stays up).
void answer_ticks(peer& p, clock_type::time_point deadline) {
    while (p.ticks_seen < p.reader->ticks_received()) {
        ++p.ticks_seen;
        std::vector<std::uint8_t> tick;
        proto::dist_writer::append_tick(tick);
        write_all(p, tick, deadline);
    }
}

// Reads every connection until done() holds; fails at the deadline.
template <class Done>
void pump(std::vector<peer>& peers, Done&& done, clock_type::time_point deadline,
          const char* what) {
    std::vector<pollfd> fds(peers.size());
    std::string why;
    for (;;) {
        for (auto& p : peers)
            answer_ticks(p, deadline);
        if (done()) return;
        if (clock_type::now() >= deadline) fail(std::string("timed out waiting for ") + what);
        for (std::size_t i = 0; i < peers.size(); ++i)
            fds[i] = {peers[i].fd, POLLIN, 0};
        ::poll(fds.data(), fds.size(), ms_until(deadline));
        for (std::size_t i = 0; i < peers.size(); ++i)
            if (fds[i].revents && !read_some(peers[i], why)) fail(why);
    }
}

const erl::atom& atom_msg() {
    static const erl::atom a("msg");
    return a;
}

// Frames one REG_SEND of `payload` to the target's process registered as `to`.
std::vector<std::uint8_t> reg_send(peer& p, const char* to, const erl::term& payload) {
    std::vector<std::uint8_t> out;
    p.writer->append_reg_send(out, p.self, erl::atom(to), payload);
    return out;
}

// Connects and runs the distribution handshake (blocking, one at a time).
void connect_peer(peer& p, std::uint16_t port, const std::string& target, const std::string& cookie,
                  std::uint32_t creation, bool visible, int sndbuf) {
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    p.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p.fd < 0) fail(std::string("socket: ") + std::strerror(errno));
    if (sndbuf > 0) ::setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(p.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        fail(p.name + ": connect: " + std::strerror(errno));
    const int one = 1;
    ::setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    proto::handshake_config cfg;
    cfg.role = proto::handshake_role::initiator;
    cfg.our_name = p.name;
    cfg.our_creation = creation;
    cfg.cookie = cookie;
    // OTP 25's mandatory set, no atom cache and no fragments: frames are pass-through (112).
    cfg.our_flags = proto::dflag::mandatory_25 | (visible ? proto::dflag::published : 0);
    cfg.peer_name = target;
    cfg.on_alive = [](std::string_view) { return true; };
    proto::handshake hs(cfg);
    hs.start();
    std::uint8_t buf[4096];
    std::vector<std::uint8_t> rest;
    while (!hs.done()) {
        auto out = hs.take_output();
        for (std::size_t off = 0; off < out.size();) {
            const ssize_t n = ::send(p.fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
            if (n <= 0) fail(p.name + ": handshake send: " + std::strerror(errno));
            off += static_cast<std::size_t>(n);
        }
        if (hs.failed()) fail(p.name + ": handshake failed: " + hs.reason());
        pollfd pf{p.fd, POLLIN, 0};
        if (::poll(&pf, 1, ms_until(deadline)) <= 0 && clock_type::now() >= deadline)
            fail(p.name + ": handshake timed out");
        if (!(pf.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
        if (n <= 0) fail(p.name + ": the target closed the connection during the handshake");
        std::size_t used = 0;
        if (auto ec = hs.feed({buf, static_cast<std::size_t>(n)}, used))
            fail(p.name + ": handshake failed: " + hs.reason());
        if (hs.done()) rest.assign(buf + used, buf + n);
    }
    if (hs.has_output()) fail(p.name + ": handshake ended with output left to send");
    p.reader = std::make_unique<proto::dist_reader>(hs.negotiated_flags());
    p.writer = std::make_unique<proto::dist_writer>(hs.negotiated_flags());
    if (!rest.empty() && p.reader->feed(rest, p.inbox))
        fail(p.name + ": bad distribution data after the handshake");
    p.self = erl::term(erl::pid{erl::atom(p.name), 1, 0, creation});

    // The load block: ~64 KiB of frames {msg, I}, I from 256 on so that each is an INTEGER_EXT
    // and every frame of this peer has the same size.
    std::vector<std::uint8_t> one_frame = reg_send(p, "sink", erl::tuple(atom_msg(), 256));
    p.frame_size = one_frame.size();
    const std::size_t frames = std::max<std::size_t>(1, (64 * 1024) / p.frame_size);
    for (std::size_t i = 0; i < frames; ++i)
        p.writer->append_reg_send(p.block, p.self, erl::atom("sink"),
                                  erl::tuple(atom_msg(), static_cast<long>(256 + i)));
    if (p.block.size() != frames * p.frame_size) fail("load frames are not all the same size");
}

// Each peer sends {Self, {ping, I}} to `echo` (I its index); waits for every {ping, I}.
void echo_round(std::vector<peer>& peers) {
    const auto deadline = clock_type::now() + std::chrono::seconds(120);
    const erl::atom ping("ping");
    for (std::size_t i = 0; i < peers.size(); ++i) {
        peers[i].inbox.clear();
        auto f = reg_send(peers[i], "echo",
                          erl::tuple(peers[i].self, erl::tuple(ping, static_cast<long>(i))));
        write_all(peers[i], f, deadline);
    }
    pump(
        peers,
        [&] {
            for (std::size_t i = 0; i < peers.size(); ++i) {
                bool got = false;
                for (auto& m : peers[i].inbox)
                    got = got || (m.payload && m.payload->is_tuple(2) &&
                                  (*m.payload)[0].is_atom(ping) && (*m.payload)[1].is_small() &&
                                  (*m.payload)[1].as_int64() == static_cast<long>(i));
                if (!got) return false;
            }
            return true;
        },
        deadline, "the echo replies");
}

// {done, Self} to `sink` on the first connection; returns the sink's count.
std::int64_t sink_count(std::vector<peer>& peers) {
    const auto deadline = clock_type::now() + std::chrono::seconds(120);
    const erl::atom done("done"), count("count");
    peer& p = peers.front();
    p.inbox.clear();
    write_all(p, reg_send(p, "sink", erl::tuple(done, p.self)), deadline);
    std::int64_t n = -1;
    pump(
        peers,
        [&] {
            for (auto& m : p.inbox)
                if (m.payload && m.payload->is_tuple(2) && (*m.payload)[0].is_atom(count) &&
                    (*m.payload)[1].is_small())
                    n = (*m.payload)[1].as_int64();
            return n >= 0;
        },
        deadline, "the sink's count");
    return n;
}

struct load_stats {
    double wait_s = 0;  // in epoll_wait
    double cpu_s = 0;   // this thread's CPU time
    clock_type::time_point end;
    std::string error;
};

// Writes load frames to `mine` until each has written its quota (count mode) or, once
// `deadline` passed (duration mode), up to the end of the frame under way.
void load(std::vector<peer*> mine, bool by_time, clock_type::time_point deadline, load_stats& st) {
    const double cpu0 = thread_cpu_seconds();
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::size_t active = 0;
    for (peer* p : mine) {
        if (p->written >= p->quota) {
            p->finished = true;
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLOUT | EPOLLIN;
        ev.data.ptr = p;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev);
        ++active;
    }
    auto finish = [&](peer* p) {
        p->finished = true;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = p;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
        --active;
    };
    bool stopping = !by_time;
    std::vector<epoll_event> evs(std::max<std::size_t>(1, mine.size()));
    constexpr std::size_t budget = 256 * 1024;  // per socket and turn, for fairness
    auto progress = clock_type::now();          // the last write that took bytes
    while (active > 0 && st.error.empty()) {
        const auto w0 = clock_type::now();
        const int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()),
                                   stopping ? 1000 : ms_until(deadline));
        st.wait_s += seconds(clock_type::now() - w0);
        if (w0 - progress > std::chrono::seconds(60)) {
            st.error = "the target took no load bytes for 60 s";
            break;
        }
        for (int e = 0; e < n && st.error.empty(); ++e) {
            peer* p = static_cast<peer*>(evs[e].data.ptr);
            if ((evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !read_some(*p, st.error))
                break;
            if (!(evs[e].events & EPOLLOUT) || p->finished) continue;
            std::size_t left = budget;
            while (left > 0 && p->written < p->quota) {
                const std::size_t off = p->written % p->block.size();
                const std::size_t len = static_cast<std::size_t>(
                    std::min<std::uint64_t>({p->block.size() - off, p->quota - p->written, left}));
                const ssize_t k =
                    ::send(p->fd, p->block.data() + off, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && errno == EINTR) continue;
                if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (k <= 0) {
                    st.error = p->name + ": send: " + std::strerror(errno);
                    break;
                }
                p->written += static_cast<std::uint64_t>(k);
                left -= static_cast<std::size_t>(k);
            }
            if (left < budget) progress = clock_type::now();
            if (p->written >= p->quota) {
                finish(p);
                st.end = clock_type::now();
            }
        }
        if (!stopping && clock_type::now() >= deadline) {
            // Time is up: each connection completes the frame under way.
            stopping = true;
            for (peer* p : mine) {
                if (p->finished) continue;
                p->quota = (p->written + p->frame_size - 1) / p->frame_size * p->frame_size;
                if (p->written >= p->quota) {
                    finish(p);
                    st.end = clock_type::now();
                }
            }
        }
    }
    ::close(ep);
    st.cpu_s = thread_cpu_seconds() - cpu0;
}

struct run_args {
    std::string target, cookie;
    long os_pid = 0;
    long peers = 0;
    std::uint16_t epmd_port = 0;
    double duration = 3;
    long count = 0;
    unsigned threads = 1;
    int sndbuf = 64 * 1024;
    bool visible = false;
};

int run(const run_args& a) {
    const auto at = a.target.find('@');
    if (at == std::string::npos) usage("--target must be name@host");
    auto info = erl::epmd::port_please("127.0.0.1", a.epmd_port, a.target.substr(0, at));
    if (!info) fail("EPMD does not know " + a.target + ": " + info.error().message());
    auto rss = [&](const char* field) {
        const double v = erl_bench::proc_status_bytes(a.os_pid, field);
        if (v < 0) fail("cannot read /proc/" + std::to_string(a.os_pid) + "/status");
        return v;
    };

    // Before any connection.
    const double rss_base = rss("VmRSS");

    std::vector<peer> peers(static_cast<std::size_t>(a.peers));
    const std::string tag = std::to_string(::getpid());
    const auto t_setup = clock_type::now();
    for (std::size_t i = 0; i < peers.size(); ++i) {
        peers[i].name = "peer" + tag + "_" + std::to_string(i + 1) + "@127.0.0.1";
        connect_peer(peers[i], info->port, a.target, a.cookie,
                     static_cast<std::uint32_t>(::getpid()) + static_cast<std::uint32_t>(i),
                     a.visible, a.sndbuf);
    }
    echo_round(peers);
    const double setup_s = seconds(clock_type::now() - t_setup);

    // K connections established, each having carried one round trip, now idle.
    const double rss_idle = rss("VmRSS");
    if (sink_count(peers) != 0) fail("the sink had counted messages before the load");

    // The load. In count mode the N messages are split evenly over the connections.
    const bool by_time = a.count <= 0;
    for (std::size_t i = 0; i < peers.size(); ++i) {
        auto& p = peers[i];
        if (!by_time) {
            const long n = a.count / a.peers + (static_cast<long>(i) < a.count % a.peers ? 1 : 0);
            p.quota = static_cast<std::uint64_t>(n) * p.frame_size;
        }
    }
    const unsigned nthreads =
        static_cast<unsigned>(std::max<long>(1, std::min<long>(a.threads, a.peers)));
    std::vector<std::vector<peer*>> split(nthreads);
    for (std::size_t i = 0; i < peers.size(); ++i)
        split[i % nthreads].push_back(&peers[i]);
    std::vector<load_stats> stats(nthreads);
    const auto t0 = clock_type::now();
    const auto deadline = t0 + std::chrono::duration_cast<clock_type::duration>(
                                   std::chrono::duration<double>(by_time ? a.duration : 0.0));
    {
        std::vector<std::jthread> ts;
        for (unsigned t = 0; t < nthreads; ++t)
            ts.emplace_back([&, t] { load(split[t], by_time, deadline, stats[t]); });
    }
    clock_type::time_point t_sent = t0;
    double wait_s = 0, cpu_s = 0;
    for (auto& s : stats) {
        if (!s.error.empty()) fail(s.error);
        t_sent = std::max(t_sent, s.end);
        wait_s += s.wait_s;
        cpu_s += s.cpu_s;
    }
    std::uint64_t sent = 0;
    for (auto& p : peers)
        sent += p.written / p.frame_size;

    // Every connection's messages are with the sink once its echo answered; then the count.
    echo_round(peers);
    const std::int64_t counted = sink_count(peers);
    const auto t_end = clock_type::now();
    const double rss_loaded = rss("VmRSS");
    const double rss_peak = rss("VmHWM");
    if (counted != static_cast<std::int64_t>(sent))
        fail("the sink counted " + std::to_string(counted) + " messages, " + std::to_string(sent) +
             " were sent");

    const double send_s = seconds(t_sent - t0);
    const double total_s = seconds(t_end - t0);
    std::fprintf(stderr,
                 "  %ld peers: %.0f ms to connect all and echo once; %llu messages (frames of "
                 "%zu bytes) in %.2f s of sending, counted %.2f s after the first\n",
                 a.peers, setup_s * 1e3, static_cast<unsigned long long>(sent),
                 peers.front().frame_size, send_s, total_s);
    const double mib = 1024.0 * 1024.0;
    using erl_bench::result;
    result("recv_msgs_per_s", double(counted) / total_s);
    result("sent_msgs_per_s", double(sent) / send_s);
    result("driver_wait_pct", 100.0 * wait_s / (send_s * nthreads));
    result("driver_cpu_pct", 100.0 * cpu_s / (send_s * nthreads));
    result("rss_base_mib", rss_base / mib);
    result("rss_idle_mib", rss_idle / mib);
    result("idle_bytes_per_peer", (rss_idle - rss_base) / double(a.peers));
    result("rss_loaded_mib", rss_loaded / mib);
    result("rss_peak_mib", rss_peak / mib);
    for (auto& p : peers)
        ::close(p.fd);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// summary

std::string cell(const std::vector<double>& v) {
    if (v.empty()) return "-";
    const auto s = erl_bench::spread_of(v);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.3g [%.3g-%.3g]", s.median, s.lo, s.hi);
    return buf;
}

int summary(const std::string& file, const std::string& peer_list) {
    std::ifstream in(file);
    if (!in) fail("cannot read " + file);
    // target -> K -> key -> values
    std::map<std::string, std::map<long, std::map<std::string, std::vector<double>>>> r;
    std::string t, key;
    long k = 0;
    double v = 0;
    while (in >> t >> k >> key >> v)
        r[t][k][key].push_back(v);
    std::vector<long> ks;
    std::istringstream pl(peer_list);
    while (pl >> k)
        ks.push_back(k);
    const char* keys[] = {"recv_msgs_per_s",     "sent_msgs_per_s", "driver_wait_pct",
                          "driver_cpu_pct",      "rss_base_mib",    "rss_idle_mib",
                          "idle_bytes_per_peer", "rss_loaded_mib",  "rss_peak_mib"};
    auto median = [&](const std::string& target, long n, const std::string& key) {
        const auto& vs = r[target][n][key];
        return vs.empty() ? NAN : erl_bench::spread_of(vs).median;
    };
    std::printf(
        "cells: median [lowest-highest]; ratio = erlcpp / BEAM (msgs/s: higher is better; "
        "MiB and bytes: lower is better)\n");
    std::printf("%-6s %-26s %30s %30s %8s\n", "peers", "figure", "BEAM", "erlcpp", "ratio");
    auto row = [](long n, const char* figure, const std::vector<double>& b,
                  const std::vector<double>& e) {
        char ratio[32] = "-";
        if (!b.empty() && !e.empty() && erl_bench::spread_of(b).median != 0)
            std::snprintf(ratio, sizeof ratio, "%.2fx",
                          erl_bench::spread_of(e).median / erl_bench::spread_of(b).median);
        std::printf("%-6ld %-26s %30s %30s %8s\n", n, figure, cell(b).c_str(), cell(e).c_str(),
                    ratio);
    };
    // The growth from the previous K's idle RSS to this one's, per added connection: what one
    // more connection costs once the first one's one-time costs are paid. Repetition r of one K
    // is paired with repetition r of the other (the results keep the order of the runs).
    auto added = [&](const std::string& target, long from, long to) {
        const auto& a = r[target][from]["idle_bytes_per_peer"];
        const auto& b = r[target][to]["idle_bytes_per_peer"];
        std::vector<double> out;
        for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
            out.push_back((b[i] * double(to) - a[i] * double(from)) / double(to - from));
        return out;
    };
    for (std::size_t j = 0; j < ks.size(); ++j)
        for (const char* key : keys) {
            const long n = ks[j];
            row(n, key, r["beam"][n][key], r["erlcpp"][n][key]);
            if (key == std::string("idle_bytes_per_peer") && j > 0 && ks[j - 1] < n)
                row(n, "idle_bytes_per_added_peer", added("beam", ks[j - 1], n),
                    added("erlcpp", ks[j - 1], n));
        }
    // A driver that hardly ever waited for a socket with room wrote as fast as it could: then
    // it, not the target, set the pace.
    std::printf(
        "who set the pace (the driver's median wait for room in the sockets: under 10%% "
        "of the load = the driver was the bottleneck):\n");
    for (long n : ks) {
        std::string line = "  " + std::to_string(n) + " peers:";
        for (const auto& [label, target] : {std::pair{"BEAM", "beam"}, {"erlcpp", "erlcpp"}}) {
            const double w = median(target, n, "driver_wait_pct");
            char part[96];
            std::snprintf(part, sizeof part, "%s %s (driver waited %.0f%%)", label,
                          !std::isfinite(w) ? "?"
                          : w < 10          ? "driver-bound"
                                            : "target-bound",
                          w);
            line += (line.back() == ':' ? " " : ", ") + std::string(part);
        }
        std::printf("%s\n", line.c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage("missing mode");
    const std::string mode = argv[1];
    namespace b = erl_bench;
    auto bad = [](const std::string& m) { usage(m); };
    if (mode == "summary") {
        std::string file, peers;
        b::parse_options(argc, argv, 2, {b::text("--results", file), b::text("--peers", peers)},
                         bad);
        if (file.empty() || peers.empty()) usage("summary needs --results and --peers");
        return summary(file, peers);
    }
    if (mode != "run") usage("mode must be run or summary");
    run_args a;
    std::string duration;
    b::parse_options(argc, argv, 2,
                     {b::text("--target", a.target), b::text("--cookie", a.cookie),
                      b::number("--os-pid", a.os_pid, 1L), b::number("--peers", a.peers, 1L),
                      b::number("--epmd-port", a.epmd_port), b::text("--duration", duration),
                      b::number("--count", a.count), b::number("--threads", a.threads, 1u),
                      b::number("--sndbuf", a.sndbuf, 0), b::flag("--visible", a.visible)},
                     bad);
    if (!duration.empty()) {
        char* end = nullptr;
        a.duration = std::strtod(duration.c_str(), &end);
        if (end == duration.c_str() || *end != '\0' || !(a.duration > 0))
            usage("bad value for --duration: " + duration);
    }
    if (a.target.empty() || a.os_pid <= 0 || a.peers <= 0 || a.epmd_port == 0)
        usage("run needs --target, --os-pid, --peers and --epmd-port");
    return run(a);
}
