// Small fixture helpers on top of cluster_test: a suite named after its node-name prefixes and
// the atom-term shorthand tests use to build the terms they send and compare.
#pragma once

#include "harness/cluster.hpp"

#include <cstddef>

namespace erl::interop {

// The atom `s` as a term.
inline erl::term atom_term(const char* s) {
    return erl::term(erl::atom(s));
}

// A node-name prefix as a template argument (named_cluster_test<"cppx", "beamx">).
template <std::size_t N>
struct name_prefix {
    constexpr name_prefix(const char (&s)[N]) {
        for (std::size_t i = 0; i < N; ++i)
            text[i] = s[i];
    }
    char text[N];
};

// A cluster_test whose C++ and BEAM nodes are named after the given prefixes; a test suite
// that needs nothing more is `using Suite = named_cluster_test<"cppx", "beamx">;`.
template <name_prefix Cpp, name_prefix Beam>
class named_cluster_test : public cluster_test {
  protected:
    named_cluster_test() : cluster_test(Cpp.text, Beam.text) {}
};

}  // namespace erl::interop
