// erl::term construction, accessors, raw builders and heap management.
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <unordered_set>

using namespace erl;

namespace {
reference make_ref3(std::string_view node, std::uint32_t a, std::uint32_t b, std::uint32_t c) {
    reference r;
    r.node = atom(node);
    r.creation = 3;
    r.len = 3;
    r.ids = {a, b, c, 0, 0};
    return r;
}
}  // namespace

TEST(TermCore, DefaultIsNilAndSizeIs16) {
    term t;
    EXPECT_TRUE(t.is_nil());
    EXPECT_TRUE(t.is_list());
    EXPECT_TRUE(t.is_proper_list());
    EXPECT_EQ(t.type(), kind::nil);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(sizeof(term), 16u);
}

TEST(TermCore, SmallIntegers) {
    term a(42), b(-7L), c(std::numeric_limits<long long>::max()),
        d(std::numeric_limits<long long>::min());
    EXPECT_EQ(a.as_int64(), 42);
    EXPECT_EQ(b.as_int64(), -7);
    EXPECT_EQ(c.as_int64(), INT64_MAX);
    EXPECT_EQ(d.as_int64(), INT64_MIN);
    EXPECT_TRUE(c.is_small());
    EXPECT_EQ(term(4000000000u).as_int64(), 4000000000LL);
    EXPECT_THROW(a.as_double(), bad_term_access);
    EXPECT_THROW(a.as_big(), bad_term_access);
}

TEST(TermCore, UnsignedAboveInt64IsBignum) {
    term t(static_cast<unsigned long long>(INT64_MAX));
    EXPECT_TRUE(t.is_small());
    term u(static_cast<unsigned long long>(INT64_MAX) + 1);
    ASSERT_TRUE(u.is_bignum());
    auto v = u.as_big();
    EXPECT_FALSE(v.negative);
    ASSERT_EQ(v.limbs.size(), 2u);
    EXPECT_EQ(v.limbs[0], 0u);
    EXPECT_EQ(v.limbs[1], 0x80000000u);
    term m(std::numeric_limits<unsigned long>::max());
    EXPECT_TRUE(m.is_bignum());
    EXPECT_EQ(integer_to_string(m), "18446744073709551615");
}

TEST(TermCore, Floats) {
    term f(1.5);
    EXPECT_TRUE(f.is_float());
    EXPECT_EQ(f.as_double(), 1.5);
    EXPECT_THROW(term{std::nan("")}, std::domain_error);
    EXPECT_THROW(term{std::numeric_limits<double>::infinity()}, std::domain_error);
    EXPECT_THROW(term{-std::numeric_limits<double>::infinity()}, std::domain_error);
    EXPECT_THROW(f.as_int64(), bad_term_access);
}

TEST(TermCore, BoolsAreAtoms) {
    term t(true), f(false);
    EXPECT_TRUE(t.is_atom(atoms::true_()));
    EXPECT_TRUE(f.is_atom(atoms::false_()));
    EXPECT_TRUE(t.is_bool());
    EXPECT_TRUE(t.as_bool());
    EXPECT_FALSE(f.as_bool());
    EXPECT_FALSE(term(atom("yes")).is_bool());
    EXPECT_THROW(term(atom("yes")).as_bool(), bad_term_access);
    EXPECT_THROW(term(1).as_bool(), bad_term_access);
}

TEST(TermCore, Identifiers) {
    pid p{atom("a@host"), 80, 1, 7};
    term tp(p);
    EXPECT_TRUE(tp.is_pid());
    EXPECT_EQ(tp.as_pid(), p);
    port po{atom("a@host"), 1ull << 40, 9};
    term tpo(po);
    EXPECT_TRUE(tpo.is_port());
    EXPECT_EQ(tpo.as_port(), po);
    reference r = make_ref3("a@host", 1, 2, 3);
    term tr(r);
    EXPECT_TRUE(tr.is_reference());
    EXPECT_EQ(tr.as_reference(), r);
    EXPECT_EQ(tr.as_reference().words().size(), 3u);
    // Unused words do not affect reference equality.
    reference r2 = r;
    r2.ids[4] = 99;
    EXPECT_EQ(r, r2);
    EXPECT_EQ(term(r), term(r2));
    EXPECT_THROW(tp.as_port(), bad_term_access);
}

