// Interop: pg scopes on an erlcpp node among real OTP 25 nodes (and an Elixir node). C++
// members are seen by BEAM's pg:get_members, leave when their process exits or their node
// goes; BEAM members are seen from C++ and reported to subscribers. BEAM's scopes never crash
// (their pid stays the same) and log nothing.
#include "cluster_support.hpp"

#include <erl/gen_server.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include <mutex>

using namespace std::chrono_literals;
using erl::interop::cluster_node;
using erl::interop::logged_beam;
using erl::interop::quote_atom;
using erl::interop::wait_until;

namespace {

erl::term A(const char* s) {
    return erl::term(erl::atom(s));
}

class PgInterop : public erl::interop::cluster_test {
  protected:
    PgInterop() : cluster_test("pcpp", "pbeam") {}

    // A BEAM node running the default scope (kernel starts it only with start_pg = true) and
    // remembering its scope's pid in ScopePid.
    std::unique_ptr<logged_beam> beam(const std::string& tag) {
        auto b = std::make_unique<logged_beam>(beam_opts(), dir, tag);
        b->eval("{ok, ScopePid} = pg:start(pg), ScopePid");
        return b;
    }
    static void connect(logged_beam& from, const std::string& to) {
        ASSERT_EQ(from.eval("net_kernel:connect_node(" + quote_atom(to) + ")"), "true");
    }
    // The nodes of the members of Group in BEAM's default scope, sorted.
    static std::string member_nodes(logged_beam& b, const std::string& group) {
        return b.eval("lists:sort([node(P) || P <- pg:get_members(" + group + ")])");
    }
    static void expect_scopes_intact(std::initializer_list<logged_beam*> beams) {
        for (auto* b : beams) {
            EXPECT_EQ(b->eval("whereis(pg) =:= ScopePid"), "true") << b->node_name();
            auto w = b->warnings();
            EXPECT_EQ(w.find("pg"), std::string::npos) << b->node_name() << ":\n" << w;
        }
    }

    erl::interop::temp_dir dir{"pg"};
};

// What a subscriber saw, for waiting on.
struct recorder {
    std::mutex mu;
    std::vector<erl::pg::event> events;
    std::function<void(const erl::pg::event&)> cb() {
        return [this](const erl::pg::event& e) {
            std::lock_guard lk(mu);
            events.push_back(e);
        };
    }
    bool saw(bool joined, const erl::pid& p) {
        std::lock_guard lk(mu);
        for (auto& e : events)
            for (auto& q : joined ? e.joined : e.left)
                if (q == p) return true;
        return false;
    }
};

}  // namespace

TEST_F(PgInterop, cpp_members_seen_by_beam_and_gone_when_they_exit) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    connect(*b2, b1->node_name());
    connect(*b3, b1->node_name());
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));

    auto w1 = cpp.node->spawn_mailbox();
    auto w2 = cpp.node->spawn_mailbox();
    ASSERT_TRUE(w1 && w2);
    ASSERT_FALSE(erl::pg::join(*cpp.node, A("workers"), w1->self()));
    ASSERT_FALSE(erl::pg::join(*cpp.node, erl::atom("pg"), A("workers"), {w2->self()}));
    const std::string two = "[" + cpp.quoted_name() + "," + cpp.quoted_name() + "]";
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(wait_until([&] { return member_nodes(*b, "workers") == two; }, 5s))
            << b->node_name() << ": " << member_nodes(*b, "workers");
    EXPECT_EQ(erl::pg::get_local_members(*cpp.node, A("workers")).size(), 2u);

    auto left = erl::pg::leave(*cpp.node, A("workers"), w1->self());
    ASSERT_TRUE(left && *left);
    auto again = erl::pg::leave(*cpp.node, A("workers"), w1->self());
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);  // not_joined
    const std::string one = "[" + cpp.quoted_name() + "]";
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(wait_until([&] { return member_nodes(*b, "workers") == one; }, 5s));

    w2->exit(A("done"));
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(wait_until([&] { return member_nodes(*b, "workers") == "[]"; }, 5s));
    EXPECT_TRUE(erl::pg::which_groups(*cpp.node).empty());
    expect_scopes_intact({b1.get(), b2.get(), b3.get()});
}

TEST_F(PgInterop, beam_members_seen_from_cpp_with_events) {
    auto b1 = beam("b1"), b2 = beam("b2");
    connect(*b2, b1->node_name());
    cluster_node cpp(cpp_opts());
    recorder rec;
    ASSERT_NE(erl::pg::subscribe(*cpp.node, erl::atom("pg"), rec.cb()), 0u);
    // A member that joined before we connected arrives with the sync, one after with a join.
    b1->eval("P1 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(bgroup, P1)");
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    ASSERT_TRUE(
        wait_until([&] { return erl::pg::get_members(*cpp.node, A("bgroup")).size() == 1; }, 5s));
    b2->eval("P2 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(bgroup, P2)");
    ASSERT_TRUE(
        wait_until([&] { return erl::pg::get_members(*cpp.node, A("bgroup")).size() == 2; }, 5s));
    auto members = erl::pg::get_members(*cpp.node, A("bgroup"));
    std::set<std::string> nodes;
    for (auto& p : members)
        nodes.insert(std::string(p.node.str()));
    EXPECT_EQ(nodes, (std::set<std::string>{b1->node_name(), b2->node_name()}));
    // The subscriber hears of a change just after get_members shows it.
    for (auto& p : members)
        EXPECT_TRUE(wait_until([&] { return rec.saw(true, p); }, 5s));
    EXPECT_TRUE(erl::pg::get_local_members(*cpp.node, A("bgroup")).empty());

    // A BEAM member exits: gone here, reported as left.
    b2->eval("P2 ! stop");
    ASSERT_TRUE(
        wait_until([&] { return erl::pg::get_members(*cpp.node, A("bgroup")).size() == 1; }, 5s));
    for (auto& p : members)
        if (p.node.str() == b2->node_name())
            EXPECT_TRUE(wait_until([&] { return rec.saw(false, p); }, 5s));
    // BEAM's node goes: its members go.
    b1->eval("erlang:disconnect_node(" + cpp.quoted_name() + ")");
    b2->eval("erlang:disconnect_node(" + cpp.quoted_name() + ")");
    EXPECT_TRUE(
        wait_until([&] { return erl::pg::get_members(*cpp.node, A("bgroup")).empty(); }, 5s));
    expect_scopes_intact({b1.get(), b2.get()});
}

