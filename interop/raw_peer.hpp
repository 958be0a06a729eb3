// A distribution peer on a blocking socket for interop tests that need a misbehaving peer: it
// speaks the protocol through the project's own sans-io handshake, or just holds a socket.
#pragma once

#include "harness/harness.hpp"
#include "proto/handshake.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace erl::interop {

// A distribution peer on a blocking socket, driven by the project's sans-io handshake.
struct raw_peer {
    int fd = -1;
    std::uint64_t flags = 0;
    std::string name = erl::interop::unique_name("raw") + "@127.0.0.1";

    // rcvbuf: SO_RCVBUF set before connect() (0: the system's), so the window is small
    // from the first segment on rather than shrunk under data already in flight.
    explicit raw_peer(std::uint16_t port, int rcvbuf = 0) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd);  // the destructor does not run when the constructor throws
            throw std::runtime_error("raw_peer: connect failed");
        }
    }
    ~raw_peer() {
        if (fd >= 0) ::close(fd);
    }
    bool send_all(std::span<const std::uint8_t> b) {
        while (!b.empty()) {
            ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            b = b.subspan(static_cast<std::size_t>(n));
        }
        return true;
    }
    // Reads what is available within `timeout`: >0 bytes, 0 on EOF/error, -1 on timeout.
    int read_some(std::vector<std::uint8_t>& out, std::chrono::milliseconds timeout) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
        std::uint8_t buf[65536];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return 0;
        out.insert(out.end(), buf, buf + n);
        return static_cast<int>(n);
    }
    bool handshake(const std::string& peer_node, const std::string& cookie) {
        erl::proto::handshake_config cfg;
        cfg.role = erl::proto::handshake_role::initiator;
        cfg.our_name = name;
        cfg.our_creation = 0x1234;
        cfg.cookie = cookie;
        cfg.peer_name = peer_node;
        cfg.on_alive = [](std::string_view) { return true; };
        erl::proto::handshake hs(std::move(cfg));
        hs.start();
        std::vector<std::uint8_t> in;
        while (!hs.done() && !hs.failed()) {
            if (hs.has_output() && !send_all(hs.take_output())) return false;
            if (hs.done() || hs.failed()) break;
            in.clear();
            if (read_some(in, std::chrono::seconds(5)) <= 0) return false;
            std::size_t used = 0;
            hs.feed(in, used);
        }
        if (hs.has_output()) send_all(hs.take_output());
        flags = hs.negotiated_flags();
        return hs.done();
    }
    // True once the other side closes the connection (data it sends meanwhile is discarded).
    bool closed_within(std::chrono::milliseconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        std::vector<std::uint8_t> sink;
        while (std::chrono::steady_clock::now() < end) {
            sink.clear();
            if (read_some(sink, std::chrono::milliseconds(100)) == 0) return true;
        }
        return false;
    }
};

}  // namespace erl::interop
