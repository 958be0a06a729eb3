// Interop: global_name_server on an erlcpp node among real OTP 25 nodes. global:sync() on the
// BEAM nodes (with a deadline) whatever the order in which the nodes connect; names registered
// on either side seen on the other; clashes after a partition heals; names of a dead erlcpp
// node; locks shared by C++ and BEAM holders. BEAM's logs must show no global warning.
#include "cluster_support.hpp"
#include "harness/named_cluster_test.hpp"

#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using erl::interop::atom_term;
using erl::interop::beam_node;
using erl::interop::cluster_node;
using erl::interop::logged_beam;
using erl::interop::quote_atom;
using erl::interop::wait_until;

namespace {

class GlobalInterop : public erl::interop::named_cluster_test<"gcpp", "gbeam"> {
  protected:
    std::unique_ptr<logged_beam> beam(const std::string& tag) {
        return std::make_unique<logged_beam>(beam_opts(), dir, tag);
    }
    static std::string connect(logged_beam& from, const std::string& to) {
        return from.eval("net_kernel:connect_node(" + quote_atom(to) + ")");
    }
    // global:sync() returns on every BEAM node within the deadline.
    static void expect_synced(std::initializer_list<logged_beam*> beams, int ms = 10000) {
        for (auto* b : beams)
            EXPECT_EQ(b->eval_within("global:sync()", ms), "ok") << b->node_name();
    }
    // `cpp` joins the cluster through the first of `beams` (the others connected to it): global
    // synced on every BEAM node, then on the C++ node.
    static void join_synced(cluster_node& cpp, std::initializer_list<logged_beam*> beams) {
        ASSERT_FALSE(cpp.node->connect(erl::atom((*beams.begin())->node_name())));
        expect_synced(beams);
        ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    }
    // Every node's nodes() holds all the others: global:sync() can return before the
    // in_sync connections that complete the mesh are made (global.erl sync_other/2), and a
    // disconnect while those are still being set up races with them.
    static void expect_meshed(std::initializer_list<logged_beam*> beams,
                              const std::vector<std::string>& others = {}) {
        for (auto* b : beams) {
            std::string want = "[";
            for (auto* o : beams)
                if (o != b) want += quote_atom(o->node_name()) + ",";
            for (const auto& o : others)
                want += quote_atom(o) + ",";
            want.back() = ']';
            EXPECT_TRUE(wait_until(
                [&] {
                    return b->eval("lists:all(fun(N) -> lists:member(N, nodes()) end, " + want +
                                   ")") == "true";
                },
                10s))
                << b->node_name();
        }
    }
    // Prints each node's nodes(), known nodes and global_name_server's per-node dictionary
    // entries (session tags, pre_connect, lock_id): what a stuck global:sync() waits on.
    static void dump_global_state(std::initializer_list<logged_beam*> beams) {
        for (auto* b : beams)
            std::cerr << b->node_name() << ": "
                      << b->eval(
                             "{nodes(), gen_server:call(global_name_server, get_known), "
                             "[E || {K, _} = E <- element(2, process_info(whereis("
                             "global_name_server), dictionary)), is_tuple(K)]}")
                      << "\n";
    }
    // No line of BEAM's warnings mentions global, except (with `dead` given) the disconnect
    // global requests from a node that died, which BEAM nodes log as well when one of them is
    // killed and the others notice at different times.
    static void expect_quiet_logs(std::initializer_list<logged_beam*> beams,
                                  const std::string& dead = {}) {
        for (auto* b : beams) {
            auto w = b->warnings();
            std::istringstream lines(w);
            for (std::string line; std::getline(lines, line);) {
                if (!dead.empty() &&
                    line.find("requested disconnect from node " + dead) != std::string::npos)
                    continue;
                EXPECT_EQ(line.find("global"), std::string::npos) << b->node_name() << ":\n" << w;
            }
        }
    }

