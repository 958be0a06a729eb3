// global_server against what real OTP 25 global_name_servers did (interop/traces, captured by
// capture_global.escript). For one BEAM node of a scenario the core takes that node's place
// (same node name, same server, locker and registrar pids, the same session tags): it is fed
// every message that node's global_name_server received from other nodes, in order, and must
// send the other nodes what that node's global processes sent them, term for term, in the
// same order per destination node. Internal traffic (server <-> locker, resolver, registrar)
// has no counterpart: those are parts of the one core.
#include "cluster/global_server.hpp"

#include "global_trace_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace {

using erl::atom;
using erl::term;
using namespace erl::cluster;
using erl::test::node_trace;
using erl::test::trace_event;

atom A(const char* s) {
    return atom(s);
}

bool remote(const term& to, atom self) {
    if (to.is_pid()) return to.as_pid().node != self;
    if (to.is_tuple(2) && to[1].is_atom()) return to[1].as_atom() != self;
    return false;
}
atom dest_node(const term& to) {
    return to.is_pid() ? to.as_pid().node : to[1].as_atom();
}

// What a send is compared by: calls by their request (the runtime picks the tag); the name
// list of an exchange sorted (BEAM lists its ETS table in hash order, which carries no
// meaning).
term normalize(const term& msg) {
    if (msg.is_tuple(3) && msg[0].is_atom(A("$gen_call"))) return erl::tuple(A("call"), msg[2]);
    if (msg.is_tuple(2) && msg[0].is_atom(A("$gen_cast")) && msg[1].is_tuple(5) &&
        msg[1][0].is_atom(A("exchange"))) {
        const term& x = msg[1];
        auto lv = x[2].as_list();
        std::vector<term> names(lv.elements.begin(), lv.elements.end());
        std::sort(names.begin(), names.end());
        return erl::tuple(A("$gen_cast"),
                          erl::tuple(x[0], x[1], erl::make_list(std::move(names)), x[3], x[4]));
    }
    return msg;
}

// The BEAM processes that send a message: server, locker, registrar, the sync_other helpers
// (in_sync) and the resolver. Each sends in its own order; between them the order is a race,
// so sends are compared per sender, told apart by their shape (the same function classifies
// the core's sends).
enum class stream { server, locker, registrar, in_sync, resolver };

stream stream_of(const term& m) {
    if (m.is_tuple(2) && m[0].is_atom(A("call")) && m[1].is_tuple()) {
        const term& r = m[1];
        if ((r[0].is_atom(A("set_lock")) || r[0].is_atom(A("del_lock"))) && r[1].is_tuple(2) &&
            r[1][0].is_atom(A("global")))
            return r[1][1].is_list() ? stream::locker : stream::registrar;
        return stream::registrar;
    }
    if (m.is_tuple(2) && m[0].is_atom(A("$gen_cast")) && m[1].is_tuple() && m[1].size() > 0) {
        const term& c = m[1][0];
        if (c.is_atom(A("lock_set")) || c.is_atom(A("new_nodes"))) return stream::locker;
        if (c.is_atom(A("in_sync"))) return stream::in_sync;
    }
    if (m.is_tuple() && m.size() > 0 && m[0].is_atom(A("global_name_conflict")))
        return stream::resolver;
    return stream::server;
}

struct replay {
    const node_trace& nt;
    atom self;
    term gns, locker, registrar;
    std::vector<std::pair<atom, term>> beams;  // remote sends of the BEAM node, in order
    std::vector<std::pair<atom, term>> ours;
    // Our noconnect sends to a node whose connection ends later in the trace: such a send may
    // have met a connection already gone (BEAM's trace then shows no send at all).
    std::set<std::size_t> volatile_sends;
    std::vector<std::pair<std::size_t, atom>> volatile_pending;  // (index in ours, node)
    std::deque<std::int64_t> tags;
    std::int64_t xcre = 0;
    std::int64_t unseen_tag = std::int64_t{1} << 60;
    std::map<term, std::deque<monitor_id>> monitors;
    std::set<timer_id> locker_timers;
    std::deque<std::pair<call_id, term>> calls;  // our calls waiting for their answer
    std::optional<global_server> core;

