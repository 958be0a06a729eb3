// global_server and its tables beyond what the captured traces show: lock exclusion and
// re-entrancy, holder death, names and their monitors, the node's own operations, sync,
// prevent_overlapping_partitions bookkeeping, and that every call gets an answer.
#include "cluster/global_server.hpp"
#include "cluster/global_tables.hpp"

#include <erl/parse.hpp>

#include <gtest/gtest.h>

namespace {

using erl::atom;
using erl::term;
using namespace erl::cluster;

term T(const std::string& text) {
    auto t = erl::parse(text);
    EXPECT_TRUE(t) << text;
    return t ? *t : term{};
}
atom A(const char* s) {
    return atom(s);
}

struct global_server_core : ::testing::Test {
    atom me = A("me@h");
    atom other = A("other@h");
    term gns = T("<'me@h'.50.0.1>");
    term locker = T("<'me@h'.51.0.1>");
    term registrar = T("<'me@h'.52.0.1>");
    term p1 = T("<'me@h'.100.0.1>");
    term r1 = T("<'other@h'.60.0.2>");
    term r2 = T("<'other@h'.61.0.2>");
    std::optional<global_server> core;
    actions out;

    void SetUp() override {
        global_config cfg;
        cfg.node = me;
        cfg.server = gns;
        cfg.locker = locker;
        cfg.registrar = registrar;
        core.emplace(cfg);
    }

