// The process table: pid numbering, wrap of the pid counter without reusing a live pid, names
// and aliases kept in step with the processes.
#include <erl/node.hpp>

#include <gtest/gtest.h>

#include "node/process.hpp"
#include "node/process_table.hpp"
#include "node/test_access.hpp"
#include "node_test_support.hpp"

#include <atomic>
#include <limits>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using erl::detail::process;
using erl::detail::process_table;

namespace {

constexpr std::uint64_t top = std::numeric_limits<std::uint64_t>::max();

std::shared_ptr<process> make(process_table& t, std::optional<erl::atom> name = std::nullopt) {
    auto p = t.create(
        erl::atom("t@h"), 1,
        [](const erl::pid& id) { return std::make_shared<process>(nullptr, id); }, name);
    return p ? *p : nullptr;
}

}  // namespace

TEST(ProcessTable, first_2_pow_28_pids_fit_the_pre_v4_nc_limits) {
    // Peers without DFLAG_V4_NC take 15-bit IDs and 13-bit Serials only.
    for (std::uint64_t n : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x7fff},
                            std::uint64_t{0x8000}, (std::uint64_t{1} << 28) - 1}) {
        auto [id, serial] = process_table::numbers_of(n);
        EXPECT_LT(id, 1u << 15) << n;
        EXPECT_LT(serial, 1u << 13) << n;
    }
    // After that the full 32+32 bits of NEW_PID_EXT are used.
    auto [id28, serial28] = process_table::numbers_of(std::uint64_t{1} << 28);
    EXPECT_EQ(id28, 1u << 15);
    EXPECT_EQ(serial28, 0u);
    auto [idt, serialt] = process_table::numbers_of(top);
    EXPECT_EQ(idt, 0xffffffffu);
    EXPECT_EQ(serialt, 0xffffffffu);
    // Distinct numbers give distinct pids (spot check across the bit fields).
    std::set<std::pair<std::uint32_t, std::uint32_t>> seen;
    for (int shift = 0; shift < 64; ++shift)
        EXPECT_TRUE(seen.insert(process_table::numbers_of(std::uint64_t{1} << shift)).second)
            << shift;
}

TEST(ProcessTable, counter_wrap_skips_every_live_pid) {
    process_table t;
    // Live processes at the bottom of the number space...
    std::vector<std::shared_ptr<process>> live;
    for (int i = 0; i < 5; ++i)
        live.push_back(make(t));
    // ...and at the very top, just before the counter wraps.
    t.set_next_number(top - 2);
    for (int i = 0; i < 3; ++i)
        live.push_back(make(t));
    std::set<std::uint64_t> live_keys;
    for (auto& p : live)
        live_keys.insert(process_table::key_of(p->self));
    ASSERT_EQ(live_keys.size(), live.size());
    // The counter wraps to 0 and walks through the live numbers at the bottom.
    std::vector<std::shared_ptr<process>> fresh;
    for (int i = 0; i < 10; ++i) {
        auto p = make(t);
        ASSERT_TRUE(p);
        EXPECT_FALSE(live_keys.count(process_table::key_of(p->self))) << p->self.id;
        EXPECT_TRUE(live_keys.insert(process_table::key_of(p->self)).second);
        fresh.push_back(p);
    }
    EXPECT_EQ(fresh.front()->self.id, 0u);  // it did wrap
    // Every old process is still found under its pid.
    for (auto& p : live)
        EXPECT_EQ(t.find(p->self), p);
    EXPECT_EQ(t.size(), live.size() + fresh.size());
}