    // Traces what global_name_server and the scope pg of `b` receive (erlang:trace/3
    // 'receive', one tracer process registered as erlcpp_tracer).
    static void trace_cluster_servers(logged_beam& b) {
        EXPECT_EQ(b.eval("begin ErlcppT = spawn(fun() -> (fun L(Acc) -> receive "
                         "{trace, _, 'receive', M} -> L([M | Acc]); {get, From} -> "
                         "From ! {traced, lists:reverse(Acc)}, L(Acc) end end)([]) end), "
                         "true = register(erlcpp_tracer, ErlcppT), "
                         "[erlang:trace(whereis(S), true, ['receive', {tracer, ErlcppT}]) || "
                         "S <- [global_name_server, pg]] end"),
                  "[1,1]");
    }
    // The probes `cpp` sends last, over its connection to `b`: {nodedown, Cpp} to b's scope pg
    // (which ignores nodedown messages) and {whereis, erlcpp_probe, From} to b's
    // global_name_server (answered to From). Once both are in the trace, everything our
    // services sent to b before them is too: the connection delivers in order.
    static void send_probes(logged_beam& b, cluster_node& cpp) {
        auto mb = cpp.node->spawn_mailbox();
        ASSERT_TRUE(mb);
        const erl::atom peer(b.node_name());
        mb->send(erl::atom("pg"), peer, erl::tuple(atom_term("nodedown"), cpp.node->name()));
        const erl::term tag(cpp.node->make_ref());
        mb->send(erl::atom("global_name_server"), peer,
                 erl::tuple(atom_term("whereis"), atom_term("erlcpp_probe"),
                            erl::tuple(mb->self(), tag)));
        auto reply = mb->receive(10s);
        ASSERT_TRUE(reply);
        EXPECT_EQ(*reply, erl::tuple(tag, atom_term("undefined")));
    }
    // What b's traced servers received that mentions `cpp` (its node name, one of its pids,
    // references or ports), the probes excepted, once both probes are in the trace: "[]" when
    // our services sent b nothing. The trace is printed to the test log.
    static std::string traced_from_cpp(logged_beam& b, cluster_node& cpp) {
        send_probes(b, cpp);
        const std::string get =
            "(fun() -> erlcpp_tracer ! {get, self()}, receive {traced, L} -> L "
            "after 5000 -> [] end end)()";
        const std::string cpp_node = cpp.quoted_name();
        const std::string mentions =
            "fun ErlcppM(T) when is_pid(T); is_reference(T); is_port(T) -> node(T) =:= " +
            cpp_node + "; ErlcppM(T) when is_atom(T) -> T =:= " + cpp_node +
            "; ErlcppM(T) when is_tuple(T) -> ErlcppM(tuple_to_list(T)); "
            "ErlcppM([H | T]) -> ErlcppM(H) orelse ErlcppM(T); "
            "ErlcppM(T) when is_map(T) -> ErlcppM(maps:to_list(T)); ErlcppM(_) -> false end";
        const std::string probe = "fun({nodedown, N}) -> N =:= " + cpp_node +
                                  "; ({whereis, erlcpp_probe, _}) -> true; (_) -> false end";
        EXPECT_TRUE(wait_until(
            [&] { return b.eval("length([M || M <- " + get + ", (" + probe + ")(M)])") == "2"; },
            10s));
        std::cerr << b.node_name() << " received: " << b.eval(get) << "\n";
        return b.eval("[M || M <- " + get + ", (" + mentions + ")(M), not (" + probe + ")(M)]");
    }

    erl::interop::temp_dir dir{"global"};
};

}  // namespace

// erlcpp first: it connects to b1, then the BEAM nodes connect to each other.
TEST_F(GlobalInterop, sync_returns_when_erlcpp_connects_first) {
    cluster_node cpp(cpp_opts());
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    EXPECT_EQ(b1->eval_within("global:sync()"), "ok");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    EXPECT_EQ(connect(*b3, b2->node_name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get()});
    EXPECT_EQ(b3->eval("lists:member(" + cpp.quoted_name() +
                       ", gen_server:call(global_name_server, get_known))"),
              "true");
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    expect_quiet_logs({b1.get(), b2.get(), b3.get()});
}

// erlcpp last, into a synced three-node cluster.
TEST_F(GlobalInterop, sync_returns_when_erlcpp_connects_last) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    EXPECT_EQ(connect(*b3, b1->node_name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get()});
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(b3->node_name())));
    expect_synced({b1.get(), b2.get(), b3.get()});
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(wait_until(
            [&] { return b->eval("lists:member(" + cpp.quoted_name() + ", nodes())") == "true"; },
            10s));
    expect_quiet_logs({b1.get(), b2.get(), b3.get()});
}

