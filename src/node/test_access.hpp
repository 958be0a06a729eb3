// Test-only access to the runtime behind the public API, for unit and interop tests. Library
// code never includes it.
#pragma once

#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "node/node_core.hpp"

#include <cstdint>
#include <memory>

namespace erl::test {

inline detail::node_core& core_of(node& n) {
    return n.internals();
}
inline const std::shared_ptr<detail::process>& process_of(const mailbox& m) {
    return m.internals();
}
// The next pid allocation number of `n` (process_table::set_next_number).
inline void set_next_pid_number(node& n, std::uint64_t next) {
    core_of(n).table.set_next_number(next);
}

}  // namespace erl::test
