// Helpers shared by the unit tests that start real erl::node instances on loopback.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>

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

}  // namespace erl::test
