// Atom table: interning, limits, UTF-8 validation, thread safety.
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace erl;

TEST(TermAtom, DefaultIsEmptyAtom) {
    atom a;
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(a.str(), "");
    EXPECT_EQ(a, atom(""));
    EXPECT_EQ(*atom::make(""), a);
    EXPECT_EQ(*atom::existing(""), a);
}

TEST(TermAtom, InterningGivesPointerEquality) {
    atom a("hello"), b(std::string("hel") + "lo");
    EXPECT_EQ(a, b);
    EXPECT_EQ(a.entry(), b.entry());
    EXPECT_EQ(a.hash(), b.hash());
    EXPECT_NE(a, atom("hellO"));
    EXPECT_EQ(a.str(), "hello");
    EXPECT_EQ(a.entry()->chars, 5u);
    EXPECT_EQ(a.entry()->text[5], '\0');
}

TEST(TermAtom, ExistingDoesNotCreate) {
    std::size_t before = atom_table_size();
    auto r = atom::existing("term_atom_test_never_created_xyzzy");
    EXPECT_FALSE(r);
    EXPECT_EQ(atom_table_size(), before);
    atom made("term_atom_test_created_once");
    auto e = atom::existing("term_atom_test_created_once");
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, made);
}

TEST(TermAtom, LengthLimitsCountCodePoints) {
    std::string a255(255, 'x');
    auto r = atom::make(a255);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->str().size(), 255u);
    auto r256 = atom::make(std::string(256, 'x'));
    ASSERT_FALSE(r256);
    EXPECT_EQ(r256.error(), errc::atom_too_long);
    EXPECT_THROW(atom(std::string(256, 'y')), std::invalid_argument);

    // 255 two-byte characters (510 bytes) are fine; 256 are not.
    std::string e255;
    for (int i = 0; i < 255; ++i)
        e255 += "\xC3\xA9";  // é
    auto u = atom::make(e255);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->entry()->chars, 255u);
    EXPECT_EQ(u->entry()->bytes, 510u);
    EXPECT_EQ(atom::make(e255 + "\xC3\xA9").error(), errc::atom_too_long);
    // 255 four-byte characters.
    std::string g255;
    for (int i = 0; i < 255; ++i)
        g255 += "\xF0\x9F\x98\x80";
    EXPECT_TRUE(atom::make(g255));
}

TEST(TermAtom, UnicodeAtoms) {
    atom a("h\xC3\xA9llo");              // héllo
    atom b("\xE6\x97\xA5\xE6\x9C\xAC");  // 日本
    EXPECT_EQ(a.entry()->chars, 5u);
    EXPECT_EQ(b.entry()->chars, 2u);
    EXPECT_EQ(b.str().size(), 6u);
}

TEST(TermAtom, InvalidUtf8Rejected) {
    for (std::string_view bad :
         {std::string_view("\xC3"), std::string_view("\xC0\x80"),  // overlong
          std::string_view("\xED\xA0\x80"),                        // surrogate
          std::string_view("\xF4\x90\x80\x80"),                    // > U+10FFFF
          std::string_view("a\xFF"), std::string_view("\x80")}) {
        auto r = atom::make(bad);
        ASSERT_FALSE(r) << "accepted invalid utf-8";
        EXPECT_EQ(r.error(), errc::invalid_utf8);
    }
    EXPECT_THROW(atom("\xFF"), std::invalid_argument);
    // NUL is a valid code point in an atom.
    EXPECT_TRUE(atom::make(std::string_view("a\0b", 3)));
}

TEST(TermAtom, OrderIsBytewiseUtf8) {
    EXPECT_LT(atom("a"), atom("b"));
    EXPECT_LT(atom("a"), atom("aa"));
    EXPECT_LT(atom(""), atom("a"));
    EXPECT_LT(atom("Z"), atom("a"));
    EXPECT_LT(atom("z"), atom("\xC3\xA9"));  // é (0xC3..) after ASCII
    EXPECT_EQ(atom("x") <=> atom("x"), std::strong_ordering::equal);
}

TEST(TermAtom, WellKnownAtoms) {
    EXPECT_EQ(atoms::ok().str(), "ok");
    EXPECT_EQ(atoms::error().str(), "error");
    EXPECT_EQ(atoms::true_().str(), "true");
    EXPECT_EQ(atoms::false_().str(), "false");
    EXPECT_EQ(atoms::undefined().str(), "undefined");
    EXPECT_EQ(atoms::nonode_nohost().str(), "nonode@nohost");
    EXPECT_EQ(atoms::ok(), atom("ok"));
}

TEST(TermAtom, TableLimit) {
    std::size_t old = atom_table_limit();
    EXPECT_EQ(old, 1048576u);
    (void)atoms::ok();  // exists before the table fills (ctest runs each test in a fresh process)
    std::size_t n = atom_table_size();
    set_atom_table_limit(n + 2);
    EXPECT_TRUE(atom::make("term_atom_limit_1"));
    EXPECT_TRUE(atom::make("term_atom_limit_2"));
    auto r = atom::make("term_atom_limit_3");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::atom_table_full);
    EXPECT_THROW(atom("term_atom_limit_3"), std::length_error);
    // Existing atoms are still found when the table is full.
    EXPECT_TRUE(atom::make("term_atom_limit_1"));
    EXPECT_TRUE(atom::make("ok"));
    set_atom_table_limit(old);
    EXPECT_TRUE(atom::make("term_atom_limit_3"));
    EXPECT_EQ(atom_table_size(), n + 3);
}

TEST(TermAtom, ConcurrentInterningAgrees) {
    constexpr int kThreads = 4, kAtoms = 3000;
    std::vector<std::vector<const detail::atom_entry*>> seen(kThreads);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
        ts.emplace_back([t, &seen] {
            for (int i = 0; i < kAtoms; ++i) {
                // Threads walk the names in different orders.
                int k = (t % 2) ? i : kAtoms - 1 - i;
                atom a("term_conc_" + std::to_string(k));
                seen[t].push_back(a.entry());
            }
            if (t % 2 == 0) std::reverse(seen[t].begin(), seen[t].end());
        });
    }
    for (auto& th : ts)
        th.join();
    for (int t = 1; t < kThreads; ++t)
        EXPECT_EQ(seen[t], seen[0]);
    for (int i = 0; i < kAtoms; ++i)
        EXPECT_EQ(atom("term_conc_" + std::to_string(i)).entry(), seen[0][i]);
}
