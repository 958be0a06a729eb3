// I/O threads that keep looking for work before they sleep (node_options::io_spin): two nodes
// with it exchange messages and calls both ways, stop, start again and stop, as without it.
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <chrono>
#include <thread>

using namespace std::chrono_literals;

TEST(NodeIoSpin, spinning_io_threads_serve_messages_and_stop_and_restart) {
    const std::uint16_t epmd = erl::test::free_port();
    auto oa = erl::test::local_node_options("spin_a", epmd);
    auto ob = erl::test::local_node_options("spin_b", epmd);
    oa.io_spin = 200us;
    ob.io_spin = 200us;
    ob.threads = 1;
    erl::node a(oa), b(ob);
    for (int round = 0; round < 2; ++round) {
        SCOPED_TRACE(round);
        ASSERT_FALSE(a.start());
        ASSERT_FALSE(b.start());
        ASSERT_TRUE(a.ping(b.name()));
        auto echo = b.spawn_mailbox(erl::atom("spin_echo"));
        auto me = a.spawn_mailbox();
        ASSERT_TRUE(echo && me);
        std::thread server([mb = *echo]() mutable {
            while (auto m = mb.receive())
                if (m->is_tuple(2) && (*m)[0].is_pid()) mb.send((*m)[0].as_pid(), (*m)[1]);
        });
        // Round trips one at a time: each finds the other side's I/O thread idle.
        int echoed = 0;
        for (int i = 0; i < 200; ++i, ++echoed) {
            me->send(erl::atom("spin_echo"), b.name(), erl::tuple(me->self(), i));
            auto r = me->receive(10s);
            if (!r || *r != erl::term(i)) break;
        }
        EXPECT_EQ(echoed, 200);
        echo->exit();
        server.join();
        // stop() returns with the I/O threads finished, spinning or not.
        b.stop();
        a.stop();
        EXPECT_FALSE(a.alive());
        EXPECT_FALSE(b.alive());
    }
}
