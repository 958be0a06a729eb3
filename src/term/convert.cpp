// Out-of-line helpers for the built-in erl::convert specializations (term_convert.hpp).
#include "term_internal.hpp"

#include <cmath>

namespace erl::detail {

result<std::string> string_from_term(const term& t) {
    switch (t.type()) {
        case kind::binary:
            return std::string(t.as_string_view());
        case kind::atom:
            return std::string(t.as_atom().str());
        case kind::nil:
            return std::string();
        case kind::list: {
            std::string out;
            list_cursor c(t);
            while (const term* e = c.next()) {
                if (!e->is_small()) return mismatch();
                std::int64_t cp = e->as_int64();
                if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return mismatch();
                utf8_append(out, static_cast<std::uint32_t>(cp));
            }
            if (!c.final_tail().is_nil()) return mismatch();
            return out;
        }
        default:
            return mismatch();
    }
}

bool integer_to_u64(const term& t, std::uint64_t& out) noexcept {
    if (t.is_small()) {
        std::int64_t v = t.as_int64();
        if (v < 0) return false;
        out = static_cast<std::uint64_t>(v);
        return true;
    }
    if (t.is_bignum()) {
        big_view b = t.as_big();
        if (b.negative || b.limbs.size() > 2) return false;
        out = b.limbs.empty() ? 0 : b.limbs[0];
        if (b.limbs.size() == 2) out |= std::uint64_t(b.limbs[1]) << 32;
        return true;
    }
    return false;
}

bool integer_to_i64(const term& t, std::int64_t& out) noexcept {
    if (!t.is_small()) return false;  // normalized: bignums never fit
    out = t.as_int64();
    return true;
}

double integer_to_double(const term& t) noexcept {
    if (t.is_small()) return static_cast<double>(t.as_int64());
    if (!t.is_bignum()) return 0.0;
    big_view b = t.as_big();
    // Use the top 3 limbs (>= 64 significant bits) plus a sticky bit so rounding is correct.
    std::size_t n = b.limbs.size();
    if (n == 0) return 0.0;
    if (n > 34) return b.negative ? -HUGE_VAL : HUGE_VAL;
    std::uint64_t top = 0;
    unsigned __int128 acc = 0;
    std::size_t take = n < 3 ? n : 3;
    for (std::size_t i = 0; i < take; ++i)
        acc = (acc << 32) | b.limbs[n - 1 - i];
    bool sticky = false;
    for (std::size_t i = 0; i + take < n; ++i)
        sticky |= b.limbs[i] != 0;
    // Reduce acc to 64 bits keeping a sticky bit in the lowest position.
    int shift = 0;
    while ((acc >> 64) != 0) {
        sticky |= (acc & 1) != 0;
        acc >>= 1;
        ++shift;
    }
    top = static_cast<std::uint64_t>(acc);
    if (sticky) {
        // Put the sticky bit below the 53 significant bits so it only breaks ties.
        top |= 1;
    }
    double d = std::ldexp(static_cast<double>(top), shift + static_cast<int>(32 * (n - take)));
    return b.negative ? -d : d;
}

}  // namespace erl::detail