TEST(TermCore, Funs) {
    export_fun e{atom("lists"), atom("map"), 2};
    term te(e);
    EXPECT_TRUE(te.is_fun());
    EXPECT_TRUE(te.is_export());
    EXPECT_FALSE(te.is_closure());
    EXPECT_EQ(te.as_export(), e);
    EXPECT_THROW(te.as_closure(), bad_term_access);

    closure c;
    c.module = atom("m");
    c.arity = 1;
    c.uniq[0] = 0xAB;
    c.index = 3;
    c.old_index = 3;
    c.old_uniq = 12345;
    c.pid = term(pid{atom("a@h"), 1, 0, 1});
    c.free_vars = {term(1), binary(std::string_view("x")), tuple(1, 2)};
    term tc(c);
    EXPECT_TRUE(tc.is_closure());
    EXPECT_EQ(tc.as_closure(), c);
    EXPECT_EQ(tc.as_closure().free_vars.size(), 3u);
    EXPECT_THROW(tc.as_export(), bad_term_access);
}

TEST(TermCore, TuplesAndIndexing) {
    term t = tuple(1, atom("a"), 2.5);
    EXPECT_TRUE(t.is_tuple());
    EXPECT_TRUE(t.is_tuple(3));
    EXPECT_FALSE(t.is_tuple(2));
    EXPECT_EQ(t.size(), 3u);
    EXPECT_EQ(t[0], term(1));
    EXPECT_EQ(t[1], term(atom("a")));
    EXPECT_THROW(t[3], bad_term_access);
    EXPECT_THROW(term(1)[0], bad_term_access);
    term e = make_tuple({});
    EXPECT_TRUE(e.is_tuple(0));
    EXPECT_EQ(e.as_tuple().size(), 0u);
}

TEST(TermCore, Lists) {
    term l = list(1, 2, 3);
    EXPECT_TRUE(l.is_list());
    EXPECT_TRUE(l.is_proper_list());
    EXPECT_EQ(l.size(), 3u);
    auto v = l.as_list();
    EXPECT_EQ(v.elements.size(), 3u);
    EXPECT_TRUE(v.proper());
    EXPECT_EQ(make_list({}), term());
    // Improper.
    term imp = make_list({term(1)}, term(2));
    EXPECT_FALSE(imp.is_proper_list());
    EXPECT_EQ(imp.as_list().tail, term(2));
    EXPECT_EQ(imp.size(), 1u);
    // Empty element vector with a tail gives the tail itself ([|T] is T).
    EXPECT_EQ(make_list({}, term(5)), term(5));
    // A list tail is flattened: [1|[2,3]] == [1,2,3].
    term flat = make_list({term(1)}, list(2, 3));
    EXPECT_EQ(flat.as_list().elements.size(), 3u);
    EXPECT_TRUE(flat.as_list().proper());
    EXPECT_EQ(flat, list(1, 2, 3));
    EXPECT_THROW(term(1).as_list(), bad_term_access);
    EXPECT_TRUE(term().as_list().elements.empty());
}

TEST(TermCore, ChunkedListsFromRawBuilderEqualFlatOnes) {
    // The raw builder allows a list block whose tail is another list block.
    term *e1, *t1, *e2, *t2;
    term inner = detail::new_list(2, e2, t2);
    e2[0] = term(2);
    e2[1] = term(3);
    term outer = detail::new_list(1, e1, t1);
    e1[0] = term(1);
    *t1 = inner;
    EXPECT_EQ(outer, list(1, 2, 3));
    EXPECT_EQ(outer.hash(), list(1, 2, 3).hash());
    EXPECT_EQ(compare(outer, list(1, 2, 3)), std::strong_ordering::equal);
    EXPECT_TRUE(outer.is_proper_list());
    EXPECT_EQ(outer.size(), 3u);
    EXPECT_EQ(outer.to_string(), "[1,2,3]");
    EXPECT_LT(outer, list(1, 2, 4));
    EXPECT_GT(outer, list(1, 2));
}

