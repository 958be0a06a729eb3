// Built-in erl::convert<T> specializations (see "Conversions" in <erl/term.hpp>).
// Included at the end of <erl/term.hpp>; include that header, not this one.
//
// Every from() returns errc::type_mismatch when the term does not have the requested shape or
// the value does not fit; it never throws for a mismatch and never invokes UB.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace erl {

namespace detail {
// Out-of-line helpers (src/term/convert.cpp).
// String from a binary, a charlist of Unicode code points (encoded as UTF-8), [] or an atom.
result<std::string> string_from_term(const term& t);
// Exact value of an integer term as an unsigned/signed 64-bit value if it fits.
bool integer_to_u64(const term& t, std::uint64_t& out) noexcept;
bool integer_to_i64(const term& t, std::int64_t& out) noexcept;
// Nearest double of an integer term (bignums round to nearest; huge ones become +-inf).
double integer_to_double(const term& t) noexcept;

inline error_code mismatch() noexcept {
    return make_error_code(errc::type_mismatch);
}
// An error result for T, unambiguous even when T is constructible from an error_code (bool).
template <class T>
result<T> fail(error_code ec = mismatch()) {
    return result<T>(boost::system::in_place_error, ec);
}

template <class T>
struct is_tuple_like : std::false_type {};
}  // namespace detail

template <>
struct convert<term> {
    static term to(const term& t) { return t; }
    static result<term> from(const term& t) { return t; }
};

namespace detail {
// convert<T> for a value a term holds as it is: `is` tests the term's kind, `as` reads it.
template <class T, bool (term::*is)() const noexcept, auto as>
struct held_convert {
    static term to(const T& v) noexcept(std::is_nothrow_constructible_v<term, const T&>) {
        return term(v);
    }
    static result<T> from(const term& t) {
        if (!(t.*is)()) return fail<T>();
        return (t.*as)();
    }
};
}  // namespace detail

template <>
struct convert<atom> : detail::held_convert<atom, &term::is_atom, &term::as_atom> {};
template <>
struct convert<pid> : detail::held_convert<pid, &term::is_pid, &term::as_pid> {};
template <>
struct convert<port> : detail::held_convert<port, &term::is_port, &term::as_port> {};
template <>
struct convert<reference>
    : detail::held_convert<reference, &term::is_reference, &term::as_reference> {};
template <>
struct convert<export_fun> : detail::held_convert<export_fun, &term::is_export, &term::as_export> {
};
template <>
struct convert<closure> : detail::held_convert<closure, &term::is_closure, &term::as_closure> {};
template <>
struct convert<bool> : detail::held_convert<bool, &term::is_bool, &term::as_bool> {};

// All integer types except bool; range-checked in both directions.
template <class T>
struct convert<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
    static term to(T v) {
        if constexpr (std::is_signed_v<T>)
            return term(static_cast<long long>(v));
        else
            return term(static_cast<unsigned long long>(v));
    }
    static result<T> from(const term& t) {
        if constexpr (std::is_signed_v<T>) {
            std::int64_t v;
            if (!detail::integer_to_i64(t, v)) return detail::fail<T>();
            if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
                return detail::fail<T>();
            return static_cast<T>(v);
        } else {
            std::uint64_t v;
            if (!detail::integer_to_u64(t, v)) return detail::fail<T>();
            if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
                return detail::fail<T>();
            return static_cast<T>(v);
        }
    }
};

template <>
struct convert<double> {
    static term to(double v) { return term(v); }  // throws std::domain_error for NaN/inf
    static result<double> from(const term& t) {
        if (t.is_float()) return t.as_double();
        if (t.is_small()) return static_cast<double>(t.as_int64());
        if (t.is_bignum()) {
            double d = detail::integer_to_double(t);
            if (d - d != 0) return detail::fail<double>();  // too large for a double
            return d;
        }
        return detail::fail<double>();
    }
};

template <>
struct convert<float> {
    static term to(float v) { return term(static_cast<double>(v)); }
    static result<float> from(const term& t) {
        if (!t.is_float()) return detail::fail<float>();
        double d = t.as_double();
        if (d > std::numeric_limits<float>::max() || d < -std::numeric_limits<float>::max())
            return detail::fail<float>();
        return static_cast<float>(d);
    }
};

template <>
struct convert<std::string> {
    static term to(const std::string& s) { return binary(std::string_view(s)); }
    static result<std::string> from(const term& t) { return detail::string_from_term(t); }
};

