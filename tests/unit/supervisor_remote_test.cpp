// erl::supervisor with children on other erlcpp nodes of the same process (remote spawn_link
// of a registered C++ process kind): placement, restart on another node when a node stops,
// the strategies across nodes, intensity, one deadline for a remote start over all its
// candidates, and Erlang child specs started on the own node.
#include "silent_peer.hpp"
#include "supervisor_test_support.hpp"

namespace {

// A remote worker kind w:run/1: reports {started, Tag, self()} to {collector, Home} and
// waits (until killed, or an exit signal ends it).
void register_worker(erl::node& n, erl::atom home) {
    erl::add_spawnable(
        n, A("w"), A("run"), 1, [home](erl::mailbox& m, std::vector<erl::term> args) {
            m.send(A("collector"), home, erl::tuple(A("started"), args.at(0), m.self()));
            while (m.receive()) {
            }
        });
}

class SupervisorRemoteTest : public SupervisorTest {
  protected:
    void SetUp() override {
        SupervisorTest::SetUp();
        for (auto* p : {&n2, &n3}) {
            *p = std::make_unique<erl::node>(
                erl::test::local_node_options("supr", "sup_cookie", epmd_port));
            ASSERT_FALSE((*p)->start());
            register_worker(**p, node->name());
        }
    }
    void TearDown() override {
        for (auto* p : {&n2, &n3}) {
            if (!*p) continue;
            (*p)->stop();
            erl::join_processes(**p, 10s);
        }
        SupervisorTest::TearDown();
    }
    erl::child_spec remote_worker(const char* tag) {
        return erl::child_spec::remote(A(tag), A("w"), A("run"), erl::list(A(tag)),
                                       erl::placement::on({n2->name(), n3->name()}));
    }
    void stop_node(std::unique_ptr<erl::node>& n) {
        n->stop();
        erl::join_processes(*n, 10s);
    }
    std::unique_ptr<erl::node> n2, n3;
};

}  // namespace

TEST_F(SupervisorRemoteTest, remote_child_moves_to_another_node_when_its_node_stops) {
    erl::supervisor_flags f;
    f.intensity = 5;
    auto sup = erl::supervisor::start(*node, f, {remote_worker("r")});
    ASSERT_TRUE(sup) << sup.error().message();
    auto r1 = started("r");
    EXPECT_EQ(r1.node, n2->name());  // the first candidate
    auto kids = sup->which_children().value();
    ASSERT_EQ(kids.size(), 1u);
    EXPECT_EQ(kids[0].pid, r1);
    EXPECT_EQ(kids[0].on_node, n2->name());
    EXPECT_EQ(sup_call(sup->self(), A("which_children")),
              erl::list(erl::tuple(A("r"), r1, A("worker"), erl::list(A("w")))));
    stop_node(n2);  // the link fires noconnection
    auto r2 = started("r");
    EXPECT_EQ(r2.node, n3->name());
    EXPECT_EQ(sup->which_children().value().at(0).pid, r2);
}

TEST_F(SupervisorRemoteTest, children_spread_and_one_for_all_restarts_siblings_elsewhere) {
    erl::supervisor_flags f;
    f.strategy = erl::restart_strategy::one_for_all;
    f.intensity = 5;
    auto sup = erl::supervisor::start(*node, f, {remote_worker("a"), remote_worker("b")});
    ASSERT_TRUE(sup) << sup.error().message();
    auto a1 = started("a"), b1 = started("b");
    EXPECT_EQ(a1.node, n2->name());
    EXPECT_EQ(b1.node, n3->name());  // the node with fewer children of this supervisor
    auto mb = self.monitor(b1);
    stop_node(n2);
    // b, on a node that stayed up, is shut down and started again with a.
    EXPECT_EQ(*self.receive(10s), erl::tuple(A("DOWN"), mb, A("process"), b1, A("shutdown")));
    auto a2 = started("a"), b2 = started("b");
    EXPECT_EQ(a2.node, n3->name());
    EXPECT_EQ(b2.node, n3->name());
    EXPECT_NE(b2, b1);
}

