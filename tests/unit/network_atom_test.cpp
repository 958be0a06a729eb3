// Network atoms: made while decoding peer data, counted by the values holding them, freed with
// the last one; promoted to permanent when C++ code names them.
#include <erl/etf.hpp>
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace erl;

namespace {

// A name no other test uses.
std::string fresh(const char* what, int i = 0) {
    static std::atomic<int> n{0};
    return std::string("network_atom_test_") + what + "_" + std::to_string(n++) + "_" +
           std::to_string(i);
}

// ETF of {Atom, [Atom, Atom], Pid on node Atom} with the atom as SMALL_ATOM_UTF8_EXT.
std::vector<std::uint8_t> etf_with_atom(const std::string& name) {
    std::vector<std::uint8_t> out{131, 104, 3};
    auto put_atom = [&] {
        out.push_back(119);
        out.push_back(static_cast<std::uint8_t>(name.size()));
        out.insert(out.end(), name.begin(), name.end());
    };
    put_atom();
    out.insert(out.end(), {108, 0, 0, 0, 2});
    put_atom();
    put_atom();
    out.push_back(106);
    out.push_back(88);  // NEW_PID_EXT
    put_atom();
    out.insert(out.end(), {0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1});
    return out;
}

}  // namespace

TEST(NetworkAtom, MadeFromPeerDataAndFreedWithTheLastHolder) {
    const std::string name = fresh("free");
    const std::size_t size0 = atom_table_size(), net0 = network_atom_count();
    const std::size_t freed0 = network_atoms_freed();
    {
        auto a = atom::make_network(name);
        ASSERT_TRUE(a);
        EXPECT_TRUE(a->is_network());
        EXPECT_EQ(a->str(), name);
        EXPECT_EQ(atom_table_size(), size0 + 1);
        EXPECT_EQ(network_atom_count(), net0 + 1);
        atom copy = *a;  // the copy holds it too
        term t(copy);
        std::vector<term> many(100, t);
        EXPECT_EQ(*atom::existing(name), *a);
        EXPECT_TRUE(t.is_atom(*a));
        EXPECT_EQ(t.as_atom(), copy);
    }
    EXPECT_EQ(atom_table_size(), size0);
    EXPECT_EQ(network_atom_count(), net0);
    EXPECT_EQ(network_atoms_freed(), freed0 + 1);
    EXPECT_FALSE(atom::existing(name));
    detail::atom_collect();
    EXPECT_EQ(detail::atoms_awaiting_reclaim(), 0u);
}

TEST(NetworkAtom, DecodedTermsHoldTheirAtoms) {
    const std::string name = fresh("decode");
    const std::size_t size0 = atom_table_size();
    auto bytes = etf_with_atom(name);
    {
        auto t = etf::decode(bytes);
        ASSERT_TRUE(t) << t.error().message();
        EXPECT_EQ(atom_table_size(), size0 + 1);
        auto a = atom::existing(name);
        ASSERT_TRUE(a);
        EXPECT_TRUE(a->is_network());
        EXPECT_EQ((*t)[2].as_pid().node, *a);
        // Encoding and decoding again finds the same entry.
        auto again = etf::decode(etf::encode(*t));
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, *t);
        EXPECT_EQ(atom_table_size(), size0 + 1);
    }
    EXPECT_EQ(atom_table_size(), size0);
    EXPECT_FALSE(atom::existing(name));
}

TEST(NetworkAtom, NamingFromCxxPromotesToPermanent) {
    const std::string name = fresh("promote");
    const std::size_t net0 = network_atom_count();
    auto a = atom::make_network(name);
    ASSERT_TRUE(a);
    const auto* e = a->entry();
    atom named(name);  // C++ code names it: permanent from now on
    EXPECT_EQ(named.entry(), e);
    EXPECT_EQ(named, *a);
    EXPECT_FALSE(a->is_network());
    EXPECT_EQ(network_atom_count(), net0);
    a = atom();
    named = atom();
    // Still there although no value holds it.
    auto still = atom::existing(name);
    ASSERT_TRUE(still);
    EXPECT_EQ(still->entry(), e);
    // Later lookups from peer data give the permanent entry, without counting.
    auto net = atom::make_network(name);
    ASSERT_TRUE(net);
    EXPECT_EQ(net->entry(), e);
    EXPECT_EQ(net->bits() & 1, 0u);
}

TEST(NetworkAtom, PermanentAtomsAreNotCounted) {
    atom p("network_atom_test_permanent");
    EXPECT_FALSE(p.is_network());
    EXPECT_EQ(p.bits() & 1, 0u);
    auto n = atom::make_network("network_atom_test_permanent");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->bits(), p.bits());
    EXPECT_EQ(p.entry()->refs.load(), 0u);
    term t(p);
    term u = t;
    EXPECT_EQ(p.entry()->refs.load(), 0u);
}

TEST(NetworkAtom, NameIsReusedAfterFree) {
    const std::string name = fresh("reuse");
    const std::size_t size0 = atom_table_size();
    for (int round = 0; round < 100; ++round) {
        auto a = atom::make_network(name);
        ASSERT_TRUE(a);
        EXPECT_EQ(a->str(), name);
        EXPECT_EQ(atom_table_size(), size0 + 1);
        auto b = atom::make_network(name);
        EXPECT_EQ(*a, *b);
        EXPECT_EQ(a->entry(), b->entry());
    }
    EXPECT_EQ(atom_table_size(), size0);
}

