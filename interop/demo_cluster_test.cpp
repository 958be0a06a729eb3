// Interop: the demo's cluster pieces (examples/demo/cluster.hpp) called from real OTP nodes:
// demo:locked_add/3 racing BEAM lockers on one counter, demo:global_whereis/1,
// demo:pg_members/2, the worker kept in erlcpp_demo_workers across restarts.
#include "../examples/demo/cluster.hpp"

#include "cluster_support.hpp"
#include "harness/named_cluster_test.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using erl::interop::logged_beam;
using erl::interop::quote_atom;
using erl::interop::wait_until;

class DemoClusterInterop : public erl::interop::named_cluster_test<"dcpp", "dbeam"> {
  protected:
    erl::interop::temp_dir dir{"demo-cluster"};
};

TEST_F(DemoClusterInterop, locked_add_whereis_and_members) {
    logged_beam b1(beam_opts(), dir, "b1"), b2(beam_opts(), dir, "b2");
    ASSERT_EQ(b2.eval("net_kernel:connect_node(" + quote_atom(b1.node_name()) + ")"), "true");
    b1.eval("{ok, _} = pg:start(pg)");
    erl::interop::cpp_node cpp(cpp_opts());
    erl::rpc::server rpc(*cpp.node);
    // A worker to keep in the group (registered as the demo's supervisor registers it).
    auto worker = cpp.node->spawn_mailbox(erl::atom("worker"));
    ASSERT_TRUE(worker);
    auto demo = demo_cluster::start(*cpp.node, rpc);
    ASSERT_TRUE(demo->cluster);
    ASSERT_FALSE(cpp.node->connect(erl::atom(b1.node_name())));

    const std::string demo_node = cpp.quoted_name();
    EXPECT_TRUE(wait_until(
        [&] {
            return b1.eval("[node(P) || P <- pg:get_members(erlcpp_demo_workers)]") ==
                   "[" + demo_node + "]";
        },
        5s));
    // A new incarnation of the worker is joined again.
    worker->exit(erl::term(erl::atom("restart")));
    auto again = cpp.node->spawn_mailbox(erl::atom("worker"));
    ASSERT_TRUE(again);
    const erl::term group(erl::atom("erlcpp_demo_workers"));
    EXPECT_TRUE(wait_until(
        [&] {
            auto m = erl::pg::get_members(*cpp.node, group);
            return m.size() == 1 && m[0] == again->self();
        },
        5s));
    // BEAM sees exactly one member again (the old one left with its exit).
    EXPECT_TRUE(wait_until(
        [&] {
            return b1.eval("[node(P) || P <- pg:get_members(erlcpp_demo_workers)]") ==
                   "[" + demo_node + "]";
        },
        5s));

    // A gen_server-like counter on b1 answering get and {set, V}.
    b1.eval(
        "CLoop = fun L(V) -> receive {'$gen_call', F, get} -> gen:reply(F, V), L(V); "
        "{'$gen_call', F, {set, X}} -> gen:reply(F, ok), L(X) end end, "
        "Counter = spawn(fun() -> CLoop(0) end), yes = global:register_name(dcounter, Counter)");
    EXPECT_TRUE(wait_until(
        [&] {
            return b1.eval("rpc:call(" + demo_node +
                           ", demo, global_whereis, [dcounter]) =:= Counter") == "true";
        },
        5s));
    EXPECT_EQ(b1.eval("rpc:call(" + demo_node + ", demo, locked_add, [{cnt, b1}, Counter, 2])"),
              "ok");
    EXPECT_EQ(b1.eval("rpc:call(" + demo_node + ", demo, global_whereis, [nobody])"), "undefined");
    EXPECT_EQ(b1.eval("rpc:call(" + demo_node +
                      ", demo, pg_members, [pg, erlcpp_demo_workers]) =:= "
                      "pg:get_members(erlcpp_demo_workers)"),
              "true");

    // The name reaches b2 through global's own propagation, which on a loaded machine can
    // come after b1's register_name has returned.
    ASSERT_TRUE(wait_until(
        [&] { return b2.eval("is_pid(global:whereis_name(dcounter))") == "true"; }, 10s));
    // Two BEAM lockers and two demo:locked_add calls race on the counter under {cnt, _}; each
    // reports how it ended, so a failed one shows its reason instead of a missing message.
    b2.eval(
        "Counter = global:whereis_name(dcounter), Parent = self(), "
        "[spawn(fun() -> Parent ! {done, catch [begin true = global:set_lock({cnt, self()}), "
        "V = gen_server:call(Counter, get), ok = gen_server:call(Counter, {set, V + 1}), "
        "true = global:del_lock({cnt, self()}) end || _ <- lists:seq(1, 10)]} end) "
        "|| _ <- [1, 2]], "
        "[spawn(fun() -> Parent ! {done, rpc:call(" +
        demo_node +
        ", demo, locked_add, [{cnt, make_ref()}, Counter, 10])} end) || _ <- [1, 2]], ok");
    // A BEAM locker's rounds each end with del_lock's true; a demo:locked_add call with ok.
    const std::string ten_rounds = "[true,true,true,true,true,true,true,true,true,true]";
    ASSERT_EQ(b2.eval("lists:sort([receive {done, R} -> R after 60000 -> timeout end "
                      "|| _ <- [1, 2, 3, 4]])",
                      70s),
              "[ok,ok," + ten_rounds + "," + ten_rounds + "]");
    EXPECT_EQ(b1.eval("gen_server:call(Counter, get)"), "42");
}
