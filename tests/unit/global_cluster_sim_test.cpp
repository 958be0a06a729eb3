// Several global_server cores talking to each other through an in-memory network with a
// virtual clock: the cores in every role at once (both lockers racing, the smaller and the
// larger node of a clash, partitions), as a cluster of erlcpp nodes would run them.
//
// The network keeps OTP's ordering guarantees: messages between two nodes arrive in order,
// a connection's messages are lost when it closes, the DOWNs of monitors on a lost node's
// pids come before its nodedown; sends without noconnect (and calls) set up a connection.
#include "cluster/global_server.hpp"

#include <erl/parse.hpp>

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>

namespace {

using erl::atom;
using erl::term;
using namespace erl::cluster;

atom A(const char* s) {
    return atom(s);
}
term P(const std::string& node, int id) {
    return term(erl::pid{atom(node), static_cast<std::uint32_t>(id), 0, 1});
}

class sim {
  public:
    struct node {
        atom name;
        term gns;
        std::unique_ptr<global_server> core;
        std::map<std::uint64_t, term> done;  // op -> result
        std::set<term> killed;               // exit(Pid, kill) asked
        std::vector<term> notified;          // messages to plain pids
    };

    atom add(const std::string& name) {
        atom a(name);
        auto& n = nodes_[a];
        n.name = a;
        n.gns = P(name, 50);
        global_config cfg;
        cfg.node = a;
        cfg.server = n.gns;
        cfg.locker = P(name, 51);
        cfg.registrar = P(name, 52);
        n.core = std::make_unique<global_server>(cfg);
        return a;
    }
    node& at(atom a) { return nodes_.at(a); }
    global_server& core(atom a) { return *nodes_.at(a).core; }

    void connect(atom a, atom b) {
        auto key = pair_of(a, b);
        if (links_.count(key) || a == b) return;
        links_.insert(key);
        ++epoch_[key];
        auto id = ++next_conn_;
        post(
            a, b, [this, a, b, id](actions& o) { core(a).node_up(b, id, o); }, true);
        post(
            b, a, [this, a, b, id](actions& o) { core(b).node_up(a, id, o); }, true);
    }

    void disconnect(atom a, atom b) {
        auto key = pair_of(a, b);
        if (!links_.erase(key)) return;
        ++epoch_[key];
        for (auto ends : {std::pair{a, b}, std::pair{b, a}}) {
            atom x = ends.first, y = ends.second;  // named: lambdas below capture them
            // DOWN (noconnection) of x's monitors on y's pids, then nodedown; x's calls to y fail.
            std::vector<monitor_id> ids;
            for (auto& [k, pid] : monitors_)
                if (k.first == x && pid.as_pid().node == y) ids.push_back(k.second);
            std::vector<call_id> failed;
            for (auto& [k, dest] : calls_)
                if (k.first == x && dest == y) failed.push_back(k.second);
            post(
                x, x,
                [this, x, y, ids, failed](actions& o) {
                    for (auto id : ids) {
                        monitors_.erase({x, id});
                        core(x).down(id, o);
                    }
                    for (auto id : failed) {
                        calls_.erase({x, id});
                        core(x).call_result(id, std::nullopt, o);
                    }
                    core(x).node_down(y, o);
                },
                true);
        }
    }

    // A local process dies: the DOWNs of every monitor on it, everywhere.
    void kill(const term& pid) {
        for (auto& [k, p] : monitors_)
            if (p == pid) {
                auto who = k.first;
                auto id = k.second;
                post(
                    who, who,
                    [this, who, id](actions& o) {
                        if (monitors_.erase({who, id})) core(who).down(id, o);
                    },
                    true);
            }
    }

    // Runs one operation on a node now.
    template <class F>
    void on(atom a, F&& f) {
        actions out;
        f(core(a), out);
        take(a, out);
    }

