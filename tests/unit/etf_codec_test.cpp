// Unit tests of the ETF codec: every tag, edge values, limits and hostile input.
#include <erl/etf.hpp>

#include <gtest/gtest.h>

#include "common/byte_order.hpp"

#include <atomic>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using erl::atom;
using erl::errc;
using erl::term;
namespace etf = erl::etf;
using bytes = std::vector<std::uint8_t>;

bytes B(std::initializer_list<int> v) {
    bytes out;
    for (int x : v)
        out.push_back(static_cast<std::uint8_t>(x));
    return out;
}
void append(bytes& b, std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
}
void append(bytes& b, const bytes& s) {
    b.insert(b.end(), s.begin(), s.end());
}
void be32(bytes& b, std::uint32_t v) {
    for (int i = 3; i >= 0; --i)
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

errc err(const erl::result<term>& r) {
    EXPECT_FALSE(r) << "decoded unexpectedly: " << (r ? r->to_string() : "");
    if (r) return errc::ok;
    return static_cast<errc>(r.error().value());
}

term roundtrip(const term& t) {
    auto enc = etf::encode(t);
    EXPECT_EQ(enc.size(), etf::encoded_size(t));
    auto r = etf::decode(enc);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? *r : term(atom("decode_failed"));
}

term big(const char* s) {
    return *erl::integer_from_string(s);
}

// --- integers --------------------------------------------------------------------------------
TEST(EtfCodec, SmallIntegersExactBytes) {
    EXPECT_EQ(etf::encode(term(0)), B({131, 97, 0}));
    EXPECT_EQ(etf::encode(term(255)), B({131, 97, 255}));
    EXPECT_EQ(etf::encode(term(256)), B({131, 98, 0, 0, 1, 0}));
    EXPECT_EQ(etf::encode(term(-1)), B({131, 98, 255, 255, 255, 255}));
    EXPECT_EQ(etf::encode(term(2147483647)), B({131, 98, 127, 255, 255, 255}));
    EXPECT_EQ(etf::encode(term(2147483648LL)), B({131, 110, 4, 0, 0, 0, 0, 128}));
    EXPECT_EQ(etf::encode(term(-2147483649LL)), B({131, 110, 4, 1, 1, 0, 0, 128}));
}

TEST(EtfCodec, Int64LimitsAndBignums) {
    const std::int64_t mx = std::numeric_limits<std::int64_t>::max();
    const std::int64_t mn = std::numeric_limits<std::int64_t>::min();
    for (std::int64_t v : {std::int64_t{0}, std::int64_t{-5}, mx, mn, mx - 1, mn + 1,
                           std::int64_t{1} << 40, -(std::int64_t{1} << 40)}) {
        term t(static_cast<long long>(v));
        EXPECT_EQ(roundtrip(t), t) << v;
    }
    EXPECT_EQ(etf::encode(term(static_cast<long long>(mn))),
              B({131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128}));
    // 2^64, -2^64, 2^64-1, int64 +-1 beyond limits, big magnitudes.
    for (const char* s : {"18446744073709551616", "-18446744073709551616", "18446744073709551615",
                          "9223372036854775808", "-9223372036854775809",
                          "123456789012345678901234567890123456789012345678901234567890",
                          "-99999999999999999999999999999999999999999999999999999999999999999"}) {
        term t = big(s);
        EXPECT_TRUE(t.is_bignum()) << s;
        EXPECT_EQ(roundtrip(t), t) << s;
        EXPECT_EQ(erl::integer_to_string(roundtrip(t)), s);
    }
    EXPECT_EQ(etf::encode(big("18446744073709551616")),
              B({131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    // A bignum of more than 255 bytes uses LARGE_BIG_EXT.
    std::string huge = "1" + std::string(700, '0');
    auto enc = etf::encode(big(huge.c_str()));
    EXPECT_EQ(enc[1], 111);
    EXPECT_EQ(roundtrip(big(huge.c_str())), big(huge.c_str()));
    // Non-canonical bignum encodings of small values normalize to small integers.
    auto r = etf::decode(B({131, 110, 3, 0, 5, 0, 0}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(5));
    r = etf::decode(B({131, 111, 0, 0, 0, 2, 1, 0, 1}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(-256));
    r = etf::decode(B({131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(static_cast<long long>(mn)));
    // Leading zero bytes above 8 bytes still normalize.
    r = etf::decode(B({131, 110, 10, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(7));
}

// --- floats ----------------------------------------------------------------------------------
TEST(EtfCodec, Floats) {
    EXPECT_EQ(etf::encode(term(1.5)), B({131, 70, 63, 248, 0, 0, 0, 0, 0, 0}));
    for (double d : {0.0, -2.25, 3.141592653589793, 1e300, -1e-300, 5e-324,
                     std::numeric_limits<double>::max()})
        EXPECT_EQ(roundtrip(term(d)), term(d));
    // NEW_FLOAT infinity / NaN.
    EXPECT_EQ(err(etf::decode(B({131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}))), errc::non_finite_float);
    EXPECT_EQ(err(etf::decode(B({131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}))), errc::non_finite_float);
    // FLOAT_EXT: 31 bytes of "%.20e" text.
    bytes f = B({131, 99});
    std::string txt = "1.50000000000000000000e+00";
    append(f, txt);
    f.resize(2 + 31, 0);
    auto r = etf::decode(f);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(1.5));
    bytes inf = B({131, 99});
    append(inf, "1.0e+999");
    inf.resize(2 + 31, 0);
    EXPECT_EQ(err(etf::decode(inf)), errc::non_finite_float);
    bytes junk = B({131, 99});
    append(junk, "1.5xyz");
    junk.resize(2 + 31, 0);
    EXPECT_FALSE(etf::decode(junk));
}

// --- atoms -----------------------------------------------------------------------------------
TEST(EtfCodec, Atoms) {
    EXPECT_EQ(etf::encode(term(atom("abc"))), B({131, 119, 3, 'a', 'b', 'c'}));
    EXPECT_EQ(etf::encode(term(atom(""))), B({131, 119, 0}));
    EXPECT_EQ(roundtrip(term(atom(""))), term(atom("")));
    std::string a255(255, 'x');
    EXPECT_EQ(roundtrip(term(atom(a255))), term(atom(a255)));
    // 255 three-byte characters: 765 bytes, ATOM_UTF8_EXT.
    std::string u255;
    for (int i = 0; i < 255; ++i)
        u255 += "\xe6\x97\xa5";
    auto enc = etf::encode(term(atom(u255)));
    EXPECT_EQ(enc[1], 118);
    EXPECT_EQ(roundtrip(term(atom(u255))), term(atom(u255)));
    EXPECT_EQ(roundtrip(term(atom("h\xc3\xa9llo \xe6\x97\xa5"))),
              term(atom("h\xc3\xa9llo \xe6\x97\xa5")));
    // Legacy Latin-1 ATOM_EXT / SMALL_ATOM_EXT become UTF-8.
    auto r = etf::decode(B({131, 100, 0, 2, 0xfc, 'a'}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(atom("\xc3\xbc"
                            "a")));
    r = etf::decode(B({131, 115, 3, 'o', 'k', 0xff}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(atom("ok\xc3\xbf")));
    // 256 characters is too long.
    bytes longer = B({131, 118, 1, 0});
    append(longer, std::string(256, 'y'));
    EXPECT_EQ(err(etf::decode(longer)), errc::atom_too_long);
    bytes l1 = B({131, 100, 1, 0});
    append(l1, std::string(256, 'y'));
    EXPECT_EQ(err(etf::decode(l1)), errc::atom_too_long);
    // Invalid UTF-8.
    EXPECT_EQ(err(etf::decode(B({131, 119, 2, 0xc3, 0x28}))), errc::invalid_utf8);
}

TEST(EtfCodec, AtomCacheRefs) {
    std::vector<atom> refs{atom("zero"), atom("one"), atom::from_entry(nullptr)};
    std::size_t used = 0;
    auto body = B({104, 2, 82, 1, 82, 0, 99});  // {one, zero} followed by junk
    auto r = etf::decode_body(body, used, {}, refs);
    ASSERT_TRUE(r);
    EXPECT_EQ(used, 6u);
    EXPECT_EQ(*r, erl::tuple(atom("one"), atom("zero")));
    EXPECT_EQ(err(etf::decode_body(B({82, 2}), used, {}, refs)), errc::bad_atom_cache_ref);
    EXPECT_EQ(err(etf::decode_body(B({82, 3}), used, {}, refs)), errc::bad_atom_cache_ref);
    EXPECT_EQ(err(etf::decode(B({131, 82, 0}))), errc::bad_atom_cache_ref);

    struct cache : etf::atom_cache_writer {
        int index_of(atom a) override { return a == atom("one") ? 1 : -1; }
    } c;
    bytes out{9};
    etf::encode_body(out, erl::tuple(atom("one"), atom("two")), &c);
    EXPECT_EQ(out, B({9, 104, 2, 82, 1, 119, 3, 't', 'w', 'o'}));
    r = etf::decode_body(std::span(out).subspan(1), used, {}, refs);
    ASSERT_TRUE(r);
    EXPECT_EQ(used, out.size() - 1);
    bytes plain;
    etf::encode_body(plain, erl::tuple(atom("one"), 1));
    EXPECT_EQ(plain, B({104, 2, 119, 3, 'o', 'n', 'e', 97, 1}));
}

// --- lists, tuples, maps ---------------------------------------------------------------------
TEST(EtfCodec, ListsAndStrings) {
    EXPECT_EQ(etf::encode(term{}), B({131, 106}));
    EXPECT_EQ(etf::encode(erl::list(1, 2, 3)), B({131, 107, 0, 3, 1, 2, 3}));
    EXPECT_EQ(etf::encode(erl::list(256, 1)),
              B({131, 108, 0, 0, 0, 2, 98, 0, 0, 1, 0, 97, 1, 106}));
    term improper = erl::make_list({term(1), term(2)}, term(3));
    EXPECT_EQ(etf::encode(improper), B({131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 97, 3}));
    EXPECT_EQ(roundtrip(improper), improper);
    // STRING_EXT only below 65536 elements.
    std::vector<term> s65535(65535, term(7)), s65536(65536, term(7));
    EXPECT_EQ(etf::encode(erl::make_list(s65535))[1], 107);
    EXPECT_EQ(etf::encode(erl::make_list(s65536))[1], 108);
    EXPECT_EQ(roundtrip(erl::make_list(s65536)), erl::make_list(s65536));
    EXPECT_EQ(roundtrip(erl::charlist("h\xc3\xa9llo")), erl::charlist("h\xc3\xa9llo"));
    // STRING_EXT of length 0 is [].
    auto r = etf::decode(B({131, 107, 0, 0}));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->is_nil());
    // A list whose tail is another LIST_EXT / STRING_EXT is one flat list, as in OTP.
    r = etf::decode(B({131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::list(1, 2));
    r = etf::decode(B({131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 5, 6}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::list(1, 5, 6));
    r = etf::decode(B({131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 97, 3}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::make_list({term(1), term(2)}, term(3)));
    // LIST_EXT of length 0 is its tail.
    r = etf::decode(B({131, 108, 0, 0, 0, 0, 97, 5}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(5));
    // A long chain of one-element continuations stays linear.
    bytes chain = B({131});
    for (int i = 0; i < 20000; ++i)
        append(chain, B({108, 0, 0, 0, 1, 97, 1}));
    chain.push_back(106);
    r = etf::decode(chain);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->size(), 20000u);
    EXPECT_TRUE(r->is_proper_list());
}

TEST(EtfCodec, Tuples) {
    EXPECT_EQ(etf::encode(erl::make_tuple({})), B({131, 104, 0}));
    EXPECT_EQ(etf::encode(erl::tuple(atom("a"), 1)), B({131, 104, 2, 119, 1, 'a', 97, 1}));
    std::vector<term> el;
    for (int i = 0; i < 300; ++i)
        el.push_back(term(i));
    term t = erl::make_tuple(el);
    auto enc = etf::encode(t);
    EXPECT_EQ(enc[1], 105);
    EXPECT_EQ(roundtrip(t), t);
    auto r = etf::decode(B({131, 105, 0, 0, 0, 1, 106}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::tuple(term{}));
}

TEST(EtfCodec, Maps) {
    EXPECT_EQ(etf::encode(erl::make_map({})), B({131, 116, 0, 0, 0, 0}));
    std::vector<std::pair<term, term>> kv;
    for (int i = 0; i < 100; ++i)
        kv.emplace_back(term(i * 7), erl::binary(std::to_string(i)));
    term m = erl::make_map(kv);
    EXPECT_EQ(roundtrip(m), m);
    EXPECT_EQ(roundtrip(m).size(), 100u);
    // Keys out of order are sorted; duplicates are an error.
    auto r = etf::decode(B({131, 116, 0, 0, 0, 2, 97, 2, 97, 20, 97, 1, 97, 10}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::map({{term(1), term(10)}, {term(2), term(20)}}));
    EXPECT_EQ(err(etf::decode(B({131, 116, 0, 0, 0, 2, 97, 1, 97, 1, 97, 1, 97, 2}))),
              errc::duplicate_map_key);
    // Nested duplicate.
    EXPECT_EQ(err(etf::decode(B({131, 104, 1, 116, 0, 0, 0, 2, 106, 97, 1, 106, 97, 2}))),
              errc::duplicate_map_key);
}

// --- binaries --------------------------------------------------------------------------------
TEST(EtfCodec, BinariesAndBitstrings) {
    EXPECT_EQ(etf::encode(erl::binary(std::string_view("ab"))),
              B({131, 109, 0, 0, 0, 2, 'a', 'b'}));
    EXPECT_EQ(etf::encode(erl::binary(std::string_view(""))), B({131, 109, 0, 0, 0, 0}));
    std::uint8_t seven[] = {0xFE};
    term b7 = erl::bitstring(seven, 7);
    EXPECT_EQ(etf::encode(b7), B({131, 77, 0, 0, 0, 1, 7, 0xFE}));
    EXPECT_EQ(roundtrip(b7), b7);
    std::uint8_t bits9[] = {0xAB, 0x80};
    term b9 = erl::bitstring(bits9, 9);
    EXPECT_EQ(roundtrip(b9), b9);
    EXPECT_EQ(roundtrip(b9).bit_size(), 9u);
    // 0-bit bitstring is the empty binary; BIT_BINARY with Len 0 needs Bits 0 (as OTP).
    term b0 = erl::bitstring({}, 0);
    EXPECT_EQ(roundtrip(b0), erl::binary(std::string_view("")));
    auto r = etf::decode(B({131, 77, 0, 0, 0, 0, 0}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::binary(std::string_view("")));
    EXPECT_EQ(err(etf::decode(B({131, 77, 0, 0, 0, 0, 8}))), errc::invalid_term);
    EXPECT_EQ(err(etf::decode(B({131, 77, 0, 0, 0, 1, 0, 1}))), errc::invalid_term);
    EXPECT_EQ(err(etf::decode(B({131, 77, 0, 0, 0, 1, 9, 1}))), errc::invalid_term);
    // Padding bits are ignored: <<7:3>> however the low bits are set.
    r = etf::decode(B({131, 77, 0, 0, 0, 1, 3, 0xFF}));
    ASSERT_TRUE(r);
    std::uint8_t e3[] = {0xE0};
    EXPECT_EQ(*r, erl::bitstring(e3, 3));
    // Bits 8 is a whole binary.
    r = etf::decode(B({131, 77, 0, 0, 0, 1, 8, 0x41}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::binary(std::string_view("A")));
}

// --- identifiers and funs --------------------------------------------------------------------
TEST(EtfCodec, PidsPortsRefs) {
    atom node("n@h");
    erl::pid p{node, 1, 2, 3};
    EXPECT_EQ(etf::encode(term(p)),
              B({131, 88, 119, 3, 'n', '@', 'h', 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}));
    EXPECT_EQ(roundtrip(term(p)), term(p));
    erl::port pt{node, 5, 6};
    EXPECT_EQ(etf::encode(term(pt)), B({131, 89, 119, 3, 'n', '@', 'h', 0, 0, 0, 5, 0, 0, 0, 6}));
    erl::port big_port{node, 0x123456789ull, 6};
    EXPECT_EQ(etf::encode(term(big_port)),
              B({131, 120, 119, 3, 'n', '@', 'h', 0, 0, 0, 1, 0x23, 0x45, 0x67, 0x89, 0, 0, 0, 6}));
    EXPECT_EQ(roundtrip(term(big_port)), term(big_port));
    erl::reference ref{node, 9, 3, {1, 2, 3}};
    EXPECT_EQ(etf::encode(term(ref)), B({131, 90, 0, 3, 119, 3, 'n', '@', 'h', 0, 0, 0, 9,
                                         0,   0,  0, 1, 0,   0, 0,   2,   0,   0, 0, 3}));
    erl::reference ref5{node, 9, 5, {1, 2, 3, 4, 5}};
    EXPECT_EQ(roundtrip(term(ref5)), term(ref5));

    // Legacy forms.
    auto r = etf::decode(B({131, 103, 100, 0, 3, 'n', '@', 'h', 0, 0, 0, 1, 0, 0, 0, 2, 3}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(p));
    r = etf::decode(B({131, 102, 100, 0, 3, 'n', '@', 'h', 0, 0, 0, 5, 6}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(pt));
    r = etf::decode(B({131, 101, 100, 0, 3, 'n', '@', 'h', 0, 0, 0, 7, 9}));
    ASSERT_TRUE(r);
    erl::reference r1{node, 9, 1, {7}};
    EXPECT_EQ(*r, term(r1));
    r = etf::decode(
        B({131, 114, 0, 3, 100, 0, 3, 'n', '@', 'h', 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(ref));
    // Reference word counts outside 1..5.
    EXPECT_EQ(err(etf::decode(B({131, 90, 0, 0, 119, 1, 'n', 0, 0, 0, 0}))), errc::invalid_term);
    EXPECT_EQ(err(etf::decode(B({131, 90, 0, 6, 119, 1, 'n', 0, 0, 0, 0}))), errc::invalid_term);
}

TEST(EtfCodec, Funs) {
    erl::export_fun ex{atom("erlang"), atom("abs"), 1};
    EXPECT_EQ(etf::encode(term(ex)),
              B({131, 113, 119, 6, 'e', 'r', 'l', 'a', 'n', 'g', 119, 3, 'a', 'b', 's', 97, 1}));
    EXPECT_EQ(roundtrip(term(ex)), term(ex));
    auto r = etf::decode(B({131, 113, 100, 0, 1, 'm', 100, 0, 1, 'f', 97, 2}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, term(erl::export_fun{atom("m"), atom("f"), 2}));

    erl::closure c;
    c.module = atom("mod");
    c.arity = 2;
    for (int i = 0; i < 16; ++i)
        c.uniq[i] = static_cast<std::uint8_t>(i * 7);
    c.index = 3;
    c.old_index = 3;
    c.old_uniq = 123456789;
    c.pid = term(erl::pid{atom("n@h"), 1, 2, 3});
    c.free_vars = {term(1), erl::binary(std::string_view("x")), erl::list(atom("a"))};
    term f(c);
    auto enc = etf::encode(f);
    EXPECT_EQ(enc[1], 112);
    // Size covers everything from the Size field to the end.
    std::uint32_t size = (enc[2] << 24) | (enc[3] << 16) | (enc[4] << 8) | enc[5];
    EXPECT_EQ(size, enc.size() - 2);
    EXPECT_EQ(roundtrip(f), f);
    EXPECT_EQ(roundtrip(f).as_closure(), c);
    c.free_vars.clear();
    c.old_uniq = -5;
    EXPECT_EQ(roundtrip(term(c)), term(c));
    // A wrong Size is rejected.
    enc[5] -= 1;
    EXPECT_EQ(err(etf::decode(enc)), errc::invalid_term);
    enc[5] += 2;
    EXPECT_FALSE(etf::decode(enc));
    // FUN_EXT (removed in OTP 23) and LOCAL_EXT are not accepted.
    EXPECT_EQ(err(etf::decode(B({131, 117, 0, 0, 0, 0}))), errc::bad_tag);
    EXPECT_EQ(err(etf::decode(B({131, 121, 0, 0}))), errc::bad_tag);
    EXPECT_EQ(err(etf::decode(B({131, 200}))), errc::bad_tag);
}

// --- compression -----------------------------------------------------------------------------
TEST(EtfCodec, Compressed) {
    std::vector<term> many(1000, erl::tuple(atom("hello"), 1234567));
    term t = erl::make_list(many);
    auto plain = etf::encode(t);
    auto z = etf::encode(t, {.compression_level = 9});
    EXPECT_EQ(z[1], 80);
    EXPECT_LT(z.size(), plain.size());
    auto r = etf::decode(z);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, t);
    auto zd = etf::encode(t, {.compression_level = -1});
    EXPECT_EQ(zd[1], 80);
    // Kept uncompressed when compression does not help (as OTP).
    EXPECT_EQ(etf::encode(erl::binary(std::string_view("\1\2\3")), {.compression_level = 6}),
              B({131, 109, 0, 0, 0, 3, 1, 2, 3}));
    // OTP's own bytes for term_to_binary(lists:duplicate(100,7), [compressed]).
    r = etf::decode(
        B({131, 80, 0, 0, 0, 103, 120, 156, 203, 102, 72, 97, 167, 3, 0, 0, 220, 254, 3, 140}));
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, erl::make_list(std::vector<term>(100, term(7))));
    // Declared size wrong, corrupt stream, limits.
    auto bad = z;
    bad[5] ^= 1;
    EXPECT_EQ(err(etf::decode(bad)), errc::bad_compressed);
    bad = z;
    bad[z.size() / 2] ^= 0x55;
    EXPECT_FALSE(etf::decode(bad));
    etf::limits lim;
    lim.max_uncompressed = 100;
    EXPECT_EQ(err(etf::decode(z, lim)), errc::too_large);
    // A huge declared size with a tiny stream fails without allocating it: above
    // max_uncompressed (256 MiB by default) at once, below it by deflate's best ratio.
    EXPECT_EQ(err(etf::decode(B({131, 80, 0x3f, 0xff, 0xff, 0xff, 120, 156, 3, 0}))),
              errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 80, 0x00, 0xff, 0xff, 0xff, 120, 156, 3, 0}))),
              errc::bad_compressed);
    // Compressed inside a term is not valid.
    EXPECT_EQ(err(etf::decode(B({131, 104, 1, 80, 0, 0, 0, 1, 120, 156}))), errc::bad_tag);
    // Trailing bytes after the zlib stream.
    auto tr = z;
    tr.push_back(0);
    EXPECT_EQ(err(etf::decode(tr)), errc::trailing_bytes);
}

// --- framing and limits ----------------------------------------------------------------------
TEST(EtfCodec, VersionAndTrailing) {
    EXPECT_EQ(err(etf::decode(bytes{})), errc::truncated);
    EXPECT_EQ(err(etf::decode(B({130, 97, 1}))), errc::bad_version);
    EXPECT_EQ(err(etf::decode(B({131}))), errc::truncated);
    EXPECT_EQ(err(etf::decode(B({131, 97, 1, 0}))), errc::trailing_bytes);
    std::size_t used = 0;
    auto r = etf::decode_body(B({97, 1, 0}), used);
    ASSERT_TRUE(r);
    EXPECT_EQ(used, 2u);
}

TEST(EtfCodec, LimitsReported) {
    etf::limits lim;
    lim.max_depth = 3;
    EXPECT_TRUE(etf::decode(B({131, 104, 1, 104, 1, 104, 1, 97, 1}), lim));
    EXPECT_EQ(err(etf::decode(B({131, 104, 1, 104, 1, 104, 1, 104, 1, 97, 1}), lim)),
              errc::too_deep);
    lim = {};
    lim.max_size = 4;
    EXPECT_EQ(err(etf::decode(B({131, 109, 0, 0, 0, 5, 1, 2, 3, 4, 5}), lim)), errc::too_large);
    lim = {};
    lim.max_bignum_bytes = 8;
    EXPECT_EQ(err(etf::decode(B({131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), lim)),
              errc::bignum_too_large);
    EXPECT_EQ(err(etf::decode(B({131, 111, 0, 0, 1, 0, 0}), lim)), errc::bignum_too_large);
    // Length fields beyond the input fail fast, before allocating.
    EXPECT_EQ(err(etf::decode(B({131, 109, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6}))),
              errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 108, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6}))),
              errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 105, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6}))),
              errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 116, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6}))),
              errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 111, 0xff, 0xff, 0xff, 0xff, 0, 1, 2}))),
              errc::bignum_too_large);
    EXPECT_EQ(err(etf::decode(B({131, 77, 0xff, 0xff, 0xff, 0xff, 3, 1}))), errc::too_large);
    // A list of N elements needs N+1 bytes; a map of N pairs 2N bytes.
    EXPECT_EQ(err(etf::decode(B({131, 108, 0, 0, 0, 3, 97, 1, 97}))), errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 116, 0, 0, 0, 3, 97, 1, 97, 2}))), errc::too_large);
    EXPECT_EQ(err(etf::decode(B({131, 104, 3, 97, 1}))), errc::too_large);
}

