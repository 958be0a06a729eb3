// erlcpp-demo: a C++ node for real Erlang/Elixir nodes to ping, message, link and monitor.
//
//   erlcpp-demo --name demo@127.0.0.1 --cookie secret [--epmd-port N] [--threads N] [--io-spin US]
//               [--epmd spawn|embedded|require] [--ticktime MS] [--hidden | --published]
//               [--tls-cert PEM --tls-key PEM [--tls-ca PEM] [--tls-verify-peer]]
//               [--allow NODE]... [--max-message-size BYTES] [--max-fragmented-total BYTES]
//               [--max-connections N] [--decode-offload-threshold BYTES]
//               [--code-path DIR]... [--metrics-port PORT [--metrics-address ADDR]]
//
// --metrics-port serves node::stats() in Prometheus' text format at http://ADDR:PORT/metrics
// (ADDR 127.0.0.1 unless --metrics-address; port 0 picks a free one, printed on stderr as
// "metrics http://ADDR:PORT/metrics"); see docs/observability.md.
// --code-path adds a directory of C++ modules (M.so) to the code server's path; demo_plugin is
// loaded at start if one of them has it (docs/hot-code.md).
// With --tls-cert the node speaks TLS distribution (erl -proto_dist inet_tls); see docs/tls.md.
// --tls-verify-peer verifies peers against --tls-ca both ways and requires a client
// certificate (verify_peer + fail_if_no_peer_cert). --allow restricts which nodes may connect
// (net_kernel:allow/1); repeat it for several nodes.
//
// Prints "ready <node>" on stdout once registered with EPMD and reachable, then serves until
// SIGINT/SIGTERM or until stdin is closed (when started with --stdin-lifetime).
//
// Registered processes:
//   echo  {Pid, T}      -> Pid ! T
//   sink  any message   -> counted;  {done, Pid} -> Pid ! {count, N}, and the count resets
// Both are coroutine processes (they run on the node's I/O threads, like Erlang processes on
// schedulers). echo_thread and sink_thread do the same on threads of their own (blocking
// mailbox::receive), so the two kinds of C++ process can be compared (scripts/bench-node).
#include <erl/metrics_endpoint.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>

// Feature services of the demo live in examples/demo/*.hpp (header-only, one per feature).
#include "demo/cluster.hpp"
#include "demo/code.hpp"
#include "demo/dispatch.hpp"
#include "demo/rpc.hpp"
#include "demo/supervision.hpp"

#include <unistd.h>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
    g_stop = true;
}

[[noreturn]] void usage(const char* msg) {
    std::cerr << "erlcpp-demo: " << msg << "\n"
              << "usage: erlcpp-demo --name NAME@HOST [--cookie C] [--epmd-port N] "
                 "[--threads N] [--io-spin US] [--epmd spawn|embedded|require] [--ticktime MS] "
                 "[--hidden|--published] [--tls-cert PEM --tls-key PEM [--tls-ca PEM] "
                 "[--tls-verify-peer]] [--allow NODE]... [--max-message-size BYTES] "
                 "[--max-fragmented-total BYTES] "
                 "[--max-connections N] [--decode-offload-threshold BYTES] "
                 "[--code-path DIR]... "
                 "[--metrics-port PORT [--metrics-address ADDR]] "
                 "[--sname] [--stdin-lifetime]\n";
    std::exit(2);
}

bool is_done(const erl::term& m) {
    static const erl::atom done("done");
    return m.is_tuple(2) && m[0].is_atom(done) && m[1].is_pid();
}
erl::term count_reply(std::int64_t n) {
    static const erl::atom count("count");
    return erl::tuple(count, n);
}

void echo_loop(erl::mailbox& mb) {
    while (auto m = mb.receive()) {
        if (m->is_tuple(2) && (*m)[0].is_pid()) mb.send((*m)[0].as_pid(), (*m)[1]);
    }
}

void sink_loop(erl::mailbox& mb) {
    std::int64_t n = 0;
    while (auto m = mb.receive()) {
        if (is_done(*m)) {
            mb.send((*m)[1].as_pid(), count_reply(n));
            n = 0;
        } else {
            ++n;
        }
    }
}

boost::asio::awaitable<void> echo_coroutine(erl::process_context& ctx) {
    while (auto m = co_await ctx.async_receive()) {
        if (m->is_tuple(2) && (*m)[0].is_pid()) ctx.send((*m)[0].as_pid(), (*m)[1]);
    }
}

