// Node runtime tests with no BEAM involved: local delivery, names, aliases, selective receive,
// and two erlcpp nodes in one process (including simultaneous connects). Loopback only; the
// EPMD is embedded in the first node on a free port.
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

using namespace std::chrono_literals;

namespace {

using erl::test::free_port;

erl::node_options opts(std::uint16_t epmd_port, const std::string& cookie = "unit_cookie") {
    return erl::test::local_node_options("unit", epmd_port, cookie);
}

}  // namespace

TEST(NodeLocal, registered_name_send_and_conflict) {
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    auto a = n.spawn_mailbox(erl::atom("svc"));
    ASSERT_TRUE(a);
    auto dup = n.spawn_mailbox(erl::atom("svc"));
    EXPECT_EQ(dup.error(), make_error_code(erl::errc::name_taken));
    EXPECT_EQ(n.whereis(erl::atom("svc")), a->self());
    n.send(erl::atom("svc"), erl::tuple(erl::atom("hello"), 1));
    auto m = a->receive(1s);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->to_string(), "{hello,1}");
    // Sending to a name that is not registered is silently dropped.
    n.send(erl::atom("nobody"), erl::term(1));
    EXPECT_FALSE(a->receive(50ms));
}

TEST(NodeLocal, selective_receive_keeps_other_messages_in_order) {
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    auto mb = n.spawn_mailbox();
    ASSERT_TRUE(mb);
    for (int i = 1; i <= 5; ++i)
        n.send(mb->self(), erl::term(i));
    auto three = mb->receive_if([](const erl::term& t) { return t == erl::term(3); }, 1s);
    ASSERT_TRUE(three);
    EXPECT_EQ(*three, erl::term(3));
    std::vector<std::int64_t> rest;
    while (auto m = mb->receive(10ms))
        rest.push_back(m->as_int64());
    EXPECT_EQ(rest, (std::vector<std::int64_t>{1, 2, 4, 5}));
    // A selective receive that matches nothing times out and leaves the queue intact.
    n.send(mb->self(), erl::term(9));
    EXPECT_FALSE(mb->receive_if([](const erl::term& t) { return t.is_atom(); }, 20ms));
    EXPECT_EQ(mb->pending(), 1u);
}

TEST(NodeLocal, receive_wakes_on_message_from_other_thread) {
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    auto mb = n.spawn_mailbox();
    std::thread t([&] {
        std::this_thread::sleep_for(30ms);
        n.send(mb->self(), erl::atom("late"));
    });
    auto m = mb->receive(5s);
    t.join();
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->is_atom(erl::atom("late")));
}

TEST(NodeLocal, alias_delivers_until_removed) {
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    auto mb = n.spawn_mailbox();
    auto alias = mb->make_alias();
    n.send_alias(alias, erl::atom("via_alias"));
    auto m = mb->receive(1s);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->is_atom(erl::atom("via_alias")));
    mb->remove_alias(alias);
    n.send_alias(alias, erl::atom("dropped"));
    EXPECT_FALSE(mb->receive(50ms));
}

TEST(NodeLocal, last_handle_gone_unregisters_the_name) {
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    {
        auto mb = n.spawn_mailbox(erl::atom("temp"));
        ASSERT_TRUE(mb);
        EXPECT_TRUE(n.whereis(erl::atom("temp")));
    }
    EXPECT_FALSE(n.whereis(erl::atom("temp")));
    auto again = n.spawn_mailbox(erl::atom("temp"));
    EXPECT_TRUE(again);
}

TEST(NodeLocal, two_cpp_nodes_ping_and_message_each_other) {
    const auto port = free_port();
    erl::node a(opts(port));
    ASSERT_FALSE(a.start());
    erl::node b(opts(port));  // finds a's embedded EPMD
    ASSERT_FALSE(b.start());
    EXPECT_TRUE(a.ping(b.name(), 5s));
    EXPECT_TRUE(b.is_connected(a.name()));
    auto mb = b.spawn_mailbox(erl::atom("inbox"));
    ASSERT_TRUE(mb);
    // Big enough to be fragmented (> 64 KiB) and with many atoms for the atom cache.
    std::vector<erl::term> items;
    for (int i = 0; i < 20000; ++i)
        items.push_back(erl::tuple(erl::atom("item_" + std::to_string(i % 300)), i));
    const erl::term big = erl::make_list(items);
    a.send(erl::atom("inbox"), b.name(), big);
    auto m = mb->receive(5s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, big);
}

TEST(NodeLocal, wrong_cookie_between_cpp_nodes_is_refused) {
    const auto port = free_port();
    erl::node a(opts(port, "cookie_a"));
    ASSERT_FALSE(a.start());
    erl::node b(opts(port, "cookie_b"));
    ASSERT_FALSE(b.start());
    EXPECT_FALSE(a.ping(b.name(), 3s));
    EXPECT_TRUE(a.nodes().empty());
    EXPECT_TRUE(b.nodes().empty());
}

