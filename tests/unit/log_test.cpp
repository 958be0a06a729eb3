// Structured log events (<erl/log.hpp>): what a node reports, at which level, with which reason.
#include <erl/log.hpp>
#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include "node_test_support.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct recorded {
    erl::log_level level;
    erl::log_kind kind;
    std::string node, peer, detail;
    erl::error_code reason;
};

// Collects every event a node reports; tests wait for the event they check.
class recorder {
  public:
    void attach(erl::node_options& o, erl::log_level level) {
        o.log_level = level;
        o.logger = [this](const erl::log_event& e) {
            std::lock_guard lk(mu_);
            events_.push_back(
                {e.level, e.kind, std::string(e.node), std::string(e.peer), e.detail, e.reason});
            cv_.notify_all();
        };
    }
    std::optional<recorded> wait_for(erl::log_kind kind, std::chrono::milliseconds deadline = 10s) {
        std::unique_lock lk(mu_);
        std::optional<recorded> found;
        cv_.wait_for(lk, deadline, [&] {
            for (const auto& e : events_)
                if (e.kind == kind) {
                    found = e;
                    return true;
                }
            return false;
        });
        return found;
    }
    std::size_t count(erl::log_kind kind) {
        std::lock_guard lk(mu_);
        std::size_t n = 0;
        for (const auto& e : events_)
            n += e.kind == kind;
        return n;
    }
    std::vector<recorded> all() {
        std::lock_guard lk(mu_);
        return events_;
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<recorded> events_;
};

erl::node_options opts(std::uint16_t port, const std::string& cookie = "log_cookie") {
    return erl::test::local_node_options("log", port, cookie);
}

// A started node whose events at `level` and above go to `r`.
std::unique_ptr<erl::node> recorded_node(recorder& r, erl::log_level level) {
    auto o = opts(erl::test::free_port());
    r.attach(o, level);
    auto n = std::make_unique<erl::node>(o);
    EXPECT_FALSE(n->start());
    return n;
}

}  // namespace

TEST(NodeLog, line_format_names_level_kind_peer_detail_and_reason) {
    erl::log_event e{erl::log_level::warning,
                     erl::log_kind::handshake_refused,
                     "a@h",
                     "b@h",
                     erl::make_error_code(erl::errc::bad_cookie),
                     "digest mismatch"};
    EXPECT_EQ(erl::format_log_line(e),
              "erlcpp[a@h] warning handshake_refused peer=b@h: digest mismatch (bad_cookie)");
    erl::log_event bare{erl::log_level::info, erl::log_kind::node_stopped, "a@h", {}, {}, {}};
    EXPECT_EQ(erl::format_log_line(bare), "erlcpp[a@h] info node_stopped");
}

TEST(NodeLog, connection_up_and_down_carry_the_peer_and_the_reason) {
    const auto port = erl::test::free_port();
    recorder ra;
    auto oa = opts(port);
    ra.attach(oa, erl::log_level::info);
    erl::node a(oa);
    ASSERT_FALSE(a.start());
    auto started = ra.wait_for(erl::log_kind::node_started);
    ASSERT_TRUE(started);
    EXPECT_EQ(started->node, a.name().str());
    {
        erl::node b(opts(port));
        ASSERT_FALSE(b.start());
        ASSERT_TRUE(a.ping(b.name(), 5s));
        auto up = ra.wait_for(erl::log_kind::connection_up);
        ASSERT_TRUE(up);
        EXPECT_EQ(up->level, erl::log_level::info);
        EXPECT_EQ(up->peer, b.name().str());
        EXPECT_FALSE(up->reason);
        b.stop();
        auto down = ra.wait_for(erl::log_kind::connection_down);
        ASSERT_TRUE(down);
        EXPECT_EQ(down->level, erl::log_level::notice);
        EXPECT_EQ(down->peer, b.name().str());
        EXPECT_TRUE(down->reason) << "a lost connection says why";
    }
}

