// erl::supervisor under sys.erl's system messages: get_state, get_status, suspend / resume and
// terminate, as sys:Func(Sup, ...) sends them.
#include "supervisor_test_support.hpp"

TEST_F(SupervisorTest, sys_get_state_describes_the_supervisor) {
    erl::supervisor_flags f;
    f.strategy = erl::restart_strategy::rest_for_one;
    f.intensity = 3;
    f.period = 7s;
    auto sup = erl::supervisor::start(*node, f, {reporting_worker("a")});
    ASSERT_TRUE(sup);
    auto a = started("a");
    EXPECT_EQ(sys_call(sup->self(), A("get_state")),
              erl::make_map(
                  {{A("strategy"), A("rest_for_one")},
                   {A("intensity"), 3},
                   {A("period_ms"), 7000},
                   {A("restarts"), 0},
                   {A("children"), erl::list(erl::tuple(A("a"), a, A("worker"), erl::list()))}}));
}

TEST_F(SupervisorTest, sys_get_status_has_the_gen_server_shape) {
    erl::spawn_options o;
    o.name = A("status_sup");
    auto sup = erl::supervisor::start(*node, {}, {reporting_worker("a")}, o);
    ASSERT_TRUE(sup);
    started("a");
    auto st = sys_call(sup->self(), A("get_status"));
    ASSERT_TRUE(st.is_tuple(4)) << st;
    EXPECT_EQ(st[0], erl::term(A("status")));
    EXPECT_EQ(st[1], erl::term(sup->self()));
    EXPECT_EQ(st[2], erl::tuple(A("module"), A("gen_server")));
    auto misc = st[3].as_list().elements;
    ASSERT_EQ(misc.size(), 5u);
    EXPECT_EQ(misc[1], erl::term(A("running")));
    EXPECT_EQ(misc[2], erl::term(sup->self()));  // no parent: itself, as gen.erl
    auto items = misc[4].as_list().elements;
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0],
              erl::tuple(A("header"), erl::charlist("Status for generic server status_sup")));
    EXPECT_EQ(items[2].as_tuple()[1].as_list().elements[0].as_tuple()[1],
              sys_call(sup->self(), A("get_state")));
}

TEST_F(SupervisorTest, sys_suspend_holds_calls_until_resume) {
    auto sup = erl::supervisor::start(*node, {}, {reporting_worker("a")});
    ASSERT_TRUE(sup);
    auto a = started("a");
    EXPECT_EQ(sys_call(sup->self(), A("suspend")), erl::term(A("ok")));
    auto pending = send_call(sup->self(), A("$gen_call"), A("which_children"));
    // System messages are still answered; the call queued before this one is not.
    auto st = sys_call(sup->self(), A("get_status"));
    EXPECT_EQ(st[3].as_list().elements[1], erl::term(A("suspended")));
    EXPECT_THROW(await_reply(pending, A("which_children"), 0ms), std::runtime_error);
    EXPECT_EQ(sys_call(sup->self(), A("resume")), erl::term(A("ok")));
    EXPECT_EQ(await_reply(pending, A("which_children")),
              erl::list(erl::tuple(A("a"), a, A("worker"), erl::list())));
}

TEST_F(SupervisorTest, sys_terminate_shuts_children_down_first) {
    auto sup = erl::supervisor::start(*node, {},
                                      {reporting_worker("a", erl::restart_type::permanent, true)});
    ASSERT_TRUE(sup);
    started("a");
    auto mon = self.monitor(sup->self());
    EXPECT_EQ(sys_call(sup->self(), erl::tuple(A("terminate"), A("normal"))), erl::term(A("ok")));
    EXPECT_EQ(*collector.receive(5s), erl::tuple(A("stopped"), A("a"), A("shutdown")));
    EXPECT_EQ(*self.receive(5s),
              erl::tuple(A("DOWN"), mon, A("process"), sup->self(), A("normal")));
}