TEST_F(PgInterop, members_of_a_stopped_erlcpp_node_disappear) {
    auto b1 = beam("b1"), b2 = beam("b2");
    connect(*b2, b1->node_name());
    auto cpp = std::make_unique<cluster_node>(cpp_opts());
    ASSERT_FALSE(cpp->node->connect(erl::atom(b1->node_name())));
    auto w = cpp->node->spawn_mailbox();
    ASSERT_TRUE(w);
    ASSERT_FALSE(erl::pg::join(*cpp->node, A("doomed"), w->self()));
    const std::string one = "[" + cpp->quoted_name() + "]";
    for (auto* b : {b1.get(), b2.get()})
        ASSERT_TRUE(wait_until([&] { return member_nodes(*b, "doomed") == one; }, 5s));
    w = {};
    cpp->node->stop();
    cpp.reset();
    for (auto* b : {b1.get(), b2.get()})
        EXPECT_TRUE(wait_until([&] { return member_nodes(*b, "doomed") == "[]"; }, 5s));
    expect_scopes_intact({b1.get(), b2.get()});
}

// A named scope next to the default one: only the nodes running that scope see its members.
TEST_F(PgInterop, named_scope) {
    auto b1 = beam("b1");
    b1->eval("{ok, _} = pg:start(erlcpp_scope)");
    erl::cluster::options co;
    co.pg_scopes = {erl::atom("pg"), erl::atom("erlcpp_scope")};
    cluster_node cpp(cpp_opts(), co);
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    auto w = cpp.node->spawn_mailbox();
    ASSERT_TRUE(w);
    ASSERT_FALSE(erl::pg::join(*cpp.node, erl::atom("erlcpp_scope"), A("g"), {w->self()}));
    EXPECT_TRUE(wait_until(
        [&] {
            return b1->eval("[node(P) || P <- pg:get_members(erlcpp_scope, g)]") ==
                   "[" + cpp.quoted_name() + "]";
        },
        5s));
    EXPECT_EQ(b1->eval("pg:get_members(g)"), "[]");
    EXPECT_EQ(erl::pg::which_scopes(*cpp.node).size(), 2u);
    EXPECT_EQ(b1->eval("pg:join(erlcpp_scope, g, self())"), "ok");
    EXPECT_TRUE(wait_until(
        [&] {
            return erl::pg::get_members(*cpp.node, erl::atom("erlcpp_scope"), A("g")).size() == 2;
        },
        5s));
    expect_scopes_intact({b1.get()});
}

namespace {
// A gen_server answering every call with {echo, Request}.
struct echo_server : erl::gen_server::server {
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        return erl::tuple(A("echo"), req);
    }
    void handle_cast(const erl::term&) override {}
};
}  // namespace

// Elixir sees C++ members through :pg and C++ global names through :global, and calls a C++
// gen_server by its global name.
TEST_F(PgInterop, elixir_sees_cpp_members_and_global_names) {
    erl::interop::beam_node ex(beam_opts(true));
    EXPECT_EQ(ex.eval("{:ok, _} = :pg.start(:pg)\n:ok"), ":ok");
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(ex.node_name())));
    EXPECT_EQ(ex.eval("Task.async(fn -> :global.sync() end) |> Task.await(10000)"), ":ok");
    auto w = cpp.node->spawn_mailbox();
    ASSERT_TRUE(w);
    ASSERT_FALSE(erl::pg::join(*cpp.node, A("workers"), w->self()));
    auto reg = erl::global::register_name(*cpp.node, A("cpp_worker"), w->self());
    ASSERT_TRUE(reg && *reg);
    const std::string node_atom = ":\"" + cpp.name() + "\"";
    EXPECT_TRUE(wait_until(
        [&] {
            return ex.eval("Enum.map(:pg.get_members(:workers), &node/1)") == "[" + node_atom + "]";
        },
        5s));
    EXPECT_EQ(ex.eval("node(:global.whereis_name(:cpp_worker))"), node_atom);

    auto srv = erl::gen_server::start(*cpp.node, std::make_shared<echo_server>());
    ASSERT_TRUE(srv);
    auto named = erl::global::register_name(*cpp.node, A("cpp_echo"), (*srv)->self());
    ASSERT_TRUE(named && *named);
    EXPECT_EQ(ex.eval("GenServer.call({:global, :cpp_echo}, :hello, 5000)"), "{:echo, :hello}");
}
