// The message queue of a process (src/node/process.hpp): arrival order kept through wrap-around
// and growth, removal at any position (selective receive) keeping the others in order, the
// buffer made by the first message and given back after a burst.
#include <gtest/gtest.h>

#include "node/process.hpp"

#include <vector>

using erl::detail::message_queue;

namespace {

std::vector<long long> contents(const message_queue& q) {
    std::vector<long long> out;
    for (const erl::term& t : q)
        out.push_back(t.as_int64());
    return out;
}

}  // namespace

TEST(MessageQueue, empty_queue_allocates_nothing) {
    message_queue q;
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.capacity(), 0u);
    q.push_back(erl::term(1));
    EXPECT_GT(q.capacity(), 0u);
    EXPECT_EQ(q.take(0).as_int64(), 1);
    EXPECT_TRUE(q.empty());
}

TEST(MessageQueue, order_is_kept_through_wrap_around_and_growth) {
    message_queue q;
    long long next_in = 0, next_out = 0;
    // Take from the front while pushing more, so the live range wraps the ring, then grow it.
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 3; ++i)
            q.push_back(erl::term(next_in++));
        EXPECT_EQ(q.take(0).as_int64(), next_out++);
    }
    ASSERT_EQ(q.size(), static_cast<std::size_t>(next_in - next_out));
    std::size_t i = 0;
    for (const erl::term& t : q)
        EXPECT_EQ(t.as_int64(), next_out + static_cast<long long>(i++));
}

TEST(MessageQueue, take_at_any_position_keeps_the_others_in_order) {
    for (std::size_t pos = 0; pos < 9; ++pos) {
        message_queue q;
        q.push_back(erl::term(-1));  // then taken, so the ring's start is not slot 0
        for (int i = 0; i < 9; ++i)
            q.push_back(erl::term(i));
        q.take(0);
        EXPECT_EQ(q.take(pos).as_int64(), static_cast<long long>(pos));
        std::vector<long long> want;
        for (int i = 0; i < 9; ++i)
            if (static_cast<std::size_t>(i) != pos) want.push_back(i);
        EXPECT_EQ(contents(q), want) << "taken at " << pos;
    }
}

TEST(MessageQueue, erase_if_removes_matches_in_order) {
    message_queue q;
    for (int i = 0; i < 10; ++i)
        q.push_back(erl::term(i));
    EXPECT_EQ(q.erase_if([](const erl::term& t) { return t.as_int64() % 3 == 0; }), 4u);
    EXPECT_EQ(contents(q), (std::vector<long long>{1, 2, 4, 5, 7, 8}));
    EXPECT_EQ(q.erase_if([](const erl::term&) { return true; }), 6u);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.capacity(), 0u);
}

TEST(MessageQueue, a_burst_gives_its_buffer_back_once_received) {
    message_queue q;
    for (int i = 0; i < 10000; ++i)
        q.push_back(erl::term(i));
    EXPECT_GE(q.capacity(), 10000u);
    for (int i = 0; i < 10000; ++i)
        ASSERT_EQ(q.take(0).as_int64(), i);
    EXPECT_EQ(q.capacity(), 0u);
    // A small queue keeps its buffer between messages.
    q.push_back(erl::term(1));
    q.take(0);
    EXPECT_GT(q.capacity(), 0u);
    q.push_back(erl::term(2));
    q.clear();
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.capacity(), 0u);
}