// erlcpp in the middle: b1 - cpp - b2, then b3 joins through b2.
TEST_F(GlobalInterop, sync_returns_when_erlcpp_is_in_the_middle) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    ASSERT_FALSE(cpp.node->connect(erl::atom(b2->node_name())));
    EXPECT_EQ(connect(*b3, b2->node_name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get()});
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    expect_quiet_logs({b1.get(), b2.get(), b3.get()});
}

// Reconnect after a BEAM node dropped us. The disconnect makes b2 and b3 drop us too and may
// cut b1 off from them (prevent_overlapping_partitions: lost_connection, remove_connection).
// The disconnect waits for the full mesh: global:sync() returns before global has connected
// every pair, and a disconnect while such a connection is being set up can wedge OTP 25's
// global on the BEAM nodes themselves (the control test below; docs/global.md, "Disconnecting
// before the mesh is complete").
TEST_F(GlobalInterop, sync_returns_after_erlcpp_reconnects) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    ASSERT_FALSE(cpp.node->connect(erl::atom(b2->node_name())));
    EXPECT_EQ(connect(*b3, b2->node_name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get()});
    expect_meshed({b1.get(), b2.get(), b3.get()}, {cpp.name()});
    EXPECT_EQ(b1->eval("erlang:disconnect_node(" + cpp.quoted_name() + ")"), "true");
    ASSERT_TRUE(
        wait_until([&] { return !cpp.node->is_connected(erl::atom(b1->node_name())); }, 10s));
    EXPECT_EQ(connect(*b1, cpp.name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get()});
    if (HasFailure()) dump_global_state({b1.get(), b2.get(), b3.get()});
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
}

// Control experiment: the test above without the wait for the full mesh, with a fourth BEAM
// node, c, where the erlcpp node would be. OTP 25 (kernel 8.5.3) wedges here in about one run
// of three with no erlcpp node present; on failure the test prints each node's nodes(), known
// nodes and global_name_server's per-node dictionary entries. Disabled: it shows OTP's
// behaviour; run it with --gtest_also_run_disabled_tests --gtest_repeat=N.
TEST_F(GlobalInterop, DISABLED_control_sync_after_beam_node_reconnects) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3"), c = beam("c");
    EXPECT_EQ(connect(*c, b1->node_name()), "true");
    EXPECT_EQ(connect(*c, b2->node_name()), "true");
    EXPECT_EQ(connect(*b3, b2->node_name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get(), c.get()});
    EXPECT_EQ(b1->eval("erlang:disconnect_node(" + quote_atom(c->node_name()) + ")"), "true");
    ASSERT_TRUE(wait_until(
        [&] {
            return c->eval("lists:member(" + quote_atom(b1->node_name()) + ", nodes())") == "false";
        },
        10s));
    EXPECT_EQ(connect(*b1, c->node_name()), "true");
    expect_synced({b1.get(), b2.get(), b3.get(), c.get()});
    if (HasFailure()) dump_global_state({b1.get(), b2.get(), b3.get(), c.get()});
}