    explicit replay(const node_trace& n) : nt(n), self(n.node) {
        gns = nt.pid_of(term(A("global_name_server")));
        locker = nt.pid_of(term(A("global_locker")));
        registrar = nt.pid_of(term(A("global_registrar")));
        std::set<term> scopes;
        for (const auto& [p, r] : nt.roles)
            if (r.is_tuple(2)) scopes.insert(p);
        std::set<std::int64_t> op_ids;
        for (const auto& e : nt.events) {
            if (e.what == trace_event::kind::receive || scopes.count(e.pid) || !remote(e.to, self))
                continue;
            beams.emplace_back(dest_node(e.to), normalize(e.msg));
            const term& m = e.msg;
            if (m.is_tuple(2) && m[0].is_atom(A("$gen_cast")) && m[1].is_tuple(4) &&
                m[1][0].is_atom(A("init_connect")))
                tags.push_back(m[1][1][1].as_int64());
            if (m.is_tuple(5) && m[0].is_atom(A("lost_connection")) && m[1] == term(self) &&
                op_ids.insert(m[3].as_int64()).second) {
                tags.push_back(m[3].as_int64());
                xcre = m[2].as_int64();
            }
        }
        core.emplace(global_config{
            .node = self,
            .server = gns,
            .locker = locker,
            .registrar = registrar,
            .creation_extension = xcre,
            // Tags BEAM drew but never sent (a lost_connection with nobody left to tell) are
            // not in the trace; any fresh value stands for them.
            .unique_integer =
                [this] {
                    if (tags.empty()) return unseen_tag++;
                    auto t = tags.front();
                    tags.pop_front();
                    return t;
                },
            .random = [] { return std::uint64_t{0}; },
        });
    }

    void take(actions& out) {
        for (auto& a : out) {
            if (auto* s = std::get_if<send_to>(&a)) {
                if (remote(s->to, self)) {
                    if (s->noconnect) volatile_pending.emplace_back(ours.size(), dest_node(s->to));
                    ours.emplace_back(dest_node(s->to), normalize(s->message));
                }
            } else if (auto* c = std::get_if<call_server>(&a)) {
                if (remote(c->to, self)) {
                    ours.emplace_back(dest_node(c->to), erl::tuple(A("call"), c->request));
                    calls.emplace_back(c->id, c->request);
                }
            } else if (auto* r = std::get_if<reply_to>(&a)) {
                if (remote(r->from[0], self))
                    ours.emplace_back(r->from[0].as_pid().node, erl::tuple(r->from[1], r->value));
            } else if (auto* m = std::get_if<monitor_pid>(&a)) {
                monitors[m->pid].push_back(m->id);
            } else if (auto* t = std::get_if<timer_start>(&a)) {
                if (t->after.count() < 60000) locker_timers.insert(t->id);
            } else if (auto* tc = std::get_if<timer_cancel>(&a)) {
                locker_timers.erase(tc->id);
            }
        }
    }

    // The peers answered every call of the scenarios positively.
    void settle() {
        for (int guard = 0; guard < 1000; ++guard) {
            if (!calls.empty()) {
                auto [id, req] = calls.front();
                calls.pop_front();
                term v = req.is_tuple() && req[0].is_atom(A("register")) ? term(A("yes"))
                         : req.is_tuple() && req[0].is_atom(A("unregister"))
                             ? term(erl::atoms::ok())
                             : term(true);
                actions out;
                core->call_result(id, v, out);
                take(out);
                continue;
            }
            // The BEAM locker's pause ran out where its next act is a partition lock request.
            // The BEAM locker's pause ran out (select_node/1) when its next acts are partition
            // lock requests that include the peer's node; a lock that leaves the peer out is
            // the answer to the peer's lock_set, which comes as an input.
            if (!locker_timers.empty() && select_node_next()) {
                auto t = *locker_timers.begin();
                locker_timers.erase(locker_timers.begin());
                actions out;
                core->timer_fired(t, out);
                take(out);
                continue;
            }
            return;
        }
    }