TEST(NodeLog, refused_handshake_is_a_warning_with_its_reason) {
    const auto port = erl::test::free_port();
    recorder ra, rb;
    auto oa = opts(port, "cookie_a");
    ra.attach(oa, erl::log_level::notice);
    auto ob = opts(port, "cookie_b");
    rb.attach(ob, erl::log_level::notice);
    erl::node a(oa);
    ASSERT_FALSE(a.start());
    erl::node b(ob);
    ASSERT_FALSE(b.start());
    EXPECT_FALSE(a.ping(b.name(), 5s));
    // The side that checks the digest refuses; which side that is depends on who dialed.
    auto ev = rb.wait_for(erl::log_kind::handshake_refused);
    if (!ev) ev = ra.wait_for(erl::log_kind::handshake_refused, 1s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->level, erl::log_level::warning);
    EXPECT_TRUE(ev->reason);
    EXPECT_FALSE(ev->detail.empty());
    // Below the configured level nothing is reported (the info-level node_started included).
    EXPECT_EQ(ra.count(erl::log_kind::node_started), 0u);
    EXPECT_EQ(ra.count(erl::log_kind::connection_up), 0u);
}

TEST(NodeLog, a_process_body_that_throws_is_reported_as_crashed) {
    recorder r;
    auto node = recorded_node(r, erl::log_level::error);
    auto& n = *node;
    auto p = erl::spawn(n, [](erl::mailbox&) { throw std::runtime_error("boom in body"); });
    ASSERT_TRUE(p);
    auto ev = r.wait_for(erl::log_kind::process_crashed);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->level, erl::log_level::error);
    EXPECT_NE(ev->detail.find("boom in body"), std::string::npos) << ev->detail;
    EXPECT_NE(ev->detail.find(erl::to_string(erl::term(*p))), std::string::npos) << ev->detail;
}

TEST(NodeLog, an_rpc_function_that_throws_a_cpp_exception_is_reported) {
    recorder r;
    auto node = recorded_node(r, erl::log_level::warning);
    auto& n = *node;
    erl::rpc::server s(n);
    s.add("t", "raises", [] { erl::rpc::raise_error(erl::term(erl::atom("deliberate"))); });
    s.add("t", "throws", [](std::int64_t) -> erl::term { throw std::runtime_error("kaboom"); });
    // An Erlang exception is the function's answer: the caller gets it and nothing is logged,
    // as BEAM logs nothing when an erpc-called function raises.
    auto raised = erl::rpc::call(n, n.name(), erl::atom("t"), erl::atom("raises"), erl::list(), 5s);
    ASSERT_FALSE(raised);
    EXPECT_NE(erl::to_string(raised.error().reason).find("deliberate"), std::string::npos);
    // A C++ exception reaches the caller as {cpp_exception, What} and is logged, once.
    auto thrown =
        erl::rpc::call(n, n.name(), erl::atom("t"), erl::atom("throws"), erl::list(7), 5s);
    ASSERT_FALSE(thrown);
    auto ev = r.wait_for(erl::log_kind::process_crashed);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->level, erl::log_level::warning);
    EXPECT_NE(ev->detail.find("t:throws/1 threw: kaboom"), std::string::npos) << ev->detail;
    EXPECT_EQ(r.count(erl::log_kind::process_crashed), 1u);
}

TEST(NodeLog, without_a_logger_the_line_goes_to_the_log_function) {
    const auto port = erl::test::free_port();
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> lines;
    auto o = opts(port);
    o.log_level = erl::log_level::info;
    o.log = [&](std::string_view l) {
        std::lock_guard lk(mu);
        lines.emplace_back(l);
        cv.notify_all();
    };
    erl::node n(o);
    ASSERT_FALSE(n.start());
    n.log({erl::log_level::warning, erl::log_kind::service, {}, {}, {}, "from the application"});
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 5s, [&] {
        for (const auto& l : lines)
            if (l.find("from the application") != std::string::npos) return true;
        return false;
    }));
    bool found = false;
    for (const auto& l : lines)
        if (l ==
            "erlcpp[" + std::string(n.name().str()) + "] warning service: from the application")
            found = true;
    EXPECT_TRUE(found);
}