    // Delivers everything, firing timers in time order, until nothing is left (or a bound).
    void run(std::size_t max_steps = 200000) {
        for (std::size_t i = 0; i < max_steps; ++i) {
            if (!queue_.empty()) {
                auto d = std::move(queue_.front());
                queue_.pop_front();
                if (d.checked && epoch_[pair_of(d.from, d.to)] != d.epoch) continue;  // lost
                actions out;
                d.fn(out);
                take(d.to, out);
                continue;
            }
            if (timers_.empty()) return;
            // The locker's pause restarts on activity; the 1 h lost_connection cleanup timers
            // are the only ones left at rest.
            auto it = timers_.begin();
            if (it->first.first - now_ > 1000000) {  // only cleanups remain: at rest
                timers_.clear();
                return;
            }
            now_ = std::max(now_, it->first.first);
            auto [who, id] = it->second;
            timers_.erase(it);
            actions out;
            core(who).timer_fired(id, out);
            take(who, out);
        }
        ADD_FAILURE() << "the cluster did not come to rest";
    }

    bool linked(atom a, atom b) const { return links_.count(pair_of(a, b)) != 0; }

  private:
    struct delivery {
        atom from, to;
        std::uint64_t epoch = 0;
        bool checked = false;
        std::function<void(actions&)> fn;
    };

    static std::pair<atom, atom> pair_of(atom a, atom b) {
        return a.str() < b.str() ? std::pair{a, b} : std::pair{b, a};
    }

    void post(atom from, atom to, std::function<void(actions&)> fn, bool local = false) {
        delivery d{from, to, 0, !local && from != to, std::move(fn)};
        if (d.checked) d.epoch = epoch_[pair_of(from, to)];
        queue_.push_back(std::move(d));
    }

    // Route to node `to`; false when it cannot be reached.
    bool reach(atom from, atom to, bool noconnect) {
        if (from == to || linked(from, to)) return true;
        if (noconnect || !nodes_.count(to)) return false;
        connect(from, to);
        return true;
    }

    static atom node_of(const term& to) { return to.is_pid() ? to.as_pid().node : to[1].as_atom(); }
    bool is_server(const term& to) const {
        if (to.is_tuple(2)) return to[0].is_atom(A("global_name_server"));
        return to.is_pid() && nodes_.count(to.as_pid().node) &&
               nodes_.at(to.as_pid().node).gns == to;
    }

    void take(atom self, actions& out) {
        for (auto& a : out) {
            if (auto* s = std::get_if<send_to>(&a)) {
                atom to = node_of(s->to);
                if (!reach(self, to, s->noconnect)) continue;
                if (is_server(s->to)) {
                    term m = s->message;
                    post(self, to, [this, to, m](actions& o) { core(to).message(m, o); });
                } else {
                    at(to).notified.push_back(s->message);
                }
            } else if (auto* c = std::get_if<call_server>(&a)) {
                atom to = node_of(c->to);
                if (!reach(self, to, false)) {
                    auto id = c->id;
                    post(
                        self, self,
                        [this, self, id](actions& o) {
                            core(self).call_result(id, std::nullopt, o);
                        },
                        true);
                    continue;
                }
                calls_[{self, c->id}] = to;
                term m = erl::tuple(A("$gen_call"), erl::tuple(c->caller, erl::tuple(self, c->id)),
                                    c->request);
                post(self, to, [this, to, m](actions& o) { core(to).message(m, o); });
            } else if (auto* r = std::get_if<reply_to>(&a)) {
                const term& tag = r->from[1];
                if (!tag.is_tuple(2) || !tag[0].is_atom() || !nodes_.count(tag[0].as_atom()))
                    continue;
                atom caller = tag[0].as_atom();
                auto id = static_cast<call_id>(tag[1].as_int64());
                term v = r->value;
                post(self, caller, [this, caller, id, v](actions& o) {
                    if (calls_.erase({caller, id})) core(caller).call_result(id, v, o);
                });
            } else if (auto* m = std::get_if<monitor_pid>(&a)) {
                monitors_[{self, m->id}] = m->pid;
            } else if (auto* d = std::get_if<demonitor_pid>(&a)) {
                monitors_.erase({self, d->id});
            } else if (auto* t = std::get_if<timer_start>(&a)) {
                timers_.insert({{now_ + t->after.count(), seq_++}, {self, t->id}});
            } else if (auto* tc = std::get_if<timer_cancel>(&a)) {
                for (auto it = timers_.begin(); it != timers_.end(); ++it)
                    if (it->second == std::pair{self, tc->id}) {
                        timers_.erase(it);
                        break;
                    }
            } else if (auto* od = std::get_if<op_done>(&a)) {
                at(self).done[od->op] = od->result;
            } else if (auto* e = std::get_if<exit_pid>(&a)) {
                at(self).killed.insert(e->pid);
            } else if (auto* dn = std::get_if<disconnect_node>(&a)) {
                disconnect(self, dn->node);
            } else if (auto* rc = std::get_if<rpc_call>(&a)) {
                // global:resolve_it/4 on the node of the pid
                actions o2;
                const term& args = rc->args;
                auto res = global_server::resolve_locally(args[0], args[1], args[2], args[3], o2);
                auto id = rc->id;
                term v = res ? *res : term(A("unknown_method"));
                post(
                    self, self,
                    [this, self, id, v](actions& o) { core(self).call_result(id, v, o); }, true);
            }
        }
    }