    // A '$gen_call' from `from_pid`; returns the one reply it got.
    term call(const term& from_pid, const term& req) {
        out.clear();
        term from = erl::tuple(from_pid, T("tag"));
        EXPECT_EQ(core->message(erl::tuple(A("$gen_call"), from, req), out),
                  global_server::handled::ok);
        std::vector<term> replies;
        for (auto& a : out)
            if (auto* r = std::get_if<reply_to>(&a)) {
                EXPECT_EQ(r->from, from);
                replies.push_back(r->value);
            }
        EXPECT_EQ(replies.size(), 1u) << req;
        return replies.empty() ? term{} : replies[0];
    }
    monitor_id monitor_of(const term& pid) const {
        for (auto& a : out)
            if (auto* m = std::get_if<monitor_pid>(&a); m && m->pid == pid) return m->id;
        ADD_FAILURE() << "no monitor on " << pid;
        return 0;
    }
    std::optional<term> done(std::uint64_t op) const {
        for (auto& a : out)
            if (auto* d = std::get_if<op_done>(&a); d && d->op == op) return d->result;
        return std::nullopt;
    }
    std::vector<send_to> sends() const {
        std::vector<send_to> s;
        for (auto& a : out)
            if (auto* x = std::get_if<send_to>(&a)) s.push_back(*x);
        return s;
    }
};

TEST_F(global_server_core, a_lock_excludes_other_requesters_and_is_shared_by_its_own) {
    EXPECT_EQ(call(r1, T("{set_lock,{res,req1}}")), term(true));
    auto m1 = monitor_of(r1);
    EXPECT_EQ(call(r2, T("{set_lock,{res,req2}}")), term(false));
    // Same LockRequesterId: a second holder (can_set_lock/1).
    EXPECT_EQ(call(r2, T("{set_lock,{res,req1}}")), term(true));
    EXPECT_EQ(core->locks().find(A("res"))->holders.size(), 2u);
    // Asking again changes nothing.
    EXPECT_EQ(call(r1, T("{set_lock,{res,req1}}")), term(true));
    EXPECT_EQ(core->locks().find(A("res"))->holders.size(), 2u);
    // del_lock by a process that does not hold it, or for another requester id: no-op.
    EXPECT_EQ(call(p1, T("{del_lock,{res,req1}}")), term(true));
    EXPECT_EQ(call(r2, T("{del_lock,{res,req2}}")), term(true));
    EXPECT_EQ(core->locks().find(A("res"))->holders.size(), 2u);
    EXPECT_EQ(call(r2, T("{del_lock,{res,req1}}")), term(true));
    // The last holder dies: the lock is gone and anyone may take it.
    out.clear();
    core->down(m1, out);
    EXPECT_FALSE(core->locks().is_set(A("res")));
    EXPECT_EQ(call(r2, T("{set_lock,{res,req2}}")), term(true));
}

TEST_F(global_server_core, names_follow_their_monitors) {
    EXPECT_EQ(call(r1, erl::tuple(A("register"), A("n"), r1, T("fun global:random_exit_name/3"))),
              term(A("yes")));
    auto m = monitor_of(r1);
    EXPECT_EQ(core->whereis(term(A("n"))), std::optional<term>(r1));
    // Registering again replaces (and demonitors the old pid).
    EXPECT_EQ(call(r2, erl::tuple(A("register"), A("n"), r2, T("fun global:random_exit_name/3"))),
              term(A("yes")));
    bool demonitored = false;
    for (auto& a : out)
        if (auto* d = std::get_if<demonitor_pid>(&a)) demonitored |= d->id == m;
    EXPECT_TRUE(demonitored);
    EXPECT_EQ(core->whereis(term(A("n"))), std::optional<term>(r2));
    auto m2 = monitor_of(r2);
    out.clear();
    core->down(m, out);  // the old monitor's late DOWN changes nothing
    EXPECT_EQ(core->whereis(term(A("n"))), std::optional<term>(r2));
    core->down(m2, out);
    EXPECT_FALSE(core->whereis(term(A("n"))));
    EXPECT_EQ(call(r1, T("{unregister,n}")), term(erl::atoms::ok()));
}

TEST_F(global_server_core, register_ext_names_are_listed_for_exchange) {
    EXPECT_EQ(call(r1, erl::tuple(A("register_ext"), A("x"), r1, T("fun global:random_exit_name/3"),
                                  other)),
              term(A("yes")));
    EXPECT_EQ(call(r1, T("get_names_ext")), erl::list(erl::tuple(A("x"), r1, other)));
}

TEST_F(global_server_core, every_call_is_answered) {
    EXPECT_EQ(call(r1, T("get_protocol_version")), term(8));
    EXPECT_EQ(call(r1, T("get_known")), term{});
    EXPECT_EQ(call(r1, T("get_synced")), term{});
    // global.erl never answers a call it does not know (the caller would hang): we do.
    EXPECT_EQ(call(r1, T("{something,new}")), term(false));
    EXPECT_EQ(call(r1, T("{set_lock,not_an_id}")), term(false));
}

TEST_F(global_server_core, unexpected_messages_are_ignored) {
    for (const char* m : {"hello", "{init_connect_ack}", "{lost_connection,a,b,c,d}", "{}"})
        EXPECT_EQ(core->message(T(m), out), global_server::handled::ignored) << m;
}

TEST_F(global_server_core, own_operations_alone_on_the_node) {
    out.clear();
    auto op = core->register_name(A("svc"), p1, T("fun global:random_exit_name/3"), out);
    EXPECT_EQ(done(op), std::optional<term>(A("yes")));
    EXPECT_EQ(core->whereis(term(A("svc"))), std::optional<term>(p1));
    // The registrar's {global, Registrar} lock is released again.
    EXPECT_FALSE(core->locks().is_set(A("global")));
    out.clear();
    op = core->register_name(A("svc"), T("<'me@h'.101.0.1>"), T("fun global:random_exit_name/3"),
                             out);
    EXPECT_EQ(done(op), std::optional<term>(A("no")));  // taken
    out.clear();
    op = core->register_name(A("svc2"), p1, T("fun global:random_exit_name/3"), out);
    EXPECT_EQ(done(op), std::optional<term>(A("no")));  // one name per process
    out.clear();
    op = core->unregister_name(A("svc"), out);
    EXPECT_EQ(done(op), std::optional<term>(erl::atoms::ok()));
    EXPECT_FALSE(core->whereis(term(A("svc"))));
}

TEST_F(global_server_core, own_set_lock_retries_with_back_off_until_free) {
    EXPECT_EQ(call(r1, T("{set_lock,{res,theirs}}")), term(true));
    auto holder = monitor_of(r1);
    out.clear();
    auto op = core->set_lock(T("{res,mine}"), p1, {me}, 2, out);
    EXPECT_FALSE(done(op));
    const timer_start* t = nullptr;
    for (auto& a : out)
        if (auto* x = std::get_if<timer_start>(&a)) t = x;
    ASSERT_NE(t, nullptr);
    EXPECT_GE(t->after.count(), 1);
    EXPECT_LE(t->after.count(), 250);  // random_sleep(1): at most 1/4 s
    auto id = t->id;
    actions o2;
    core->down(holder, o2);  // the other holder dies meanwhile
    out.clear();
    core->timer_fired(id, out);
    EXPECT_EQ(done(op), std::optional<term>(true));
    EXPECT_EQ(core->locks().find(A("res"))->holders[0].pid, p1);
    out.clear();
    op = core->set_lock(T("{res,other}"), p1, {me}, 0, out);
    EXPECT_EQ(done(op), std::optional<term>(false));  // no retries
    out.clear();
    op = core->del_lock(T("{res,mine}"), p1, {me}, out);
    EXPECT_EQ(done(op), std::optional<term>(true));
    EXPECT_FALSE(core->locks().is_set(A("res")));
}

TEST_F(global_server_core, own_lock_on_a_peer_waits_for_its_answer) {
    core->node_up(other, 7, out);
    out.clear();
    auto op = core->set_lock(T("{res,mine}"), p1, {me, other}, 0, out);
    const call_server* c = nullptr;
    for (auto& a : out)
        if (auto* x = std::get_if<call_server>(&a)) c = x;
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->caller, p1);  // the lock is held by the caller, on every node
    EXPECT_EQ(c->to, erl::tuple(A("global_name_server"), other));
    EXPECT_EQ(c->request, T("{set_lock,{res,mine}}"));
    EXPECT_FALSE(done(op));
    auto id = c->id;
    out.clear();
    core->call_result(id, term(false), out);  // the peer refused: ours is released again
    EXPECT_EQ(done(op), std::optional<term>(false));
    EXPECT_FALSE(core->locks().is_set(A("res")));
}