TEST_F(SupervisorRemoteTest, losing_every_node_exceeds_the_intensity) {
    erl::supervisor_flags f;
    f.intensity = 1;
    f.period = 60s;
    auto sup = erl::supervisor::start(*node, f, {remote_worker("r")});
    ASSERT_TRUE(sup) << sup.error().message();
    auto mon = self.monitor(sup->self());
    started("r");
    stop_node(n2);
    EXPECT_EQ(started("r").node, n3->name());  // restart 1 of 1
    stop_node(n3);  // restart 2 > intensity: the supervisor gives up, as OTP's
    EXPECT_EQ(*self.receive(10s),
              erl::tuple(A("DOWN"), mon, A("process"), sup->self(), A("shutdown")));
}

TEST_F(SupervisorRemoteTest, no_node_that_can_start_the_child_fails_the_start) {
    auto nowhere = erl::child_spec::remote(A("x"), A("w"), A("run"), erl::list(A("x")),
                                           erl::placement::on({}));
    auto r = erl::supervisor::start(*node, {}, {nowhere});
    ASSERT_TRUE(r.has_error());
    // A node that runs but has no such kind refuses the spawn (notsup); the next one is tried.
    auto unknown = erl::child_spec::remote(A("y"), A("w"), A("nope"), erl::list(A("y")),
                                           erl::placement::on({n2->name()}));
    EXPECT_EQ(erl::supervisor::start(*node, {}, {unknown}).error(),
              make_error_code(erl::errc::notsup));
    auto second = erl::child_spec::remote(A("z"), A("w"), A("run"), erl::list(A("z")),
                                          erl::placement::on({n2->name(), n3->name()}));
    erl::remove_spawnable(*n2, A("w"), A("run"), 1);
    auto sup = erl::supervisor::start(*node, {}, {second});
    ASSERT_TRUE(sup) << sup.error().message();
    EXPECT_EQ(started("z").node, n3->name());
}

TEST_F(SupervisorRemoteTest, one_deadline_bounds_a_remote_start_over_all_candidates) {
    // The first candidate accepts the connection and never answers the handshake: it takes
    // the whole start_timeout, and the start fails with timeout instead of going on to n2.
    const std::string name = "stall_" + std::to_string(::getpid());
    erl::test::silent_peer stall(epmd_port, name);
    ASSERT_TRUE(stall.registered());
    auto where = erl::placement::on({erl::atom(name + "@127.0.0.1"), n2->name()});
    where.start_timeout = 300ms;
    auto spec = erl::child_spec::remote(A("s"), A("w"), A("run"), erl::list(A("s")), where);
    EXPECT_EQ(erl::supervisor::start(*node, {}, {spec}).error(),
              make_error_code(erl::errc::timeout));
    // Once n2 is connected it comes first among equals and starts the child.
    ASSERT_FALSE(node->connect(n2->name()));
    auto sup = erl::supervisor::start(*node, {}, {spec});
    ASSERT_TRUE(sup) << sup.error().message();
    EXPECT_EQ(started("s").node, n2->name());
}

TEST_F(SupervisorRemoteTest, erlang_child_spec_runs_a_kind_of_the_own_node) {
    register_worker(*node, node->name());
    auto sup = erl::supervisor::start(*node, {}, {});
    ASSERT_TRUE(sup);
    auto r = sup_call(
        sup->self(),
        erl::tuple(A("start_child"),
                   erl::make_map({{A("id"), A("e")},
                                  {A("start"), erl::tuple(A("w"), A("run"), erl::list(A("e")))},
                                  {A("restart"), A("transient")}})));
    ASSERT_TRUE(r.is_tuple(2) && r[0].is_atom(A("ok"))) << r;
    EXPECT_EQ(started("e"), r[1].as_pid());
    EXPECT_EQ(r[1].as_pid().node, node->name());
    EXPECT_EQ(sup_call(sup->self(), A("which_children")),
              erl::list(erl::tuple(A("e"), r[1], A("worker"), erl::list(A("w")))));
    EXPECT_EQ(*sup_call(sup->self(), erl::tuple(A("get_childspec"), A("e")))[1].find(A("start")),
              erl::tuple(A("w"), A("run"), erl::list(A("e"))));
    // A kind nobody registered: the spawn error, with the spec, as OTP's {error, {What, Child}}.
    auto bad = sup_call(
        sup->self(),
        erl::tuple(A("start_child"),
                   erl::make_map({{A("id"), A("u")},
                                  {A("start"), erl::tuple(A("w"), A("nope"), erl::list())}})));
    ASSERT_TRUE(bad.is_tuple(2) && bad[1].is_tuple(2)) << bad;
    EXPECT_EQ(bad[1][0], erl::term(A("notsup")));
}
