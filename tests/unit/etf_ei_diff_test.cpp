// Differential test against erl_interface (ei), OTP's own C codec: thousands of random terms
// (seeded) are encoded by us and decoded by ei (rebuilding the term from ei_decode_* calls),
// and encoded by ei (ei_x_encode_*) and decoded by us; both must give back the same term.
#include <gtest/gtest.h>

#ifdef ERLCPP_HAVE_EI

#define USE_EI_UNDOCUMENTED
#include <ei.h>

#include <erl/etf.hpp>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using erl::atom;
using erl::term;

// ---------------------------------------------------------------------------------------------
// Random terms.
class gen {
  public:
    explicit gen(std::uint64_t seed) : rng_(seed) {
        for (const char* a :
             {"", "a", "ok", "error", "hello world", "\xc3\xa9t\xc3\xa9",
              "\xe6\x97\xa5\xe6\x9c\xac", "node@host", "\xf0\x9f\x98\x80", "true", "undefined"})
            atoms_.emplace_back(a);
        atoms_.emplace_back(std::string(255, 'z'));
        std::string u;
        for (int i = 0; i < 255; ++i)
            u += "\xc3\xbc";
        atoms_.emplace_back(u);
    }

    term any(int depth) {
        int k = pick(depth > 0 ? 20 : 11);
        switch (k) {
            case 0:
                return term(static_cast<int>(pick(256)));
            case 1:
                return term(static_cast<long long>(static_cast<std::int32_t>(rng_())));
            case 2: {
                static const long long edges[] = {INT64_MAX,     INT64_MIN,    INT64_MAX - 1,
                                                  INT64_MIN + 1, 2147483648LL, -2147483649LL,
                                                  1LL << 40,     -(1LL << 56)};
                return pick(2) ? term(edges[pick(8)]) : term(static_cast<long long>(rng_()));
            }
            case 3: {
                std::vector<std::uint32_t> limbs(1 + pick(12));
                for (auto& l : limbs)
                    l = static_cast<std::uint32_t>(rng_());
                limbs.back() |= 1;
                return erl::make_integer(pick(2) == 1, limbs);
            }
            case 4: {
                for (;;) {
                    double d;
                    std::uint64_t bits = rng_();
                    std::memcpy(&d, &bits, 8);
                    if (std::isfinite(d))
                        return term(
                            pick(2) ? d : static_cast<double>(static_cast<int>(rng_() % 1000)) / 8);
                }
            }
            case 5:
                return term(atoms_[pick(atoms_.size())]);
            case 6: {
                std::string s(pick(40), '\0');
                for (auto& c : s)
                    c = static_cast<char>(rng_());
                return erl::binary(std::string_view(s));
            }
            case 7: {
                std::size_t bits = 1 + pick(40);
                std::vector<std::uint8_t> b((bits + 7) / 8);
                for (auto& c : b)
                    c = static_cast<std::uint8_t>(rng_());
                if (bits % 8) b.back() &= static_cast<std::uint8_t>(0xFF00u >> (bits % 8));
                return erl::bitstring(b, bits);
            }
            case 8:
                return term(erl::pid{node(), static_cast<std::uint32_t>(rng_()),
                                     static_cast<std::uint32_t>(rng_()),
                                     static_cast<std::uint32_t>(rng_())});
            case 9: {
                std::uint64_t id = pick(2) ? rng_() : static_cast<std::uint32_t>(rng_());
                return term(erl::port{node(), id, static_cast<std::uint32_t>(rng_())});
            }
            case 10: {
                erl::reference r;
                r.node = node();
                r.creation = static_cast<std::uint32_t>(rng_());
                r.len = static_cast<std::uint8_t>(1 + pick(5));
                for (auto& i : r.ids)
                    i = static_cast<std::uint32_t>(rng_());
                for (std::size_t i = r.len; i < 5; ++i)
                    r.ids[i] = 0;
                return term(r);
            }
            case 11:
            case 12: {
                std::vector<term> el(pick(6));
                for (auto& e : el)
                    e = any(depth - 1);
                return erl::make_tuple(el);
            }
            case 13:
            case 14: {
                std::vector<term> el(pick(6));
                for (auto& e : el)
                    e = any(depth - 1);
                term tail = pick(5) == 0 ? any(0) : term{};
                if (tail.is_list()) tail = term{};
                return erl::make_list(el, tail);
            }
            case 15: {
                std::vector<term> el(pick(30));
                for (auto& e : el)
                    e = term(static_cast<int>(pick(256)));
                return erl::make_list(el);
            }
            case 16: {
                std::vector<std::pair<term, term>> kv;
                std::size_t n = pick(4) == 0 ? 33 + pick(20) : pick(5);
                for (std::size_t i = 0; i < n; ++i)
                    kv.emplace_back(any(depth - 1), any(depth - 1));
                return erl::make_map(kv);
            }
            case 17:
                return term(erl::export_fun{atoms_[pick(atoms_.size())],
                                            atoms_[pick(atoms_.size())],
                                            static_cast<std::uint8_t>(pick(256))});
            case 18: {
                erl::closure c;
                c.module = atoms_[1 + pick(atoms_.size() - 1)];
                c.arity = static_cast<std::uint8_t>(pick(256));
                for (auto& u : c.uniq)
                    u = static_cast<std::uint8_t>(rng_());
                c.index = static_cast<std::uint32_t>(pick(100000));
                c.old_index = static_cast<std::int64_t>(pick(100000));
                c.old_uniq = static_cast<std::int32_t>(rng_());
                c.pid = term(erl::pid{node(), 1, 2, 3});
                c.free_vars.resize(pick(3));
                for (auto& v : c.free_vars)
                    v = any(depth - 1);
                return term(c);
            }
            default: {
                std::string s;
                for (std::size_t i = 0, n = pick(10); i < n; ++i)
                    s += static_cast<char>('a' + pick(26));
                return erl::charlist(s + "\xc4\x80");
            }
        }
    }

