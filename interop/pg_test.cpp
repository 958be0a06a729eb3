// Interop: pg scopes on an erlcpp node among real OTP 25 nodes (and an Elixir node). C++
// members are seen by BEAM's pg:get_members, leave when their process exits or their node
// goes; BEAM members are seen from C++ and reported to subscribers. BEAM's scopes never crash
// (their pid stays the same) and log nothing.
#include "cluster_support.hpp"
#include "harness/named_cluster_test.hpp"

#include <erl/gen_server.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

using namespace std::chrono_literals;
using erl::interop::atom_term;
using erl::interop::cluster_node;
using erl::interop::logged_beam;
using erl::interop::quote_atom;
using erl::interop::wait_until;

namespace {

class PgInterop : public erl::interop::named_cluster_test<"pcpp", "pbeam"> {
  protected:
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
    ASSERT_FALSE(erl::pg::join(*cpp.node, atom_term("workers"), w1->self()));
    ASSERT_FALSE(erl::pg::join(*cpp.node, erl::atom("pg"), atom_term("workers"), {w2->self()}));
    const std::string two = "[" + cpp.quoted_name() + "," + cpp.quoted_name() + "]";
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(wait_until([&] { return member_nodes(*b, "workers") == two; }, 5s))
            << b->node_name() << ": " << member_nodes(*b, "workers");
    EXPECT_EQ(erl::pg::get_local_members(*cpp.node, atom_term("workers")).size(), 2u);

    auto left = erl::pg::leave(*cpp.node, atom_term("workers"), w1->self());
    ASSERT_TRUE(left && *left);
    auto again = erl::pg::leave(*cpp.node, atom_term("workers"), w1->self());
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);  // not_joined
    const std::string one = "[" + cpp.quoted_name() + "]";
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(wait_until([&] { return member_nodes(*b, "workers") == one; }, 5s));

    w2->exit(atom_term("done"));
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
    ASSERT_TRUE(wait_until(
        [&] { return erl::pg::get_members(*cpp.node, atom_term("bgroup")).size() == 1; }, 5s));
    b2->eval("P2 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(bgroup, P2)");
    ASSERT_TRUE(wait_until(
        [&] { return erl::pg::get_members(*cpp.node, atom_term("bgroup")).size() == 2; }, 5s));
    auto members = erl::pg::get_members(*cpp.node, atom_term("bgroup"));
    std::set<std::string> nodes;
    for (auto& p : members)
        nodes.insert(std::string(p.node.str()));
    EXPECT_EQ(nodes, (std::set<std::string>{b1->node_name(), b2->node_name()}));
    // The subscriber hears of a change just after get_members shows it.
    for (auto& p : members)
        EXPECT_TRUE(wait_until([&] { return rec.saw(true, p); }, 5s));
    EXPECT_TRUE(erl::pg::get_local_members(*cpp.node, atom_term("bgroup")).empty());

    // A BEAM member exits: gone here, reported as left.
    b2->eval("P2 ! stop");
    ASSERT_TRUE(wait_until(
        [&] { return erl::pg::get_members(*cpp.node, atom_term("bgroup")).size() == 1; }, 5s));
    for (auto& p : members)
        if (p.node.str() == b2->node_name())
            EXPECT_TRUE(wait_until([&] { return rec.saw(false, p); }, 5s));
    // BEAM's node goes: its members go.
    b1->eval("erlang:disconnect_node(" + cpp.quoted_name() + ")");
    b2->eval("erlang:disconnect_node(" + cpp.quoted_name() + ")");
    EXPECT_TRUE(wait_until(
        [&] { return erl::pg::get_members(*cpp.node, atom_term("bgroup")).empty(); }, 5s));
    expect_scopes_intact({b1.get(), b2.get()});
}

TEST_F(PgInterop, members_of_a_stopped_erlcpp_node_disappear) {
    auto b1 = beam("b1"), b2 = beam("b2");
    connect(*b2, b1->node_name());
    auto cpp = std::make_unique<cluster_node>(cpp_opts());
    ASSERT_FALSE(cpp->node->connect(erl::atom(b1->node_name())));
    auto w = cpp->node->spawn_mailbox();
    ASSERT_TRUE(w);
    ASSERT_FALSE(erl::pg::join(*cpp->node, atom_term("doomed"), w->self()));
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
    ASSERT_FALSE(erl::pg::join(*cpp.node, erl::atom("erlcpp_scope"), atom_term("g"), {w->self()}));
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
            return erl::pg::get_members(*cpp.node, erl::atom("erlcpp_scope"), atom_term("g"))
                       .size() == 2;
        },
        5s));
    expect_scopes_intact({b1.get()});
}

namespace {
// A gen_server answering every call with {echo, Request}.
struct echo_server : erl::gen_server::server {
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        return erl::tuple(atom_term("echo"), req);
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
    ASSERT_FALSE(erl::pg::join(*cpp.node, atom_term("workers"), w->self()));
    auto reg = erl::global::register_name(*cpp.node, atom_term("cpp_worker"), w->self());
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
    auto named = erl::global::register_name(*cpp.node, atom_term("cpp_echo"), (*srv)->self());
    ASSERT_TRUE(named && *named);
    EXPECT_EQ(ex.eval("GenServer.call({:global, :cpp_echo}, :hello, 5000)"), "{:echo, :hello}");
}

namespace {
// min / median / 90th percentile / max of `us` (microseconds), in milliseconds.
std::string summary(std::vector<std::int64_t> us) {
    std::sort(us.begin(), us.end());
    auto ms = [](std::int64_t v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(v) / 1000.0);
        return std::string(buf);
    };
    return "n=" + std::to_string(us.size()) + " min=" + ms(us.front()) +
           " median=" + ms(us[us.size() / 2]) + " p90=" + ms(us[us.size() * 9 / 10]) +
           " max=" + ms(us.back()) + " ms";
}

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}
}  // namespace

