// Arbitrary-precision integers on 32-bit limbs (schoolbook algorithms; bignums on the wire
// are rarely more than a few limbs). Results are always normalized.
#include "term_internal.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace erl::detail {

bigint to_bigint(const term& t) {
    bigint b;
    if (t.is_small()) {
        std::int64_t v = t.as_int64();
        b.neg = v < 0;
        std::uint64_t m = b.neg ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
        if (m) b.mag.push_back(static_cast<std::uint32_t>(m));
        if (m >> 32) b.mag.push_back(static_cast<std::uint32_t>(m >> 32));
    } else {
        big_view v = t.as_big();
        b.neg = v.negative;
        b.mag.assign(v.limbs.begin(), v.limbs.end());
        while (!b.mag.empty() && b.mag.back() == 0)
            b.mag.pop_back();
    }
    if (b.mag.empty()) b.neg = false;
    return b;
}

term from_bigint(const bigint& b) {
    return make_integer(b.neg, b.mag);
}

void mag_mul_add(std::vector<std::uint32_t>& mag, std::uint32_t mul, std::uint32_t add) {
    std::uint64_t carry = add;
    for (auto& l : mag) {
        std::uint64_t v = std::uint64_t(l) * mul + carry;
        l = static_cast<std::uint32_t>(v);
        carry = v >> 32;
    }
    if (carry) mag.push_back(static_cast<std::uint32_t>(carry));
}

namespace {

using mag_t = std::vector<std::uint32_t>;

void trim(mag_t& m) {
    while (!m.empty() && m.back() == 0)
        m.pop_back();
}

mag_t mag_add(const mag_t& a, const mag_t& b) {
    const mag_t& l = a.size() >= b.size() ? a : b;
    const mag_t& s = a.size() >= b.size() ? b : a;
    mag_t r(l.size() + 1);
    std::uint64_t carry = 0;
    for (std::size_t i = 0; i < l.size(); ++i) {
        std::uint64_t v = std::uint64_t(l[i]) + (i < s.size() ? s[i] : 0) + carry;
        r[i] = static_cast<std::uint32_t>(v);
        carry = v >> 32;
    }
    r[l.size()] = static_cast<std::uint32_t>(carry);
    trim(r);
    return r;
}

// a - b with |a| >= |b|.
mag_t mag_sub(const mag_t& a, const mag_t& b) {
    mag_t r(a.size());
    std::int64_t borrow = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        std::int64_t v = std::int64_t(a[i]) - (i < b.size() ? b[i] : 0) - borrow;
        borrow = v < 0;
        if (v < 0) v += std::int64_t(1) << 32;
        r[i] = static_cast<std::uint32_t>(v);
    }
    trim(r);
    return r;
}

bigint signed_add(const bigint& a, const bigint& b) {
    bigint r;
    if (a.neg == b.neg) {
        r.mag = mag_add(a.mag, b.mag);
        r.neg = a.neg;
    } else {
        int c = cmp_mag(a.mag, b.mag);
        if (c == 0) return r;
        if (c > 0) {
            r.mag = mag_sub(a.mag, b.mag);
            r.neg = a.neg;
        } else {
            r.mag = mag_sub(b.mag, a.mag);
            r.neg = b.neg;
        }
    }
    if (r.mag.empty()) r.neg = false;
    return r;
}

// Divides mag by d in place; returns the remainder.
std::uint32_t mag_divmod(mag_t& m, std::uint32_t d) {
    std::uint64_t rem = 0;
    for (std::size_t i = m.size(); i-- > 0;) {
        std::uint64_t cur = (rem << 32) | m[i];
        m[i] = static_cast<std::uint32_t>(cur / d);
        rem = cur % d;
    }
    trim(m);
    return static_cast<std::uint32_t>(rem);
}

}  // namespace

}  // namespace erl::detail

