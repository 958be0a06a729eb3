// Interop: a C++ node against real erl / elixir nodes. Each test starts its own
// private epmd, its own C++ node and BEAM nodes, and checks results from the BEAM side.
#include <erl/node.hpp>

#include "harness/cluster.hpp"
#include "node/test_access.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::echo_service;
using erl::interop::quote_atom;

class NodeInterop : public erl::interop::cluster_test {};

TEST_F(NodeInterop, net_adm_ping_pong_long_names) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    // The connection is visible on both sides.
    EXPECT_EQ(beam.eval("lists:member(" + cpp.quoted_name() + ", nodes())"), "true");
    EXPECT_TRUE(cpp.node->is_connected(erl::atom(beam.node_name())));
}

TEST_F(NodeInterop, net_adm_ping_pong_short_names) {
    auto co = cpp_opts();
    co.long_names = false;
    cpp_node cpp(co);
    auto bo = beam_opts();
    bo.long_names = false;
    beam_node beam(bo);
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(NodeInterop, cpp_pings_beam_and_sees_nodeup) {
    cpp_node cpp(cpp_opts());
    std::atomic<int> ups{0};
    cpp.node->monitor_nodes([&](const erl::node_event& e) {
        if (e.up) ++ups;
    });
    beam_node beam(beam_opts());
    EXPECT_TRUE(cpp.node->ping(erl::atom(beam.node_name())));
    EXPECT_EQ(ups.load(), 1);
    EXPECT_EQ(beam.eval("nodes()"), "[" + cpp.quoted_name() + "]");
    // Pinging a node that does not exist is pang, quickly and without side effects.
    EXPECT_FALSE(cpp.node->ping(erl::atom("nobody_here@127.0.0.1"), 3s));
}

TEST_F(NodeInterop, cpp_node_stops_starts_and_pings_beam_again) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    const erl::atom b(beam.node_name());
    for (int round = 0; round < 2; ++round) {
        SCOPED_TRACE(round);
        ASSERT_TRUE(cpp.node->ping(b));
        EXPECT_EQ(beam.eval("monitor_node(" + cpp.quoted_name() + ", true)"), "true");
        cpp.node->stop();
        EXPECT_FALSE(cpp.node->alive());
        EXPECT_EQ(beam.eval("receive {nodedown, " + cpp.quoted_name() +
                            "} -> nodedown after 10000 -> timeout end"),
                  "nodedown");
        ASSERT_FALSE(cpp.node->start());
        // Both directions work with the new run: the BEAM side reaches it through EPMD again.
        EXPECT_TRUE(cpp.node->ping(b));
        EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    }
}

TEST_F(NodeInterop, beam_sends_to_registered_name_and_pid) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    beam_node beam(beam_opts());
    // To a registered name ({Name, Node}) and back to the BEAM pid.
    EXPECT_EQ(beam.eval("{echo, " + cpp.quoted_name() +
                        "} ! {self(), {hello, [1,2,3], <<\"x\">>}}, "
                        "receive M -> M after 5000 -> timeout end"),
              "{hello,[1,2,3],<<\"x\">>}");
    // To a C++ pid learned from a message.
    auto mb = cpp.node->spawn_mailbox(erl::atom("probe"));
    ASSERT_TRUE(mb);
    EXPECT_EQ(beam.eval("{probe, " + cpp.quoted_name() + "} ! {register_me, self()}, ok"), "ok");
    auto m = mb->receive(5s);
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->is_tuple(2));
    const erl::pid beam_pid = (*m)[1].as_pid();
    // C++ sends to the BEAM pid; the BEAM side learns our pid from the message.
    mb->send(beam_pid, erl::tuple(erl::atom("from_cpp"), mb->self_term()));
    EXPECT_EQ(
        beam.eval("CppPid = receive {from_cpp, P} when is_pid(P) -> P after 5000 -> timeout end, "
                  "node(CppPid)"),
        cpp.quoted_name());
    EXPECT_EQ(beam.eval("receive _ -> extra after 0 -> none end"), "none");
    // BEAM sends to our pid directly (SEND / SEND_SENDER to a pid).
    EXPECT_EQ(beam.eval("CppPid ! {direct, 1}, ok"), "ok");
    auto d = mb->receive(5s);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->to_string(), "{direct,1}");
}