// Names both ways: BEAM's registration seen from C++, C++'s seen, sent to and called from BEAM,
// then unregistered and re-registered.
TEST_F(GlobalInterop, names_are_shared_both_ways) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    EXPECT_EQ(connect(*b3, b1->node_name()), "true");
    cluster_node cpp(cpp_opts());
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    expect_synced({b1.get(), b2.get(), b3.get()});

    b2->eval(
        "BP = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(bname, BP)");
    ASSERT_TRUE(wait_until(
        [&] { return erl::global::whereis_name(*cpp.node, atom_term("bname")).has_value(); }, 5s));
    EXPECT_EQ(erl::global::whereis_name(*cpp.node, atom_term("bname"))->node.str(),
              b2->node_name());

    // A C++ process registered globally: answers a '$gen_call' with its request, {From, M} with M.
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    std::thread server([m = *mb]() mutable {
        while (auto msg = m.receive()) {
            if (msg->is_tuple(3) && (*msg)[0].is_atom(erl::atom("$gen_call"))) {
                const auto& from = (*msg)[1];
                erl::term tag = from[1];
                if (auto a =
                        tag.is_list() ? std::optional<erl::term>(tag.as_list().tail) : std::nullopt;
                    a && a->is_reference())
                    m.send_alias(a->as_reference(), erl::tuple(tag, (*msg)[2]));
                else
                    m.send(from[0].as_pid(), erl::tuple(tag, (*msg)[2]));
            } else if (msg->is_tuple(2) && (*msg)[0].is_pid()) {
                m.send((*msg)[0].as_pid(), (*msg)[1]);
            }
        }
    });
    struct joiner {
        erl::mailbox m;
        std::thread& t;
        ~joiner() {
            m.exit();
            t.join();
        }
    } j{*mb, server};

    auto reg = erl::global::register_name(*cpp.node, atom_term("cname"), mb->self());
    ASSERT_TRUE(reg);
    EXPECT_TRUE(*reg);
    auto again = erl::global::register_name(*cpp.node, atom_term("bname"), mb->self());
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);  // taken by BEAM's process
    const std::string cpp_node_of = "node(global:whereis_name(cname))";
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_EQ(b->eval(cpp_node_of), cpp.quoted_name()) << b->node_name();
    EXPECT_EQ(
        b3->eval("global:send(cname, {self(), hello}), receive M -> M after 5000 -> none end"),
        "hello");
    EXPECT_EQ(b2->eval("gen_server:call({global, cname}, ping, 5000)"), "ping");

    ASSERT_FALSE(erl::global::unregister_name(*cpp.node, atom_term("cname")));
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_EQ(b->eval("global:whereis_name(cname)"), "undefined");
    EXPECT_FALSE(erl::global::whereis_name(*cpp.node, atom_term("cname")));

    ASSERT_FALSE(erl::global::re_register_name(*cpp.node, atom_term("bname"), mb->self()));
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_EQ(b->eval("node(global:whereis_name(bname))"), cpp.quoted_name());
    // BEAM unregisters: gone on the C++ side too.
    b1->eval("global:unregister_name(bname)");
    EXPECT_TRUE(wait_until(
        [&] { return !erl::global::whereis_name(*cpp.node, atom_term("bname")).has_value(); }, 5s));
    expect_quiet_logs({b1.get(), b2.get(), b3.get()});
}

namespace {

// A counter process `lock_counter` on b: {get, P} -> P ! {val, V}; {set, X, P} -> P ! set.
void start_lock_counter(logged_beam& b) {
    b.eval(
        "CLoop = fun L(V) -> receive {get, P} -> P ! {val, V}, L(V); "
        "{set, X, P} -> P ! set, L(X) end end, "
        "register(lock_counter, spawn(fun() -> CLoop(0) end)), ok");
}

// Spawns `count` BEAM lockers on b, each adding 1 to lock_counter on `home` `times` times under
// the lock {cnt, self()}; each sends lockers_done to the eval process when finished.
void start_beam_lockers(logged_beam& b, const std::string& home, int count, int times) {
    b.eval(
        "LParent = self(), [spawn(fun() -> [begin true = global:set_lock({cnt, self()}), "
        "{lock_counter, " +
        quote_atom(home) + "} ! {get, self()}, receive {val, V} -> ok end, {lock_counter, " +
        quote_atom(home) +
        "} ! {set, V + 1, self()}, receive set -> ok end, "
        "true = global:del_lock({cnt, self()}) end || _ <- lists:seq(1, " +
        std::to_string(times) + ")], LParent ! lockers_done end) || _ <- lists:seq(1, " +
        std::to_string(count) + ")], ok");
}

}  // namespace

