// A registry key for Module:Function/Arity (the rpc server's functions, the C++ process kinds
// of erl::add_spawnable). Atoms are interned: they compare and hash by identity here, unlike
// atom's term order.
#pragma once

#include <erl/term.hpp>

#include <cstddef>
#include <functional>

namespace erl::detail {

struct mfa_key {
    const void* m;
    const void* f;
    unsigned arity;
    bool operator==(const mfa_key&) const = default;
};
struct mfa_key_hash {
    std::size_t operator()(const mfa_key& k) const noexcept {
        auto h = std::hash<const void*>{};
        return (h(k.m) * 31 + h(k.f)) * 31 + k.arity;
    }
};
inline mfa_key mfa_key_of(atom m, atom f, unsigned arity) noexcept {
    return {m.entry(), f.entry(), arity};
}

}  // namespace erl::detail