namespace erl {

using detail::bigint;

result<term> integer_from_string(std::string_view s) {
    bool neg = false;
    std::size_t i = 0;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == s.size()) return make_error_code(errc::invalid_term);
    for (std::size_t k = i; k < s.size(); ++k)
        if (s[k] < '0' || s[k] > '9') return make_error_code(errc::invalid_term);
    // Fast path: fits in int64.
    std::string_view digits = s.substr(i);
    if (digits.size() <= 18) {
        std::int64_t v = 0;
        for (char c : digits)
            v = v * 10 + (c - '0');
        return term(neg ? -v : v);
    }
    bigint b;
    b.neg = neg;
    std::size_t k = 0;
    std::size_t first = digits.size() % 9;
    if (first == 0) first = 9;
    while (k < digits.size()) {
        std::size_t len = k == 0 ? first : 9;
        std::uint32_t chunk = 0, mul = 1;
        for (std::size_t j = 0; j < len; ++j) {
            chunk = chunk * 10 + static_cast<std::uint32_t>(digits[k + j] - '0');
            mul *= 10;
        }
        detail::mag_mul_add(b.mag, mul, chunk);
        k += len;
    }
    return detail::from_bigint(b);
}

std::string integer_to_string(const term& t) {
    if (t.is_small()) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, t.as_int64());
        return std::string(buf, r.ptr);
    }
    if (!t.is_bignum()) throw_bad_term_access("integer", t);
    bigint b = detail::to_bigint(t);
    std::vector<std::uint32_t> chunks;  // base 10^9, least significant first
    while (!b.mag.empty())
        chunks.push_back(detail::mag_divmod(b.mag, 1000000000u));
    std::string out;
    if (b.neg) out.push_back('-');
    if (chunks.empty()) return "0";
    out += std::to_string(chunks.back());
    for (std::size_t i = chunks.size() - 1; i-- > 0;) {
        char buf[16];
        auto r = std::to_chars(buf, buf + sizeof buf, chunks[i]);
        out.append(9 - static_cast<std::size_t>(r.ptr - buf), '0');
        out.append(buf, r.ptr);
    }
    return out;
}

result<term> add(const term& a, const term& b) {
    if (!a.is_integer() || !b.is_integer()) return detail::mismatch();
    if (a.is_small() && b.is_small()) {
        std::int64_t r;
        if (!__builtin_add_overflow(a.as_int64(), b.as_int64(), &r)) return term(r);
    }
    return detail::from_bigint(detail::signed_add(detail::to_bigint(a), detail::to_bigint(b)));
}

result<term> subtract(const term& a, const term& b) {
    if (!a.is_integer() || !b.is_integer()) return detail::mismatch();
    if (a.is_small() && b.is_small()) {
        std::int64_t r;
        if (!__builtin_sub_overflow(a.as_int64(), b.as_int64(), &r)) return term(r);
    }
    bigint nb = detail::to_bigint(b);
    if (!nb.mag.empty()) nb.neg = !nb.neg;
    return detail::from_bigint(detail::signed_add(detail::to_bigint(a), nb));
}

result<term> multiply(const term& a, const term& b) {
    if (!a.is_integer() || !b.is_integer()) return detail::mismatch();
    if (a.is_small() && b.is_small()) {
        std::int64_t r;
        if (!__builtin_mul_overflow(a.as_int64(), b.as_int64(), &r)) return term(r);
    }
    bigint x = detail::to_bigint(a), y = detail::to_bigint(b);
    if (x.mag.empty() || y.mag.empty()) return term(0);
    std::vector<std::uint32_t> r(x.mag.size() + y.mag.size(), 0);
    for (std::size_t i = 0; i < x.mag.size(); ++i) {
        std::uint64_t carry = 0;
        for (std::size_t j = 0; j < y.mag.size(); ++j) {
            std::uint64_t v = std::uint64_t(x.mag[i]) * y.mag[j] + r[i + j] + carry;
            r[i + j] = static_cast<std::uint32_t>(v);
            carry = v >> 32;
        }
        std::size_t k = i + y.mag.size();
        while (carry) {
            std::uint64_t v = std::uint64_t(r[k]) + carry;
            r[k++] = static_cast<std::uint32_t>(v);
            carry = v >> 32;
        }
    }
    return make_integer(x.neg != y.neg, r);
}

}  // namespace erl