    std::map<atom, node> nodes_;
    std::set<std::pair<atom, atom>> links_;
    std::map<std::pair<atom, atom>, std::uint64_t> epoch_;
    std::deque<delivery> queue_;
    std::map<std::pair<std::int64_t, std::uint64_t>, std::pair<atom, timer_id>> timers_;
    std::map<std::pair<atom, monitor_id>, term> monitors_;
    std::map<std::pair<atom, call_id>, atom> calls_;
    std::int64_t now_ = 0;
    std::uint64_t seq_ = 0;
    std::int64_t next_conn_ = 0;
};

term exit_method() {
    return *erl::parse("fun global:random_exit_name/3");
}

std::uint64_t reg(sim& s, atom n, const char* name, const term& pid, term method = exit_method()) {
    std::uint64_t op = 0;
    s.on(n, [&](global_server& c, actions& o) {
        op = c.register_name(term(A(name)), pid, method, o);
    });
    s.run();
    EXPECT_EQ(s.at(n).done[op], term(A("yes"))) << name;
    return op;
}

std::vector<atom> sorted(std::vector<atom> v) {
    std::sort(v.begin(), v.end(), [](atom a, atom b) { return a.str() < b.str(); });
    return v;
}

TEST(global_cluster_sim, two_nodes_share_their_names) {
    sim s;
    auto a = s.add("a@h"), b = s.add("b@h");
    reg(s, a, "na", P("a@h", 100));
    reg(s, b, "nb", P("b@h", 100));
    s.connect(a, b);
    s.run();
    for (auto n : {a, b}) {
        EXPECT_EQ(s.core(n).whereis(term(A("na"))), std::optional<term>(P("a@h", 100)));
        EXPECT_EQ(s.core(n).whereis(term(A("nb"))), std::optional<term>(P("b@h", 100)));
        EXPECT_EQ(s.core(n).known().size(), 1u);
        EXPECT_EQ(s.core(n).synced().size(), 1u);
        EXPECT_FALSE(s.core(n).locks().is_set(A("global")));
    }
    // A registration now reaches both; a name dies with its process everywhere.
    reg(s, b, "late", P("b@h", 101));
    EXPECT_EQ(s.core(a).whereis(term(A("late"))), std::optional<term>(P("b@h", 101)));
    s.kill(P("b@h", 101));
    s.run();
    EXPECT_FALSE(s.core(a).whereis(term(A("late"))));
    EXPECT_FALSE(s.core(b).whereis(term(A("late"))));
}

TEST(global_cluster_sim, a_third_node_meets_everyone) {
    sim s;
    auto a = s.add("a@h"), b = s.add("b@h"), c = s.add("c@h");
    reg(s, c, "nc", P("c@h", 100));
    s.connect(a, b);
    s.run();
    std::uint64_t op = 0;
    s.on(a, [&](global_server& g, actions& o) { op = g.sync({b}, o); });
    s.connect(c, b);
    s.run();
    EXPECT_EQ(s.at(a).done[op], term(erl::atoms::ok()));
    EXPECT_TRUE(s.linked(a, c));  // in_sync set up the connection
    for (auto n : {a, b, c}) {
        EXPECT_EQ(s.core(n).whereis(term(A("nc"))), std::optional<term>(P("c@h", 100))) << n;
        EXPECT_EQ(s.core(n).known().size(), 2u) << n;
        EXPECT_EQ(s.core(n).synced().size(), 2u) << n;
    }
}

TEST(global_cluster_sim, clash_keeps_the_smaller_nodes_process) {
    sim s;
    auto a = s.add("a@h"), b = s.add("b@h");
    reg(s, a, "x", P("a@h", 100));
    reg(s, b, "x", P("b@h", 100));
    reg(s, a, "y", P("a@h", 101), *erl::parse("fun global:notify_all_name/3"));
    reg(s, b, "y", P("b@h", 101), *erl::parse("fun global:notify_all_name/3"));
    s.connect(a, b);
    s.run();
    for (auto n : {a, b}) {
        EXPECT_EQ(s.core(n).whereis(term(A("x"))), std::optional<term>(P("a@h", 100))) << n;
        EXPECT_FALSE(s.core(n).whereis(term(A("y")))) << n;
    }
    // a (the smaller node) resolved: it killed b's x and told both y's.
    EXPECT_EQ(s.at(a).killed, std::set<term>{P("b@h", 100)});
    EXPECT_EQ(s.at(b).notified.size(), 1u);
}

TEST(global_cluster_sim, locks_exclude_across_nodes_and_die_with_their_holder) {
    sim s;
    auto a = s.add("a@h"), b = s.add("b@h");
    s.connect(a, b);
    s.run();
    auto lock = [&](atom n, const char* req, const term& holder) {
        std::uint64_t op = 0;
        s.on(n, [&](global_server& g, actions& o) {
            op = g.set_lock(erl::tuple(A("res"), A(req)), holder, {a, b}, 0, o);
        });
        s.run();
        return s.at(n).done[op];
    };
    EXPECT_EQ(lock(a, "ra", P("a@h", 100)), term(true));
    EXPECT_EQ(lock(b, "rb", P("b@h", 100)), term(false));
    EXPECT_EQ(lock(b, "ra", P("b@h", 100)), term(true));  // same requester id: shared
    EXPECT_EQ(s.core(a).locks().find(A("res"))->holders.size(), 2u);
    s.kill(P("a@h", 100));
    s.kill(P("b@h", 100));
    s.run();
    for (auto n : {a, b})
        EXPECT_FALSE(s.core(n).locks().is_set(A("res"))) << n;
    EXPECT_EQ(lock(b, "rb", P("b@h", 102)), term(true));
    // A holder's node going away releases its locks on the others.
    s.disconnect(a, b);
    s.run();
    EXPECT_FALSE(s.core(a).locks().is_set(A("res")));
}

TEST(global_cluster_sim, lost_connection_cuts_overlap_and_the_cluster_heals) {
    sim s;
    auto a = s.add("a@h"), b = s.add("b@h"), c = s.add("c@h");
    reg(s, c, "nc", P("c@h", 100));
    s.connect(a, b);
    s.connect(a, c);
    s.run();
    ASSERT_TRUE(s.linked(b, c));
    s.disconnect(a, c);
    s.run();
    // Nobody keeps a connection to both ends of a lost one.
    EXPECT_FALSE(s.linked(a, c));
    EXPECT_FALSE(s.linked(b, c) && s.linked(a, b));
    for (auto n : {a, b, c})
        for (auto m : s.core(n).known())
            EXPECT_TRUE(s.linked(n, m)) << n << " knows " << m;
    EXPECT_FALSE(s.core(a).whereis(term(A("nc"))));
    s.connect(c, a);
    s.connect(b, a);
    s.run();
    for (auto n : {a, b, c}) {
        EXPECT_EQ(sorted(s.core(n).known()).size(), 2u) << n;
        EXPECT_EQ(s.core(n).whereis(term(A("nc"))), std::optional<term>(P("c@h", 100))) << n;
    }
}

}  // namespace