TEST_F(global_server_core, sync_waits_for_in_sync_or_nodedown) {
    out.clear();
    auto op = core->sync({other}, out);
    EXPECT_EQ(done(op),
              std::optional<term>(erl::atoms::ok()));  // not connected: nothing to wait for
    core->node_up(other, 7, out);
    out.clear();
    op = core->sync({other, me}, out);
    EXPECT_FALSE(done(op));
    ASSERT_EQ(core->message(T("{'$gen_cast',{in_sync,'other@h',true}}"), out),
              global_server::handled::ok);
    EXPECT_EQ(done(op), std::optional<term>(erl::atoms::ok()));
    EXPECT_EQ(core->synced(), std::vector<atom>{other});
    // A BEAM-style {sync, Nodes} call is answered the same way.
    EXPECT_EQ(call(r1, T("{sync,['other@h']}")), term(erl::atoms::ok()));
    // A nodedown ends a waiting sync too.
    core->node_down(other, out);
    core->node_up(other, 8, out);
    out.clear();
    op = core->sync({other}, out);
    EXPECT_FALSE(done(op));
    core->node_down(other, out);
    EXPECT_EQ(done(op), std::optional<term>(erl::atoms::ok()));
}

TEST_F(global_server_core, nodeup_starts_a_session_and_nodedown_forgets_the_node) {
    core->node_up(other, 7, out);
    auto s = sends();
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].to, erl::tuple(A("global_name_server"), other));
    const term& ic = s[0].message[1];
    EXPECT_TRUE(ic[0].is_atom(A("init_connect")));
    EXPECT_EQ(ic[1][0], term(8));
    EXPECT_EQ(ic[2], term(me));
    EXPECT_EQ(ic[3], erl::tuple(A("locker"), A("no_longer_a_pid"),
                                T("#{{connection_id,'other@h'} => 7}"), locker));
    EXPECT_TRUE(core->connecting(other));
    out.clear();
    core->node_down(other, out);
    EXPECT_FALSE(core->connecting(other));
    EXPECT_TRUE(core->connected().empty());
}