    std::vector<term> of_stream(const std::vector<std::pair<atom, term>>& v, stream st,
                                const std::set<std::size_t>* skippable = nullptr,
                                std::vector<bool>* may_skip = nullptr) const {
        std::vector<term> out;
        for (std::size_t i = 0; i < v.size(); ++i)
            if (stream_of(v[i].second) == st) {
                out.push_back(erl::tuple(v[i].first, v[i].second));
                if (may_skip) may_skip->push_back(skippable && skippable->count(i));
            }
        return out;
    }
    bool select_node_next() const {
        auto b = of_stream(beams, stream::locker);
        auto o = of_stream(ours, stream::locker);
        for (std::size_t i = o.size(); i < b.size(); ++i) {
            atom dest = b[i][0].as_atom();
            const term& m = b[i][1];
            bool lock_call = m[0].is_atom(A("call")) && m[1][0].is_atom(A("set_lock"));
            if (!lock_call) return false;
            for (const auto& p : m[1][1][1].as_list().elements)
                if (p != locker && p.as_pid().node == dest) return true;
        }
        return false;
    }

    // The registrar's next request after `from` in the server's events.
    std::optional<term> registrar_request(std::size_t from, const std::vector<trace_event>& ev) {
        for (std::size_t i = from; i < ev.size(); ++i) {
            const term& m = ev[i].msg;
            if (ev[i].what == trace_event::kind::receive && m.is_tuple(3) &&
                m[0].is_atom(A("$gen_call")) && m[1][0] == registrar && m[2].is_tuple() &&
                (m[2][0].is_atom(A("register")) || m[2][0].is_atom(A("unregister"))))
                return m[2];
        }
        return std::nullopt;
    }

    void run() {
        auto ev = nt.of(gns);
        for (std::size_t i = 0; i < ev.size(); ++i) {
            if (ev[i].what != trace_event::kind::receive) continue;
            const term& m = ev[i].msg;
            actions out;
            if (m.is_tuple(3) && m[0].is_atom(A("nodeup"))) {
                core->node_up(m[1].as_atom(), m[2].find(term(A("connection_id")))->as_int64(), out);
            } else if (m.is_tuple(3) && m[0].is_atom(A("nodedown"))) {
                for (auto& [i, n] : volatile_pending)
                    if (n == m[1].as_atom()) volatile_sends.insert(i);
                std::erase_if(volatile_pending,
                              [&](auto& v) { return v.second == m[1].as_atom(); });
                core->node_down(m[1].as_atom(), out);
            } else if (m.is_tuple(5) && m[0].is_atom(A("DOWN"))) {
                auto& q = monitors[m[3]];
                if (!q.empty()) {
                    core->down(q.front(), out);
                    q.pop_front();
                }
            } else if (m.is_tuple(3) && m[0].is_atom(A("$gen_call"))) {
                const term& caller = m[1][0];
                if (m[2].is_tuple(2) && m[2][0].is_atom(A("registrar"))) {
                    auto req = registrar_request(i + 1, ev);
                    if (req && req->is_tuple(4))
                        core->register_name((*req)[1], (*req)[2], (*req)[3], out);
                    else if (req)
                        core->unregister_name((*req)[1], out);
                } else if (caller != locker && caller != registrar) {
                    EXPECT_EQ(core->message(m, out), global_server::handled::ok) << m;
                }
            } else if (m.is_tuple(2) && m[0].is_atom(A("$gen_cast"))) {
                const term& c = m[1];
                if (c[0].is_atom(A("exchange_ops")) || c[0].is_atom(A("lock_is_set"))) continue;
                EXPECT_EQ(core->message(m, out), global_server::handled::ok) << m;
            } else if (m.is_tuple() && m.size() >= 2 && m[0].is_atom() &&
                       (m[0].is_atom(A("init_connect_ack")) || m[0].is_atom(A("cancel_connect")) ||
                        m[0].is_atom(A("lost_connection")) ||
                        m[0].is_atom(A("remove_connection")))) {
                EXPECT_EQ(core->message(m, out), global_server::handled::ok) << m;
            } else {
                continue;  // EXIT of helpers, receive timeouts
            }
            take(out);
            settle();
        }
    }

