// erl::supervisor: simple_one_for_one (dynamic children from one template), OTP's supervisor
// calls as gen_server calls with supervisor.erl's results and errors, and the choice of a
// node for a remote child.
#include "services/supervisor_internal.hpp"
#include "supervisor_test_support.hpp"

#include <algorithm>

namespace {

erl::term error(const erl::term& reason) {
    return erl::tuple(A("error"), reason);
}

erl::supervisor_flags simple_flags(int intensity = 5) {
    erl::supervisor_flags f;
    f.strategy = erl::restart_strategy::simple_one_for_one;
    f.intensity = intensity;
    f.period = 60s;
    return f;
}

}  // namespace

// --- simple_one_for_one --------------------------------------------------------------------

TEST_F(SupervisorTest, simple_one_for_one_starts_children_with_extra_args) {
    auto tmpl = reporting_template();
    tmpl.args = erl::list(A("base"));
    auto sup = erl::supervisor::start(*node, simple_flags(), {tmpl});
    ASSERT_TRUE(sup);
    EXPECT_TRUE(sup->which_children().value().empty());  // no child at start
    auto p1 = sup->start_child(std::vector<erl::term>{A("w1")});
    ASSERT_TRUE(p1);
    EXPECT_EQ(started("w1"), *p1);
    // From "Erlang": supervisor:start_child(Sup, [w2]).
    auto r = sup_call(sup->self(), erl::tuple(A("start_child"), erl::list(A("w2"))));
    ASSERT_TRUE(r.is_tuple(2)) << r;
    EXPECT_EQ(r[0], erl::term(A("ok")));
    EXPECT_EQ(started("w2"), r[1].as_pid());
    auto kids = sup->which_children().value();
    ASSERT_EQ(kids.size(), 2u);
    EXPECT_EQ(kids[0].id, erl::term(A("undefined")));
    EXPECT_EQ(sup_call(sup->self(), A("which_children")),
              erl::list(erl::tuple(A("undefined"), *p1, A("worker"), erl::list()),
                        erl::tuple(A("undefined"), r[1], A("worker"), erl::list())));
    EXPECT_EQ(sup_call(sup->self(), A("count_children")),
              erl::list(erl::tuple(A("specs"), 1), erl::tuple(A("active"), 2),
                        erl::tuple(A("supervisors"), 0), erl::tuple(A("workers"), 2)));
    // The template's args come first: get_childspec by the pid of a child gives the template.
    auto spec = sup_call(sup->self(), erl::tuple(A("get_childspec"), *p1));
    ASSERT_TRUE(spec.is_tuple(2)) << spec;
    EXPECT_EQ(*spec[1].find(A("start")),
              erl::tuple(A("undefined"), A("undefined"), erl::list(A("base"))));
    // Extra arguments must be a list.
    EXPECT_EQ(sup_call(sup->self(), erl::tuple(A("start_child"), A("oops"))), error(A("badarg")));
}

TEST_F(SupervisorTest, simple_one_for_one_restart_types) {
    auto perm = erl::supervisor::start(*node, simple_flags(), {reporting_template()});
    auto trans = erl::supervisor::start(*node, simple_flags(),
                                        {reporting_template(erl::restart_type::transient)});
    auto temp = erl::supervisor::start(*node, simple_flags(),
                                       {reporting_template(erl::restart_type::temporary)});
    ASSERT_TRUE(perm && trans && temp);
    auto p = perm->start_child(std::vector<erl::term>{A("p")}).value();
    started("p");
    auto t1 = trans->start_child(std::vector<erl::term>{A("t1")}).value();
    started("t1");
    auto t2 = trans->start_child(std::vector<erl::term>{A("t2")}).value();
    started("t2");
    auto tmp = temp->start_child(std::vector<erl::term>{A("tmp")}).value();
    started("tmp");

    // permanent: restarted with the same arguments (it reports under the same tag).
    self.exit(p, erl::term(A("crash")));
    auto p2 = started("p");
    EXPECT_NE(p2, p);
    EXPECT_EQ(perm->which_children().value().at(0).pid, p2);

    // transient: a normal exit forgets it, a crash restarts it.
    auto m1 = self.monitor(t1);
    self.send(t1, erl::tuple(A("exit"), erl::atoms::normal()));
    EXPECT_EQ(*self.receive(5s), erl::tuple(A("DOWN"), m1, A("process"), t1, A("normal")));
    self.exit(t2, erl::term(A("crash")));
    auto t2b = started("t2");
    auto kids = trans->which_children().value();  // after the restart: the exit was handled
    ASSERT_EQ(kids.size(), 1u);
    EXPECT_EQ(kids[0].pid, t2b);

    // temporary: never restarted, forgotten.
    auto m2 = self.monitor(tmp);
    self.exit(tmp, erl::term(A("crash")));
    EXPECT_EQ(*self.receive(5s), erl::tuple(A("DOWN"), m2, A("process"), tmp, A("crash")));
    EXPECT_EQ(sup_call(temp->self(), A("count_children")),
              erl::list(erl::tuple(A("specs"), 1), erl::tuple(A("active"), 0),
                        erl::tuple(A("supervisors"), 0), erl::tuple(A("workers"), 0)));
}

