// Printing in Erlang syntax. Expected strings for plain Erlang values were taken from OTP 25
// (io:format("~w", [X])).
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <sstream>

using namespace erl;

namespace {
std::string w(const term& t) {
    return to_string(t);
}
std::string p(const term& t) {
    print_options o;
    o.strings = true;
    return to_string(t, o);
}
term a(std::string_view s) {
    return term(atom(s));
}
}  // namespace

TEST(TermPrint, Basics) {
    EXPECT_EQ(w(tuple(atoms::ok(), list(1, 2))), "{ok,[1,2]}");
    EXPECT_EQ(w(term()), "[]");
    EXPECT_EQ(w(make_tuple({})), "{}");
    EXPECT_EQ(w(term(-42)), "-42");
    EXPECT_EQ(w(term(INT64_MIN)), "-9223372036854775808");
    EXPECT_EQ(w(*integer_from_string("-123456789012345678901234567890")),
              "-123456789012345678901234567890");
    EXPECT_EQ(w(make_list({term(1)}, term(2))), "[1|2]");
    EXPECT_EQ(w(make_list({term(1), term(2)}, a("t"))), "[1,2|t]");
    EXPECT_EQ(w(term(true)), "true");
    EXPECT_EQ(w(make_map({})), "#{}");
    EXPECT_EQ(w(tuple(make_map({}), list(make_tuple({})))), "{#{},[{}]}");
}

TEST(TermPrint, Maps) {
    // erl (OTP 25 ~w): #{2 => y,1.0 => x,a => 1,[98] => 2}
    term m = map({{a("a"), term(1)}, {list(98), term(2)}, {term(1.0), a("x")}, {term(2), a("y")}});
    EXPECT_EQ(w(m), "#{2 => y,1.0 => x,a => 1,[98] => 2}");
    EXPECT_EQ(w(map({{a("a"), map({{a("b"), term()}})}})), "#{a => #{b => []}}");
}

TEST(TermPrint, Floats) {
    // All from erl ~w.
    struct {
        double d;
        const char* s;
    } cases[] = {{1.0, "1.0"},
                 {0.1, "0.1"},
                 {1.0e100, "1.0e100"},
                 {-2.5e-8, "-2.5e-8"},
                 {1000.0, "1.0e3"},
                 {100.0, "100.0"},
                 {0.01, "0.01"},
                 {0.001, "0.001"},
                 {0.0001, "0.0001"},
                 {1.0e-5, "1.0e-5"},
                 {123.456, "123.456"},
                 {1.5e300, "1.5e300"},
                 {-0.0, "-0.0"},
                 {0.0, "0.0"},
                 {1.0e22, "1.0e22"},
                 {1.0e21, "1.0e21"},
                 {12345678901234567890.0, "1.2345678901234567e19"},
                 {2.5, "2.5"},
                 {3.0e-10, "3.0e-10"},
                 {9007199254740993.0, "9.007199254740992e15"},
                 {0.30000000000000004, "0.30000000000000004"},
                 {1.0e23, "1.0e23"},
                 {123456.0, "123456.0"},
                 {1234567.0, "1234567.0"},
                 {1.0e7, "1.0e7"},
                 {1.0e6, "1.0e6"},
                 {1.0e5, "1.0e5"},
                 {1.0e15, "1.0e15"},
                 {1.0e16, "1.0e16"},
                 {123456789.0, "123456789.0"},
                 {5.0e-324, "5.0e-324"},
                 {1.7976931348623157e308, "1.7976931348623157e308"}};
    for (auto& c : cases)
        EXPECT_EQ(w(term(c.d)), c.s) << c.s;
}

TEST(TermPrint, AtomQuoting) {
    // erl ~w output for each.
    const struct {
        const char* name;
        const char* printed;
    } cases[] = {{"ok", "ok"},
                 {"hello world", "'hello world'"},
                 {"Hello", "'Hello'"},
                 {"hello_World", "hello_World"},
                 {"hello-world", "'hello-world'"},
                 {"a@b", "a@b"},
                 {"a.b", "'a.b'"},
                 {"_x", "'_x'"},
                 {"x_", "x_"},
                 {"", "''"},
                 {"\n", "'\\n'"},
                 {"a'b", "'a\\'b'"},
                 {"a\\b", "'a\\\\b'"},
                 // 'maybe' and 'else' are keywords from OTP 27 on; quoting them is always safe.
                 {"maybe", "'maybe'"},
                 // Latin-1 letters follow io_lib: é (lowercase) may start an atom, É may not,
                 // ÷ × never.
                 {"\xC3\xA9", "\xC3\xA9"},    // é
                 {"a\xC3\xA9", "a\xC3\xA9"},  // aé
                 {"\xC3\x89"
                  "a",
                  "'\xC3\x89"
                  "a'"},                                                      // 'Éa'
                 {"a\xC3\xB7", "'a\xC3\xB7'"},                                // 'a÷'
                 {"a\xC3\x97", "'a\xC3\x97'"},                                // 'a×'
                 {"\xE6\x97\xA5\xE6\x9C\xAC", "'\xE6\x97\xA5\xE6\x9C\xAC'"},  // '日本'
                 {"h\xC3\xA9llo", "h\xC3\xA9llo"}};
    for (auto& c : cases)
        EXPECT_EQ(w(a(c.name)), c.printed) << c.name;
    for (const char* r :
         {"end",  "fun",  "cond",   "let", "catch", "receive", "andalso", "div", "and",
          "or",   "when", "case",   "of",  "after", "begin",   "try",     "if",  "not",
          "bnot", "xor",  "orelse", "rem", "band",  "bor",     "bsl",     "bsr", "bxor"})
        EXPECT_EQ(w(a(r)), std::string("'") + r + "'") << r;
    EXPECT_EQ(w(a(std::string_view("a\0b", 3))), "'a\\x{0}b'");
    std::ostringstream os;
    os << atom("hello world") << ' ' << tuple(1);
    EXPECT_EQ(os.str(), "'hello world' {1}");
}

