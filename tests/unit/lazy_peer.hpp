// A distribution peer for the unit tests of a node's output: a blocking socket with a small
// receive buffer that reads only when told to, so the node's output to it piles up in the
// node's queue.
#pragma once

#include "node_test_support.hpp"
#include "proto/handshake.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace erl::test {

// A distribution peer on a blocking socket with a small receive buffer, which reads only when
// told to: the node's output to it piles up in the node's queue.
struct lazy_peer {
    int fd = -1;
    std::string name = erl::test::unique_node_name("lazy");
    std::uint64_t flags = 0;  // negotiated by handshake()

    explicit lazy_peer(std::uint16_t port) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        int small = 4096;
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    ~lazy_peer() {
        if (fd >= 0) ::close(fd);
    }
    // Reads what arrives within `timeout`: bytes read, 0 on EOF/error, -1 on timeout.
    long read_some(std::vector<std::uint8_t>& out, std::chrono::milliseconds timeout) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
        std::uint8_t buf[65536];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return 0;
        out.insert(out.end(), buf, buf + n);
        return n;
    }
    bool handshake(const std::string& node, const std::string& cookie) {
        erl::proto::handshake_config cfg;
        cfg.role = erl::proto::handshake_role::initiator;
        cfg.our_name = name;
        cfg.our_creation = 0x1234;
        cfg.cookie = cookie;
        cfg.peer_name = node;
        erl::proto::handshake hs(std::move(cfg));
        hs.start();
        std::vector<std::uint8_t> in;
        while (!hs.done() && !hs.failed()) {
            if (hs.has_output()) {
                auto out = hs.take_output();
                if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) !=
                    static_cast<ssize_t>(out.size()))
                    return false;
            }
            if (hs.done() || hs.failed()) break;
            in.clear();
            if (read_some(in, std::chrono::seconds(5)) <= 0) return false;
            std::size_t used = 0;
            hs.feed(in, used);
        }
        if (hs.has_output()) {
            auto out = hs.take_output();
            ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        }
        flags = hs.negotiated_flags();
        return hs.done();
    }
};

}  // namespace erl::test
