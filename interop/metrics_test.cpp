// Interop: erlcpp-demo --metrics-port serves node::stats() over HTTP; a real erl node sends
// messages, makes rpc calls and a handshake with a wrong cookie, and the test scrapes /metrics
// with curl and checks the counters moved by exactly what was done.
#include "demo_child.hpp"
#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::demo_child;

namespace {

class MetricsInterop : public erl::interop::cluster_test {
  protected:
    std::uint16_t metrics_port = erl::interop::free_tcp_port();
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics";
    }

    std::string scrape() const {
        auto r = erl::interop::process::run({"curl", "-sS", "--fail", "--max-time", "10", url()});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return r.out;
    }
};

// The value of the sample named `series` (name and labels, exactly as exposed); -1 if absent.
double sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ')
            return std::strtod(line.c_str() + series.size() + 1, nullptr);
    return -1;
}

TEST_F(MetricsInterop, counters_move_by_what_a_beam_node_does) {
    demo_child demo(epmd.port(), cookie, {"--metrics-port", std::to_string(metrics_port)});
    beam_node beam(beam_opts());
    const std::string d = demo.quoted_name();
    const std::string peer = "{peer=\"" + beam.node_name() + "\"}";
    const std::string received = "erlcpp_dist_messages_received_total" + peer;

    // A wrong cookie first: the demo refuses the handshake and counts it.
    const std::string before_fail = scrape();
    EXPECT_EQ(beam.eval("erlang:set_cookie(" + d + ", wrong_cookie), net_adm:ping(" + d + ")"),
              "pang");
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            return sample(scrape(), "erlcpp_handshake_failures_total{reason=\"bad_cookie\"}") ==
                   std::max(0.0, sample(before_fail,
                                        "erlcpp_handshake_failures_total{reason=\"bad_cookie\"}")) +
                       1;
        },
        10s))
        << scrape();

    // Connected, with global's exchange at nodeup over (global:sync/0) and one echo round trip
    // behind it: nothing else flows to the demo until the test sends.
    EXPECT_EQ(
        beam.eval("erlang:set_cookie(" + d + ", erlang:get_cookie()), net_adm:ping(" + d + ")"),
        "pong");
    const std::string echo =
        "{echo, " + d + "} ! {self(), sync}, receive sync -> ok after 5000 -> timeout end";
    EXPECT_EQ(beam.eval("global:sync(), " + echo), "ok");
    const std::string s0 = scrape();
    const double m0 = sample(s0, received);
    ASSERT_GE(m0, 1) << s0;

    constexpr int n = 40;
    EXPECT_EQ(beam.eval("[{sink, " + d + "} ! I || I <- lists:seq(1, " + std::to_string(n) +
                        ")], " + echo),
              "ok");
    const std::string s1 = scrape();
    // n messages to sink and the echo request.
    EXPECT_EQ(sample(s1, received) - m0, n + 1) << s1;
    EXPECT_EQ(sample(s1, "erlcpp_dist_up" + peer), 1);
    EXPECT_GT(sample(s1, "erlcpp_dist_bytes_received_total" + peer),
              sample(s0, "erlcpp_dist_bytes_received_total" + peer));

    // rpc:call goes through erpc (SPAWN_REQUEST): K served, of which one raised.
    constexpr int k = 5;
    const double served0 = sample(s1, "erlcpp_rpc_calls_served_total");
    const double failed0 = sample(s1, "erlcpp_rpc_calls_failed_total");
    const double count0 = sample(s1, "erlcpp_rpc_call_duration_seconds_count");
    EXPECT_EQ(
        beam.eval("[3 = rpc:call(" + d + ", demo, add, [1, 2]) || _ <- lists:seq(1, " +
                  std::to_string(k - 1) + ")], element(1, rpc:call(" + d + ", demo, nosuch, []))"),
        "badrpc");
    const std::string s2 = scrape();
    EXPECT_EQ(sample(s2, "erlcpp_rpc_calls_served_total") - served0, k) << s2;
    EXPECT_EQ(sample(s2, "erlcpp_rpc_calls_failed_total") - failed0, 1);
    EXPECT_EQ(sample(s2, "erlcpp_rpc_call_duration_seconds_count") - count0, k);
    EXPECT_EQ(sample(s2, "erlcpp_rpc_call_duration_seconds_bucket{le=\"+Inf\"}") - count0, k);
    // The scrape shown in docs/observability.md comes from here.
    if (const char* out = std::getenv("ERLCPP_METRICS_SAMPLE"))
        if (FILE* f = std::fopen(out, "w")) {
            std::fputs(s2.c_str(), f);
            std::fclose(f);
        }
}

}  // namespace
