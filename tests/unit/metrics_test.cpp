// node_stats in Prometheus' text format, and the HTTP endpoint scraped by a real client (curl).
#include <erl/metrics_endpoint.hpp>
#include <erl/stats.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

erl::node_stats sample_stats() {
    erl::node_stats s;
    s.node = erl::atom("cpp@127.0.0.1");
    s.processes = 12;
    s.atoms = 3456;
    s.network_atoms = 56;
    s.network_atoms_freed = 2000000;
    s.atom_limit = 1048576;
    s.memory = {{"terms", 4096}, {"connection_buffers", 131072}};
    s.rpc_calls_served = 10;
    s.rpc_calls_failed = 2;
    s.rpc_call_duration.upper_bounds = {std::chrono::duration<double>(0.001),
                                        std::chrono::duration<double>(0.01)};
    s.rpc_call_duration.counts = {7, 2};
    s.rpc_call_duration.overflow = 1;
    s.rpc_call_duration.sum = std::chrono::duration<double>(0.25);
    s.handshake_failures = {{"bad_cookie", 3}};
    erl::connection_stats a;
    a.peer = erl::atom("beam@127.0.0.1");
    a.up = true;
    a.bytes_received = 1000;
    a.messages_received = 42;
    a.last_activity = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    erl::connection_stats b;
    b.peer = erl::atom("odd\"name\\x@h");
    b.messages_sent = 5;
    s.connections = {a, b};
    return s;
}

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

// Each of lines stands as a whole line of text.
void expect_lines(const std::string& text, std::initializer_list<std::string> lines) {
    for (const auto& line : lines)
        EXPECT_TRUE(has_line(text, line)) << "missing line: " << line;
}

TEST(PrometheusText, counters_gauges_and_labels) {
    const auto text = erl::to_prometheus_text(sample_stats());
    expect_lines(
        text, {
                  "# TYPE erlcpp_dist_messages_received_total counter",
                  "erlcpp_dist_messages_received_total{peer=\"beam@127.0.0.1\"} 42",
                  "erlcpp_dist_bytes_received_total{peer=\"beam@127.0.0.1\"} 1000",
                  "erlcpp_dist_up{peer=\"beam@127.0.0.1\"} 1",
                  // Label values escape backslash and double quote.
                  "erlcpp_dist_messages_sent_total{peer=\"odd\\\"name\\\\x@h\"} 5",
                  "erlcpp_dist_last_activity_timestamp_seconds{peer=\"beam@127.0.0.1\"} 1700000000",
                  "erlcpp_processes 12",
                  "erlcpp_atoms 3456",
                  "erlcpp_network_atoms 56",
                  "# TYPE erlcpp_network_atoms_freed_total counter",
                  "erlcpp_network_atoms_freed_total 2000000",
                  "erlcpp_memory_bytes{kind=\"connection_buffers\"} 131072",
                  "erlcpp_handshake_failures_total{reason=\"bad_cookie\"} 3",
                  "erlcpp_node_info{node=\"cpp@127.0.0.1\"} 1",
                  "erlcpp_dist_connections 2",
              });
    // Every sample line belongs to a family announced by # TYPE before it.
    std::size_t pos = 0;
    std::string last_family;
    while (pos < text.size()) {
        const auto end = text.find('\n', pos);
        ASSERT_NE(end, std::string::npos) << "text must end with a newline";
        const std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.rfind("# TYPE ", 0) == 0) {
            last_family = line.substr(7, line.find(' ', 7) - 7);
        } else if (line.rfind('#', 0) != 0) {
            ASSERT_FALSE(last_family.empty()) << line;
            EXPECT_EQ(line.rfind(last_family, 0), 0u) << line << " outside " << last_family;
        }
    }
}

TEST(PrometheusText, histogram_is_cumulative_with_inf_sum_and_count) {
    const auto text = erl::to_prometheus_text(sample_stats());
    expect_lines(text, {
                           "# TYPE erlcpp_rpc_call_duration_seconds histogram",
                           "erlcpp_rpc_call_duration_seconds_bucket{le=\"0.001\"} 7",
                           "erlcpp_rpc_call_duration_seconds_bucket{le=\"0.01\"} 9",
                           "erlcpp_rpc_call_duration_seconds_bucket{le=\"+Inf\"} 10",
                           "erlcpp_rpc_call_duration_seconds_sum 0.25",
                           "erlcpp_rpc_call_duration_seconds_count 10",
                           "erlcpp_rpc_calls_served_total 10",
                           "erlcpp_rpc_calls_failed_total 2",
                       });
}

// Runs an io_context on one thread for the endpoint. Declared before the endpoint, so the
// endpoint is stopped first and run() returns once its coroutines have ended.
struct io_thread {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{
        io.get_executor()};
    std::thread t{[this] { io.run(); }};
    ~io_thread() {
        guard.reset();
        t.join();
    }
};

// Output of a shell command (curl), and its exit status.
std::string run(const std::string& cmd, int* status = nullptr) {
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f))
        out.append(buf, n);
    const int st = ::pclose(f);
    if (status) *status = st;
    return out;
}

std::string url(std::uint16_t port, const char* path = "/metrics") {
    return "http://127.0.0.1:" + std::to_string(port) + path;
}

