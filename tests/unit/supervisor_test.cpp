// erl::supervisor with C++ workers on one node: strategies, restart types, intensity, backoff,
// dynamic children and ordered shutdown.
#include "supervisor_test_support.hpp"

#include <algorithm>

TEST_F(SupervisorTest, one_for_one_restarts_only_the_crashed_child) {
    erl::supervisor_flags f;
    f.intensity = 5;
    auto sup = erl::supervisor::start(*node, f, {reporting_worker("a"), reporting_worker("b")});
    ASSERT_TRUE(sup);
    auto a1 = started("a"), b1 = started("b");
    self.exit(a1, erl::term(A("crash")));
    auto a2 = started("a");
    EXPECT_NE(a1, a2);
    auto kids = sup->which_children().value();
    ASSERT_EQ(kids.size(), 2u);
    EXPECT_EQ(kids[0].pid, a2);
    EXPECT_EQ(kids[1].pid, b1);
    EXPECT_FALSE(collector.receive(50ms));  // b untouched
}

TEST_F(SupervisorTest, restart_types_permanent_transient_temporary) {
    erl::supervisor_flags f;
    f.intensity = 10;
    auto sup = erl::supervisor::start(
        *node, f,
        {reporting_worker("perm"), reporting_worker("trans", erl::restart_type::transient),
         reporting_worker("temp", erl::restart_type::temporary)});
    ASSERT_TRUE(sup);
    auto perm = started("perm"), trans = started("trans"), temp = started("temp");
    self.send(perm, erl::tuple(A("exit"), erl::atoms::normal()));
    EXPECT_NE(started("perm"), perm);  // permanent: even a normal exit restarts
    auto m_trans = self.monitor(trans), m_temp = self.monitor(temp);
    self.send(trans, erl::tuple(A("exit"), erl::atoms::normal()));
    self.send(temp, erl::tuple(A("exit"), A("crash")));
    // Once both are down, their 'EXIT's sit in the supervisor's queue (links fire before
    // monitors), ahead of the start_child request below.
    std::vector<erl::term> downs{*self.receive(5s), *self.receive(5s)};
    auto has = [&](const erl::term& x) {
        return std::find(downs.begin(), downs.end(), x) != downs.end();
    };
    EXPECT_TRUE(has(erl::tuple(A("DOWN"), m_trans, A("process"), trans, erl::atoms::normal())));
    EXPECT_TRUE(has(erl::tuple(A("DOWN"), m_temp, A("process"), temp, A("crash"))));
    auto trans2 = sup->start_child(reporting_worker("probe"));
    ASSERT_TRUE(trans2);
    started("probe");
    auto kids = sup->which_children().value();
    ASSERT_EQ(kids.size(), 3u);  // temp forgotten
    EXPECT_EQ(kids[1].id, A("trans"));
    EXPECT_FALSE(kids[1].pid);  // transient ended normally: not restarted
    // A crash of a transient child is restarted.
    ASSERT_TRUE(sup->restart_child(A("trans")));
    auto t2 = started("trans");
    self.exit(t2, erl::term(A("crash")));
    EXPECT_NE(started("trans"), t2);
}

TEST_F(SupervisorTest, one_for_all_restarts_everyone) {
    erl::supervisor_flags f;
    f.strategy = erl::restart_strategy::one_for_all;
    f.intensity = 5;
    auto sup = erl::supervisor::start(*node, f, {reporting_worker("a"), reporting_worker("b")});
    ASSERT_TRUE(sup);
    auto a1 = started("a"), b1 = started("b");
    self.exit(b1, erl::term(A("crash")));
    auto a2 = started("a"), b2 = started("b");
    EXPECT_NE(a1, a2);
    EXPECT_NE(b1, b2);
}

TEST_F(SupervisorTest, rest_for_one_restarts_later_children) {
    erl::supervisor_flags f;
    f.strategy = erl::restart_strategy::rest_for_one;
    f.intensity = 5;
    auto sup = erl::supervisor::start(
        *node, f, {reporting_worker("a"), reporting_worker("b"), reporting_worker("c")});
    ASSERT_TRUE(sup);
    auto a1 = started("a"), b1 = started("b"), c1 = started("c");
    self.exit(b1, erl::term(A("crash")));
    auto b2 = started("b"), c2 = started("c");
    EXPECT_NE(b1, b2);
    EXPECT_NE(c1, c2);
    auto kids = sup->which_children().value();
    EXPECT_EQ(kids[0].pid, a1);
}

