#include "epmd/registry.hpp"

#include "epmd/codec.hpp"

namespace erl::epmd::detail {
namespace {

// epmd_srv.c bump_creation: creations 0..3 are reserved (0 = "any", 1..3 = old 2-bit
// creations), so the 32-bit counter never yields them.
void bump(std::uint32_t& c) {
    if (++c < 4) c = 4;
}

}  // namespace

registry::registry(std::size_t max_unreg, std::function<std::uint32_t()> clock)
    : max_unreg_(max_unreg), clock_(std::move(clock)) {}

std::uint32_t registry::entry::creation() const noexcept {
    // get_creation: version 6 nodes get the 32-bit counter, older ones 1..3.
    return info.highest >= 6 ? cr_counter : cr_counter % 3 + 1;
}

std::optional<std::uint32_t> registry::add(const node_info& info, std::uint64_t conn_id) {
    if (!alive2_acceptable(info)) return std::nullopt;
    if (find(info.name)) return std::nullopt;  // "node name already occupied"

    entry e;
    bool reused = false;
    for (auto it = unreg_.begin(); it != unreg_.end(); ++it) {
        if (it->info.name == info.name) {
            // A name seen before: reuse its slot with the next creation, so pids of the old
            // incarnation are not confused with the new one.
            e.cr_counter = it->cr_counter;
            bump(e.cr_counter);
            unreg_.erase(it);
            reused = true;
            break;
        }
    }
    if (!reused) {
        if (unreg_.size() > max_unreg_) {
            // OTP steals the oldest unused slot and keeps its counter.
            e.cr_counter = unreg_.front().cr_counter;
            unreg_.pop_front();
        } else {
            e.cr_counter = clock_();
            bump(e.cr_counter);
        }
    }
    e.info = info;
    e.conn_id = conn_id;
    reg_.push_front(std::move(e));
    return reg_.front().creation();
}

void registry::retire(std::list<entry>::iterator it) {
    unreg_.push_back(std::move(*it));
    reg_.erase(it);
}

std::optional<std::uint64_t> registry::remove_by_conn(std::uint64_t conn_id) {
    for (auto it = reg_.begin(); it != reg_.end(); ++it) {
        if (it->conn_id == conn_id) {
            retire(it);
            return conn_id;
        }
    }
    return std::nullopt;
}

std::optional<std::uint64_t> registry::remove_by_name(const std::string& name) {
    for (auto it = reg_.begin(); it != reg_.end(); ++it) {
        if (it->info.name == name) {
            auto id = it->conn_id;
            retire(it);
            return id;
        }
    }
    return std::nullopt;
}

const registry::entry* registry::find(const std::string& name) const {
    for (auto& e : reg_)
        if (e.info.name == name) return &e;
    return nullptr;
}

}  // namespace erl::epmd::detail
