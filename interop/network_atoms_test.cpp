// Interop: atoms sent by a real OTP node are network atoms on the erlcpp side. A BEAM peer
// (its own atom limit raised so that it survives) sends two million distinct atoms in messages
// to an erlcpp mailbox that drops them; the erlcpp node's live atom count stays bounded by what
// is in flight, every one of those atoms leaves the table again, and a second BEAM node (the
// witness) is served throughout.
#include <erl/node.hpp>

#include "harness/cluster.hpp"
#include "harness/named_cluster_test.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::echo_service;

using NetworkAtomsInterop = erl::interop::named_cluster_test<"cppnatom", "beamnatom">;

TEST_F(NetworkAtomsInterop, two_million_distinct_atoms_from_a_peer_leave_the_table_bounded) {
    constexpr int batches = 2000, per_batch = 1000, sync_every = 16;
    constexpr std::size_t total = std::size_t{batches} * per_batch;
    cpp_node cpp(cpp_opts());
    echo_service echo(*cpp.node);
    echo_service sink(*cpp.node, "atom_sink");  // drops lists, answers {Pid, T}
    auto fo = beam_opts();
    fo.extra_args = {"+t", "4194304"};  // BEAM itself would die at its default 1,048,576
    beam_node flood(fo);
    beam_node witness(beam_opts());
    const std::string cppn = cpp.quoted_name();
    ASSERT_EQ(flood.eval("net_adm:ping(" + cppn + ")"), "pong");
    ASSERT_EQ(witness.eval("net_adm:ping(" + cppn + ")"), "pong");

    const std::size_t base = erl::atom_table_size();
    const std::size_t freed0 = erl::network_atoms_freed();
    std::atomic<bool> stop{false};
    // The live count is read after every witness round (the only thread that writes `peak`).
    std::atomic<std::size_t> peak{base};
    // The witness: ping and a message through echo, over and over while the flood runs.
    std::atomic<int> rounds{0}, bad_rounds{0};
    std::atomic<long long> slowest_us{0};
    std::thread witness_loop([&] {
        while (!stop.load()) {
            const auto t0 = std::chrono::steady_clock::now();
            // Inside a fun: the REPL keeps top-level bindings from one evaluation to the next.
            auto r = witness.try_eval("(fun() -> P = net_adm:ping(" + cppn +
                                          "), R = make_ref(), {echo, " + cppn +
                                          "} ! {self(), R}, receive R -> {P, ok} after 10000 -> "
                                          "{P, timeout} end end)()",
                                      20s);
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - t0)
                                .count();
            slowest_us.store(std::max<long long>(slowest_us.load(), us));
            ++rounds;
            if (!r.ok || r.value != "{pong,ok}") ++bad_rounds;
            peak.store(std::max(peak.load(), erl::atom_table_size()));
        }
    });

    const std::string prefix = erl::interop::unique_name("natom");
    const auto t0 = std::chrono::steady_clock::now();
    auto flooded = flood.try_eval(
        "Sink = {atom_sink, " + cppn + "}, P = \"" + prefix +
            "_\", "
            "Loop = fun L(B) when B >= " +
            std::to_string(batches) +
            " -> done; "
            "L(B) -> Sink ! [list_to_atom(P ++ integer_to_list(B * " +
            std::to_string(per_batch) + " + I)) || I <- lists:seq(0, " +
            std::to_string(per_batch - 1) +
            ")], "
            "case B rem " +
            std::to_string(sync_every) + " of " + std::to_string(sync_every - 1) +
            " -> Sink ! {self(), B}, receive B -> ok after 20000 -> exit(no_sync) end; "
            "_ -> ok end, L(B + 1) end, Loop(0)",
        90s);
    const auto flood_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(flooded.ok && flooded.value == "done") << flooded.value;

    // Every one of them leaves the table (the connection's atom cache may hold up to 2048 of
    // the last ones while the peer is connected).
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return erl::network_atoms_freed() - freed0 + 2048 >= total; }, 20s))
        << erl::network_atoms_freed() - freed0;
    EXPECT_TRUE(
        erl::interop::wait_until([&] { return erl::atom_table_size() <= base + 2048 + 64; }, 20s))
        << erl::atom_table_size() << " vs " << base;
    stop = true;
    witness_loop.join();

    // In flight at once: at most sync_every + 1 batches plus the atom cache.
    const std::size_t bound = (sync_every + 2) * per_batch + 2048 + 64;
    EXPECT_LE(peak.load() - base, bound);
    EXPECT_GE(rounds.load(), 1);
    EXPECT_EQ(bad_rounds.load(), 0);
    // Still served after the flood, and the flooding peer is still connected.
    EXPECT_EQ(witness.eval("{echo, " + cppn + "} ! {self(), {after_flood, 1}}, receive M -> M " +
                           "after 10000 -> timeout end"),
              "{after_flood,1}");
    EXPECT_EQ(flood.eval("net_adm:ping(" + cppn + ")"), "pong");
    const auto s = cpp.node->stats();
    EXPECT_LE(s.network_atoms, std::size_t{2048 + 64});
    EXPECT_GE(s.network_atoms_freed + 2048, total);
    std::printf(
        "[ figures ] %zu atoms in %.1f s; live atoms peak %zu above %zu; after %zu "
        "(network %zu); witness rounds %d, slowest %.1f ms\n",
        total, flood_s, peak.load() - base, base, erl::atom_table_size(), s.network_atoms,
        rounds.load(), slowest_us.load() / 1000.0);
    RecordProperty("flood_seconds", std::to_string(flood_s));
    RecordProperty("live_atoms_peak_above_base", std::to_string(peak.load() - base));
    RecordProperty("witness_max_us", std::to_string(slowest_us.load()));
}