TEST_F(SupervisorTest, simple_one_for_one_terminate_by_pid_only) {
    auto sup = erl::supervisor::start(*node, simple_flags(),
                                      {reporting_template(erl::restart_type::permanent, true)});
    ASSERT_TRUE(sup);
    auto a = sup->start_child(std::vector<erl::term>{A("a")}).value();
    started("a");
    auto b = sup->start_child(std::vector<erl::term>{A("b")}).value();
    started("b");
    EXPECT_EQ(sup_call(sup->self(), erl::tuple(A("terminate_child"), a)), erl::term(A("ok")));
    EXPECT_EQ(*collector.receive(5s), erl::tuple(A("stopped"), A("a"), A("shutdown")));
    EXPECT_EQ(sup_call(sup->self(), erl::tuple(A("terminate_child"), a)), error(A("not_found")));
    // By id, restart_child and delete_child: {error, simple_one_for_one}, as OTP.
    EXPECT_EQ(sup_call(sup->self(), erl::tuple(A("terminate_child"), A("template"))),
              error(A("simple_one_for_one")));
    EXPECT_EQ(sup_call(sup->self(), erl::tuple(A("restart_child"), A("template"))),
              error(A("simple_one_for_one")));
    EXPECT_EQ(sup_call(sup->self(), erl::tuple(A("delete_child"), A("template"))),
              error(A("simple_one_for_one")));
    EXPECT_TRUE(sup->terminate_child(A("template")));  // an error from C++ as well
    EXPECT_FALSE(sup->terminate_child(b));
    EXPECT_EQ(*collector.receive(5s), erl::tuple(A("stopped"), A("b"), A("shutdown")));
    EXPECT_TRUE(sup->which_children().value().empty());
    // A child spec is no way to add a child here.
    EXPECT_TRUE(sup->start_child(reporting_worker("x")).has_error());
}

TEST_F(SupervisorTest, simple_one_for_one_intensity_ends_the_supervisor) {
    auto sup = erl::supervisor::start(*node, simple_flags(2), {reporting_template()});
    ASSERT_TRUE(sup);
    auto mon = self.monitor(sup->self());
    auto other = sup->start_child(std::vector<erl::term>{A("other")}).value();
    started("other");
    sup->start_child(std::vector<erl::term>{A("c")}).value();
    for (int i = 0; i < 3; ++i)
        self.exit(started("c"), erl::term(A("crash")));
    auto down = self.receive(10s);
    ASSERT_TRUE(down);
    EXPECT_EQ(*down, erl::tuple(A("DOWN"), mon, A("process"), sup->self(), A("shutdown")));
    auto mo = self.monitor(other);  // the other child was shut down first
    EXPECT_EQ(*self.receive(5s), erl::tuple(A("DOWN"), mo, A("process"), other, A("noproc")));
}