// NEW_PID_EXT carries 32-bit ID and Serial; OTP 25 (DFLAG_V4_NC) takes both at full width, so
// pids the node hands out after 2^28 processes keep working with a BEAM peer.
TEST_F(NodeInterop, beam_takes_and_answers_full_width_pids) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    erl::test::set_next_pid_number(*cpp.node, ~std::uint64_t{0});
    auto mb = cpp.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    ASSERT_EQ(mb->self().id, 0xffffffffu);
    ASSERT_EQ(mb->self().serial, 0xffffffffu);
    EXPECT_EQ(beam.eval("register(listener, self())"), "true");
    mb->send(erl::atom("listener"), erl::atom(beam.node_name()),
             erl::tuple(erl::atom("wide"), mb->self_term()));
    // The BEAM side sees the full numbers and can send to the pid.
    EXPECT_EQ(beam.eval("receive {wide, P} -> P ! {pong, P}, "
                        "tl(string:tokens(pid_to_list(P), \"<.>\")) "
                        "after 5000 -> timeout end"),
              "[\"4294967295\",\"4294967295\"]");
    auto m = mb->receive(5s);
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->is_tuple(2));
    EXPECT_EQ((*m)[1], mb->self_term());
}

TEST_F(NodeInterop, cpp_sends_to_beam_registered_name) {
    cpp_node cpp(cpp_opts());
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("register(listener, self())"), "true");
    cpp.node->send(erl::atom("listener"), erl::atom(beam.node_name()),
                   erl::tuple(erl::atom("hi"), 42));
    EXPECT_EQ(beam.eval("receive M -> M after 5000 -> timeout end"), "{hi,42}");
}

TEST_F(NodeInterop, ten_megabyte_binary_both_directions) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    beam_node beam(beam_opts());
    EXPECT_EQ(beam.eval("B = crypto:strong_rand_bytes(10*1024*1024 + 17), "
                        "{echo, " +
                            cpp.quoted_name() +
                            "} ! {self(), B}, "
                            "receive B2 -> B2 =:= B after 20000 -> timeout end",
                        60s),
              "true");
}

// Large binaries BEAM sends (a 64 MiB one arrives in many distribution fragments, a 300 KB one
// in a frame spanning several reads) reach C++ code without being copied out of the received
// frame: the C++ side counts the binaries that refer to it, sends everything back, and the BEAM
// side checks both. A small binary beside a large one is copied as usual.
TEST_F(NodeInterop, large_binaries_from_beam_are_not_copied_and_go_back_intact) {
    cpp_node cpp(cpp_opts());
    auto mb = cpp.node->spawn_mailbox(erl::atom("bigecho"));
    ASSERT_TRUE(mb);
    std::thread echo([mb = *mb]() mutable {
        while (auto m = mb.receive()) {
            if (!m->is_tuple(2) || !(*m)[0].is_pid() || !(*m)[1].is_list()) continue;
            int shared = 0;
            for (const erl::term& b : (*m)[1].as_list().elements)
                if (erl::test::is_shared_binary(b)) ++shared;
            mb.send((*m)[0].as_pid(), erl::tuple((*m)[1], shared));
        }
    });
    beam_node beam(beam_opts());
    const std::string to = "{bigecho, " + cpp.quoted_name() + "}";
    EXPECT_EQ(
        beam.eval("B = crypto:strong_rand_bytes(64*1024*1024), L = [B, <<\"small\">>], " + to +
                      " ! {self(), L}, "
                      "receive {R, N} -> {R =:= L, N} after 60000 -> timeout end",
                  90s),
        "{true,1}");
    EXPECT_EQ(
        beam.eval("M = [crypto:strong_rand_bytes(300000)], " + to +
                  " ! {self(), M}, receive {R2, N2} -> {R2 =:= M, N2} after 20000 -> timeout end"),
        "{true,1}");
    mb->exit();
    echo.join();
}