// How long a join takes to become visible on the other side, both ways, over repeated runs:
// a C++ pg::join until BEAM's scope has it (the time its pg:monitor_scope subscriber is told,
// which is when pg:get_members starts returning it), and a BEAM pg:join until the C++
// subscriber is called (just after erl::pg::get_members shows it). Both sides read the same
// wall clock (os:system_time vs std::chrono::system_clock). The figures go to the test log;
// only the visibility itself is asserted.
TEST_F(PgInterop, join_visibility_is_measured_both_ways) {
    auto b1 = beam("b1");
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    // The overlay is up both ways once a first member has crossed (not measured).
    ASSERT_FALSE(erl::pg::join(*cpp.node, atom_term("lat_warm"), mb->self()));
    ASSERT_TRUE(wait_until([&] { return b1->eval("pg:get_members(lat_warm)") != "[]"; }, 10s));
    // The BEAM watcher: the system time of every join of lat_cpp its scope reports.
    ASSERT_EQ(b1->eval("begin ErlcppParent = self(), ErlcppW = spawn(fun() -> {Ref, _} = "
                       "pg:monitor_scope(pg), ErlcppParent ! ready, (fun L(Acc) -> receive "
                       "{Ref, join, lat_cpp, _} -> L([os:system_time(microsecond) | Acc]); "
                       "{get, From} -> From ! {times, lists:reverse(Acc)}, L(Acc); "
                       "_ -> L(Acc) end end)([]) end), register(erlcpp_lat, ErlcppW), "
                       "receive ready -> ok end end"),
              "ok");
    const std::string times =
        "(fun() -> erlcpp_lat ! {get, self()}, receive {times, T} -> T end end)()";
    constexpr int runs = 50;
    std::vector<std::int64_t> sent;
    for (int i = 0; i < runs; ++i) {
        sent.push_back(now_us());
        ASSERT_FALSE(erl::pg::join(*cpp.node, atom_term("lat_cpp"), mb->self()));
        ASSERT_TRUE(wait_until(
            [&] { return b1->eval("length(" + times + ")") == std::to_string(i + 1); }, 10s));
        ASSERT_TRUE(erl::pg::leave(*cpp.node, atom_term("lat_cpp"), mb->self()));
        ASSERT_TRUE(wait_until([&] { return b1->eval("pg:get_members(lat_cpp)") == "[]"; }, 10s));
    }
    std::vector<std::int64_t> cpp_to_beam;
    {
        auto list = b1->eval(times);
        std::vector<std::int64_t> seen;
        std::string digits;
        for (char c : list + ",") {
            if (c >= '0' && c <= '9') {
                digits += c;
            } else if (!digits.empty()) {
                seen.push_back(std::stoll(digits));
                digits.clear();
            }
        }
        ASSERT_EQ(seen.size(), sent.size());
        for (std::size_t i = 0; i < seen.size(); ++i)
            cpp_to_beam.push_back(seen[i] - sent[i]);
    }

    // BEAM -> C++: a BEAM process joins lat_beam; the C++ subscriber notes when it is told.
    std::mutex mu;
    std::vector<std::int64_t> told;
    auto sub =
        erl::pg::subscribe(*cpp.node, erl::pg::default_scope(), [&](const erl::pg::event& e) {
            if (e.group == atom_term("lat_beam") && !e.joined.empty()) {
                std::lock_guard lk(mu);
                told.push_back(now_us());
            }
        });
    ASSERT_NE(sub, 0u);
    b1->eval("ErlcppMember = spawn(fun() -> receive stop -> ok end end)");
    std::vector<std::int64_t> beam_to_cpp;
    for (int i = 0; i < runs; ++i) {
        auto t0 = b1->eval(
            "(fun() -> T0 = os:system_time(microsecond), "
            "ok = pg:join(lat_beam, ErlcppMember), T0 end)()");
        ASSERT_TRUE(wait_until(
            [&] {
                std::lock_guard lk(mu);
                return told.size() == static_cast<std::size_t>(i + 1);
            },
            10s));
        {
            std::lock_guard lk(mu);
            beam_to_cpp.push_back(told.back() - std::stoll(t0));
        }
        EXPECT_EQ(erl::pg::get_members(*cpp.node, atom_term("lat_beam")).size(), 1u);
        b1->eval("ok = pg:leave(lat_beam, ErlcppMember)");
        ASSERT_TRUE(wait_until(
            [&] { return erl::pg::get_members(*cpp.node, atom_term("lat_beam")).empty(); }, 10s));
    }
    erl::pg::unsubscribe(*cpp.node, erl::pg::default_scope(), sub);
    std::cerr << "pg visibility, C++ pg::join -> BEAM pg:get_members: " << summary(cpp_to_beam)
              << "\n"
              << "pg visibility, BEAM pg:join -> C++ pg::get_members: " << summary(beam_to_cpp)
              << "\n";
    expect_scopes_intact({b1.get()});
}