// terminate_dynamic_children/1: every child is told to shut down before the supervisor waits
// for any of them. With shutdown = infinity a sequential shutdown would never reach the second
// child while the first ignores its signal.
TEST_F(SupervisorTest, simple_one_for_one_shuts_children_down_at_once) {
    auto tmpl = reporting_template(erl::restart_type::permanent, true, true);
    tmpl.shutdown = erl::infinity;
    auto sup = erl::supervisor::start(*node, simple_flags(), {tmpl});
    ASSERT_TRUE(sup);
    auto a = sup->start_child(std::vector<erl::term>{A("a")}).value();
    started("a");
    auto b = sup->start_child(std::vector<erl::term>{A("b")}).value();
    started("b");
    auto mon = self.monitor(sup->self());
    auto stopper = std::thread([&] { sup->stop(60s); });
    auto ignored = [&](const char* id) {
        return collector.receive_if(
            [&](const erl::term& t) {
                return t.is_tuple(3) && t[0].is_atom(A("ignored")) && t[1].is_atom(A(id));
            },
            10s);
    };
    EXPECT_EQ(*ignored("a"), erl::tuple(A("ignored"), A("a"), A("shutdown")));
    EXPECT_EQ(*ignored("b"), erl::tuple(A("ignored"), A("b"), A("shutdown")));
    self.exit(a, erl::term(A("kill")));
    self.exit(b, erl::term(A("kill")));
    stopper.join();
    EXPECT_EQ(*self.receive(10s),
              erl::tuple(A("DOWN"), mon, A("process"), sup->self(), A("shutdown")));
}

TEST_F(SupervisorTest, simple_one_for_one_takes_exactly_one_template) {
    EXPECT_TRUE(erl::supervisor::start(*node, simple_flags(), {}).has_error());
    EXPECT_TRUE(
        erl::supervisor::start(*node, simple_flags(), {reporting_template(), reporting_template()})
            .has_error());
}

// --- OTP's supervisor calls on a static supervisor ----------------------------------------

TEST_F(SupervisorTest, calls_answer_as_supervisor_erl) {
    auto sup = erl::supervisor::start(*node, {}, {reporting_worker("a")});
    ASSERT_TRUE(sup);
    const auto s = sup->self();
    auto a1 = started("a");
    EXPECT_EQ(sup_call(s, erl::tuple(A("get_childspec"), A("a"))),
              erl::tuple(A("ok"),
                         erl::make_map(
                             {{A("id"), A("a")},
                              {A("start"), erl::tuple(A("undefined"), A("undefined"), erl::list())},
                              {A("restart"), A("permanent")},
                              {A("significant"), false},
                              {A("shutdown"), 2000},
                              {A("type"), A("worker")},
                              {A("modules"), erl::list()}})));
    EXPECT_EQ(sup_call(s, erl::tuple(A("get_childspec"), a1)).size(), 2u);  // by pid too
    EXPECT_EQ(sup_call(s, erl::tuple(A("get_childspec"), A("nope"))), error(A("not_found")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("restart_child"), A("a"))), error(A("running")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("delete_child"), A("a"))), error(A("running")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("terminate_child"), A("a"))), erl::term(A("ok")));
    EXPECT_EQ(sup_call(s, A("which_children")),
              erl::list(erl::tuple(A("a"), A("undefined"), A("worker"), erl::list())));
    EXPECT_EQ(sup_call(s, A("count_children")),
              erl::list(erl::tuple(A("specs"), 1), erl::tuple(A("active"), 0),
                        erl::tuple(A("supervisors"), 0), erl::tuple(A("workers"), 1)));
    auto r = sup_call(s, erl::tuple(A("restart_child"), A("a")));
    ASSERT_TRUE(r.is_tuple(2) && r[0].is_atom(A("ok"))) << r;
    EXPECT_EQ(started("a"), r[1].as_pid());
    EXPECT_EQ(sup_call(s, erl::tuple(A("terminate_child"), r[1])), erl::term(A("ok")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("delete_child"), A("a"))), erl::term(A("ok")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("delete_child"), A("a"))), error(A("not_found")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("terminate_child"), A("a"))), error(A("not_found")));
    EXPECT_EQ(sup_call(s, erl::tuple(A("restart_child"), A("a"))), error(A("not_found")));
    EXPECT_EQ(sup_call(s, A("which_children")), erl::list());
}

