// The pg scope core against what real OTP 25 scopes did (interop/traces, captured by
// capture_global.escript): fed every message a BEAM scope received, in order, the core must
// send exactly what that scope sent. Plus the cases the traces cannot show.
#include "cluster/pg_scope.hpp"

#include "global_trace_support.hpp"

#include <erl/parse.hpp>

#include <gtest/gtest.h>

#include <map>

namespace {

using erl::atom;
using erl::term;
using namespace erl::cluster;

term T(const char* text) {
    auto t = erl::parse(text);
    EXPECT_TRUE(t) << text;
    return t ? *t : term{};
}

bool is_reply(const term& m) {
    return m.is_tuple(2) && m[0].is_reference();
}

// Replays one scope of one node; returns the core so the test can look at its final state.
pg_scope replay(const erl::test::node_trace& nt, const char* scope) {
    const term role = erl::tuple(atom("pg"), atom(scope));
    const term self = nt.pid_of(role);
    pg_scope core(atom(scope), self);
    std::map<term, monitor_id> monitor_of;
    std::vector<std::pair<term, term>> ours, beams;
    std::size_t inputs = 0;
    for (const auto& e : nt.of(self)) {
        if (e.what != erl::test::trace_event::kind::receive) {
            if (!is_reply(e.msg)) beams.emplace_back(e.to, e.msg);
            continue;
        }
        const term& m = e.msg;
        actions out;
        std::vector<pg_change> changes;
        ++inputs;
        if (m.is_tuple(2) && m[0].is_atom(atom("nodeup"))) {
            core.node_up(m[1].as_atom(), out);
        } else if (m.is_tuple(2) && m[0].is_atom(atom("nodedown"))) {
            core.node_down(m[1].as_atom(), out);
        } else if (m.is_tuple(5) && m[0].is_atom(atom("DOWN"))) {
            auto it = monitor_of.find(m[3]);
            if (it == monitor_of.end())
                ADD_FAILURE() << "DOWN for a pid the core never monitored: " << m;
            else
                core.down(it->second, out, changes);
        } else if (m.is_tuple(3) && m[0].is_atom(atom("$gen_call"))) {
            const term& req = m[2];
            if (req[0].is_atom(atom("join_local")))
                EXPECT_TRUE(core.join(req[1], req[2], out, changes)) << req;
            else if (req[0].is_atom(atom("leave_local")))
                EXPECT_TRUE(core.leave(req[1], req[2], out, changes)) << req;
            else
                ADD_FAILURE() << "call not in the scenarios: " << req;
        } else {
            EXPECT_EQ(core.message(m, out, changes), pg_scope::handled::ok) << m;
        }
        for (auto& a : out) {
            if (auto* s = std::get_if<send_to>(&a)) ours.emplace_back(s->to, s->message);
            if (auto* mon = std::get_if<monitor_pid>(&a)) monitor_of[mon->pid] = mon->id;
        }
    }
    EXPECT_GT(inputs, 0u);
    EXPECT_FALSE(beams.empty()) << nt.label << "/" << scope;
    EXPECT_EQ(ours.size(), beams.size()) << nt.label << "/" << scope;
    for (std::size_t i = 0; i < std::min(ours.size(), beams.size()); ++i) {
        EXPECT_EQ(ours[i].first, beams[i].first) << nt.label << "/" << scope << " send #" << i;
        EXPECT_EQ(ours[i].second, beams[i].second) << nt.label << "/" << scope << " send #" << i;
    }
    return core;
}

TEST(pg_scope_trace, connect_join_leave_and_exit_send_what_beam_sent) {
    auto all = erl::test::load_trace("connect");
    ASSERT_EQ(all.size(), 2u);
    for (const auto& nt : all) {
        auto pg = replay(nt, "pg");
        auto s2 = replay(nt, "scope2");
        // End of the scenario: every member has left or exited, on both nodes and in both
        // scopes (b's {tuple,group} member of scope2 exited last).
        EXPECT_TRUE(pg.which_groups().empty()) << nt.label;
        EXPECT_TRUE(s2.which_groups().empty()) << nt.label;
        EXPECT_EQ(s2.peers().size(), 1u);
        EXPECT_EQ(pg.peers().size(), 1u);
    }
}

TEST(pg_scope_trace, three_nodes_discover_each_other) {
    auto all = erl::test::load_trace("three");
    for (const auto& nt : all) {
        auto pg = replay(nt, "pg");
        EXPECT_EQ(pg.peers().size(), 2u) << nt.label;
    }
}

TEST(pg_scope_trace, dead_node_members_disappear) {
    auto all = erl::test::load_trace("nodedown");
    auto pg = replay(erl::test::trace_of(all, "a"), "pg");
    EXPECT_TRUE(pg.members(T("g1")).empty());
    EXPECT_TRUE(pg.peers().empty());
}

TEST(pg_scope_trace, partition_and_heal) {
    auto all = erl::test::load_trace("partition");
    for (const auto& nt : all)
        replay(nt, "pg"), replay(nt, "scope2");
}

// ---- cases beyond the traces ---------------------------------------------------------------

struct pg_scope_core : ::testing::Test {
    term self = T("<'me@h'.80.0.1>");
    term p1 = T("<'me@h'.100.0.1>");
    term p2 = T("<'me@h'.101.0.1>");
    term peer = T("<'other@h'.76.0.2>");
    term r1 = T("<'other@h'.93.0.2>");
    pg_scope core{atom("pg"), self};
    actions out;
    std::vector<pg_change> changes;