TEST(ProcessTable, names_and_aliases_follow_the_process) {
    process_table t;
    auto a = make(t, erl::atom("svc"));
    ASSERT_TRUE(a);
    EXPECT_FALSE(make(t, erl::atom("svc")));  // taken: nothing inserted
    EXPECT_EQ(t.size(), 1u);
    auto b = make(t);
    EXPECT_EQ(t.register_name(erl::atom("svc"), b), erl::errc::name_taken);
    EXPECT_EQ(t.register_name(erl::atom("other"), a), erl::errc::name_taken);  // has a name
    erl::reference r;
    r.node = erl::atom("t@h");
    r.len = 3;
    r.ids = {7, 8, 9, 0, 0};
    t.add_alias(r, b);
    EXPECT_EQ(t.find_alias(r), b);
    {
        std::lock_guard lk(a->mu);
        a->exited = true;
    }
    t.remove(a);
    EXPECT_FALSE(t.find_name(erl::atom("svc")));
    EXPECT_FALSE(t.find(a->self));
    EXPECT_EQ(t.register_name(erl::atom("late"), a), erl::errc::noproc);  // exited
    {
        std::lock_guard lk(b->mu);
        b->exited = true;
    }
    t.remove(b);
    EXPECT_FALSE(t.find_alias(r));
    EXPECT_EQ(t.size(), 0u);
}

namespace {

void mark_exited(const std::shared_ptr<process>& p) {
    std::lock_guard lk(p->mu);
    p->exited = true;
}

}  // namespace

TEST(ProcessTable, lookups_hold_while_the_table_grows_and_pids_share_slots) {
    process_table t;
    // Enough processes for the lock-free read array to double several times.
    std::vector<std::shared_ptr<process>> procs;
    for (int i = 0; i < 5000; ++i)
        procs.push_back(make(t));
    for (auto& p : procs)
        ASSERT_EQ(t.find(p->self), p);
    for (std::size_t i = 0; i < procs.size(); i += 2) {
        mark_exited(procs[i]);
        t.remove(procs[i]);
    }
    for (std::size_t i = 0; i < procs.size(); ++i)
        EXPECT_EQ(t.find(procs[i]->self), i % 2 ? procs[i] : nullptr) << i;
    // Numbers 2^28 apart have the same low bits, so these pids take the slots of live ones:
    // both are found, the older ones through the locked map.
    t.set_next_number((std::uint64_t{1} << 28) + 1);
    std::vector<std::shared_ptr<process>> later;
    for (int i = 0; i < 100; ++i)
        later.push_back(make(t));
    for (std::size_t i = 0; i < 100; ++i) {
        EXPECT_EQ(t.find(later[i]->self), later[i]) << i;
        EXPECT_EQ(t.find(procs[i]->self), i % 2 ? procs[i] : nullptr) << i;
    }
    // A pid never created, on a live slot, is not found.
    erl::pid ghost = procs[1]->self;
    ghost.serial ^= 0x80000000u;
    EXPECT_FALSE(t.find(ghost));
    // Names: many, so their array grows too; each resolves until it is unregistered.
    std::vector<erl::atom> names;
    for (int i = 0; i < 300; ++i) {
        names.emplace_back("ptab_name_" + std::to_string(i));
        ASSERT_FALSE(t.register_name(names.back(), procs[2 * i + 1]));
    }
    for (int i = 0; i < 300; ++i)
        EXPECT_EQ(t.find_name(names[i]), procs[2 * i + 1]) << i;
    for (int i = 0; i < 300; i += 3)
        EXPECT_TRUE(t.unregister_name(names[i]));
    for (int i = 0; i < 300; ++i)
        EXPECT_EQ(t.find_name(names[i]), i % 3 ? procs[2 * i + 1] : nullptr) << i;
}

// The runtime removes a process through whichever pointer it holds, which may share ownership
// with another owner (a mailbox handle does): the read arrays must let go of the process all
// the same, or they would keep it, and through it its node, alive.
TEST(ProcessTable, removing_through_an_aliasing_pointer_frees_the_process) {
    process_table t;
    auto p = make(t, erl::atom("ptab_alias"));
    ASSERT_TRUE(p);
    ASSERT_EQ(t.find(p->self), p);
    ASSERT_EQ(t.find_name(erl::atom("ptab_alias")), p);
    std::weak_ptr<process> watch = p;
    std::shared_ptr<process> alias(p.get(), [keep = p](process*) {});
    p.reset();
    mark_exited(alias);
    t.remove(alias);
    const erl::pid self = alias->self;
    alias.reset();
    EXPECT_TRUE(watch.expired());
    EXPECT_FALSE(t.find(self));
    EXPECT_FALSE(t.find_name(erl::atom("ptab_alias")));
}