// Makes the network atoms PREFIX_0 .. PREFIX_(n-1), each of which must be made, into `held`.
void make_network_atoms(const std::string& prefix, int n, std::vector<atom>& held) {
    for (int i = 0; i < n; ++i) {
        auto a = atom::make_network(prefix + "_" + std::to_string(i));
        ASSERT_TRUE(a) << prefix << "_" << i;
        held.push_back(*a);
    }
}

TEST(NetworkAtom, ManyDistinctAtomsLeaveNoTrace) {
    const std::size_t size0 = atom_table_size();
    const std::string base = fresh("many");
    for (int batch = 0; batch < 20; ++batch) {
        std::vector<atom> held;
        ASSERT_NO_FATAL_FAILURE(make_network_atoms(base + "_" + std::to_string(batch), 5000, held));
        EXPECT_EQ(atom_table_size(), size0 + held.size());
    }
    EXPECT_EQ(atom_table_size(), size0);
    detail::atom_collect();
    EXPECT_EQ(detail::atoms_awaiting_reclaim(), 0u);
}

TEST(NetworkAtom, LimitAppliesToLiveAtoms) {
    const std::size_t old_limit = atom_table_limit();
    const std::size_t size0 = atom_table_size();
    set_atom_table_limit(size0 + 10);
    const std::string base = fresh("limit");
    for (int round = 0; round < 5; ++round) {
        std::vector<atom> held;
        ASSERT_NO_FATAL_FAILURE(make_network_atoms(base + "_" + std::to_string(round), 10, held));
        auto full = atom::make_network(base + "_over_" + std::to_string(round));
        ASSERT_FALSE(full);
        EXPECT_EQ(full.error(), errc::atom_table_full);
    }
    set_atom_table_limit(old_limit);
    EXPECT_EQ(atom_table_size(), size0);
}

TEST(NetworkAtom, MovedFromValueIsTheEmptyAtom) {
    auto a = atom::make_network(fresh("move"));
    ASSERT_TRUE(a);
    atom b = std::move(*a);
    EXPECT_TRUE(a->empty());
    EXPECT_TRUE(b.is_network());
    term t(std::move(b));
    EXPECT_TRUE(b.empty());
    term u = std::move(t);
    EXPECT_TRUE(u.as_atom().is_network());
}

// Threads decode and drop the same novel atoms while others look them up by name and some
// promote a few: every lookup agrees on one entry per live name, nothing is freed while held,
// and the table is back to where it started.
TEST(NetworkAtom, ConcurrentDecodeDropAndLookup) {
    const std::size_t size0 = atom_table_size();
    constexpr int names = 64;
    std::vector<std::string> text;
    std::vector<std::vector<std::uint8_t>> etf;
    for (int i = 0; i < names; ++i) {
        text.push_back(fresh("race", i));
        etf.push_back(etf_with_atom(text.back()));
    }
    std::atomic<bool> failed{false};
    std::atomic<int> done{0};
    constexpr int decoders = 3, lookers = 2, rounds = 20000;
    std::vector<std::thread> threads;
    for (int d = 0; d < decoders; ++d) {
        threads.emplace_back([&, d] {
            for (int r = 0; r < rounds; ++r) {
                const int i = (r * 7 + d * 13) % names;
                auto t = etf::decode(etf[static_cast<std::size_t>(i)]);
                if (!t || (*t)[0].as_atom().str() != text[static_cast<std::size_t>(i)] ||
                    (*t)[0].as_atom() != (*t)[2].as_pid().node)
                    failed = true;
                term copy = *t;  // dropped at once, sometimes on another thread's heels
            }
            ++done;
        });
    }
    for (int l = 0; l < lookers; ++l) {
        threads.emplace_back([&, l] {
            int r = 0;
            while (done.load() < decoders) {
                const int i = (r++ * 5 + l) % names;
                const std::string& s = text[static_cast<std::size_t>(i)];
                if (auto a = atom::existing(s)) {
                    if (a->str() != s) failed = true;
                }
                auto n = atom::make_network(s);
                if (!n || n->str() != s) failed = true;
            }
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_FALSE(failed.load());
    EXPECT_EQ(atom_table_size(), size0);
    detail::atom_collect();
    EXPECT_EQ(detail::atoms_awaiting_reclaim(), 0u);
}

TEST(NetworkAtom, ConcurrentPromotionAndDrop) {
    constexpr int names = 200;
    std::vector<std::string> text;
    for (int i = 0; i < names; ++i)
        text.push_back(fresh("promote_race", i));
    std::atomic<bool> failed{false};
    std::thread dropper([&] {
        for (int r = 0; r < 20; ++r)
            for (int i = 0; i < names; ++i) {
                auto a = atom::make_network(text[static_cast<std::size_t>(i)]);
                if (!a) failed = true;
            }
    });
    std::thread namer([&] {
        for (int i = 0; i < names; i += 2) {
            atom a(text[static_cast<std::size_t>(i)]);
            if (a.is_network()) failed = true;
        }
    });
    dropper.join();
    namer.join();
    EXPECT_FALSE(failed.load());
    for (int i = 0; i < names; ++i) {
        // The named ones are permanent; the others are gone.
        EXPECT_EQ(static_cast<bool>(atom::existing(text[static_cast<std::size_t>(i)])), i % 2 == 0)
            << i;
    }
}
