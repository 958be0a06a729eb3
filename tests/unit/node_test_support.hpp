// Helpers shared by the unit tests that start real erl::node instances on loopback.
#pragma once

#include <erl/node.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace erl::test {

// A TCP port of 127.0.0.1 free at the time of the call (for a private EPMD).
inline std::uint16_t free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
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
