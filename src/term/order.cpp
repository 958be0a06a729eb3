// Standard term order, exact equality and hashing. All three walk terms with an explicit
// stack so that deeply nested terms (hostile or not) cannot overflow the C++ stack.
//
// Order facts follow OTP's erts_cmp (erts/emulator/beam/utils.c):
//  * numbers by value; bignum/float compared exactly (not through a lossy double);
//  * pids: serial, then number, then node name, then node creation;
//  * ports and references: node name, creation, then the id (references: most significant
//    32-bit word first, missing high words count as zero);
//  * closures before export funs; closures by module name, old index, old uniq, number of
//    free variables, then the free variables; exports by module, function, arity;
//  * tuples by arity then elements; maps by size, then all keys in map-key order (every
//    integer before every float), then the values; lists element-wise with improper tails
//    compared as terms; bitstrings bitwise, a prefix first.
// Where OTP says "equal" but the terms differ exactly (1 vs 1.0, -0.0 vs 0.0, a reference with
// extra zero words), we break the tie so the order is total and consistent with ==: the first
// such difference decides, integers before floats and -0.0 before 0.0.
#include "term_internal.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>

namespace erl::detail {

namespace {

inline int sgn(std::int64_t v) noexcept {
    return (v > 0) - (v < 0);
}
template <class T>
inline int cmp3(T a, T b) noexcept {
    return (a > b) - (a < b);
}

// Position of each kind in the standard order (number < atom < reference < fun < port < pid <
// tuple < map < nil < list < bitstring), indexed by kind.
constexpr std::uint8_t kind_rank[] = {0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10};
static_assert(std::size(kind_rank) == static_cast<std::size_t>(kind::bitstring) + 1);

inline int rank(kind k) noexcept {
    return kind_rank[static_cast<std::size_t>(k)];
}

inline std::int64_t small_of(const term& t) noexcept {
    return t.as_int64();  // never throws here: callers checked the kind
}
inline double float_of(const term& t) noexcept {
    return t.as_double();
}

big_view big_of(const term& t) noexcept {
    auto* b = reinterpret_cast<bignum_block*>(t.heap());
    return {b->h.flags != 0, {b->limbs(), b->h.size}};
}

int cmp_big(const big_view& a, const big_view& b) noexcept {
    if (a.negative != b.negative) return a.negative ? -1 : 1;
    int c = cmp_mag(a.limbs, b.limbs);
    return a.negative ? -c : c;
}

int cmp_atoms(const atom_entry* a, const atom_entry* b) noexcept {
    if (a == b) return 0;
    std::size_t n = a->bytes < b->bytes ? a->bytes : b->bytes;
    int c = n ? std::memcmp(a->text, b->text, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return cmp3(a->bytes, b->bytes);
}

int cmp_node(atom an, std::uint32_t ac, atom bn, std::uint32_t bc) noexcept {
    if (int c = cmp_atoms(an.entry(), bn.entry())) return c;
    return cmp3(ac, bc);
}

int cmp_bits(const term& a, const term& b) noexcept {
    auto* ba = reinterpret_cast<binary_block*>(a.heap());
    auto* bb = reinterpret_cast<binary_block*>(b.heap());
    std::size_t na = ba->h.size, nb = bb->h.size;
    std::size_t bits_a = na ? (na - 1) * 8 + (a.type() == kind::binary ? 8 : ba->h.flags) : 0;
    std::size_t bits_b = nb ? (nb - 1) * 8 + (b.type() == kind::binary ? 8 : bb->h.flags) : 0;
    // Full bytes common to both, then the byte holding the last common bit (masked).
    std::size_t min_bits = bits_a < bits_b ? bits_a : bits_b;
    std::size_t full = min_bits / 8;
    if (full) {
        int c = std::memcmp(ba->data(), bb->data(), full);
        if (c) return c < 0 ? -1 : 1;
    }
    if (unsigned rem = min_bits % 8) {
        auto mask = static_cast<std::uint8_t>(0xFF << (8 - rem));
        std::uint8_t x = ba->data()[full] & mask, y = bb->data()[full] & mask;
        if (x != y) return x < y ? -1 : 1;
    }
    return cmp3(bits_a, bits_b);
}

int cmp_refs(const reference& a, const reference& b) noexcept {
    if (int c = cmp_node(a.node, a.creation, b.node, b.creation)) return c;
    std::size_t la = a.len > 5 ? 5 : a.len, lb = b.len > 5 ? 5 : b.len;
    std::size_t n = la > lb ? la : lb;
    for (std::size_t i = n; i-- > 0;) {
        std::uint32_t x = i < la ? a.ids[i] : 0, y = i < lb ? b.ids[i] : 0;
        if (x != y) return x < y ? -1 : 1;
    }
    return cmp3(la, lb);  // OTP: equal; we need a total order consistent with ==
}

int cmp_pids(const pid& a, const pid& b) noexcept {
    if (a.serial != b.serial) return a.serial < b.serial ? -1 : 1;
    if (a.id != b.id) return a.id < b.id ? -1 : 1;
    return cmp_node(a.node, a.creation, b.node, b.creation);
}

int cmp_ports(const port& a, const port& b) noexcept {
    if (int c = cmp_node(a.node, a.creation, b.node, b.creation)) return c;
    return cmp3(a.id, b.id);
}

// Order of finite doubles by value; -0.0 == 0.0 here (callers break that tie).
inline int cmp_double(double a, double b) noexcept {
    return (a > b) - (a < b);
}

struct frame {
    enum type_t : std::uint8_t { seq, map_keys, map_values, list } type;
    bool exact;
    std::size_t i = 0, n = 0;
    const term* a = nullptr;
    const term* b = nullptr;
    const std::pair<term, term>* pa = nullptr;
    const std::pair<term, term>* pb = nullptr;
    list_cursor ca{};
    list_cursor cb{};
};

// A stack with inline storage: compare/hash of small terms does not allocate.
template <class T, std::size_t N>
class small_stack {
  public:
    ~small_stack() {
        for (std::size_t i = 0; i < n_; ++i)
            at(i).~T();
        ::operator delete(heap_);
    }
    bool empty() const noexcept { return n_ == 0; }
    T& top() noexcept { return at(n_ - 1); }
    void pop() noexcept {
        at(n_ - 1).~T();
        --n_;
    }
    // Returns false if memory ran out (callers then fall back to recursion).
    bool push(const T& v) noexcept {
        if (n_ == cap_) {
            std::size_t ncap = cap_ * 2;
            T* nh = static_cast<T*>(::operator new(ncap * sizeof(T), std::nothrow));
            if (!nh) return false;
            for (std::size_t i = 0; i < n_; ++i) {
                ::new (&nh[i]) T(std::move(at(i)));
                at(i).~T();
            }
            ::operator delete(heap_);
            heap_ = nh;
            cap_ = ncap;
        }
        ::new (&at(n_)) T(v);
        ++n_;
        return true;
    }

  private:
    T& at(std::size_t i) noexcept {
        return heap_ ? heap_[i] : *std::launder(reinterpret_cast<T*>(inline_ + i * sizeof(T)));
    }
    alignas(T) unsigned char inline_[N * sizeof(T)];
    T* heap_ = nullptr;
    std::size_t n_ = 0, cap_ = N;
};

}  // namespace

int cmp_mag(std::span<const std::uint32_t> a, std::span<const std::uint32_t> b) noexcept {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    for (std::size_t i = a.size(); i-- > 0;)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

int cmp_int_double(const term& i, double d) noexcept {
    constexpr double two63 = 9223372036854775808.0;
    if (i.type() == kind::integer) {
        std::int64_t v = small_of(i);
        if (d >= two63) return -1;
        if (d < -two63) return 1;
        auto t = static_cast<std::int64_t>(d);  // exact: |d| < 2^63, truncates toward zero
        if (v != t) return v < t ? -1 : 1;
        double frac = d - static_cast<double>(t);
        return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
    }
    // Bignum: |i| >= 2^63.
    big_view bv = big_of(i);
    if (d < two63 && d >= -two63) return bv.negative ? -1 : 1;
    // |d| >= 2^63 so d is an integer: expand it exactly into limbs and compare.
    int exp;
    double m = std::frexp(std::fabs(d), &exp);  // |d| = m * 2^exp, 0.5 <= m < 1
    auto mant = static_cast<std::uint64_t>(std::ldexp(m, 53));
    int shift = exp - 53;  // >= 11 here
    std::uint32_t limbs[36] = {};
    std::size_t word = static_cast<std::size_t>(shift / 32);
    unsigned bit = static_cast<unsigned>(shift % 32);
    // mant << bit spans at most 3 limbs.
    unsigned __int128 v = static_cast<unsigned __int128>(mant) << bit;
    limbs[word] = static_cast<std::uint32_t>(v);
    limbs[word + 1] = static_cast<std::uint32_t>(v >> 32);
    limbs[word + 2] = static_cast<std::uint32_t>(v >> 64);
    std::size_t n = word + 3;
    while (n && limbs[n - 1] == 0)
        --n;
    big_view dv{d < 0, {limbs, n}};
    return cmp_big(bv, dv);
}

namespace {

// Compares numbers x and y (both rank 0). exact: every integer before every float.
int cmp_numbers(const term& x, const term& y, bool exact, int& tie) noexcept {
    kind kx = x.type(), ky = y.type();
    if (kx == kind::integer && ky == kind::integer) return cmp3(small_of(x), small_of(y));
    if (kx == kind::float_ && ky == kind::float_) {
        double a = float_of(x), b = float_of(y);
        if (int c = cmp_double(a, b)) return c;
        bool na = std::signbit(a), nb = std::signbit(b);
        if (na == nb) return 0;
        int c = na ? -1 : 1;  // -0.0 before 0.0
        if (exact) return c;
        if (!tie) tie = c;
        return 0;
    }
    if (kx == kind::bignum && ky == kind::bignum) return cmp_big(big_of(x), big_of(y));
    if (kx == kind::integer && ky == kind::bignum) return big_of(y).negative ? 1 : -1;
    if (kx == kind::bignum && ky == kind::integer) return big_of(x).negative ? -1 : 1;
    // Integer vs float.
    bool x_int = kx != kind::float_;
    if (exact) return x_int ? -1 : 1;
    int c = x_int ? cmp_int_double(x, float_of(y)) : -cmp_int_double(y, float_of(x));
    if (c) return c;
    if (!tie) tie = x_int ? -1 : 1;  // equal by value: the integer first
    return 0;
}

// Queues the element-wise comparison of a[0..n) with b[0..n) (nothing when n is 0). Sets `oom`
// if the stack could not grow.
template <class Stack>
void push_seq(Stack& st, const term* a, const term* b, std::size_t n, bool exact,
              bool& oom) noexcept {
    if (n == 0) return;
    frame f{frame::seq, exact};
    f.a = a;
    f.b = b;
    f.n = n;
    if (!st.push(f)) oom = true;
}

// Compares x and y without descending; pushes a frame for their children if needed.
// Returns nonzero when decided. Sets `oom` if the stack could not grow.
template <class Stack>
int shallow(const term& x, const term& y, bool exact, bool eq_only, int& tie, Stack& st,
            bool& oom) noexcept {
    kind kx = x.type(), ky = y.type();
    if (kx == ky) {
        switch (kx) {
            case kind::integer:
                return cmp3(small_of(x), small_of(y));
            case kind::atom: {
                if (x.as_atom() == y.as_atom()) return 0;
                if (eq_only) return 1;
                return cmp_atoms(x.atom_ptr(), y.atom_ptr());
            }
            case kind::nil:
                return 0;
            default:
                break;
        }
        if (x.is_heap() && x.heap() == y.heap()) return 0;  // same block
    }
    int rx = rank(kx), ry = rank(ky);
    if (rx != ry) return rx < ry ? -1 : 1;
    if (eq_only && kx != ky) return 1;
    switch (kx) {
        case kind::integer:
        case kind::bignum:
        case kind::float_:
            return cmp_numbers(x, y, exact, tie);
        case kind::reference:
            return cmp_refs(x.as_reference(), y.as_reference());
        case kind::port:
            return cmp_ports(x.as_port(), y.as_port());
        case kind::pid:
            return cmp_pids(x.as_pid(), y.as_pid());
        case kind::binary:
        case kind::bitstring:
            return cmp_bits(x, y);
        case kind::fun: {
            bool ex = x.is_export(), ey = y.is_export();
            if (ex != ey) return ex ? 1 : -1;  // closures before exports (OTP tag order)
            if (ex) {
                const export_fun& a = x.as_export();
                const export_fun& b = y.as_export();
                if (int c = cmp_atoms(a.module.entry(), b.module.entry())) return c;
                if (int c = cmp_atoms(a.function.entry(), b.function.entry())) return c;
                return cmp3(a.arity, b.arity);
            }
            const closure& a = x.as_closure();
            const closure& b = y.as_closure();
            if (int c = cmp_atoms(a.module.entry(), b.module.entry())) return c;
            if (int c = cmp3(a.old_index, b.old_index)) return c;
            if (int c = cmp3(a.old_uniq, b.old_uniq)) return c;
            if (int c = cmp3(a.free_vars.size(), b.free_vars.size())) return c;
            // Not compared by OTP (it would say "equal"); needed for a total order.
            if (int c = cmp3(a.arity, b.arity)) return c;
            if (int c = cmp3(a.index, b.index)) return c;
            if (int c = std::memcmp(a.uniq.data(), b.uniq.data(), 16)) return c < 0 ? -1 : 1;
            if (int c = compare_terms(a.pid, b.pid, exact)) return c;
            push_seq(st, a.free_vars.data(), b.free_vars.data(), a.free_vars.size(), exact, oom);
            return 0;
        }
        case kind::tuple: {
            auto a = x.as_tuple(), b = y.as_tuple();
            if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
            push_seq(st, a.data(), b.data(), a.size(), exact, oom);
            return 0;
        }
        case kind::map: {
            auto a = x.as_map(), b = y.as_map();
            if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
            if (a.empty()) return 0;
            frame f{frame::map_values, exact};
            f.pa = a.data();
            f.pb = b.data();
            f.n = a.size();
            if (!st.push(f)) oom = true;
            f.type = frame::map_keys;
            f.exact = true;  // keys in map-key order
            if (!st.push(f)) oom = true;
            return 0;
        }
        case kind::list: {
            frame f{frame::list, exact};
            f.ca = list_cursor(x);
            f.cb = list_cursor(y);
            if (!st.push(f)) oom = true;
            return 0;
        }
        default:
            return 0;
    }
}

int compare_impl(const term& a, const term& b, bool exact, bool eq_only) noexcept {
    small_stack<frame, 16> st;
    int tie = 0;
    bool oom = false;
    const term* x = &a;
    const term* y = &b;
    bool ex = exact;
    for (;;) {
        if (int r = shallow(*x, *y, ex, eq_only, tie, st, oom)) return r;
        if (oom) return 0;  // cannot happen in practice; treat as equal rather than crash
        for (;;) {
            if (st.empty()) return tie;
            frame& f = st.top();
            if (f.type == frame::list) {
                const term* ea = f.ca.next();
                const term* eb = f.cb.next();
                if (ea && eb) {
                    x = ea;
                    y = eb;
                    ex = f.exact;
                    // Last elements and both tails []: nothing is left to compare at this
                    // level, so the frame goes now and a nest of lists needs no stack.
                    if (f.ca.at_end() && f.cb.at_end() && f.ca.final_tail().is_nil() &&
                        f.cb.final_tail().is_nil())
                        st.pop();
                    break;
                }
                if (!ea && !eb) {
                    x = &f.ca.final_tail();
                    y = &f.cb.final_tail();
                    ex = f.exact;
                    st.pop();
                    break;
                }
                // One list ended with a non-list tail while the other continues (a
                // non-empty list): decided by the tail's rank against a list.
                const term& t = ea ? f.cb.final_tail() : f.ca.final_tail();
                int c = rank(t.type()) < rank(kind::list) ? -1 : 1;
                return ea ? -c : c;
            }
            if (f.i == f.n) {
                st.pop();
                continue;
            }
            std::size_t i = f.i++;
            ex = f.exact;
            switch (f.type) {
                case frame::seq:
                    x = &f.a[i];
                    y = &f.b[i];
                    break;
                case frame::map_keys:
                    x = &f.pa[i].first;
                    y = &f.pb[i].first;
                    break;
                default:
                    x = &f.pa[i].second;
                    y = &f.pb[i].second;
                    break;
            }
            if (f.i == f.n) st.pop();  // last child: the frame is done (a nest needs no stack)
            break;
        }
    }
}

inline std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}
inline std::uint64_t fmix(std::uint64_t h) noexcept {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

}  // namespace

int compare_terms(const term& a, const term& b, bool exact) noexcept {
    return compare_impl(a, b, exact, false);
}

std::size_t hash_term(const term& root) noexcept {
    std::uint64_t h = 0x51ed270b27a3c9d1ull;
    small_stack<const term*, 32> st;
    st.push(&root);
    auto visit = [&](const term& t) noexcept {
        kind k = t.type();
        h = mix(h, static_cast<std::uint64_t>(k) * 0x100000001b3ull);
        switch (k) {
            case kind::integer:
                h = mix(h, static_cast<std::uint64_t>(small_of(t)));
                break;
            case kind::float_:
                h = mix(h, std::bit_cast<std::uint64_t>(float_of(t)));
                break;
            case kind::atom:
                h = mix(h, t.as_atom().hash());
                break;
            case kind::nil:
                break;
            case kind::bignum: {
                big_view v = big_of(t);
                h = mix(h, v.negative);
                for (auto l : v.limbs)
                    h = mix(h, l);
                break;
            }
            case kind::binary:
            case kind::bitstring: {
                auto bytes = t.as_bytes();
                h = mix(h, t.bit_size());
                h = mix(h, hash_bytes(bytes.data(), bytes.size() ? bytes.size() - 1 : 0));
                if (!bytes.empty()) {
                    unsigned tb = t.trailing_bits();
                    h = mix(h, bytes.back() & static_cast<std::uint8_t>(0xFF << (8 - tb)));
                }
                break;
            }
            case kind::pid: {
                const pid& p = t.as_pid();
                h = mix(h, p.node.hash());
                h = mix(h, (std::uint64_t(p.id) << 32) | p.serial);
                h = mix(h, p.creation);
                break;
            }
            case kind::port: {
                const port& p = t.as_port();
                h = mix(h, p.node.hash());
                h = mix(h, p.id);
                h = mix(h, p.creation);
                break;
            }
            case kind::reference: {
                const reference& r = t.as_reference();
                h = mix(h, r.node.hash());
                h = mix(h, r.creation);
                h = mix(h, r.len);
                for (auto w : r.words())
                    h = mix(h, w);
                break;
            }
            case kind::fun:
                if (t.is_export()) {
                    const export_fun& f = t.as_export();
                    h = mix(h, f.module.hash());
                    h = mix(h, f.function.hash());
                    h = mix(h, f.arity);
                } else {
                    const closure& c = t.as_closure();
                    h = mix(h, c.module.hash());
                    h = mix(h, c.arity);
                    h = mix(h, c.index);
                    h = mix(h, static_cast<std::uint64_t>(c.old_index));
                    h = mix(h, static_cast<std::uint64_t>(c.old_uniq));
                    h = mix(h, hash_bytes(c.uniq.data(), 16));
                    h = mix(h, c.free_vars.size());
                    st.push(&c.pid);
                    for (const term& v : c.free_vars)
                        st.push(&v);
                }
                break;
            case kind::tuple: {
                auto e = t.as_tuple();
                h = mix(h, e.size());
                for (const term& v : e)
                    st.push(&v);
                break;
            }
            case kind::map: {
                auto p = t.as_map();
                h = mix(h, p.size());
                for (const auto& kv : p) {
                    st.push(&kv.first);
                    st.push(&kv.second);
                }
                break;
            }
            case kind::list: {
                list_cursor c(t);
                std::size_t n = 0;
                while (const term* e = c.next()) {
                    st.push(e);
                    ++n;
                }
                h = mix(h, n);
                st.push(&c.final_tail());
                break;
            }
        }
    };
    while (!st.empty()) {
        const term* t = st.top();
        st.pop();
        visit(*t);
    }
    return static_cast<std::size_t>(fmix(h));
}

}  // namespace erl::detail

namespace erl {

bool operator==(const term& a, const term& b) noexcept {
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case kind::integer:
            return a.as_int64() == b.as_int64();
        case kind::float_:
            return std::bit_cast<std::uint64_t>(a.as_double()) ==
                   std::bit_cast<std::uint64_t>(b.as_double());
        case kind::atom:
            return a.as_atom() == b.as_atom();
        case kind::nil:
            return true;
        default:
            break;
    }
    if (a.heap() == b.heap()) return true;
    return detail::compare_impl(a, b, true, true) == 0;
}

std::strong_ordering operator<=>(const term& a, const term& b) noexcept {
    int c = detail::compare_impl(a, b, false, false);
    return c < 0 ? std::strong_ordering::less
                 : (c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal);
}

std::strong_ordering compare(const term& a, const term& b) noexcept {
    return a <=> b;
}

std::size_t term::hash() const noexcept {
    return detail::hash_term(*this);
}

}  // namespace erl
