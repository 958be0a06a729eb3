// The introspection BIFs between two erlcpp nodes in one process: erlang:process_info/2 and
// memory/0 called with erl::rpc::call while messages flow to the process they look at (the
// reads of the process state race with deliveries and receives: ThreadSanitizer runs this
// suite), and the exact counts once the flow has stopped.
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <atomic>
#include <thread>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;
using erl::test::local_node_options;

struct NodeIntrospection : ::testing::Test {
    std::uint16_t port = free_port();
    erl::node a{local_node_options("intro_a", port)};
    erl::node b{local_node_options("intro_b", port)};
    std::unique_ptr<erl::rpc::server> rpc;
    void SetUp() override {
        ASSERT_FALSE(a.start());
        ASSERT_FALSE(b.start());
        rpc = std::make_unique<erl::rpc::server>(b);
        ASSERT_FALSE(a.connect(b.name()));
    }
    void TearDown() override {
        rpc.reset();
        a.stop();
        b.stop();
    }
    erl::term call(const char* f, erl::term args) {
        auto r = erl::rpc::call(a, b.name(), "erlang", f, std::move(args), 10s);
        EXPECT_TRUE(r) << (r ? "" : r.error().reason.to_string());
        return r ? r.value() : erl::term();
    }
};

TEST_F(NodeIntrospection, process_info_while_messages_flow_then_exact_counts) {
    auto target = b.spawn_mailbox(erl::atom("intro_target"));
    ASSERT_TRUE(target);
    const erl::term pid(target->self());
    const erl::term items = erl::list(erl::atom("message_queue_len"), erl::atom("reductions"),
                                      erl::atom("memory"), erl::atom("messages"));
    constexpr int n = 400;
    std::atomic<bool> done{false};
    // A receiver taking messages and a caller asking about the process, both while a sends.
    std::thread receiver([&] {
        for (int i = 0; i < n / 2; ++i)
            ASSERT_TRUE(target->receive(10s));
    });
    std::thread asker([&] {
        for (int k = 0; k < 20 || !done; ++k) {  // at least 20 calls, also after the flow
            erl::term r = call("process_info", erl::list(pid, items));
            ASSERT_TRUE(r.is_list()) << r.to_string();
            ASSERT_TRUE(call("memory", erl::list()).is_list());
        }
    });
    for (int i = 0; i < n; ++i)
        a.send(erl::atom("intro_target"), b.name(), erl::term(std::int64_t{i}));
    receiver.join();
    done = true;
    asker.join();
    // The sends and this call travel on one connection, in order: every message is queued
    // before the call is answered.
    EXPECT_EQ(call("process_info", erl::list(pid, erl::list(erl::atom("message_queue_len"),
                                                            erl::atom("reductions"))))
                  .to_string(),
              "[{message_queue_len,200},{reductions,200}]");
    const erl::term ms = call("process_info", erl::list(pid, erl::atom("messages")));
    ASSERT_TRUE(ms.is_tuple(2));
    EXPECT_EQ(ms[1].as_list().elements.size(), 200u);
    EXPECT_EQ(ms[1].as_list().elements.front(), erl::term(std::int64_t{200}));
    // A bad item is badarg, a dead process undefined.
    auto bad = erl::rpc::call(a, b.name(), "erlang", "process_info",
                              erl::list(pid, erl::atom("bogus")), 10s);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().reason[1], erl::term(erl::atom("badarg")));
    target->exit(erl::atom("normal"));
    EXPECT_EQ(call("process_info", erl::list(pid, erl::atom("memory"))),
              erl::term(erl::atom("undefined")));
}

}  // namespace
