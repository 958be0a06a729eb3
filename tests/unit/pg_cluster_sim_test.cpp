// pg_scope cores on several nodes talking through an in-memory network (in-order delivery per
// pair, noconnect sends dropped without a connection, the peer scope's DOWN when a node goes):
// members spread both ways, follow joins, leaves and exits, and vanish with their node.
#include "cluster/pg_scope.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <set>

namespace {

using erl::atom;
using erl::term;
using namespace erl::cluster;

term P(const std::string& node, int id) {
    return term(erl::pid{atom(node), static_cast<std::uint32_t>(id), 0, 1});
}

class pg_sim {
  public:
    atom add(const std::string& name) {
        atom a(name);
        scopes_.emplace(a, pg_scope(atom("pg"), P(name, 76)));
        return a;
    }
    pg_scope& at(atom a) { return scopes_.at(a); }

    void connect(atom a, atom b) {
        links_.insert(key(a, b));
        post([this, a, b](actions& o, std::vector<pg_change>&) {
            at(a).node_up(b, o);
            return a;
        });
        post([this, a, b](actions& o, std::vector<pg_change>&) {
            at(b).node_up(a, o);
            return b;
        });
    }
    void disconnect(atom a, atom b) {
        links_.erase(key(a, b));
        for (auto ends : {std::pair{a, b}, std::pair{b, a}}) {
            atom x = ends.first, y = ends.second;
            std::vector<monitor_id> ids;
            for (auto& [k, pid] : monitors_)
                if (k.first == x && pid.as_pid().node == y) ids.push_back(k.second);
            post([this, x, y, ids](actions& o, std::vector<pg_change>& ch) {
                for (auto id : ids)
                    if (monitors_.erase({x, id})) at(x).down(id, o, ch);
                at(x).node_down(y, o);
                return x;
            });
        }
    }
    void exit(const term& pid) {
        for (auto& [k, p] : monitors_)
            if (p == pid) {
                atom who = k.first;
                auto id = k.second;
                post([this, who, id](actions& o, std::vector<pg_change>& ch) {
                    if (monitors_.erase({who, id})) at(who).down(id, o, ch);
                    return who;
                });
            }
    }
    bool join(atom n, const char* group, const term& pids) { return local(n, true, group, pids); }
    bool leave(atom n, const char* group, const term& pids) { return local(n, false, group, pids); }
    void run() {
        while (!queue_.empty()) {
            auto f = std::move(queue_.front());
            queue_.pop_front();
            actions out;
            std::vector<pg_change> ch;
            atom n = f(out, ch);
            take(n, out, ch);
        }
    }
    std::size_t members(atom n, const char* group) {
        return at(n).members(term(atom(group))).size();
    }
    std::map<atom, std::vector<pg_change>> changes;

  private:
    using step = std::function<atom(actions&, std::vector<pg_change>&)>;
    static std::pair<atom, atom> key(atom a, atom b) {
        return a.str() < b.str() ? std::pair{a, b} : std::pair{b, a};
    }
    void post(step s) { queue_.push_back(std::move(s)); }

    bool local(atom n, bool join, const char* group, const term& pids) {
        actions out;
        std::vector<pg_change> ch;
        term g(atom{group});
        bool ok = join ? at(n).join(g, pids, out, ch) : at(n).leave(g, pids, out, ch);
        take(n, out, ch);
        return ok;
    }

    void take(atom self, actions& out, std::vector<pg_change>& ch) {
        for (auto& c : ch)
            changes[self].push_back(c);
        for (auto& a : out) {
            if (auto* s = std::get_if<send_to>(&a)) {
                atom to = s->to.is_pid() ? s->to.as_pid().node : s->to[1].as_atom();
                if (to != self && !links_.count(key(self, to))) continue;  // never connects
                term m = s->message;
                post([this, to, m](actions& o, std::vector<pg_change>& c) {
                    EXPECT_EQ(at(to).message(m, o, c), pg_scope::handled::ok) << m;
                    return to;
                });
            } else if (auto* m = std::get_if<monitor_pid>(&a)) {
                monitors_[{self, m->id}] = m->pid;
            } else if (auto* d = std::get_if<demonitor_pid>(&a)) {
                monitors_.erase({self, d->id});
            }
        }
    }

    std::map<atom, pg_scope> scopes_;
    std::set<std::pair<atom, atom>> links_;
    std::map<std::pair<atom, monitor_id>, term> monitors_;
    std::deque<step> queue_;
};

TEST(pg_cluster_sim, members_spread_follow_changes_and_vanish_with_their_node) {
    pg_sim s;
    auto a = s.add("a@h"), b = s.add("b@h"), c = s.add("c@h");
    ASSERT_TRUE(s.join(a, "g", P("a@h", 100)));
    ASSERT_TRUE(s.join(b, "g", erl::list(P("b@h", 100), P("b@h", 101))));
    s.connect(a, b);
    s.run();
    EXPECT_EQ(s.members(a, "g"), 3u);
    EXPECT_EQ(s.members(b, "g"), 3u);
    EXPECT_EQ(s.at(a).local_members(term(atom("g"))).size(), 1u);
    // A third node joins the overlay and learns everything.
    s.connect(c, a);
    s.connect(c, b);
    s.run();
    EXPECT_EQ(s.members(c, "g"), 3u);
    ASSERT_TRUE(s.join(c, "h", P("c@h", 100)));
    s.run();
    EXPECT_EQ(s.members(a, "h"), 1u);
    EXPECT_EQ(s.members(b, "h"), 1u);
    // leave, exit
    ASSERT_TRUE(s.leave(b, "g", P("b@h", 100)));
    EXPECT_FALSE(s.leave(b, "g", P("b@h", 100)));
    s.exit(P("a@h", 100));
    s.run();
    for (auto n : {a, b, c})
        EXPECT_EQ(s.members(n, "g"), 1u) << n;
    // b goes away: its member disappears from a and c, and joins on b are not seen.
    s.disconnect(b, a);
    s.disconnect(b, c);
    s.run();
    EXPECT_EQ(s.members(a, "g"), 0u);
    EXPECT_EQ(s.members(c, "g"), 0u);
    EXPECT_EQ(s.members(b, "g"), 1u);  // its own local member stays
    EXPECT_EQ(s.members(b, "h"), 0u);
    ASSERT_TRUE(s.join(b, "g", P("b@h", 102)));
    s.run();
    EXPECT_EQ(s.members(a, "g"), 0u);
    // Back again: the discover/sync exchange repairs everything.
    s.connect(b, a);
    s.connect(b, c);
    s.run();
    EXPECT_EQ(s.members(a, "g"), 2u);
    EXPECT_EQ(s.members(b, "h"), 1u);
    // Subscribers of a saw every change of g and h.
    bool saw_join = false, saw_leave = false;
    for (auto& ch : s.changes[a])
        (ch.joined ? saw_join : saw_leave) = true;
    EXPECT_TRUE(saw_join);
    EXPECT_TRUE(saw_leave);
}

}  // namespace
