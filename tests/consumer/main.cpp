// A program outside the erlcpp tree that uses an erlcpp found by find_package, pkg-config,
// add_subdirectory or FetchContent (tests/consumer/run.sh builds it each way).
//   erlcpp-consumer PEER COOKIE EPMD_PORT
// Joins the cluster through the EPMD on EPMD_PORT, pings PEER (a real erl node), and checks
// from the BEAM side that PEER now lists this node in nodes(). Exit status 0 only if all holds.
#include <erl/node.hpp>
#include <erl/rpc.hpp>
#include <erl/version.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: erlcpp-consumer PEER COOKIE EPMD_PORT\n";
        return 2;
    }
    erl::node_options o;
    o.name = "consumer_" + std::to_string(::getpid()) + "@127.0.0.1";
    o.cookie = argv[2];
    o.epmd_port = static_cast<std::uint16_t>(std::atoi(argv[3]));
    o.epmd = erl::epmd_mode::require_running;
    o.listen_address = "127.0.0.1";
    erl::node node(o);
    if (auto ec = node.start()) {
        std::cerr << "erlcpp-consumer: start failed: " << ec.message() << "\n";
        return 1;
    }
    const erl::atom peer(argv[1]);
    if (!node.ping(peer)) {
        std::cerr << "erlcpp-consumer: no pong from " << argv[1] << "\n";
        return 1;
    }
    auto nodes = erl::rpc::call(node, peer, "erlang", "nodes", erl::make_list({}));
    if (!nodes) {
        std::cerr << "erlcpp-consumer: erlang:nodes() on the peer failed: " << nodes.to_rpc_term()
                  << "\n";
        return 1;
    }
    const auto seen = nodes.value().as_list().elements;
    const erl::term self{node.name()};
    if (std::find(seen.begin(), seen.end(), self) == seen.end()) {
        std::cerr << "erlcpp-consumer: " << argv[1] << " does not list " << self
                  << " in nodes(): " << nodes.value() << "\n";
        return 1;
    }
    std::cout << "erlcpp " << erl::version_string << ": pong from " << argv[1] << ", which lists "
              << self << " in nodes()\n";
    return 0;
}