term nest_tuples(int depth) {
    term t = term(atom("leaf"));
    for (int i = 0; i < depth; ++i)
        t = erl::tuple(t);
    return t;
}

TEST(EtfCodec, DeepNesting) {
    // 10,000-deep terms round-trip (encoder and decoder are iterative).
    term t = nest_tuples(10000);
    EXPECT_EQ(roundtrip(t), t);
    term l{};
    for (int i = 0; i < 10000; ++i)
        l = erl::list(l, i);
    EXPECT_EQ(roundtrip(l), l);
    // 1,000,000-deep input decodes by default (no depth limit, no recursion); a configured
    // depth limit refuses it.
    etf::limits lim;
    lim.max_depth = 100000;
    bytes hostile = B({131});
    for (int i = 0; i < 1000000; ++i)
        append(hostile, B({104, 1}));
    hostile.push_back(106);
    EXPECT_TRUE(etf::decode(hostile));
    EXPECT_EQ(err(etf::decode(hostile, lim)), errc::too_deep);
    bytes hostile_list = B({131});
    for (int i = 0; i < 1000000; ++i)
        append(hostile_list, B({108, 0, 0, 0, 1}));
    hostile_list.push_back(106);
    for (int i = 0; i < 1000000; ++i)
        hostile_list.push_back(106);
    EXPECT_TRUE(etf::decode(hostile_list));
    EXPECT_EQ(err(etf::decode(hostile_list, lim)), errc::too_deep);
}