// An endpoint on `io` whose render answers "x 1\n", counting its calls in `renders` if given.
erl::result<erl::metrics_endpoint> x1_endpoint(io_thread& io, std::atomic<int>* renders = nullptr,
                                               erl::metrics_endpoint_options o = {}) {
    return erl::metrics_endpoint::start(io.io.get_executor(), std::move(o), [renders] {
        if (renders) ++*renders;
        return std::string("x 1\n");
    });
}

TEST(MetricsEndpoint, curl_scrapes_metrics) {
    io_thread io;
    std::atomic<int> renders{0};
    auto ep = erl::metrics_endpoint::start(io.io.get_executor(), {}, [&] {
        ++renders;
        return erl::to_prometheus_text(sample_stats());
    });
    ASSERT_TRUE(ep.has_value()) << ep.error().message();
    ASSERT_NE(ep->port(), 0);
    int status = -1;
    const auto out = run("curl -s -i " + url(ep->port()), &status);
    ASSERT_EQ(status, 0) << out;
    EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << out;
    EXPECT_NE(out.find("\nerlcpp_dist_messages_received_total{peer=\"beam@127.0.0.1\"} 42\n"),
              std::string::npos)
        << out;
    EXPECT_EQ(renders.load(), 1);

    // Two scrapes over one kept-alive connection: curl reuses it for the second URL.
    const auto two = run("curl -s -o /dev/null -o /dev/null -w '%{http_code}\\n' " +
                         url(ep->port()) + " " + url(ep->port()));
    EXPECT_EQ(two, "200\n200\n");
    EXPECT_EQ(renders.load(), 3);
}

TEST(MetricsEndpoint, other_paths_and_methods) {
    io_thread io;
    std::atomic<int> renders{0};
    auto ep = x1_endpoint(io, &renders);
    ASSERT_TRUE(ep.has_value());
    EXPECT_EQ(run("curl -s -o /dev/null -w '%{http_code}' " + url(ep->port(), "/other")), "404");
    EXPECT_EQ(run("curl -s -o /dev/null -w '%{http_code}' -X POST " + url(ep->port())), "405");
    EXPECT_EQ(run("curl -s -o /dev/null -w '%{http_code}' " + url(ep->port(), "/metrics?x=1")),
              "200");
    const auto head = run("curl -s -I " + url(ep->port()));
    EXPECT_NE(head.find("Content-Length: 4"), std::string::npos) << head;
    EXPECT_EQ(renders.load(), 2);  // the GET with a query, and HEAD
}

TEST(MetricsEndpoint, malformed_request_gets_400_and_others_are_still_served) {
    io_thread io;
    auto ep = x1_endpoint(io);
    ASSERT_TRUE(ep.has_value());
    boost::asio::io_context cio;
    boost::asio::ip::tcp::socket s(cio);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), ep->port()});
    boost::asio::write(s, boost::asio::buffer(std::string("NOT HTTP AT ALL\r\n\r\n")));
    std::string reply;
    boost::system::error_code ec;
    char buf[512];
    for (;;) {
        const auto n = s.read_some(boost::asio::buffer(buf), ec);
        reply.append(buf, n);
        if (ec) break;
    }
    EXPECT_EQ(reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << reply;
    EXPECT_EQ(ec, boost::asio::error::eof);  // and the server closed the connection
    EXPECT_EQ(run("curl -s " + url(ep->port())), "x 1\n");
}

TEST(MetricsEndpoint, connections_beyond_the_bound_are_closed) {
    io_thread io;
    erl::metrics_endpoint_options o;
    o.max_connections = 2;
    o.request_timeout = 60s;
    auto ep = x1_endpoint(io, nullptr, o);
    ASSERT_TRUE(ep.has_value());
    boost::asio::io_context cio;
    const boost::asio::ip::tcp::endpoint at(boost::asio::ip::make_address("127.0.0.1"), ep->port());
    boost::asio::ip::tcp::socket idle1(cio), idle2(cio);
    idle1.connect(at);
    idle2.connect(at);
    // An idle client holds its slot: the third connection is closed on accept (one accept loop
    // takes connections in the order they were made, so the third always finds both held).
    boost::asio::ip::tcp::socket third(cio);
    third.connect(at);
    char c;
    boost::system::error_code ec;
    third.read_some(boost::asio::buffer(&c, 1), ec);
    EXPECT_TRUE(ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset)
        << ec.message();
    // Once an idle client leaves, scrapes are served again.
    idle1.close();
    EXPECT_TRUE(
        erl::test::wait_until([&] { return run("curl -s " + url(ep->port())) == "x 1\n"; }));
}

TEST(MetricsEndpoint, stop_closes_and_never_renders_again) {
    io_thread io;
    std::atomic<int> renders{0};
    auto ep = x1_endpoint(io, &renders);
    ASSERT_TRUE(ep.has_value());
    const auto port = ep->port();
    EXPECT_EQ(run("curl -s " + url(port)), "x 1\n");
    ep->stop();
    const int before = renders.load();
    // The listening socket closes on the endpoint's strand: wait for connects to be refused.
    EXPECT_TRUE(erl::test::wait_until([&] {
        int st = 0;
        run("curl -s -o /dev/null " + url(port), &st);
        return st != 0;
    }));
    EXPECT_EQ(renders.load(), before);
}

TEST(MetricsEndpoint, bad_address_is_an_error) {
    io_thread io;
    erl::metrics_endpoint_options o;
    o.address = "not an address";
    auto ep = erl::metrics_endpoint::start(io.io.get_executor(), o, [] { return std::string(); });
    EXPECT_FALSE(ep.has_value());
}

}  // namespace