TEST_F(global_server_core, lost_connection_is_handled_once) {
    // Make `other` known: a new_nodes from a (fictitious) partition member.
    ASSERT_EQ(core->message(T("{'$gen_cast',{new_nodes,'third@h',[],[],[{'other@h',8}],[]}}"), out),
              global_server::handled::ok);
    ASSERT_EQ(core->known(), std::vector<atom>{other});
    out.clear();
    term lc = T("{lost_connection,'third@h',123,5,'other@h'}");
    ASSERT_EQ(core->message(lc, out), global_server::handled::ok);
    // Forwarded to the nodes we know (but not the reporter) and other asked to disconnect us.
    bool forwarded = false, removal = false;
    for (auto& x : sends()) {
        forwarded |= x.message == lc && x.noconnect;
        removal |= x.message == T("{remove_connection,'me@h'}");
    }
    EXPECT_TRUE(forwarded);
    EXPECT_TRUE(removal);
    EXPECT_TRUE(core->known().empty());
    out.clear();
    ASSERT_EQ(core->message(lc, out), global_server::handled::ok);
    EXPECT_TRUE(sends().empty());  // seen before
}

TEST_F(global_server_core, remove_connection_disconnects_a_known_node_only) {
    ASSERT_EQ(core->message(T("{remove_connection,'other@h'}"), out), global_server::handled::ok);
    for (auto& a : out)
        EXPECT_FALSE(std::holds_alternative<disconnect_node>(a));
    ASSERT_EQ(core->message(T("{'$gen_cast',{new_nodes,'third@h',[],[],[{'other@h',8}],[]}}"), out),
              global_server::handled::ok);
    out.clear();
    ASSERT_EQ(core->message(T("{remove_connection,'other@h'}"), out), global_server::handled::ok);
    bool disconnected = false;
    for (auto& a : out)
        if (auto* d = std::get_if<disconnect_node>(&a)) disconnected |= d->node == other;
    EXPECT_TRUE(disconnected);
    EXPECT_TRUE(core->known().empty());
}

TEST(global_tables, lock_table_keeps_holders_newest_first_and_one_monitor_each) {
    global_lock_table t;
    monitor_id next = 1;
    monitor_alloc alloc = [&] { return next++; };
    actions out;
    term a = T("<'n@h'.1.0.1>"), b = T("<'n@h'.2.0.1>");
    EXPECT_TRUE(t.set(A("r"), A("q"), a, alloc, out));
    EXPECT_TRUE(t.set(A("r"), A("q"), b, alloc, out));
    EXPECT_EQ(out.size(), 2u);
    ASSERT_EQ(t.find(A("r"))->holders.size(), 2u);
    EXPECT_EQ(t.find(A("r"))->holders[0].pid, b);
    EXPECT_FALSE(t.can_set(A("r"), A("other")));
    EXPECT_EQ(t.down(1), std::vector<term>{term(A("r"))});
    EXPECT_TRUE(t.is_set(A("r")));
    EXPECT_TRUE(t.down(1).empty());  // a monitor fires once
    t.del(A("r"), A("q"), b, out);
    EXPECT_FALSE(t.is_set(A("r")));
}

}  // namespace