// C++ and BEAM lockers of the same resource exclude each other: no increment is lost.
TEST_F(GlobalInterop, locks_exclude_cpp_and_beam_holders) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    EXPECT_EQ(connect(*b3, b1->node_name()), "true");
    cluster_node cpp(cpp_opts());
    ASSERT_NO_FATAL_FAILURE(join_synced(cpp, {b1.get(), b2.get(), b3.get()}));
    start_lock_counter(*b1);

    constexpr int times = 15;
    const erl::atom home(b1->node_name());
    std::atomic<int> cpp_failures{0};
    auto cpp_locker = [&] {
        auto mb = cpp.node->spawn_mailbox();
        if (!mb) {
            ++cpp_failures;
            return;
        }
        const erl::term id = erl::tuple(atom_term("cnt"), mb->self());
        for (int i = 0; i < times; ++i) {
            auto got = erl::global::set_lock(*cpp.node, id, mb->self(), {}, -1, 60s);
            if (!got || !*got) {
                ++cpp_failures;
                return;
            }
            mb->send(erl::atom("lock_counter"), home, erl::tuple(atom_term("get"), mb->self()));
            auto v = mb->receive(10s);
            if (!v || !v->is_tuple(2)) {
                ++cpp_failures;
                return;
            }
            mb->send(erl::atom("lock_counter"), home,
                     erl::tuple(atom_term("set"), erl::term((*v)[1].as_int64() + 1), mb->self()));
            if (!mb->receive(10s)) ++cpp_failures;
            if (erl::global::del_lock(*cpp.node, id, mb->self(), {}, 60s)) ++cpp_failures;
        }
    };
    start_beam_lockers(*b2, b1->node_name(), 2, times);
    start_beam_lockers(*b3, b1->node_name(), 1, times);
    std::thread t1(cpp_locker), t2(cpp_locker);
    t1.join();
    t2.join();
    EXPECT_EQ(cpp_failures.load(), 0);
    EXPECT_EQ(b2->eval("[receive lockers_done -> ok after 60000 -> timeout end || _ <- [1, 2]]"),
              "[ok,ok]");
    EXPECT_EQ(b3->eval("receive lockers_done -> ok after 60000 -> timeout end"), "ok");
    EXPECT_EQ(b1->eval("lock_counter ! {get, self()}, receive {val, V} -> V end"),
              std::to_string(5 * times));
    expect_quiet_logs({b1.get(), b2.get(), b3.get()});
}

// A lock goes with its holder: a C++ holder that exits frees it for BEAM, a BEAM holder that
// exits frees it for C++.
TEST_F(GlobalInterop, lock_released_when_holder_dies) {
    auto b1 = beam("b1"), b2 = beam("b2");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    cluster_node cpp(cpp_opts());
    ASSERT_NO_FATAL_FAILURE(join_synced(cpp, {b1.get(), b2.get()}));

    auto holder = cpp.node->spawn_mailbox();
    ASSERT_TRUE(holder);
    auto got = erl::global::set_lock(*cpp.node, erl::tuple(atom_term("res"), atom_term("cpp")),
                                     holder->self());
    ASSERT_TRUE(got && *got);
    EXPECT_EQ(b1->eval("global:set_lock({res, beam}, [node() | nodes()], 0)"), "false");
    holder->exit(atom_term("done"));
    EXPECT_TRUE(wait_until(
        [&] { return b1->eval("global:set_lock({res, beam}, [node() | nodes()], 0)") == "true"; },
        10s));

    // Now a BEAM process holds it; the C++ attempt fails until it exits.
    EXPECT_EQ(b1->eval("global:del_lock({res, beam})"), "true");
    b2->eval(
        "Me = self(), HP = spawn(fun() -> true = global:set_lock({res, b2}), Me ! held, "
        "receive stop -> ok end end), receive held -> ok end");
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    const erl::term id = erl::tuple(atom_term("res"), atom_term("cpp2"));
    auto blocked = erl::global::set_lock(*cpp.node, id, mb->self(), {}, 0);
    ASSERT_TRUE(blocked);
    EXPECT_FALSE(*blocked);
    b2->eval("HP ! stop");
    EXPECT_TRUE(wait_until(
        [&] {
            auto r = erl::global::set_lock(*cpp.node, id, mb->self(), {}, 0);
            return r && *r;
        },
        10s));
    expect_quiet_logs({b1.get(), b2.get()});
}

// The names of an erlcpp node that goes away disappear on every BEAM node.
TEST_F(GlobalInterop, names_of_a_stopped_erlcpp_node_disappear) {
    auto b1 = beam("b1"), b2 = beam("b2"), b3 = beam("b3");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    EXPECT_EQ(connect(*b3, b1->node_name()), "true");
    auto cpp = std::make_unique<cluster_node>(cpp_opts());
    ASSERT_FALSE(cpp->node->connect(erl::atom(b1->node_name())));
    expect_synced({b1.get(), b2.get(), b3.get()});
    auto mb = cpp->node->spawn_mailbox();
    ASSERT_TRUE(mb);
    auto reg = erl::global::register_name(*cpp->node, atom_term("doomed"), mb->self());
    ASSERT_TRUE(reg && *reg);
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_EQ(b->eval("node(global:whereis_name(doomed))"), cpp->quoted_name());
    mb = {};
    cpp->node->stop();
    cpp.reset();
    for (auto* b : {b1.get(), b2.get(), b3.get()})
        EXPECT_TRUE(
            wait_until([&] { return b->eval("global:whereis_name(doomed)") == "undefined"; }, 10s))
            << b->node_name();
    expect_synced({b1.get(), b2.get(), b3.get()});
}