TEST(TermCore, Maps) {
    term m = make_map(
        {{term(atom("b")), term(2)}, {term(atom("a")), term(1)}, {term(atom("b")), term(3)}});
    EXPECT_TRUE(m.is_map());
    EXPECT_EQ(m.size(), 2u);  // duplicate key: last wins
    auto p = m.as_map();
    EXPECT_EQ(p[0].first, term(atom("a")));
    EXPECT_EQ(p[1].second, term(3));
    ASSERT_NE(m.find(term(atom("b"))), nullptr);
    EXPECT_EQ(*m.find(term(atom("b"))), term(3));
    EXPECT_EQ(m.find(term(atom("c"))), nullptr);
    EXPECT_EQ(term(1).find(term(1)), nullptr);
    // 1 and 1.0 are distinct keys; integers sort before floats (map key order).
    term n = map(
        {{term(1.0), term(atom("f"))}, {term(1), term(atom("i"))}, {term(2), term(atom("two"))}});
    ASSERT_EQ(n.size(), 3u);
    EXPECT_EQ(n.as_map()[0].first, term(1));
    EXPECT_EQ(n.as_map()[1].first, term(2));
    EXPECT_EQ(n.as_map()[2].first, term(1.0));
    EXPECT_EQ(*n.find(term(1.0)), term(atom("f")));
    EXPECT_EQ(*n.find(term(1)), term(atom("i")));
}

TEST(TermCore, LargeMapsFindEveryKey) {
    std::vector<std::pair<term, term>> pairs;
    for (int i = 99; i >= 0; --i)
        pairs.emplace_back(tuple(i % 7, i), term(i));
    for (int i = 0; i < 40; ++i)
        pairs.emplace_back(term(atom("k" + std::to_string(i))), term(-i));
    term m = make_map(pairs);
    ASSERT_EQ(m.size(), 140u);
    for (int i = 0; i < 100; ++i) {
        const term* v = m.find(tuple(i % 7, i));
        ASSERT_NE(v, nullptr);
        EXPECT_EQ(*v, term(i));
    }
    for (int i = 0; i < 40; ++i)
        EXPECT_EQ(*m.find(term(atom("k" + std::to_string(i)))), term(-i));
    EXPECT_EQ(m.find(tuple(0, 1)), nullptr);
    auto p = m.as_map();
    for (std::size_t i = 1; i < p.size(); ++i)
        EXPECT_LT(p[i - 1].first, p[i].first);
}

TEST(TermCore, FinishMapSortsAndRejectsDuplicates) {
    std::pair<term, term>* p;
    term m = detail::new_map(40, p);
    for (int i = 0; i < 40; ++i)
        p[i] = {term(39 - i), term(i)};
    EXPECT_FALSE(detail::finish_map(m));
    EXPECT_EQ(m.as_map()[0].first, term(0));
    EXPECT_EQ(*m.find(term(0)), term(39));
    term d = detail::new_map(3, p);
    p[0] = {term(atom("a")), term(1)};
    p[1] = {term(atom("b")), term(1)};
    p[2] = {term(atom("a")), term(2)};
    EXPECT_EQ(detail::finish_map(d), errc::duplicate_map_key);
    term s = detail::new_map(2, p);
    p[0] = {term(1), term(1)};
    p[1] = {term(1), term(2)};
    EXPECT_EQ(detail::finish_map(s), errc::duplicate_map_key);
    term one = term(1);
    EXPECT_EQ(detail::finish_map(one), errc::invalid_term);
}