TEST_F(SupervisorTest, start_child_checks_the_spec_as_supervisor_erl) {
    auto sup = erl::supervisor::start(*node, {}, {reporting_worker("a")});
    ASSERT_TRUE(sup);
    const auto s = sup->self();
    auto a = started("a");
    auto start = [&](const erl::term& spec) {
        return sup_call(s, erl::tuple(A("start_child"), spec));
    };
    auto mfa = erl::tuple(A("m"), A("f"), erl::list());
    EXPECT_EQ(start(A("junk")), error(erl::tuple(A("invalid_child_spec"), A("junk"))));
    EXPECT_EQ(start(erl::make_map({{A("start"), mfa}})), error(A("missing_id")));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("x")}})), error(A("missing_start")));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("x")}, {A("start"), A("f")}})),
              error(erl::tuple(A("invalid_mfa"), A("f"))));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("x")}, {A("start"), mfa}, {A("restart"), 7}})),
              error(erl::tuple(A("invalid_restart_type"), 7)));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("x")}, {A("start"), mfa}, {A("type"), A("t")}})),
              error(erl::tuple(A("invalid_child_type"), A("t"))));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("x")}, {A("start"), mfa}, {A("shutdown"), -1}})),
              error(erl::tuple(A("invalid_shutdown"), -1)));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("x")}, {A("start"), mfa}, {A("modules"), 1}})),
              error(erl::tuple(A("invalid_modules"), 1)));
    EXPECT_EQ(
        start(erl::make_map({{A("id"), A("x")}, {A("start"), mfa}, {A("significant"), true}})),
        error(erl::tuple(A("bad_combination"), erl::list(erl::tuple(A("auto_shutdown"), A("never")),
                                                         erl::tuple(A("significant"), true)))));
    // The 6-tuple form, for an id in use.
    EXPECT_EQ(
        start(erl::make_tuple({A("a"), mfa, A("permanent"), 5000, A("worker"), erl::list(A("m"))})),
        error(erl::tuple(A("already_started"), a)));
    sup->terminate_child(A("a"));
    EXPECT_EQ(start(erl::make_map({{A("id"), A("a")}, {A("start"), mfa}})),
              error(A("already_present")));
    EXPECT_EQ(sup->start_child(reporting_worker("a")).error(),
              make_error_code(erl::errc::name_taken));
}

// --- where a remote child goes ------------------------------------------------------------

TEST(SupervisorPlacement, less_loaded_then_connected_nodes_first_lost_node_last) {
    namespace sup = erl::detail::sup;
    const auto a = A("a@h"), b = A("b@h"), c = A("c@h"), d = A("d@h");
    // Candidate order when nothing else differs.
    EXPECT_EQ(sup::placement_order({a, b, c}, {a, b, c}, {}, std::nullopt),
              (std::vector<erl::atom>{a, b, c}));
    // Unconnected nodes after connected ones with as many children.
    EXPECT_EQ(sup::placement_order({a, b, c}, {c}, {}, std::nullopt),
              (std::vector<erl::atom>{c, a, b}));
    // Fewer children of this supervisor first, also before a connected node.
    EXPECT_EQ(sup::placement_order({a, b}, {a}, {{a, 1}}, std::nullopt),
              (std::vector<erl::atom>{b, a}));
    EXPECT_EQ(sup::placement_order({a, b, c}, {a, b, c}, {{a, 1}, {b, 1}, {a, 1}}, std::nullopt),
              (std::vector<erl::atom>{c, b, a}));
    // The node the child was lost on goes last, even when it looks connected and idle.
    EXPECT_EQ(sup::placement_order({a, b}, {a, b}, {{b, 3}}, a), (std::vector<erl::atom>{b, a}));
    // Duplicates count once; no candidate gives nothing to try.
    EXPECT_EQ(sup::placement_order({d, d, a}, {a, d}, {}, std::nullopt),
              (std::vector<erl::atom>{d, a}));
    EXPECT_TRUE(sup::placement_order({}, {a}, {}, std::nullopt).empty());
}

TEST(SupervisorPlacement, pg_group_candidates_are_the_members_nodes) {
    namespace sup = erl::detail::sup;
    const auto a = A("a@h"), b = A("b@h");
    erl::pid pa{a, 1, 0, 1}, pa2{a, 2, 0, 1}, pb{b, 1, 0, 1};
    EXPECT_EQ(sup::candidate_nodes(erl::placement::group(A("workers")), {pb, pa, pa2}),
              (std::vector<erl::atom>{a, b}));
    EXPECT_TRUE(sup::candidate_nodes(erl::placement::group(A("workers")), {}).empty());
    EXPECT_EQ(sup::candidate_nodes(erl::placement::on({b, a}), {pa}),
              (std::vector<erl::atom>{b, a}));
}
