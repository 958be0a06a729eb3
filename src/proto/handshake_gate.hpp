// Admission control for incoming connections that have not yet authenticated (TCP accepted,
// TLS and distribution handshake not finished). Such connections come from anyone who can
// reach the port, so they get their own small bound, separate from max_connections: a flood of
// idle or never-finishing handshakes then evicts its own oldest members instead of taking the
// slots that authenticated peers need.
//
// Policy: at most `max_total` pending handshakes per node and `max_per_address` per source
// address. A newcomer always gets in; when a bound is full the oldest pending handshake (of the
// same address for the per-address bound) gives way. A real peer finishes its handshake in a
// few round trips, so the ones that wait longest are the ones that are not trying to finish.
// OTP has no such bound (every accepted socket gets a handshake process until net_setuptime);
// this is stricter.
//
// Thread safety: all members may be called from any thread. Eviction callbacks run on the
// thread that called enter(), after the gate's lock is released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace erl::proto {

class handshake_gate {
  public:
    struct limits {
        std::size_t max_total = 0;        // 0 = unbounded
        std::size_t max_per_address = 0;  // 0 = unbounded
    };
    using ticket = std::uint64_t;

    // Registers a pending handshake from `address`. Evicts (calls on_evict of, and forgets)
    // the oldest pending handshakes needed to stay within `lim`. Never returns 0.
    ticket enter(std::string_view address, std::function<void()> on_evict, limits lim);
    // The handshake finished, failed or was closed. Unknown or 0 tickets are ignored.
    void leave(ticket t) noexcept;

    std::size_t pending() const;
    std::size_t pending_from(std::string_view address) const;

  private:
    struct entry {
        std::string address;
        std::function<void()> on_evict;
    };
    void forget_locked(std::map<ticket, entry>::iterator it) noexcept;

    mutable std::mutex mu_;
    ticket next_ = 1;
    std::map<ticket, entry> by_age_;  // tickets grow, so begin() is the oldest
    std::unordered_map<std::string, std::size_t> per_address_;
};

}  // namespace erl::proto