// Decompression amplification: a 64 KiB frame that inflates to 64 MiB.
bytes zero_bomb() {
    return etf::encode(erl::binary(std::string(std::size_t{64} << 20, '\0')),
                       {.compression_level = 9});
}

TEST(EtfCodec, InflatedSizeIsBoundedWhileInflating) {
    const bytes z = zero_bomb();
    ASSERT_EQ(z[1], 80);
    ASSERT_LT(z.size(), std::size_t{100} << 10);
    EXPECT_TRUE(etf::decode(z));
    // Per decode: the declared size is checked before anything is inflated.
    etf::limits lim;
    lim.max_uncompressed = std::size_t{16} << 20;
    EXPECT_EQ(err(etf::decode(z, lim)), errc::too_large);
    // Shared (node-wide) bound: refused once the inflated bytes would pass it, and what was
    // taken is given back when the decode returns.
    std::atomic<std::size_t> inflating{0};
    lim = {};
    lim.inflating = &inflating;
    lim.max_inflating = std::size_t{8} << 20;
    EXPECT_EQ(err(etf::decode(z, lim)), errc::too_large);
    EXPECT_EQ(inflating.load(), 0u);
    // Bytes held by other decodes count: with 200 MiB of a 256 MiB budget in use elsewhere,
    // the 64 MiB term does not fit; once they are given back it does.
    lim.max_inflating = std::size_t{256} << 20;
    inflating = std::size_t{200} << 20;
    EXPECT_EQ(err(etf::decode(z, lim)), errc::too_large);
    EXPECT_EQ(inflating.load(), std::size_t{200} << 20);
    inflating = 0;
    auto ok = etf::decode(z, lim);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->bit_size(), (std::size_t{64} << 20) * 8);
    EXPECT_EQ(inflating.load(), 0u);
}