  private:
    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
    atom node() { return pick(2) ? atom("a@b") : atom("\xc3\xa9@h\xc3\xb4st"); }
    std::mt19937_64 rng_;
    std::vector<atom> atoms_;
};

// ---------------------------------------------------------------------------------------------
// Term from ei: rebuilt purely through ei's decoding functions.
bool ei_to_term(const char* buf, int* idx, term& out);

bool ei_atom(const char* buf, int* idx, atom& out) {
    char s[MAXATOMLEN_UTF8];
    erlang_char_encoding was, res;
    if (ei_decode_atom_as(buf, idx, s, sizeof s, ERLANG_UTF8, &was, &res) < 0) return false;
    out = atom(s);
    return true;
}

erl::pid from_ei(const erlang_pid& p) {
    return {atom(p.node), p.num, p.serial, p.creation};
}

// Decodes one T with ei's `decode` and stores `conv` of it in `out`.
template <class T, class Decode, class Conv = std::identity>
bool ei_value(const char* buf, int* idx, term& out, Decode decode, Conv conv = {}) {
    T v;
    if (decode(buf, idx, &v) < 0) return false;
    out = term(conv(v));
    return true;
}

// Decodes `n` terms into `el`.
bool ei_terms(const char* buf, int* idx, int n, std::vector<term>& el) {
    el.resize(static_cast<std::size_t>(n));
    for (auto& e : el)
        if (!ei_to_term(buf, idx, e)) return false;
    return true;
}