// A partition heals with the same name registered on both sides: one registration survives
// everywhere, the other process exits (global:random_exit_name/3).
TEST_F(GlobalInterop, name_clash_after_partition_heals) {
    auto b1 = beam("b1"), b2 = beam("b2");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    cluster_node cpp(cpp_opts());
    ASSERT_NO_FATAL_FAILURE(join_synced(cpp, {b1.get(), b2.get()}));

    // The partition: b1 and b2 accept and make connections with each other only
    // (net_kernel:allow/1 refuses both directions), as a cut network link would. Without it,
    // a message global sends while the cut is settling reconnects at once (a send to a
    // node that is not connected sets up a connection) and the partition never forms.
    const std::string beams =
        "[" + quote_atom(b1->node_name()) + "," + quote_atom(b2->node_name()) + "]";
    for (auto* b : {b1.get(), b2.get()})
        EXPECT_EQ(b->eval("net_kernel:allow(" + beams + ")"), "ok");
    for (auto* b : {b1.get(), b2.get()})
        b->eval("erlang:disconnect_node(" + cpp.quoted_name() + ")");
    // A call under way when the connections went (a locker's set_lock) may try to set one up
    // again, as gen_server:multi_call does on BEAM: cut until none is left.
    ASSERT_TRUE(wait_until(
        [&] {
            for (auto n : cpp.node->nodes())
                cpp.node->disconnect(n);
            return cpp.node->nodes().empty() && erl::global::known_nodes(*cpp.node).empty();
        },
        10s));
    for (auto* b : {b1.get(), b2.get()})
        ASSERT_TRUE(wait_until(
            [&] {
                return b->eval("lists:member(" + cpp.quoted_name() +
                               ", gen_server:call(global_name_server, get_known))") == "false";
            },
            10s));
    // Each lost connection makes the others drop connections to prevent overlapping partitions
    // (cpp's report that it lost b1 may reach b2 first, which then drops b1): join b1 and b2
    // again, so that the partitions are {cpp} and {b1, b2}.
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    expect_synced({b1.get(), b2.get()});

    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    auto reg = erl::global::register_name(*cpp.node, atom_term("clash"), mb->self());
    ASSERT_TRUE(reg && *reg);
    b2->eval(
        "CP = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(clash, CP)");

    // The partition heals.
    for (auto* b : {b1.get(), b2.get()})
        EXPECT_EQ(b->eval("net_kernel:allow([" + cpp.quoted_name() + "])"), "ok");
    EXPECT_EQ(connect(*b1, cpp.name()), "true");
    EXPECT_EQ(connect(*b2, cpp.name()), "true");
    // Two sessions with cpp start at once; their lockers may collide and back off at random
    // (global.erl's random_sleep, up to seconds), as between BEAM nodes.
    expect_synced({b1.get(), b2.get()}, 30000);
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    // global:random_exit_name/3 keeps the pid on the smaller node name and kills the other:
    // here BEAM's (gbeam... < gcpp...), on every node, and our process is killed.
    ASSERT_LT(b2->node_name(), cpp.name());
    const std::string b2q = quote_atom(b2->node_name());
    EXPECT_TRUE(wait_until([&] { return mb->exited(); }, 10s));
    EXPECT_EQ(erl::to_string(mb->exit_reason().value_or(erl::term())), "killed");
    EXPECT_TRUE(wait_until(
        [&] {
            auto w = erl::global::whereis_name(*cpp.node, atom_term("clash"));
            return w && w->node.str() == b2->node_name() &&
                   b1->eval("node(global:whereis_name(clash))") == b2q;
        },
        10s));
    EXPECT_EQ(b2->eval("global:whereis_name(clash) =:= CP"), "true");
    EXPECT_EQ(b2->eval("is_process_alive(CP)"), "true");
}