TEST(EtfCodec, CompressedStreamNotMatchingItsDeclaredSizeIsRefused) {
    bytes z = zero_bomb();
    // Declared 64 MiB + 6 bytes (BINARY_EXT header); claim a little more, then a little less.
    const std::uint32_t declared = erl::detail::load_be32(z.data() + 2);
    auto with_size = [&](std::uint32_t n) {
        bytes b = z;
        erl::detail::store_be32(b.data() + 2, n);
        return b;
    };
    EXPECT_EQ(err(etf::decode(with_size(declared + 1000))), errc::bad_compressed);
    EXPECT_EQ(err(etf::decode(with_size(declared - 1))), errc::bad_compressed);
    EXPECT_TRUE(etf::decode(with_size(declared)));
}

// Every proper prefix of a valid encoding is an error, never a crash.
TEST(EtfCodec, TruncationAtEveryOffset) {
    erl::closure c;
    c.module = atom("m");
    c.pid = term(erl::pid{atom("n@h"), 1, 2, 3});
    c.free_vars = {term(1), erl::list(2, 3)};
    term t = erl::tuple(
        atom("ok"), 1, -70000, big("-123456789012345678901234567890"), 2.5, erl::list(1, 2, 3),
        erl::make_list({term(500), term(atom("x"))}, term(7)),
        erl::map({{term(atom("k")), erl::binary(std::string_view("val"))}, {term(1), term{}}}),
        term(erl::pid{atom("n@h"), 1, 2, 3}), term(erl::port{atom("n@h"), 0x1ffffffffull, 2}),
        term(erl::reference{atom("n@h"), 1, 3, {1, 2, 3}}),
        term(erl::export_fun{atom("m"), atom("f"), 1}), term(c), atom("\xe6\x97\xa5"));
    std::uint8_t bits[] = {0xf0};
    t = erl::tuple(t, erl::bitstring(bits, 4));
    for (int level : {0, 9}) {
        auto enc = etf::encode(t, {.compression_level = level});
        ASSERT_TRUE(etf::decode(enc));
        for (std::size_t n = 0; n < enc.size(); ++n) {
            auto r = etf::decode(std::span(enc.data(), n));
            EXPECT_FALSE(r) << "prefix " << n;
            std::size_t used = 0;
            if (n > 0) EXPECT_FALSE(etf::decode_body(std::span(enc.data() + 1, n - 1), used));
        }
    }
}

TEST(EtfCodec, EncodeAppendAndSize) {
    term t = erl::tuple(atom("a"), erl::list(1, 2), erl::binary(std::string_view("xyz")));
    bytes out{1, 2};
    etf::encode_append(out, t);
    auto plain = etf::encode(t);
    EXPECT_EQ(out.size(), 2 + plain.size());
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), out.begin() + 2));
    EXPECT_EQ(etf::encoded_size(t), plain.size());
    bytes body;
    etf::encode_body(body, t);
    EXPECT_EQ(body.size() + 1, plain.size());
}

}  // namespace