TEST_F(NodeInterop, random_term_echo_round_trip) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    beam_node beam(beam_opts());
    // A generator of random terms of every kind, run on the BEAM side; each term goes through
    // our node and back, and must come back =:= to what was sent.
    const std::string gen = R"(
        Atoms = [ok, 'hello world', 'héllo', '日本語', '', list_to_atom(lists:duplicate(255, $a))],
        Port = hd(erlang:ports()),
        Gen = fun G(0) -> rand:uniform(1000);
                  G(D) ->
                    case rand:uniform(16) of
                      1 -> rand:uniform(1 bsl 200) - (1 bsl 199);
                      2 -> rand:uniform() * 1.0e10 - 5.0e9;
                      3 -> lists:nth(rand:uniform(length(Atoms)), Atoms);
                      4 -> crypto:strong_rand_bytes(rand:uniform(40) - 1);
                      5 -> <<(rand:uniform(127)):7>>;
                      6 -> list_to_tuple([G(D-1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
                      7 -> [G(D-1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
                      8 -> maps:from_list([{K, G(D-1)} || K <- lists:seq(1, rand:uniform(40))]);
                      9 -> [G(D-1) | G(D-1)];
                      10 -> make_ref();
                      11 -> self();
                      12 -> Port;
                      13 -> X = rand:uniform(100), fun(Y) -> X + Y end;
                      14 -> fun lists:map/2;
                      15 -> lists:foldl(fun(_, Acc) -> {Acc} end, x, lists:seq(1, 100));
                      _ -> -(1 bsl 63) + rand:uniform(10)
                    end
              end,
        Check = fun(T) ->
                  {echo, Node} ! {self(), {echoed, T}},
                  receive {echoed, R} -> R =:= T after 10000 -> timeout end
                end,
        Bad = [T || T <- [Gen(4) || _ <- lists:seq(1, 3000)], Check(T) =/= true],
        length(Bad))";
    beam.eval("Node = " + cpp.quoted_name());
    EXPECT_EQ(beam.eval(gen, 120s), "0");
}

TEST_F(NodeInterop, elixir_node_pings_and_sends) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    beam_node ex(beam_opts(/*elixir=*/true));
    EXPECT_EQ(ex.eval("Node.ping(:\"" + cpp.name() + "\")"), ":pong");
    EXPECT_EQ(ex.eval("send({:echo, :\"" + cpp.name() +
                      "\"}, {self(), %{a: 1, b: \"two\"}}); "
                      "receive do m -> m after 5000 -> :timeout end"),
              "%{a: 1, b: \"two\"}");
}

TEST_F(NodeInterop, wrong_cookie_refused_in_both_directions) {
    cpp_node cpp(cpp_opts());
    auto bo = beam_opts();
    bo.cookie = "not_the_" + cookie;
    beam_node beam(bo);
    // BEAM -> us.
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pang");
    EXPECT_TRUE(cpp.log_contains("bad_cookie")) << "no clear log line for the refused handshake";
    // Us -> BEAM.
    EXPECT_FALSE(cpp.node->ping(erl::atom(beam.node_name()), 5s));
    EXPECT_TRUE(cpp.node->nodes().empty());
    EXPECT_EQ(beam.eval("nodes()"), "[]");
}

TEST_F(NodeInterop, killed_beam_peer_is_nodedown_while_other_peer_is_served) {
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    std::mutex mu;
    std::condition_variable cv;
    std::vector<erl::node_event> events;
    cpp.node->monitor_nodes([&](const erl::node_event& e) {
        std::lock_guard lk(mu);
        events.push_back(e);
        cv.notify_all();
    });
    beam_node victim(beam_opts());
    beam_node survivor(beam_opts());
    ASSERT_EQ(victim.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    ASSERT_EQ(survivor.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    const erl::atom victim_name(victim.node_name());
    victim.kill9();
    {
        std::unique_lock lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, 10s, [&] {
            for (auto& e : events)
                if (!e.up && e.node == victim_name) return true;
            return false;
        }));
    }
    EXPECT_FALSE(cpp.node->is_connected(victim_name));
    EXPECT_EQ(survivor.eval("{echo, " + cpp.quoted_name() +
                            "} ! {self(), still_here}, "
                            "receive M -> M after 5000 -> timeout end"),
              "still_here");
}

TEST_F(NodeInterop, beam_sees_nodedown_when_cpp_node_dies) {
    // Our node as a separate OS process (erlcpp-demo), killed with SIGKILL.
    const std::string name = erl::interop::unique_name("demo") + "@127.0.0.1";
    erl::interop::process::options po;
    po.args = {erl::interop::bin_dir() + "/erlcpp-demo",
               "--name",
               name,
               "--cookie",
               cookie,
               "--epmd-port",
               std::to_string(epmd.port()),
               "--epmd",
               "require"};
    po.stdout_pipe = true;
    erl::interop::process demo(po);
    auto line = demo.read_line(20s);
    ASSERT_TRUE(line) << demo.error_output();
    EXPECT_EQ(*line, "ready " + name);
    beam_node beam(beam_opts());
    ASSERT_EQ(beam.eval("net_adm:ping(" + quote_atom(name) + ")"), "pong");
    beam.eval("monitor_node(" + quote_atom(name) + ", true)");
    demo.kill(SIGKILL);
    EXPECT_EQ(beam.eval("receive {nodedown, N} -> N after 10000 -> timeout end"), quote_atom(name));
}

TEST_F(NodeInterop, idle_connection_survives_several_tick_periods) {
    // net_ticktime 2 s on both sides: ticks every 0.5 s; 7 s idle is 3.5 tick periods.
    cpp_node cpp(cpp_opts([](erl::node_options& o) { o.net_ticktime = 2s; }));
    auto o = beam_opts();
    o.extra_args = {"-kernel", "net_ticktime", "2"};
    beam_node beam(o);
    ASSERT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    beam.eval("monitor_node(" + cpp.quoted_name() + ", true)");
    std::this_thread::sleep_for(7s);
    EXPECT_EQ(beam.eval("receive {nodedown, N} -> {down, N} after 0 -> up end"), "up");
    EXPECT_TRUE(cpp.node->is_connected(erl::atom(beam.node_name())));
}

TEST_F(NodeInterop, messages_in_flight_when_peer_disconnects_crash_nothing) {
    cpp_node cpp(cpp_opts());
    auto sink = cpp.node->spawn_mailbox(erl::atom("sink"));
    ASSERT_TRUE(sink);
    beam_node beam(beam_opts());
    ASSERT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    // The BEAM node fires 500 messages and disconnects at once.
    beam.eval("[{sink, " + cpp.quoted_name() +
              "} ! {n, I, lists:seq(1, 100)} || I <- lists:seq(1, 500)], "
              "erlang:disconnect_node(" +
              cpp.quoted_name() + ")");
    // Whatever arrived is intact and in order; the node keeps working.
    std::int64_t last = 0;
    int got = 0;
    while (auto m = sink->receive(2s)) {
        ASSERT_TRUE(m->is_tuple(3));
        auto i = (*m)[1].as_int64();
        EXPECT_GT(i, last);
        last = i;
        ++got;
        EXPECT_EQ((*m)[2].size(), 100u);
    }
    EXPECT_LE(got, 500);
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}