boost::asio::awaitable<void> sink_coroutine(erl::process_context& ctx) {
    std::int64_t n = 0;
    while (auto m = co_await ctx.async_receive()) {
        if (is_done(*m)) {
            ctx.send((*m)[1].as_pid(), count_reply(n));
            n = 0;
        } else {
            ++n;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    erl::node_options opts;
    opts.name = "demo@127.0.0.1";
    bool stdin_lifetime = false;
    std::vector<std::string> code_path;
    std::optional<erl::metrics_endpoint_options> metrics;
    std::string metrics_address = "127.0.0.1";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--name" || a == "-name") {
            opts.name = value();
            opts.long_names = true;
        } else if (a == "--sname" || a == "-sname") {
            opts.name = value();
            opts.long_names = false;
        } else if (a == "--cookie" || a == "-setcookie") {
            opts.cookie = value();
        } else if (a == "--epmd-port") {
            opts.epmd_port = static_cast<std::uint16_t>(std::stoi(value()));
        } else if (a == "--threads") {
            opts.threads = static_cast<unsigned>(std::stoi(value()));
        } else if (a == "--io-spin") {
            opts.io_spin = std::chrono::microseconds(std::stoll(value()));
        } else if (a == "--ticktime") {
            opts.net_ticktime = std::chrono::milliseconds(std::stoll(value()));
        } else if (a == "--epmd") {
            std::string m = value();
            if (m == "spawn")
                opts.epmd = erl::epmd_mode::spawn_daemon;
            else if (m == "embedded")
                opts.epmd = erl::epmd_mode::in_process;
            else if (m == "require")
                opts.epmd = erl::epmd_mode::require_running;
            else
                usage("--epmd takes spawn, embedded or require");
        } else if (a == "--hidden") {
            opts.hidden = true;
        } else if (a == "--published") {
            opts.hidden = false;
        } else if (a == "--tls-cert") {
            opts.tls.enabled = true;
            opts.tls.cert_file = value();
        } else if (a == "--tls-key") {
            opts.tls.enabled = true;
            opts.tls.key_file = value();
        } else if (a == "--tls-ca") {
            opts.tls.ca_file = value();
        } else if (a == "--tls-verify-peer") {
            opts.tls.verify_peer = true;
            opts.tls.fail_if_no_peer_cert = true;
        } else if (a == "--allow") {
            opts.allow.push_back(value());
        } else if (a == "--max-message-size") {
            opts.max_message_size = static_cast<std::size_t>(std::stoull(value()));
        } else if (a == "--max-fragmented-total") {
            opts.max_fragmented_bytes_total = static_cast<std::size_t>(std::stoull(value()));
        } else if (a == "--max-connections") {
            opts.max_connections = static_cast<std::size_t>(std::stoull(value()));
        } else if (a == "--decode-offload-threshold") {
            opts.decode_offload_threshold = static_cast<std::size_t>(std::stoull(value()));
        } else if (a == "--stdin-lifetime") {
            stdin_lifetime = true;
        } else if (a == "--code-path") {
            code_path.push_back(value());
        } else if (a == "--metrics-port") {
            metrics.emplace();
            metrics->port = static_cast<std::uint16_t>(std::stoul(value()));
        } else if (a == "--metrics-address") {
            metrics_address = value();
        } else if (a == "-h" || a == "--help") {
            usage("help");
        } else {
            usage(("unknown option " + a).c_str());
        }
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    erl::node node(opts);
    if (auto ec = node.start()) {
        std::cerr << "erlcpp-demo: cannot start node " << opts.name << ": " << ec.message() << "\n";
        return 1;
    }
    auto named = [](const char* name) {
        erl::spawn_options o;
        o.name = erl::atom(name);
        return o;
    };
    if (!erl::spawn(node, erl::coroutine_body(echo_coroutine), named("echo")) ||
        !erl::spawn(node, erl::coroutine_body(sink_coroutine), named("sink")) ||
        !erl::spawn(node, erl::process_body(echo_loop), named("echo_thread")) ||
        !erl::spawn(node, erl::process_body(sink_loop), named("sink_thread"))) {
        std::cerr << "erlcpp-demo: cannot register services\n";
        return 1;
    }
    // The demo's services; they stop with node.stop().
    auto rpc_services = demo_rpc::start(node);
    auto demo_sup = demo_supervision::start(node);
    // global_name_server and the pg scope (a --hidden node keeps them to itself, as OTP).
    auto cluster_services = demo_cluster::start(node, *rpc_services->rpc);
    // The code server (code:load_file and friends) with --code-path; loads demo_plugin.
    auto code_server = demo_code::start(node, *rpc_services->rpc, code_path);
    // demo:dispatch/3: calls spread over nodes or a pg group (erl::dispatch).
    demo_dispatch::add_functions(node, *rpc_services->rpc);

    std::optional<erl::metrics_endpoint> metrics_server;
    if (metrics) {
        metrics->address = metrics_address;
        auto ep = erl::metrics_endpoint::start(
            node.executor(), *metrics, [&node] { return erl::to_prometheus_text(node.stats()); });
        if (!ep) {
            std::cerr << "erlcpp-demo: cannot serve metrics on " << metrics_address << ":"
                      << metrics->port << ": " << ep.error().message() << "\n";
            return 1;
        }
        metrics_server.emplace(std::move(*ep));
        std::cerr << "metrics http://" << metrics_address << ":" << metrics_server->port()
                  << metrics->path << std::endl;
    }

    std::cout << "ready " << node.name().str() << std::endl;

    if (stdin_lifetime) {
        std::thread([] {
            char buf[256];
            while (::read(0, buf, sizeof buf) > 0) {
            }
            g_stop = true;
        }).detach();
    }
    while (!g_stop)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));

    if (metrics_server) metrics_server->stop();  // before the executor it runs on stops
    node.stop();  // every process exits; the service threads see their mailboxes close
    erl::join_processes(node, std::chrono::seconds(5));
    return 0;
}