// A hidden erlcpp node stays outside global and pg, as a hidden BEAM node does: its names and
// groups are its own, the BEAM nodes neither wait for it nor see them.
TEST_F(GlobalInterop, hidden_erlcpp_node_stays_outside) {
    auto b1 = beam("b1"), b2 = beam("b2");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    b1->eval("{ok, _} = pg:start(pg)");
    trace_cluster_servers(*b1);
    cluster_node cpp(cpp_opts([](erl::node_options& o) { o.hidden = true; }));
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    EXPECT_EQ(b1->eval("lists:member(" + cpp.quoted_name() + ", nodes(hidden))"), "true");
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    auto reg = erl::global::register_name(*cpp.node, atom_term("hidden_name"), mb->self());
    ASSERT_TRUE(reg && *reg);
    ASSERT_FALSE(erl::pg::join(*cpp.node, atom_term("hidden_group"), mb->self()));
    EXPECT_TRUE(erl::global::whereis_name(*cpp.node, atom_term("hidden_name")).has_value());
    EXPECT_TRUE(erl::global::known_nodes(*cpp.node).empty());
    expect_synced({b1.get(), b2.get()});
    EXPECT_EQ(b1->eval("global:whereis_name(hidden_name)"), "undefined");
    EXPECT_EQ(b1->eval("pg:get_members(hidden_group)"), "[]");
    EXPECT_EQ(b1->eval("gen_server:call(global_name_server, get_known)"),
              "[" + quote_atom(b2->node_name()) + "]");
    // b1's global_name_server and pg scope never heard from the hidden node's services.
    EXPECT_EQ(traced_from_cpp(*b1, cpp), "[]");
    expect_quiet_logs({b1.get(), b2.get()});
}

// A hidden BEAM peer (erl -hidden) connected to a visible erlcpp node takes no part in its
// global or pg, as between OTP nodes (global.erl watches nodeup of visible nodes only): it is
// listed as hidden, it does not learn our names, and we do not count it as a known node.
TEST_F(GlobalInterop, hidden_beam_peer_stays_outside) {
    cluster_node cpp(cpp_opts());
    auto b1 = beam("b1");
    b1->eval("{ok, _} = pg:start(pg)");
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1->node_name())));
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    auto reg = erl::global::register_name(*cpp.node, atom_term("visible_name"), mb->self());
    ASSERT_TRUE(reg && *reg);
    auto o = beam_opts();
    o.extra_args.push_back("-hidden");
    logged_beam h(o, dir, "hidden");
    h.eval("{ok, _} = pg:start(pg)");
    trace_cluster_servers(h);
    ASSERT_FALSE(cpp.node->connect(erl::atom(h.node_name())));
    // Traffic of our services while the hidden peer is connected: a name, a group, a sync
    // with the visible peer.
    auto mb2 = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb2);
    auto reg2 = erl::global::register_name(*cpp.node, atom_term("visible_name2"), mb2->self());
    ASSERT_TRUE(reg2 && *reg2);
    ASSERT_FALSE(erl::pg::join(*cpp.node, atom_term("visible_group"), mb->self()));
    EXPECT_TRUE(wait_until([&] { return b1->eval("pg:get_members(visible_group)") != "[]"; }, 10s));
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    // The hidden node's global_name_server and pg scope received nothing from us.
    EXPECT_EQ(traced_from_cpp(h, cpp), "[]");
    EXPECT_EQ(h.eval("lists:member(" + cpp.quoted_name() + ", nodes(hidden))"), "true");
    const auto hidden = cpp.node->nodes(erl::node_type::hidden);
    ASSERT_EQ(hidden.size(), 1u);
    EXPECT_EQ(hidden[0], erl::atom(h.node_name()));
    EXPECT_EQ(cpp.node->nodes(erl::node_type::visible),
              std::vector<erl::atom>{erl::atom(b1->node_name())});
    EXPECT_EQ(cpp.node->nodes().size(), 2u);
    EXPECT_EQ(h.eval_within("global:sync()"), "ok");
    EXPECT_EQ(h.eval("global:whereis_name(visible_name)"), "undefined");
    EXPECT_EQ(h.eval("gen_server:call(global_name_server, get_known)"), "[]");
    EXPECT_EQ(h.eval("pg:get_members(visible_group)"), "[]");
    const auto known = erl::global::known_nodes(*cpp.node);
    EXPECT_EQ(known, std::vector<erl::atom>{erl::atom(b1->node_name())});
    expect_quiet_logs({&h, b1.get()});
}