template <class T, class A>
struct convert<std::vector<T, A>> {
    static term to(const std::vector<T, A>& v) {
        std::vector<term> elems;
        elems.reserve(v.size());
        for (const auto& x : v)
            elems.push_back(to_term(x));
        return make_list(std::move(elems));
    }
    static result<std::vector<T, A>> from(const term& t) {
        if (!t.is_list()) return detail::fail<std::vector<T, A>>();
        std::vector<T, A> out;
        term cur = t;
        while (cur.type() == kind::list) {
            list_view lv = cur.as_list();
            out.reserve(out.size() + lv.elements.size());
            for (const term& e : lv.elements) {
                auto r = from_term<T>(e);
                if (!r) return detail::fail<std::vector<T, A>>(r.error());
                out.push_back(std::move(*r));
            }
            cur = lv.tail;
        }
        if (!cur.is_nil()) return detail::fail<std::vector<T, A>>();  // improper list
        return out;
    }
};

template <class T>
struct convert<std::optional<T>> {
    static term to(const std::optional<T>& v) {
        if (!v) return term(atoms::undefined());
        return to_term(*v);
    }
    static result<std::optional<T>> from(const term& t) {
        if (t.is_atom(atoms::undefined())) return std::optional<T>{};
        auto r = from_term<T>(t);
        if (!r) return detail::fail<std::optional<T>>(r.error());
        return std::optional<T>(std::move(*r));
    }
};

template <class A, class B>
struct convert<std::pair<A, B>> {
    static term to(const std::pair<A, B>& p) { return tuple(p.first, p.second); }
    static result<std::pair<A, B>> from(const term& t) {
        if (!t.is_tuple(2)) return detail::fail<std::pair<A, B>>();
        auto e = t.as_tuple();
        auto a = from_term<A>(e[0]);
        if (!a) return detail::fail<std::pair<A, B>>(a.error());
        auto b = from_term<B>(e[1]);
        if (!b) return detail::fail<std::pair<A, B>>(b.error());
        return std::pair<A, B>(std::move(*a), std::move(*b));
    }
};

template <class... Ts>
struct convert<std::tuple<Ts...>> {
    static term to(const std::tuple<Ts...>& v) {
        return std::apply([](const auto&... xs) { return tuple(xs...); }, v);
    }
    static result<std::tuple<Ts...>> from(const term& t) {
        if (!t.is_tuple(sizeof...(Ts))) return detail::fail<std::tuple<Ts...>>();
        return from_elems(t.as_tuple(), std::index_sequence_for<Ts...>{});
    }

  private:
    template <std::size_t... I>
    static result<std::tuple<Ts...>> from_elems(std::span<const term> e,
                                                std::index_sequence<I...>) {
        std::tuple<result<Ts>...> parts{from_term<Ts>(e[I])...};
        error_code ec;
        ((ec = ec ? ec : (std::get<I>(parts) ? error_code{} : std::get<I>(parts).error())), ...);
        if (ec) return detail::fail<std::tuple<Ts...>>(ec);
        return std::tuple<Ts...>(std::move(*std::get<I>(parts))...);
    }
};

namespace detail {
template <class M>
term map_to_term(const M& m) {
    std::vector<std::pair<term, term>> pairs;
    pairs.reserve(m.size());
    for (const auto& [k, v] : m)
        pairs.emplace_back(to_term(k), to_term(v));
    return make_map(std::move(pairs));
}
template <class M>
result<M> map_from_term(const term& t) {
    if (!t.is_map()) return fail<M>();
    M out;
    for (const auto& [k, v] : t.as_map()) {
        auto kr = from_term<typename M::key_type>(k);
        if (!kr) return fail<M>(kr.error());
        auto vr = from_term<typename M::mapped_type>(v);
        if (!vr) return fail<M>(vr.error());
        // Two distinct terms may map to the same C++ key (e.g. 1 and <<"1">>? no, but
        // "a" as binary and as atom can): that is a mismatch, not a silent overwrite.
        if (!out.emplace(std::move(*kr), std::move(*vr)).second) return fail<M>();
    }
    return out;
}
}  // namespace detail

template <class K, class V, class C, class A>
struct convert<std::map<K, V, C, A>> {
    static term to(const std::map<K, V, C, A>& m) { return detail::map_to_term(m); }
    static result<std::map<K, V, C, A>> from(const term& t) {
        return detail::map_from_term<std::map<K, V, C, A>>(t);
    }
};

template <class K, class V, class H, class E, class A>
struct convert<std::unordered_map<K, V, H, E, A>> {
    static term to(const std::unordered_map<K, V, H, E, A>& m) { return detail::map_to_term(m); }
    static result<std::unordered_map<K, V, H, E, A>> from(const term& t) {
        return detail::map_from_term<std::unordered_map<K, V, H, E, A>>(t);
    }
};

}  // namespace erl
