// A registry key for Module:Function/Arity (the rpc server's functions, the C++ process kinds
// of erl::add_spawnable). Atoms are interned: they compare and hash by identity here, unlike
// atom's term order. The key holds its atoms, so a network atom in a key stays alive.
#pragma once

#include <erl/term.hpp>

#include <cstddef>
#include <functional>

namespace erl::detail {

struct mfa_key {
    atom m;
    atom f;
    unsigned arity;
    bool operator==(const mfa_key&) const = default;
};
struct mfa_key_hash {
    std::size_t operator()(const mfa_key& k) const noexcept {
        auto h = std::hash<const void*>{};
        return (h(k.m.entry()) * 31 + h(k.f.entry())) * 31 + k.arity;
    }
};
inline mfa_key mfa_key_of(const atom& m, const atom& f, unsigned arity) noexcept {
    return {m, f, arity};
}

}  // namespace erl::detail