bool ei_to_term(const char* buf, int* idx, term& out) {
    int type = 0, size = 0;
    if (ei_get_type(buf, idx, &type, &size) < 0) return false;
    switch (type) {
        case ERL_SMALL_INTEGER_EXT:
        case ERL_INTEGER_EXT:
            return ei_value<long>(buf, idx, out, ei_decode_long);
        case ERL_SMALL_BIG_EXT:
        case ERL_LARGE_BIG_EXT: {
            long long v;
            int save = *idx;
            if (ei_decode_longlong(buf, idx, &v) == 0) {
                out = term(v);
                return true;
            }
            *idx = save;
            erlang_big* b = ei_alloc_big(static_cast<unsigned>(size));
            if (ei_decode_big(buf, idx, b) < 0) return false;
            std::vector<std::uint32_t> limbs((static_cast<std::size_t>(size) + 3) / 4);
            auto* d = static_cast<const std::uint8_t*>(b->digits);
            for (int i = 0; i < size; ++i)
                limbs[i / 4] |= static_cast<std::uint32_t>(d[i]) << (8 * (i % 4));
            out = erl::make_integer(b->is_neg != 0, limbs);
            ei_free_big(b);
            return true;
        }
        case ERL_FLOAT_EXT:
        case NEW_FLOAT_EXT:
            return ei_value<double>(buf, idx, out, ei_decode_double);
        case ERL_ATOM_EXT:
        case ERL_SMALL_ATOM_EXT:
        case ERL_ATOM_UTF8_EXT:
        case ERL_SMALL_ATOM_UTF8_EXT: {
            atom a;
            if (!ei_atom(buf, idx, a)) return false;
            out = term(a);
            return true;
        }
        case ERL_SMALL_TUPLE_EXT:
        case ERL_LARGE_TUPLE_EXT: {
            int n;
            std::vector<term> el;
            if (ei_decode_tuple_header(buf, idx, &n) < 0 || !ei_terms(buf, idx, n, el))
                return false;
            out = erl::make_tuple(std::move(el));
            return true;
        }
        case ERL_NIL_EXT: {
            int n;
            if (ei_decode_list_header(buf, idx, &n) < 0 || n != 0) return false;
            out = term{};
            return true;
        }
        case ERL_STRING_EXT: {
            std::string s(static_cast<std::size_t>(size) + 1, '\0');
            if (ei_decode_string(buf, idx, s.data()) < 0) return false;
            std::vector<term> el;
            for (int i = 0; i < size; ++i)
                el.push_back(term(static_cast<int>(static_cast<std::uint8_t>(s[i]))));
            out = erl::make_list(std::move(el));
            return true;
        }
        case ERL_LIST_EXT: {
            int n;
            std::vector<term> el;
            if (ei_decode_list_header(buf, idx, &n) < 0 || !ei_terms(buf, idx, n, el)) return false;
            term tail;
            if (!ei_to_term(buf, idx, tail)) return false;
            out = erl::make_list(std::move(el), tail);
            return true;
        }
        case ERL_MAP_EXT: {
            int n;
            if (ei_decode_map_header(buf, idx, &n) < 0) return false;
            std::vector<std::pair<term, term>> kv(static_cast<std::size_t>(n));
            for (auto& [k, v] : kv)
                if (!ei_to_term(buf, idx, k) || !ei_to_term(buf, idx, v)) return false;
            out = erl::make_map(std::move(kv));
            return true;
        }
        case ERL_BINARY_EXT: {
            std::vector<std::uint8_t> b(static_cast<std::size_t>(size));
            long len;
            if (ei_decode_binary(buf, idx, b.data(), &len) < 0) return false;
            out =
                erl::binary(std::span<const std::uint8_t>(b.data(), static_cast<std::size_t>(len)));
            return true;
        }
        case ERL_BIT_BINARY_EXT: {
            const char* p;
            unsigned int offs;
            size_t bits;
            if (ei_decode_bitstring(buf, idx, &p, &offs, &bits) < 0 || offs != 0) return false;
            out = erl::bitstring({reinterpret_cast<const std::uint8_t*>(p), (bits + 7) / 8}, bits);
            return true;
        }
        case ERL_PID_EXT:
        case ERL_NEW_PID_EXT:
            return ei_value<erlang_pid>(buf, idx, out, ei_decode_pid, from_ei);
        case ERL_PORT_EXT:
        case ERL_NEW_PORT_EXT:
        case ERL_V4_PORT_EXT: {
            erlang_port p;
            const int raw_tag = static_cast<unsigned char>(buf[*idx]);
            if (ei_decode_port(buf, idx, &p) < 0) return false;
            // ei sign-extends the 32-bit id of PORT_EXT / NEW_PORT_EXT into its 64-bit field.
            if (raw_tag != ERL_V4_PORT_EXT) p.id &= 0xFFFFFFFFull;
            out = term(erl::port{atom(p.node), p.id, p.creation});
            return true;
        }
        case ERL_REFERENCE_EXT:
        case ERL_NEW_REFERENCE_EXT:
        case ERL_NEWER_REFERENCE_EXT: {
            erlang_ref r;
            if (ei_decode_ref(buf, idx, &r) < 0) return false;
            erl::reference x;
            x.node = atom(r.node);
            x.creation = r.creation;
            x.len = static_cast<std::uint8_t>(r.len);
            for (int i = 0; i < r.len; ++i)
                x.ids[i] = r.n[i];
            out = term(x);
            return true;
        }
        case ERL_NEW_FUN_EXT:
        case ERL_EXPORT_EXT: {
            erlang_fun f;
            if (ei_decode_fun(buf, idx, &f) < 0) return false;
            bool ok = true;
            if (f.type == erlang_fun::EI_FUN_EXPORT) {
                out = term(erl::export_fun{atom(f.module), atom(f.u.exprt.func),
                                           static_cast<std::uint8_t>(f.arity)});
            } else {
                erl::closure c;
                c.module = atom(f.module);
                c.arity = static_cast<std::uint8_t>(f.arity);
                std::memcpy(c.uniq.data(), f.u.closure.md5, 16);
                c.index = static_cast<std::uint32_t>(f.u.closure.index);
                c.old_index = f.u.closure.old_index;
                c.old_uniq = f.u.closure.uniq;
                c.pid = term(from_ei(f.u.closure.pid));
                int fi = 0;
                for (long i = 0; i < f.u.closure.n_free_vars && ok; ++i) {
                    term v;
                    ok = ei_to_term(f.u.closure.free_vars, &fi, v);
                    c.free_vars.push_back(v);
                }
                out = term(c);
            }
            free_fun(&f);
            return ok;
        }
        default:
            return false;
    }
}