// prevent_overlapping_partitions: when two BEAM nodes lose each other while erlcpp is connected
// to both, the partitions must not overlap: each BEAM node tells us it lost the other, and we
// drop the connection to the teller (global.erl's lost_connection handling), so we keep at
// most one of them; global:sync() returns everywhere and our known nodes are our connections.
TEST_F(GlobalInterop, partition_between_beam_nodes_does_not_overlap) {
    auto b1 = beam("b1"), b2 = beam("b2");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    cluster_node cpp(cpp_opts());
    ASSERT_NO_FATAL_FAILURE(join_synced(cpp, {b1.get(), b2.get()}));
    ASSERT_TRUE(wait_until([&] { return cpp.node->nodes().size() == 2; }, 10s));

    EXPECT_EQ(b1->eval("erlang:disconnect_node(" + quote_atom(b2->node_name()) + ")"), "true");
    const erl::atom n1(b1->node_name()), n2(b2->node_name());
    EXPECT_TRUE(wait_until(
        [&] {
            bool c1 = cpp.node->is_connected(n1), c2 = cpp.node->is_connected(n2);
            bool b12 =
                b1->eval("lists:member(" + quote_atom(b2->node_name()) + ", nodes())") == "true";
            return !b12 && !(c1 && c2);
        },
        10s));
    expect_synced({b1.get(), b2.get()});
    ASSERT_FALSE(erl::global::sync(*cpp.node, 10s));
    auto known = erl::global::known_nodes(*cpp.node);
    auto connected = cpp.node->nodes();
    std::sort(known.begin(), known.end());
    std::sort(connected.begin(), connected.end());
    EXPECT_EQ(known, connected);
    EXPECT_TRUE(cpp.wait_log("in order to prevent overlapping partitions"));
}

// kill -9 of an erlcpp node: the node runs in a child process (forked before this process
// starts any thread of its own), registers a global name and a pg member, and is killed with
// SIGKILL; every BEAM node forgets both.
TEST_F(GlobalInterop, names_and_members_of_a_killed_erlcpp_node_disappear) {
    auto b1 = beam("b1"), b2 = beam("b2");
    EXPECT_EQ(connect(*b2, b1->node_name()), "true");
    for (auto* b : {b1.get(), b2.get()})
        b->eval("{ok, _} = pg:start(pg)");
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    auto opts = cpp_opts();
    const std::string b1_name = b1->node_name();
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        std::string answer = "fail";
        try {
            cluster_node cpp(opts);
            auto mb = cpp.node->spawn_mailbox();
            if (mb && !cpp.node->connect(erl::atom(b1_name))) {
                auto reg =
                    erl::global::register_name(*cpp.node, atom_term("killed_name"), mb->self());
                bool joined = !erl::pg::join(*cpp.node, atom_term("killed_group"), mb->self());
                if (reg && *reg && joined) answer = "ready " + cpp.name();
            }
            (void)!::write(ready[1], answer.data(), answer.size());
            for (;;)
                ::pause();
        } catch (...) {
            (void)!::write(ready[1], answer.data(), answer.size());
        }
        ::_exit(1);
    }
    ::close(ready[1]);
    struct reaper {
        pid_t pid;
        int fd;
        ~reaper() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            ::close(fd);
        }
    } reap{child, ready[0]};
    char buf[256] = {};
    pollfd p{ready[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 20000), 1);
    ssize_t got = ::read(ready[0], buf, sizeof buf - 1);
    ASSERT_GT(got, 6);
    std::string answer(buf, static_cast<std::size_t>(got));
    ASSERT_EQ(answer.rfind("ready ", 0), 0u) << answer;
    const std::string cpp_q = quote_atom(answer.substr(6));
    for (auto* b : {b1.get(), b2.get()}) {
        EXPECT_TRUE(wait_until(
            [&] { return b->eval("catch node(global:whereis_name(killed_name))") == cpp_q; }, 10s));
        EXPECT_TRUE(wait_until(
            [&] {
                return b->eval("[node(P) || P <- pg:get_members(killed_group)]") ==
                       "[" + cpp_q + "]";
            },
            10s));
    }
    ::kill(child, SIGKILL);
    for (auto* b : {b1.get(), b2.get()}) {
        EXPECT_TRUE(wait_until(
            [&] { return b->eval("global:whereis_name(killed_name)") == "undefined"; }, 10s))
            << b->node_name();
        EXPECT_TRUE(
            wait_until([&] { return b->eval("pg:get_members(killed_group)") == "[]"; }, 10s));
    }
    expect_synced({b1.get(), b2.get()});
    expect_quiet_logs({b1.get(), b2.get()}, cpp_q);
}
