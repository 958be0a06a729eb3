// The keys of a core's table, for the queries that list them (pg:which_groups, nodes()...).
#pragma once

#include <vector>

namespace erl::cluster {

// The keys of `m`, in its order.
template <class Map>
std::vector<typename Map::key_type> keys_of(const Map& m) {
    std::vector<typename Map::key_type> out;
    out.reserve(m.size());
    for (const auto& [k, v] : m)
        out.push_back(k);
    return out;
}

}  // namespace erl::cluster