TEST(NodeLocal, simultaneous_connect_keeps_one_connection_and_all_messages) {
    const auto port = free_port();
    for (int round = 0; round < 5; ++round) {
        erl::node a(opts(port));
        auto ea = a.start();
        ASSERT_FALSE(ea) << "round " << round << ": " << ea.message();
        erl::node b(opts(port));
        auto eb = b.start();
        ASSERT_FALSE(eb) << "round " << round << ": " << eb.message();
        auto ma = a.spawn_mailbox(erl::atom("in"));
        auto mb = b.spawn_mailbox(erl::atom("in"));
        // Both sides send first, at the same time: two connection attempts cross.
        std::thread ta([&] {
            for (int i = 0; i < 100; ++i)
                a.send(erl::atom("in"), b.name(), erl::term(i));
        });
        std::thread tb([&] {
            for (int i = 0; i < 100; ++i)
                b.send(erl::atom("in"), a.name(), erl::term(i));
        });
        ta.join();
        tb.join();
        for (auto* box : {&*ma, &*mb}) {
            for (int i = 0; i < 100; ++i) {
                auto m = box->receive(5s);
                ASSERT_TRUE(m) << "round " << round << " message " << i;
                EXPECT_EQ(m->as_int64(), i) << "order kept, nothing lost";
            }
        }
        EXPECT_EQ(a.nodes().size(), 1u);
        EXPECT_EQ(b.nodes().size(), 1u);
    }
}

// Several threads send to one remote process at once, in bursts (batched by the connection's
// writer) and after pauses (written directly by the sending thread when the connection is
// idle), by pid and by name, while replies flow the other way: every message arrives once and
// each sender's messages arrive in the order sent.
TEST(NodeLocal, concurrent_senders_bursts_and_pauses_keep_order_and_lose_nothing) {
    const auto port = free_port();
    erl::node a(opts(port));
    ASSERT_FALSE(a.start());
    erl::node b(opts(port));
    ASSERT_FALSE(b.start());
    auto inbox = b.spawn_mailbox(erl::atom("inbox"));
    auto back = a.spawn_mailbox();
    ASSERT_TRUE(inbox && back);
    constexpr int senders = 4, per_sender = 1500;
    std::vector<std::thread> ts;
    for (int s = 0; s < senders; ++s) {
        ts.emplace_back([&, s] {
            auto mb = a.spawn_mailbox();
            for (int i = 0; i < per_sender; ++i) {
                erl::term msg = erl::tuple(s, i, back->self());
                if (i % 2)
                    mb->send(inbox->self(), msg);
                else
                    mb->send(erl::atom("inbox"), b.name(), msg);
                if (i % 100 == 99) std::this_thread::sleep_for(1ms);  // let the connection idle
            }
        });
    }
    // B answers every message to A, so both directions carry traffic at once.
    std::vector<int> next(senders, 0);
    for (int k = 0; k < senders * per_sender; ++k) {
        auto m = inbox->receive(10s);
        ASSERT_TRUE(m) << "message " << k << " lost";
        ASSERT_TRUE(m->is_tuple(3));
        const auto s = static_cast<std::size_t>((*m)[0].as_int64());
        ASSERT_LT(s, next.size());
        EXPECT_EQ((*m)[1].as_int64(), next[s]) << "sender " << s << " out of order";
        next[s] = static_cast<int>((*m)[1].as_int64()) + 1;
        inbox->send((*m)[2].as_pid(), (*m)[1]);
    }
    for (auto& t : ts)
        t.join();
    for (int k = 0; k < senders * per_sender; ++k)
        ASSERT_TRUE(back->receive(10s)) << "reply " << k << " lost";
}

TEST(NodeLocal, selective_receive_rescans_after_a_flush_behind_it) {
    // A receive_if waiting part-way through the queue must not lose its place when a
    // demonitor(Ref, flush) removes a message it had already passed.
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    auto mb = n.spawn_mailbox();
    auto target = n.spawn_mailbox();
    ASSERT_TRUE(mb && target);
    const auto ref = mb->monitor(target->self());
    n.send(mb->self(), erl::atom("a"));
    target->exit(erl::atom("gone"));  // queues the 'DOWN' for ref
    n.send(mb->self(), erl::atom("b"));
    std::mutex m;
    std::condition_variable cv;
    bool passed_b = false;
    std::optional<erl::term> got;
    std::thread receiver([&] {
        got = mb->receive_if(
            [&](const erl::term& t) {
                if (t.is_atom(erl::atom("b"))) {
                    std::lock_guard lk(m);
                    passed_b = true;
                    cv.notify_all();
                }
                return t.is_atom(erl::atom("c"));
            },
            10s);
    });
    {
        std::unique_lock lk(m);
        EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return passed_b; }));
    }
    EXPECT_FALSE(mb->demonitor(ref, true));  // already fired; the flush removes the 'DOWN'
    n.send(mb->self(), erl::atom("c"));
    receiver.join();
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->is_atom(erl::atom("c")));
    EXPECT_EQ(mb->pending(), 2u);  // a and b stay
}

TEST(NodeLocal, receive_waiting_past_queued_messages_ends_cleanly_on_exit) {
    erl::node n(opts(free_port()));
    ASSERT_FALSE(n.start());
    auto mb = n.spawn_mailbox();
    ASSERT_TRUE(mb);
    for (int i = 0; i < 3; ++i)
        n.send(mb->self(), erl::term(i));
    std::mutex m;
    std::condition_variable cv;
    int seen = 0;
    std::optional<erl::term> got = erl::term(0);
    std::thread receiver([&] {
        got = mb->receive_if(
            [&](const erl::term&) {
                std::lock_guard lk(m);
                ++seen;
                cv.notify_all();
                return false;
            },
            10s);
    });
    {
        std::unique_lock lk(m);  // the receiver has passed every queued message
        EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return seen >= 3; }));
    }
    mb->exit(erl::atom("stop"));  // clears the queue under the waiting receiver
    receiver.join();
    EXPECT_FALSE(got);
}