    monitor_id monitor_for(const term& pid) {
        for (auto& a : out)
            if (auto* m = std::get_if<monitor_pid>(&a); m && m->pid == pid) return m->id;
        ADD_FAILURE() << "no monitor for " << pid;
        return 0;
    }
    std::vector<send_to> sends() const {
        std::vector<send_to> s;
        for (auto& a : out)
            if (auto* x = std::get_if<send_to>(&a)) s.push_back(*x);
        return s;
    }
    void discovered_by_peer() {
        ASSERT_EQ(core.message(erl::tuple(atom("discover"), peer), out, changes),
                  pg_scope::handled::ok);
    }
};

TEST_F(pg_scope_core, discover_answers_sync_and_discovers_back_once) {
    ASSERT_TRUE(core.join(T("g"), p1, out, changes));
    out.clear();
    discovered_by_peer();
    auto s = sends();
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].to, peer);
    EXPECT_EQ(s[0].message, erl::tuple(atom("$gen_cast"),
                                       erl::tuple(atom("sync"), self,
                                                  erl::list(erl::tuple(T("g"), erl::list(p1))))));
    EXPECT_EQ(s[1].message, erl::tuple(atom("discover"), self));
    EXPECT_TRUE(s[1].noconnect);
    out.clear();
    // A second discover from the same peer: only the sync.
    discovered_by_peer();
    EXPECT_EQ(sends().size(), 1u);
    // OTP 26+ may send {discover, Peer, Vsn}.
    out.clear();
    EXPECT_EQ(core.message(erl::tuple(atom("discover"), peer, 1), out, changes),
              pg_scope::handled::ok);
    EXPECT_EQ(sends().size(), 1u);
}

TEST_F(pg_scope_core, sync_lists_groups_in_term_order_with_pids_descending) {
    ASSERT_TRUE(core.join(T("b"), p1, out, changes));
    ASSERT_TRUE(core.join(T("a"), p1, out, changes));
    ASSERT_TRUE(core.join(T("a"), p2, out, changes));
    out.clear();
    discovered_by_peer();
    EXPECT_EQ(sends()[0].message[1][2],
              erl::list(erl::tuple(T("a"), erl::list(p2, p1)), erl::tuple(T("b"), erl::list(p1))));
}

TEST_F(pg_scope_core, join_rejects_remote_pids_and_non_pids) {
    EXPECT_FALSE(core.join(T("g"), r1, out, changes));
    EXPECT_FALSE(core.join(T("g"), erl::list(p1, T("x")), out, changes));
    EXPECT_FALSE(core.join(T("g"), T("x"), out, changes));
    EXPECT_TRUE(out.empty());
    EXPECT_TRUE(core.which_groups().empty());
}