TEST(TermCore, BinariesAndBitstrings) {
    term b = binary(std::string_view("abc"));
    EXPECT_TRUE(b.is_binary());
    EXPECT_TRUE(b.is_bitstring());
    EXPECT_EQ(b.as_string_view(), "abc");
    EXPECT_EQ(b.bit_size(), 24u);
    EXPECT_EQ(b.trailing_bits(), 8u);
    EXPECT_EQ(b.size(), 3u);
    term empty = binary(std::string_view());
    EXPECT_TRUE(empty.is_binary());
    EXPECT_EQ(empty.bit_size(), 0u);
    // 0-bit bitstring is the empty binary.
    std::uint8_t bytes[] = {0xFF, 0xFF};
    term z = bitstring(std::span<const std::uint8_t>(bytes, 0), 0);
    EXPECT_TRUE(z.is_binary());
    EXPECT_EQ(z, empty);
    // 7-bit bitstring: unused bit masked to zero.
    term seven = bitstring(bytes, 7);
    EXPECT_EQ(seven.type(), kind::bitstring);
    EXPECT_FALSE(seven.is_binary());
    EXPECT_TRUE(seven.is_bitstring());
    EXPECT_EQ(seven.bit_size(), 7u);
    EXPECT_EQ(seven.trailing_bits(), 7u);
    EXPECT_EQ(seven.as_bytes()[0], 0xFE);
    term fifteen = bitstring(bytes, 15);
    EXPECT_EQ(fifteen.bit_size(), 15u);
    EXPECT_EQ(fifteen.size(), 2u);
    EXPECT_EQ(bitstring(bytes, 16), binary(std::span<const std::uint8_t>(bytes, 2)));
    EXPECT_THROW(bitstring(std::span<const std::uint8_t>(bytes, 1), 9), std::invalid_argument);
    EXPECT_THROW(term(1).bit_size(), bad_term_access);
    EXPECT_THROW(term(1).as_bytes(), bad_term_access);
    // Raw builder: trailing bits with zero bytes must give a binary.
    std::uint8_t* d;
    term r = detail::new_binary(0, d, 3);
    EXPECT_TRUE(r.is_binary());
    term r2 = detail::new_binary(2, d, 3);
    EXPECT_EQ(r2.type(), kind::bitstring);
    EXPECT_EQ(r2.bit_size(), 11u);
    // The bytes are the caller's to fill (not zero-initialized: decode overwrites them).
    d[0] = 0xAB;
    d[1] = 0xE0;
    EXPECT_EQ(r2.as_bytes()[0], 0xAB);
    EXPECT_EQ(r2.as_bytes()[1], 0xE0);
}

TEST(TermCore, Charlist) {
    term s = charlist("h\xC3\xA9");
    EXPECT_EQ(s, list(104, 233));
    EXPECT_EQ(charlist(""), term());
    EXPECT_THROW(charlist("\xFF"), std::invalid_argument);
}

TEST(TermCore, RawBuildersDefaultInitialize) {
    term* e;
    term t = detail::new_tuple(3, e);
    EXPECT_TRUE(e[0].is_nil() && e[1].is_nil() && e[2].is_nil());
    e[1] = term(5);
    EXPECT_EQ(t, tuple(term(), 5, term()));
    std::uint32_t* limbs;
    term big = detail::new_bignum(true, 3, limbs);
    EXPECT_EQ(limbs[0] | limbs[1] | limbs[2], 0u);
    limbs[0] = 5;
    EXPECT_EQ(detail::normalize_integer(big), term(-5));
    term *le, *lt;
    term l = detail::new_list(2, le, lt);
    EXPECT_TRUE(lt->is_nil());
    EXPECT_EQ(l, list(term(), term()));
    EXPECT_THROW(detail::new_list(0, le, lt), std::invalid_argument);
}

TEST(TermCore, NormalizeInteger) {
    std::uint32_t* l;
    // 2^63 positive stays a bignum; -2^63 becomes a small integer.
    term p = detail::new_bignum(false, 2, l);
    l[1] = 0x80000000u;
    EXPECT_TRUE(detail::normalize_integer(p).is_bignum());
    term n = detail::new_bignum(true, 2, l);
    l[1] = 0x80000000u;
    term nn = detail::normalize_integer(n);
    ASSERT_TRUE(nn.is_small());
    EXPECT_EQ(nn.as_int64(), INT64_MIN);
    // Leading zero limbs are stripped.
    term z = detail::new_bignum(false, 5, l);
    l[0] = 1;
    l[3] = 1;
    term zz = detail::normalize_integer(z);
    ASSERT_TRUE(zz.is_bignum());
    EXPECT_EQ(zz.as_big().limbs.size(), 4u);
    // Negative zero is 0.
    term nz = detail::new_bignum(true, 4, l);
    EXPECT_EQ(detail::normalize_integer(nz), term(0));
    EXPECT_EQ(detail::normalize_integer(term(7)), term(7));
    // make_integer.
    std::uint32_t two64[] = {0, 0, 1};
    term t64 = make_integer(false, two64);
    EXPECT_TRUE(t64.is_bignum());
    EXPECT_EQ(integer_to_string(t64), "18446744073709551616");
    std::uint32_t small[] = {5, 0, 0};
    EXPECT_EQ(make_integer(true, small), term(-5));
    EXPECT_EQ(make_integer(false, {}), term(0));
}

