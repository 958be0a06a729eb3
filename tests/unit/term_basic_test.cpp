#include <erl/term.hpp>

#include <gtest/gtest.h>

using namespace erl;

TEST(TermBasic, SmokeBuildCompareprint) {
    term t = tuple(atoms::ok(), list(1, 2));
    EXPECT_EQ(t.to_string(), "{ok,[1,2]}");
    EXPECT_EQ(t, tuple(atom("ok"), list(1, 2)));
    EXPECT_NE(t, tuple(atom("ok"), list(1, 3)));
    EXPECT_LT(term(1), term(atom("a")));
    EXPECT_EQ(make_map({{term(atom("a")), term(1)}}).to_string(), "#{a => 1}");
    EXPECT_EQ(term(0.1).to_string(), "0.1");
    EXPECT_EQ(binary(std::string_view("ab")).to_string(), "<<97,98>>");
}