TEST_F(pg_scope_core, leave_of_a_non_member_is_not_joined) {
    EXPECT_FALSE(core.leave(T("g"), p1, out, changes));
    ASSERT_TRUE(core.join(T("g"), p1, out, changes));
    EXPECT_FALSE(core.leave(T("h"), p1, out, changes));
    EXPECT_TRUE(core.leave(T("g"), p1, out, changes));
    EXPECT_TRUE(core.which_groups().empty());
    // The member's monitor went with its last group.
    bool demonitored = false;
    for (auto& a : out)
        demonitored |= std::holds_alternative<demonitor_pid>(a);
    EXPECT_TRUE(demonitored);
}

TEST_F(pg_scope_core, local_member_exit_leaves_all_groups_and_tells_peers) {
    discovered_by_peer();
    ASSERT_TRUE(core.join(T("g1"), p1, out, changes));
    ASSERT_TRUE(core.join(T("g2"), p1, out, changes));
    auto id = monitor_for(p1);
    out.clear();
    changes.clear();
    core.down(id, out, changes);
    EXPECT_TRUE(core.which_groups().empty());
    ASSERT_EQ(sends().size(), 1u);
    EXPECT_EQ(sends()[0].to, peer);
    EXPECT_EQ(sends()[0].message, erl::tuple(atom("leave"), self, p1, erl::list(T("g2"), T("g1"))));
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_FALSE(changes[0].joined);
}

TEST_F(pg_scope_core, remote_members_come_and_go_with_the_peer_scope) {
    discovered_by_peer();
    auto peer_mon = monitor_for(peer);
    changes.clear();
    ASSERT_EQ(core.message(erl::tuple(atom("join"), peer, T("g"), r1), out, changes),
              pg_scope::handled::ok);
    EXPECT_EQ(core.members(T("g")), std::vector<term>{r1});
    EXPECT_TRUE(core.local_members(T("g")).empty());
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_TRUE(changes[0].joined);
    changes.clear();
    core.down(peer_mon, out, changes);
    EXPECT_TRUE(core.members(T("g")).empty());
    EXPECT_TRUE(core.peers().empty());
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_FALSE(changes[0].joined);
    // A join that was in flight when the peer went down is dropped.
    changes.clear();
    EXPECT_EQ(core.message(erl::tuple(atom("join"), peer, T("g"), r1), out, changes),
              pg_scope::handled::ok);
    EXPECT_TRUE(core.members(T("g")).empty());
    EXPECT_TRUE(changes.empty());
}

TEST_F(pg_scope_core, sync_replaces_what_the_peer_had) {
    term r2 = T("<'other@h'.94.0.2>");
    auto sync = [&](const char* groups) {
        return erl::tuple(atom("$gen_cast"), erl::tuple(atom("sync"), peer, T(groups)));
    };
    std::string g1 = "[{g1,[" + r1.to_string() + "]},{g2,[" + r2.to_string() + "]}]";
    ASSERT_EQ(core.message(sync(g1.c_str()), out, changes), pg_scope::handled::ok);
    EXPECT_EQ(core.members(T("g1")), std::vector<term>{r1});
    EXPECT_EQ(core.peers(), std::vector<term>{peer});  // sync from an unknown peer monitors it
    std::string g2 = "[{g1,[" + r2.to_string() + "]}]";
    changes.clear();
    ASSERT_EQ(core.message(sync(g2.c_str()), out, changes), pg_scope::handled::ok);
    EXPECT_EQ(core.members(T("g1")), std::vector<term>{r2});
    EXPECT_TRUE(core.members(T("g2")).empty());
    EXPECT_EQ(changes.size(), 3u);  // r1 left g1, r2 joined g1, r2 left g2
}

TEST_F(pg_scope_core, unexpected_messages_change_nothing) {
    ASSERT_TRUE(core.join(T("g"), p1, out, changes));
    out.clear();
    for (const char* m :
         {"hello", "{join,x,g,y}", "{'$gen_cast',{sync,x,[]}}",
          "{'$gen_cast',{sync,<'o@h'.1.0.1>,[nope]}}", "{leave,<'o@h'.1.0.1>,x,[g]}", "{discover}",
          "{'$gen_cast',{sync,<'o@h'.1.0.1>,[{g,[x]}]}}"})
        EXPECT_EQ(core.message(T(m), out, changes), pg_scope::handled::ignored) << m;
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(core.members(T("g")), std::vector<term>{p1});
}

}  // namespace
