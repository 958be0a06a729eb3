// Helpers shared by the unit tests that start real erl::node instances on loopback.
#pragma once

#include <erl/node.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace erl::test {

// A TCP port of 127.0.0.1 free at the time of the call (for a private EPMD), drawn at random
// below the kernel's ephemeral range (ip_local_port_range): a port the kernel handed out
// there could, once closed, become the local port of another test's outgoing connection, and
// the later bind would fail with "address in use". Falls back to the kernel's choice.
inline std::uint16_t free_port() {
    namespace ip = boost::asio::ip;
    int low = 32768;
    if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> low;
    boost::asio::io_context io;
    const auto loopback = ip::make_address("127.0.0.1");
    if (low > 2048) {
        static std::mutex mu;
        static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
        std::uniform_int_distribution<int> pick(std::max(1024, low - 16384), low - 1);
        for (int i = 0; i < 200; ++i) {
            std::uint16_t port;
            {
                std::lock_guard lk(mu);
                port = static_cast<std::uint16_t>(pick(rng));
            }
            boost::system::error_code ec;
            ip::tcp::acceptor a(io);
            a.open(ip::tcp::v4(), ec);
            if (!ec) a.bind({loopback, port}, ec);
            if (!ec) return port;
        }
    }
    ip::tcp::acceptor a(io, {loopback, 0});
    return a.local_endpoint().port();
}

// "<prefix>_<pid>_<n>@127.0.0.1": unique per process and call, so tests can run in parallel.
inline std::string unique_node_name(const char* prefix) {
    static std::atomic<int> n{0};
    return std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++) +
           "@127.0.0.1";
}

// Options of a quiet loopback node with a unique name that embeds an EPMD on `epmd_port` (or
// uses the one another node of the test embedded there).
inline node_options local_node_options(const char* prefix, std::uint16_t epmd_port,
                                       std::string cookie = "unit_cookie") {
    node_options o;
    o.name = unique_node_name(prefix);
    o.cookie = std::move(cookie);
    o.epmd_port = epmd_port;
    o.epmd = epmd_mode::in_process;
    o.threads = 2;
    o.log = [](std::string_view) {};
    return o;
}

// Two quiet nodes of one test sharing an in-process EPMD on a free port.
struct node_pair {
    node_pair(const char* a_prefix, const char* b_prefix)
        : a(local_node_options(a_prefix, free_port())),
          b(local_node_options(b_prefix, a.options().epmd_port)) {}
    // Starts both nodes; false when either does not start.
    [[nodiscard]] bool start() { return !a.start() && !b.start(); }
    erl::node a, b;
};

// Options of a quiet test node: a unique name "<prefix>_...@127.0.0.1", the given cookie, an
// in-process EPMD on epmd_port (nodes of one test share it), 2 I/O threads, no log output.
inline erl::node_options local_node_options(const char* prefix, std::string cookie,
                                            std::uint16_t epmd_port) {
    return local_node_options(prefix, epmd_port, std::move(cookie));
}

// Waits until pred() holds or the deadline passes, for state another thread reaches and that
// gives no event of its own (a counter on an I/O thread, an object unmapped after the last
// call); true if it held. Re-checks every millisecond.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace erl::test