// ---------------------------------------------------------------------------------------------
// ei encoding of a term, built purely with ei_x_encode_* calls.
void fill_node(char* dst, atom a) {
    std::memcpy(dst, a.str().data(), a.str().size());
    dst[a.str().size()] = '\0';
}

erlang_pid to_ei(const erl::pid& p) {
    erlang_pid e{};
    fill_node(e.node, p.node);
    e.num = p.id;
    e.serial = p.serial;
    e.creation = p.creation;
    return e;
}

bool term_to_ei(ei_x_buff* x, const term& t) {
    auto atom_ = [&](atom a) {
        return ei_x_encode_atom_len_as(x, a.str().data(), static_cast<int>(a.str().size()),
                                       ERLANG_UTF8, ERLANG_UTF8) == 0;
    };
    switch (t.type()) {
        case erl::kind::integer:
            return ei_x_encode_longlong(x, t.as_int64()) == 0;
        case erl::kind::bignum: {
            auto bv = t.as_big();
            std::vector<std::uint8_t> bytes;
            for (auto l : bv.limbs)
                for (int i = 0; i < 4; ++i)
                    bytes.push_back(static_cast<std::uint8_t>(l >> (8 * i)));
            while (!bytes.empty() && bytes.back() == 0)
                bytes.pop_back();
            erlang_big* b = ei_alloc_big(static_cast<unsigned>(bytes.size()));
            std::memcpy(b->digits, bytes.data(), bytes.size());
            b->is_neg = bv.negative;
            bool ok = ei_x_encode_big(x, b) == 0;
            ei_free_big(b);
            return ok;
        }
        case erl::kind::float_:
            return ei_x_encode_double(x, t.as_double()) == 0;
        case erl::kind::atom:
            return atom_(t.as_atom());
        case erl::kind::tuple: {
            auto el = t.as_tuple();
            if (ei_x_encode_tuple_header(x, static_cast<long>(el.size())) < 0) return false;
            for (auto& e : el)
                if (!term_to_ei(x, e)) return false;
            return true;
        }
        case erl::kind::nil:
            return ei_x_encode_empty_list(x) == 0;
        case erl::kind::list: {
            auto lv = t.as_list();
            if (ei_x_encode_list_header(x, static_cast<long>(lv.elements.size())) < 0) return false;
            for (auto& e : lv.elements)
                if (!term_to_ei(x, e)) return false;
            return term_to_ei(x, lv.tail);
        }
        case erl::kind::map: {
            auto m = t.as_map();
            if (ei_x_encode_map_header(x, static_cast<long>(m.size())) < 0) return false;
            for (auto& [k, v] : m)
                if (!term_to_ei(x, k) || !term_to_ei(x, v)) return false;
            return true;
        }
        case erl::kind::binary: {
            auto b = t.as_bytes();
            return ei_x_encode_binary(x, b.data(), static_cast<int>(b.size())) == 0;
        }
        case erl::kind::bitstring: {
            auto b = t.as_bytes();
            return ei_x_encode_bitstring(x, reinterpret_cast<const char*>(b.data()), 0,
                                         t.bit_size()) == 0;
        }
        case erl::kind::pid: {
            auto e = to_ei(t.as_pid());
            return ei_x_encode_pid(x, &e) == 0;
        }
        case erl::kind::port: {
            erlang_port e{};
            fill_node(e.node, t.as_port().node);
            e.id = t.as_port().id;
            e.creation = t.as_port().creation;
            return ei_x_encode_port(x, &e) == 0;
        }
        case erl::kind::reference: {
            const auto& r = t.as_reference();
            erlang_ref e{};
            fill_node(e.node, r.node);
            e.len = r.len;
            e.creation = r.creation;
            for (int i = 0; i < r.len; ++i)
                e.n[i] = r.ids[i];
            return ei_x_encode_ref(x, &e) == 0;
        }
        case erl::kind::fun: {
            erlang_fun f{};
            if (t.is_export()) {
                const auto& ex = t.as_export();
                f.type = erlang_fun::EI_FUN_EXPORT;
                f.arity = ex.arity;
                fill_node(f.module, ex.module);
                std::string fn(ex.function.str());
                f.u.exprt.func = fn.data();
                return ei_x_encode_fun(x, &f) == 0;
            }
            const auto& c = t.as_closure();
            f.type = erlang_fun::EI_FUN_CLOSURE;
            f.arity = c.arity;
            fill_node(f.module, c.module);
            std::memcpy(f.u.closure.md5, c.uniq.data(), 16);
            f.u.closure.index = c.index;
            f.u.closure.old_index = static_cast<long>(c.old_index);
            f.u.closure.uniq = static_cast<long>(c.old_uniq);
            f.u.closure.n_free_vars = static_cast<long>(c.free_vars.size());
            f.u.closure.pid = to_ei(c.pid.as_pid());
            ei_x_buff fv;
            ei_x_new(&fv);
            bool ok = true;
            for (auto& v : c.free_vars)
                ok = ok && term_to_ei(&fv, v);
            f.u.closure.free_var_len = fv.index;
            f.u.closure.free_vars = fv.buff;
            ok = ok && ei_x_encode_fun(x, &f) == 0;
            ei_x_free(&fv);
            return ok;
        }
    }
    return false;
}