TEST(TermPrint, BinariesAndBitstrings) {
    EXPECT_EQ(w(binary(std::string_view("\x01\x02\x03"))), "<<1,2,3>>");
    EXPECT_EQ(w(binary(std::string_view())), "<<>>");
    std::uint8_t b[] = {1, 0x40};
    EXPECT_EQ(w(bitstring(b, 11)), "<<1,2:3>>");  // erl: <<1,2:3>>
    std::uint8_t c[] = {0x80};
    EXPECT_EQ(w(bitstring(c, 1)), "<<1:1>>");
    std::uint8_t d[] = {255, 2};
    EXPECT_EQ(w(bitstring(d, 15)), "<<255,1:7>>");
    EXPECT_EQ(w(binary(std::string_view("ab"))), "<<97,98>>");
    EXPECT_EQ(p(binary(std::string_view("ab"))), "<<\"ab\">>");
    EXPECT_EQ(p(binary(std::string_view("a\"b\n"))), "<<\"a\\\"b\\n\">>");
    EXPECT_EQ(p(binary(std::string_view("h\xC3\xA9"))), "<<\"h\xC3\xA9\"/utf8>>");
    EXPECT_EQ(p(binary(std::string_view("\x01\x02"))), "<<1,2>>");
    EXPECT_EQ(p(binary(std::string_view("\xFF"))), "<<255>>");
    EXPECT_EQ(p(binary(std::string_view())), "<<>>");
}

TEST(TermPrint, Charlists) {
    EXPECT_EQ(w(charlist("abc")), "[97,98,99]");
    EXPECT_EQ(p(charlist("abc")), "\"abc\"");
    EXPECT_EQ(p(charlist("a\"\\\n")), "\"a\\\"\\\\\\n\"");
    EXPECT_EQ(p(charlist("\xE6\x97\xA5")), "\"\xE6\x97\xA5\"");
    EXPECT_EQ(p(list(1, 2)), "[1,2]");
    EXPECT_EQ(p(term()), "[]");
    EXPECT_EQ(p(make_list({term(97)}, term(98))), "[97|98]");
    EXPECT_EQ(p(tuple(charlist("x"), binary(std::string_view("y")))), "{\"x\",<<\"y\">>}");
}

TEST(TermPrint, Identifiers) {
    EXPECT_EQ(w(term(pid{atom("a@host"), 80, 0, 3})), "<'a@host'.80.0.3>");
    EXPECT_EQ(w(term(port{atom("a@host"), 5, 3})), "#Port<'a@host'.5.3>");
    reference r{atom("a@host"), 3, 3, {147826, 4070572034u, 1880521294}};
    EXPECT_EQ(w(term(r)), "#Ref<'a@host'.1880521294.4070572034.147826.3>");
    EXPECT_EQ(w(term(pid{atom("n@127.0.0.1"), 1, 2, 3})), "<'n@127.0.0.1'.1.2.3>");
}

TEST(TermPrint, Funs) {
    EXPECT_EQ(w(term(export_fun{atom("lists"), atom("map"), 2})), "fun lists:map/2");
    EXPECT_EQ(w(term(export_fun{atom("My"), atom("end"), 0})), "fun 'My':'end'/0");
    closure c;
    c.module = atom("ordchk");
    c.old_index = 0;
    c.old_uniq = 126517912;
    c.arity = 1;
    c.index = 2;
    c.uniq[0] = 0xAB;
    c.uniq[15] = 0x01;
    c.pid = term(pid{atom("a@h"), 1, 0, 3});
    c.free_vars = {term(1), a("x")};
    EXPECT_EQ(w(term(c)),
              "#Fun<ordchk.0.126517912.1.2.AB000000000000000000000000000001.<'a@h'.1.0.3>.[1,x]>");
}

TEST(TermPrint, MaxDepth) {
    print_options o;
    o.max_depth = 2;
    EXPECT_EQ(to_string(tuple(1, tuple(2, tuple(3))), o), "{1,{2,...}}");
    EXPECT_EQ(to_string(list(list(list(1))), o), "[[...]]");
    o.max_depth = 1;
    EXPECT_EQ(to_string(tuple(1, map({{term(1), term(2)}})), o), "{1,...}");
}

TEST(TermPrint, DeepTermsPrintIteratively) {
    term t = term(0);
    for (int i = 0; i < 100000; ++i)
        t = make_list({t});
    std::string s = w(t);
    EXPECT_EQ(s.size(), 200001u);
    EXPECT_EQ(s.substr(99998, 5), "[[0]]");
}
