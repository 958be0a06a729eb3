// Test-only access to the runtime behind the public API, for unit and interop tests. Library
// code never includes it (it uses node/access.hpp).
#pragma once

#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "node/access.hpp"
#include "node/node_core.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace erl::test {

// A binary term whose bytes are someone else's (erl::shared_binary, or a received frame).
inline bool is_shared_binary(const term& t) noexcept {
    return t.is_binary() && reinterpret_cast<const detail::binary_block*>(t.heap())->shared();
}

inline detail::node_core& core_of(node& n) {
    return detail::access::core(n);
}
inline const std::shared_ptr<detail::process>& process_of(const mailbox& m) {
    return detail::access::proc(m);
}
// The next pid allocation number of `n` (process_table::set_next_number).
inline void set_next_pid_number(node& n, std::uint64_t next) {
    core_of(n).table.set_next_number(next);
}
// Processes monitoring `p` (the target's side of its monitors), and link entries of `p`
// (active links and unlinks not yet acknowledged).
inline std::size_t watcher_count(const detail::process& p) {
    std::lock_guard lk(p.mu);
    return p.watchers.size();
}
inline std::size_t link_entries(const detail::process& p) {
    std::lock_guard lk(p.mu);
    return p.links.size();
}

}  // namespace erl::test
