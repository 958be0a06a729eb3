// Stable names of enumerators, kept in tables that list the names in declaration order: naming a
// value is an index into its table.
#pragma once

#include <cstddef>
#include <span>

namespace erl::detail {

// The name of `e` in `names`, which names the enumerators from `first` on without gaps;
// `fallback` for a value the table does not cover.
template <class E>
constexpr const char* enum_name(E e, std::span<const char* const> names, const char* fallback,
                                E first = E{}) noexcept {
    auto i = static_cast<long long>(e) - static_cast<long long>(first);
    return i >= 0 && i < static_cast<long long>(names.size()) ? names[static_cast<std::size_t>(i)]
                                                              : fallback;
}

// Whether `names` has one name for each enumerator from `first` to `last` (for static_assert
// beside a table, so that an enumerator added at the end needs its name).
template <class E>
constexpr bool names_each(std::span<const char* const> names, E first, E last) noexcept {
    return static_cast<long long>(names.size()) ==
           static_cast<long long>(last) - static_cast<long long>(first) + 1;
}

}  // namespace erl::detail