    void compare() {
        EXPECT_FALSE(beams.empty());
        for (auto st : {stream::server, stream::locker, stream::registrar, stream::in_sync,
                        stream::resolver}) {
            auto b = of_stream(beams, st);
            std::vector<bool> may_skip;
            auto o0 = of_stream(ours, st, &volatile_sends, &may_skip);
            std::vector<term> o;
            for (std::size_t i = 0, j = 0; i < o0.size(); ++i) {
                if (may_skip[i] && (j >= b.size() || o0[i] != b[j])) continue;
                o.push_back(o0[i]);
                ++j;
            }
            if (st == stream::in_sync) {  // one helper process per node: no order at all
                std::sort(b.begin(), b.end());
                std::sort(o.begin(), o.end());
            }
            EXPECT_EQ(o.size(), b.size()) << nt.label << " stream " << int(st);
            for (std::size_t i = 0; i < std::min(o.size(), b.size()); ++i)
                EXPECT_EQ(o[i], b[i]) << nt.label << " stream " << int(st) << " #" << i;
        }
    }
};

TEST(global_server_trace, connect_two_nodes_names_lock_and_exit) {
    auto all = erl::test::load_trace("connect");
    for (const auto& nt : all) {
        replay r(nt);
        r.run();
        r.compare();
        auto& core = *r.core;
        // After the scenario: name_a (a) is the only name left, everywhere.
        EXPECT_EQ(core.names().names(), std::vector<term>{term(A("name_a"))}) << nt.label;
        EXPECT_EQ(core.locks().size(), 0u);
        EXPECT_EQ(core.known().size(), 1u);
        EXPECT_EQ(core.synced().size(), 1u);
    }
}

}  // namespace

namespace {

std::vector<replay*> run_all(std::vector<std::unique_ptr<replay>>& rs,
                             const std::vector<node_trace>& all) {
    std::vector<replay*> out;
    for (const auto& nt : all) {
        rs.push_back(std::make_unique<replay>(nt));
        rs.back()->run();
        rs.back()->compare();
        out.push_back(rs.back().get());
    }
    return out;
}

TEST(global_server_trace, third_node_joins_through_new_nodes_and_in_sync) {
    auto all = erl::test::load_trace("three");
    std::vector<std::unique_ptr<replay>> rs;
    for (auto* r : run_all(rs, all)) {
        EXPECT_EQ(r->core->known().size(), 2u) << r->nt.label;
        EXPECT_TRUE(r->core->whereis(term(A("name_c")))) << r->nt.label;
    }
}

TEST(global_server_trace, name_clashes_resolved_as_beam_resolves_them) {
    auto all = erl::test::load_trace("clash");
    std::vector<std::unique_ptr<replay>> rs;
    auto got = run_all(rs, all);
    ASSERT_EQ(got.size(), 2u);
    for (auto* r : got) {
        // random_exit_name and random_notify_name keep the pid on the smaller node (a),
        // notify_all_name unregisters the name.
        auto exit_pid = r->core->whereis(term(A("clash_exit")));
        ASSERT_TRUE(exit_pid) << r->nt.label;
        EXPECT_EQ(exit_pid->as_pid().node, got[0]->self);
        EXPECT_FALSE(r->core->whereis(term(A("clash_all")))) << r->nt.label;
    }
}

TEST(global_server_trace, overlapping_partition_is_cut_and_heals) {
    auto all = erl::test::load_trace("partition");
    std::vector<std::unique_ptr<replay>> rs;
    run_all(rs, all);
}

TEST(global_server_trace, dead_node_loses_its_names_and_locks) {
    auto all = erl::test::load_trace("nodedown");
    replay r(erl::test::trace_of(all, "a"));
    r.run();
    r.compare();
    EXPECT_FALSE(r.core->whereis(term(A("name_b"))));
    EXPECT_EQ(r.core->locks().size(), 0u);
    EXPECT_TRUE(r.core->known().empty());
}

}  // namespace