TEST_F(SupervisorTest, too_many_restarts_shut_the_supervisor_down) {
    erl::supervisor_flags f;
    f.intensity = 2;
    f.period = 60s;
    auto sup = erl::supervisor::start(*node, f, {reporting_worker("a"), reporting_worker("b")});
    ASSERT_TRUE(sup);
    auto mon = self.monitor(sup->self());
    auto b = started("b");
    for (int i = 0; i < 3; ++i)
        self.exit(started("a"), erl::term(A("crash")));
    auto down = self.receive(10s);
    ASSERT_TRUE(down);
    EXPECT_EQ(*down, erl::tuple(A("DOWN"), mon, A("process"), sup->self(), A("shutdown")));
    // The children were shut down first: monitoring b now gives noproc.
    auto mb_ref = self.monitor(b);
    EXPECT_EQ(*self.receive(5s), erl::tuple(A("DOWN"), mb_ref, A("process"), b, A("noproc")));
}

TEST_F(SupervisorTest, dynamic_children_and_ordered_shutdown) {
    erl::supervisor_flags f;
    auto sup = erl::supervisor::start(*node, f,
                                      {reporting_worker("a", erl::restart_type::permanent, true)});
    ASSERT_TRUE(sup);
    started("a");
    ASSERT_TRUE(sup->start_child(reporting_worker("b", erl::restart_type::permanent, true)));
    started("b");
    ASSERT_TRUE(sup->start_child(reporting_worker("c", erl::restart_type::permanent, true)));
    started("c");
    EXPECT_EQ(sup->start_child(reporting_worker("c")).error(),
              make_error_code(erl::errc::name_taken));
    // Codes that say what was wrong: a running child, an unknown id, a spec without start.
    EXPECT_EQ(sup->delete_child(A("c")), erl::errc::child_running);
    EXPECT_EQ(sup->restart_child(A("c")).error(), erl::errc::child_running);
    EXPECT_EQ(sup->delete_child(A("nobody")), erl::errc::not_found);
    EXPECT_EQ(sup->terminate_child(A("nobody")), erl::errc::not_found);
    erl::child_spec no_start;
    no_start.id = A("no_start");
    EXPECT_EQ(sup->start_child(no_start).error(), erl::errc::no_start_function);
    // terminate + delete a dynamic child
    EXPECT_FALSE(sup->terminate_child(A("c")));
    auto st = collector.receive(5s);
    EXPECT_EQ(*st, erl::tuple(A("stopped"), A("c"), A("shutdown")));
    EXPECT_FALSE(sup->delete_child(A("c")));
    EXPECT_EQ(sup->which_children().value().size(), 2u);
    // stop: reverse start order, each child gets shutdown
    EXPECT_FALSE(sup->stop());
    EXPECT_EQ(*collector.receive(5s), erl::tuple(A("stopped"), A("b"), A("shutdown")));
    EXPECT_EQ(*collector.receive(5s), erl::tuple(A("stopped"), A("a"), A("shutdown")));
}

TEST_F(SupervisorTest, child_ignoring_shutdown_is_killed_after_its_timeout) {
    erl::supervisor_flags f;
    auto spec = reporting_worker("stubborn", erl::restart_type::permanent, true, true);
    spec.shutdown = 100ms;
    auto sup = erl::supervisor::start(*node, f, {spec});
    ASSERT_TRUE(sup);
    auto p = started("stubborn");
    auto mon = self.monitor(p);
    EXPECT_FALSE(sup->stop());
    EXPECT_EQ(*self.receive(5s), erl::tuple(A("DOWN"), mon, A("process"), p, A("killed")));
}

TEST_F(SupervisorTest, backoff_delays_restart) {
    erl::supervisor_flags f;
    f.intensity = 5;
    f.backoff_initial = 3s;
    f.backoff_max = 3s;
    f.backoff_first = true;
    auto sup = erl::supervisor::start(*node, f, {reporting_worker("a")});
    ASSERT_TRUE(sup);
    auto a1 = started("a");
    self.exit(a1, erl::term(A("crash")));
    // Right after the crash the child waits for its restart.
    auto kids = sup->which_children().value();
    EXPECT_FALSE(kids[0].pid);
    EXPECT_NE(started("a"), a1);
}

TEST_F(SupervisorTest, supervisor_is_a_process_and_dies_with_its_parent) {
    auto parent = node->spawn_mailbox().value();
    erl::spawn_options o;
    o.name = A("my_sup");
    o.link_to = parent.self();
    auto sup = erl::supervisor::start(*node, {}, {reporting_worker("a")}, o);
    ASSERT_TRUE(sup);
    EXPECT_EQ(node->whereis(A("my_sup")), sup->self());
    auto a = started("a");
    auto mon = self.monitor(A("my_sup"));
    auto mon_a = self.monitor(a);
    parent.exit(erl::term(A("parent_gone")));
    std::vector<erl::term> got{*self.receive(5s), *self.receive(5s)};
    EXPECT_NE(std::find(got.begin(), got.end(),
                        erl::tuple(A("DOWN"), mon_a, A("process"), a, A("shutdown"))),
              got.end());
    EXPECT_NE(std::find(got.begin(), got.end(),
                        erl::tuple(A("DOWN"), mon, A("process"),
                                   erl::tuple(A("my_sup"), node->name()), A("parent_gone"))),
              got.end());
}