class EtfEiDiff : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { ei_init(); }
};

// t encoded by erl_interface decodes, with erlcpp, to t.
void expect_eis_encoding_decodes_back(const term& t) {
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ASSERT_TRUE(term_to_ei(&x, t));
    auto r = erl::etf::decode(std::span(reinterpret_cast<const std::uint8_t*>(x.buff),
                                        static_cast<std::size_t>(x.index)));
    ei_x_free(&x);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, t);
}

TEST_F(EtfEiDiff, OursDecodedByEiAndEisDecodedByUs) {
    gen g(20261121);
    int n = 0;
    for (int i = 0; i < 5000; ++i) {
        term t = g.any(1 + i % 5);
        SCOPED_TRACE("term #" + std::to_string(i) + ": " + t.to_string().substr(0, 300));
        // Ours -> ei.
        auto enc = erl::etf::encode(t);
        int idx = 0, version = 0;
        const char* buf = reinterpret_cast<const char*>(enc.data());
        ASSERT_EQ(ei_decode_version(buf, &idx, &version), 0);
        term back;
        ASSERT_TRUE(ei_to_term(buf, &idx, back)) << "ei could not decode our encoding";
        EXPECT_EQ(static_cast<std::size_t>(idx), enc.size());
        EXPECT_EQ(back, t);
        int skip = 1;
        EXPECT_EQ(ei_skip_term(buf, &skip), 0);
        EXPECT_EQ(static_cast<std::size_t>(skip), enc.size());
        // ei -> ours.
        ASSERT_NO_FATAL_FAILURE(expect_eis_encoding_decodes_back(t));
        ++n;
    }
    EXPECT_EQ(n, 5000);
}

TEST_F(EtfEiDiff, DeepNestingWithinEiLimits) {
    term t = term(atom("leaf"));
    for (int i = 0; i < 500; ++i)
        t = i % 2 ? erl::tuple(t, i) : erl::list(t);
    auto enc = erl::etf::encode(t);
    int idx = 1;
    term back;
    ASSERT_TRUE(ei_to_term(reinterpret_cast<const char*>(enc.data()), &idx, back));
    EXPECT_EQ(back, t);
    expect_eis_encoding_decodes_back(t);
}

}  // namespace

#else
TEST(EtfEiDiff, SkippedWithoutErlInterface) {
    GTEST_SKIP() << "erl_interface not found";
}
#endif