TEST(TermCore, CopyMoveAndRefcount) {
    term a = tuple(1, 2);
    auto* h = a.heap();
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->refs.load(), 1u);
    {
        term b = a;
        EXPECT_EQ(h->refs.load(), 2u);
        term c = std::move(b);
        EXPECT_TRUE(b.is_nil());
        EXPECT_EQ(h->refs.load(), 2u);
        c = term(3);
        EXPECT_EQ(h->refs.load(), 1u);
    }
    term d;
    d = a;
    EXPECT_EQ(h->refs.load(), 2u);
    d = d;  // self-assignment
    EXPECT_EQ(h->refs.load(), 2u);
    d = std::move(d);
    EXPECT_EQ(h->refs.load(), 2u);
    EXPECT_EQ(term(1).heap(), nullptr);
}

TEST(TermCore, DeeplyNestedTuplesAndLists) {
    constexpr int kDepth = 10000;
    term t = term(atom("leaf"));
    for (int i = 0; i < kDepth; ++i)
        t = tuple(t);
    term u = term(atom("leaf"));
    for (int i = 0; i < kDepth; ++i)
        u = tuple(u);
    EXPECT_EQ(t, u);
    EXPECT_EQ(t.hash(), u.hash());
    EXPECT_EQ(compare(t, u), std::strong_ordering::equal);
    std::string s = t.to_string();
    EXPECT_EQ(s.size(), kDepth * 2 + 4);
    EXPECT_EQ(s.substr(0, 3), "{{{");
    term l;
    for (int i = 0; i < kDepth; ++i)
        l = make_list({l});
    EXPECT_EQ(l.to_string().size(), kDepth * 2 + 2);
    // Much deeper nesting must still be destroyed without recursion.
    // make_list flattens a list tail (copying it), so build a long list with one call.
    term deep = make_list({term(1)}, make_list(std::vector<term>(1000, term(2))));
    EXPECT_EQ(deep.size(), 1001u);
    EXPECT_EQ(deep.as_list().elements.size(), 1001u);
    term nest;
    for (int i = 0; i < 1000000; ++i)
        nest = tuple(nest);
    nest = term();  // destroy
    SUCCEED();
}

TEST(TermCore, ListOfAMillionListsDestroys) {
    std::vector<term> elems;
    elems.reserve(1000000);
    for (int i = 0; i < 1000000; ++i)
        elems.push_back(list(i));
    term l = make_list(std::move(elems));
    EXPECT_EQ(l.size(), 1000000u);
    l = term();
    // Chain of a million improper list cells built with the raw builder.
    term chain;
    for (int i = 0; i < 1000000; ++i) {
        term *e, *t;
        term c = detail::new_list(1, e, t);
        *e = term(i);
        *t = std::move(chain);
        chain = std::move(c);
    }
    EXPECT_EQ(chain.size(), 1000000u);
    chain = term();
    SUCCEED();
}

TEST(TermCore, SharedSubtermsSurviveParentDestruction) {
    term shared = tuple(binary(std::string_view("payload")), list(1, 2));
    {
        term parent = tuple(shared, shared, make_map({{shared, shared}}));
        EXPECT_EQ(shared.heap()->refs.load(), 5u);
    }
    EXPECT_EQ(shared.heap()->refs.load(), 1u);
    EXPECT_EQ(shared[0].as_string_view(), "payload");
}

TEST(TermCore, BadTermAccessMessageNamesKinds) {
    try {
        term(atom("x")).as_int64();
        FAIL();
    } catch (const bad_term_access& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("integer"), std::string::npos);
        EXPECT_NE(m.find("atom"), std::string::npos);
    }
}

TEST(TermCore, UsableInUnorderedContainers) {
    std::unordered_set<term> set;
    set.insert(tuple(1, 2));
    set.insert(tuple(1, 2));
    set.insert(term(1));
    set.insert(term(1.0));
    set.insert(term(0.0));
    set.insert(term(-0.0));
    EXPECT_EQ(set.size(), 5u);
    EXPECT_TRUE(set.count(tuple(1, 2)));
    std::unordered_set<atom> atoms_set{atom("a"), atom("a"), atom("b")};
    EXPECT_EQ(atoms_set.size(), 2u);
}