TEST(ProcessTable, reads_without_the_lock_race_spawns_exits_and_names) {
    process_table t;
    std::vector<std::shared_ptr<process>> stay;
    for (int i = 0; i < 8; ++i)
        stay.push_back(make(t));
    const erl::atom stay_name("ptab_stay");
    ASSERT_FALSE(t.register_name(stay_name, stay[0]));
    std::atomic<bool> done{false};
    std::atomic<long> misses{0}, reads{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
        readers.emplace_back([&] {
            while (!done.load(std::memory_order_acquire)) {
                for (auto& p : stay)
                    if (t.find(p->self) != p) ++misses;
                if (t.find_name(stay_name) != stay[0]) ++misses;
                ++reads;
            }
        });
    // Meanwhile: processes come and go (the read arrays grow while the readers read), names
    // come and go.
    std::vector<std::shared_ptr<process>> churn;
    for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < 500; ++i)
            churn.push_back(make(t));
        ASSERT_FALSE(t.register_name(erl::atom("ptab_churn"), churn.back()));
        EXPECT_EQ(t.find_name(erl::atom("ptab_churn")), churn.back());
        EXPECT_TRUE(t.unregister_name(erl::atom("ptab_churn")));
        for (std::size_t i = 0; i < churn.size(); i += 2) {
            mark_exited(churn[i]);
            t.remove(churn[i]);
            EXPECT_FALSE(t.find(churn[i]->self));
        }
        std::erase_if(churn, [](auto& p) { return p->exited.load(); });
    }
    // Let the readers finish at least one more pass over the final table.
    const long seen = reads.load();
    while (reads.load() < seen + 2)
        std::this_thread::yield();
    done = true;
    for (auto& th : readers)
        th.join();
    EXPECT_EQ(misses.load(), 0);
    for (auto& p : churn)
        EXPECT_EQ(t.find(p->self), p);
}

TEST(ProcessTable, node_keeps_delivering_to_old_pids_after_the_counter_wraps) {
    erl::node n(erl::test::local_node_options("ptab", erl::test::free_port()));
    ASSERT_FALSE(n.start());
    auto old = n.spawn_mailbox(erl::atom("old"));
    ASSERT_TRUE(old);
    erl::test::set_next_pid_number(n, top - 1);
    std::vector<erl::mailbox> boxes;
    std::set<std::pair<std::uint32_t, std::uint32_t>> seen{{old->self().id, old->self().serial}};
    for (int i = 0; i < 50; ++i) {
        auto mb = n.spawn_mailbox();
        ASSERT_TRUE(mb);
        EXPECT_TRUE(seen.insert({mb->self().id, mb->self().serial}).second)
            << "pid reused: " << erl::term(mb->self()).to_string();
        boxes.push_back(std::move(*mb));
    }
    EXPECT_EQ(boxes[1].self().id, 0xffffffffu);
    EXPECT_EQ(boxes[1].self().serial, 0xffffffffu);
    EXPECT_EQ(boxes[2].self().id, 0u);  // wrapped
    // The old process still gets what is sent to its pid, from a process numbered after the
    // wrap, and the newer ones get theirs.
    boxes.back().send(old->self(), erl::atom("to_old"));
    auto m = old->receive(5s);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->is_atom(erl::atom("to_old")));
    old->send(boxes[1].self(), erl::atom("to_top"));
    auto t = boxes[1].receive(5s);
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->is_atom(erl::atom("to_top")));
    EXPECT_EQ(n.whereis(erl::atom("old")), old->self());
}
