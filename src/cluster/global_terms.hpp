// Small term helpers shared by the global_server sources.
#pragma once

#include <erl/term.hpp>

#include <algorithm>
#include <string_view>
#include <vector>

namespace erl::cluster::detail {

inline atom A(std::string_view s) {
    return atom(s);
}

// {global_name_server, Node}: where global.erl's servers send each other everything.
inline term gns(atom node) {
    return tuple(A("global_name_server"), node);
}

// gen_server:cast's wire form.
inline term cast(term msg) {
    return tuple(A("$gen_cast"), std::move(msg));
}

// lists:max/1 of node names (the_boss/1).
inline atom max_node(const std::vector<atom>& nodes) {
    return *std::max_element(nodes.begin(), nodes.end(),
                             [](atom a, atom b) { return a.str() < b.str(); });
}

// The elements of a proper list; none for anything else (peer input is not trusted).
inline std::vector<term> elements(const term& t) {
    if (!t.is_proper_list()) return {};
    auto lv = t.as_list();
    return {lv.elements.begin(), lv.elements.end()};
}

// lists:delete/2.
template <class T>
void erase_value(std::vector<T>& v, const T& x) {
    auto it = std::find(v.begin(), v.end(), x);
    if (it != v.end()) v.erase(it);
}

}  // namespace erl::cluster::detail
