#include "proto/handshake_gate.hpp"

#include <vector>

namespace erl::proto {

void handshake_gate::forget_locked(std::map<ticket, entry>::iterator it) noexcept {
    auto a = per_address_.find(it->second.address);
    if (a != per_address_.end() && --a->second == 0) per_address_.erase(a);
    by_age_.erase(it);
}

handshake_gate::ticket handshake_gate::enter(std::string_view address,
                                             std::function<void()> on_evict, limits lim) {
    std::vector<std::function<void()>> evicted;
    ticket t;
    {
        std::lock_guard lk(mu_);
        std::string addr(address);
        if (lim.max_per_address != 0) {
            auto a = per_address_.find(addr);
            std::size_t from_here = a == per_address_.end() ? 0 : a->second;
            // The bound is small, so a scan from the oldest is cheap.
            for (auto it = by_age_.begin();
                 from_here >= lim.max_per_address && it != by_age_.end();) {
                if (it->second.address != addr) {
                    ++it;
                    continue;
                }
                evicted.push_back(std::move(it->second.on_evict));
                forget_locked(it++);
                --from_here;
            }
        }
        while (lim.max_total != 0 && by_age_.size() >= lim.max_total) {
            evicted.push_back(std::move(by_age_.begin()->second.on_evict));
            forget_locked(by_age_.begin());
        }
        t = next_++;
        ++per_address_[addr];
        by_age_.emplace(t, entry{std::move(addr), std::move(on_evict)});
    }
    for (auto& f : evicted)
        if (f) f();
    return t;
}

void handshake_gate::leave(ticket t) noexcept {
    std::lock_guard lk(mu_);
    auto it = by_age_.find(t);
    if (it != by_age_.end()) forget_locked(it);
}

std::size_t handshake_gate::pending() const {
    std::lock_guard lk(mu_);
    return by_age_.size();
}

std::size_t handshake_gate::pending_from(std::string_view address) const {
    std::lock_guard lk(mu_);
    auto it = per_address_.find(std::string(address));
    return it == per_address_.end() ? 0 : it->second;
}

}  // namespace erl::proto