namespace {

// A whole session with a peer that locks first, driven by hand: our node (me@h) is the smaller
// one, so it resolves the clash, with the method of its own registration.
TEST_F(global_server_core, session_with_a_clash_we_resolve) {
    term his_locker = T("<'other@h'.56.0.2>");
    EXPECT_EQ(
        call(r2, erl::tuple(A("register"), A("clash"), p1, T("fun global:random_notify_name/3"))),
        term(A("yes")));
    out.clear();
    core->node_up(other, 7, out);
    term my_tag = sends().at(0).message[1][1][1];
    auto msg = [&](const term& m) {
        EXPECT_EQ(core->message(m, out), global_server::handled::ok) << m;
    };
    msg(erl::tuple(A("$gen_cast"), erl::tuple(A("init_connect"), erl::tuple(8, 100), other,
                                              erl::tuple(A("locker"), A("no_longer_a_pid"),
                                                         erl::make_map({}), his_locker))));
    EXPECT_EQ(sends().back().message, erl::tuple(A("init_connect_ack"), me, 100, my_tag));
    out.clear();
    // The peer's locker locked its side and tells ours: ours locks our partition (just us:
    // a fresh locker has no boss yet) and answers, then our server sends our names.
    msg(erl::tuple(A("$gen_cast"), erl::tuple(A("lock_set"), his_locker, true, term{}, my_tag)));
    auto s = sends();
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].message,
              erl::tuple(A("$gen_cast"), erl::tuple(A("lock_set"), locker, true, term{}, 100)));
    // Sorted as Erlang sorts pids: by number before node.
    term lock_id = erl::tuple(A("global"), erl::list(locker, his_locker));
    EXPECT_EQ(core->locks().find(A("global"))->requester, lock_id[1]);
    EXPECT_EQ(s[1].message[1][0], term(A("exchange")));
    EXPECT_EQ(s[1].message[1][2],
              erl::list(erl::tuple(A("clash"), p1, T("fun global:random_notify_name/3"))));
    out.clear();
    // The peer's names, with a clash and some garbage.
    msg(erl::tuple(
        A("$gen_cast"),
        erl::tuple(A("exchange"), other,
                   erl::list(T("junk"), T("{a}"), T("{n,notapid,m}"), T("{clash,notapid,m}"),
                             erl::tuple(A("clash"), r1, T("fun global:notify_all_name/3")),
                             erl::tuple(A("theirs"), r2, T("fun global:random_exit_name/3"))),
                   term{}, my_tag)));
    s = sends();
    ASSERT_EQ(s.size(), 2u);
    // random_notify_name (ours) keeps the pid on the smaller node and tells the other one.
    EXPECT_EQ(s[0].to, r1);
    EXPECT_EQ(s[0].message, erl::tuple(A("global_name_conflict"), A("clash")));
    EXPECT_EQ(
        s[1].message,
        erl::tuple(A("$gen_cast"),
                   erl::tuple(A("resolved"), me,
                              erl::list(erl::tuple(
                                  A("insert"), erl::tuple(A("clash"), p1,
                                                          T("fun global:random_notify_name/3")))),
                              term{}, A("unused"), term{}, 100)));
    out.clear();
    msg(erl::tuple(A("$gen_cast"),
                   erl::tuple(A("resolved"), other, term{}, term{}, A("unused"), term{}, my_tag)));
    EXPECT_EQ(core->whereis(term(A("clash"))), std::optional<term>(p1));
    EXPECT_EQ(core->whereis(term(A("theirs"))), std::optional<term>(r2));
    EXPECT_EQ(core->known(), std::vector<atom>{other});
    EXPECT_EQ(core->synced(), std::vector<atom>{other});
    EXPECT_FALSE(core->locks().is_set(A("global")));  // released when the session ended
    EXPECT_FALSE(core->connecting(other));
}

}  // namespace

namespace {

TEST(global_server_config, without_connect_all_nodes_only_connect) {
    global_config cfg;
    cfg.node = A("me@h");
    cfg.server = T("<'me@h'.50.0.1>");
    cfg.locker = T("<'me@h'.51.0.1>");
    cfg.registrar = T("<'me@h'.52.0.1>");
    cfg.connect_all = false;
    global_server core(cfg);
    actions out;
    core.node_up(A("other@h"), 7, out);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(core.connected(), std::vector<atom>{A("other@h")});
    EXPECT_FALSE(core.connecting(A("other@h")));
    ASSERT_EQ(core.message(T("{lost_connection,'x@h',1,2,'other@h'}"), out),
              global_server::handled::ok);
    EXPECT_TRUE(out.empty());
    core.node_down(A("other@h"), out);
    EXPECT_TRUE(out.empty());  // no lost_connection either
}

}  // namespace
