// The epmd name table (sans-io): registered nodes plus remembered unregistered names, with
// OTP's creation numbering (epmd_srv.c node_reg2/bump_creation/get_creation).
#pragma once

#include <erl/epmd.hpp>

#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <vector>

namespace erl::epmd::detail {

class registry {
  public:
    // epmd_int.h: MAX_UNREG_COUNT 1000, DEBUG_MAX_UNREG_COUNT 5 (with -d).
    explicit registry(
        std::size_t max_unreg = 1000, std::function<std::uint32_t()> clock = [] {
            return static_cast<std::uint32_t>(std::time(nullptr));
        });

    struct entry {
        node_info info;
        std::uint64_t conn_id = 0;  // the connection that registered it
        std::uint32_t cr_counter = 0;
        std::uint32_t creation() const noexcept;  // as get_creation(): by highest version
    };

    // Registers `info` for connection conn_id. Returns the creation, or nullopt if the name is
    // taken (or invalid).
    std::optional<std::uint32_t> add(const node_info& info, std::uint64_t conn_id);
    // Unregisters by connection (socket closed / more bytes) or by name (STOP). Returns the
    // connection id of the removed node, if any.
    std::optional<std::uint64_t> remove_by_conn(std::uint64_t conn_id);
    std::optional<std::uint64_t> remove_by_name(const std::string& name);

    const entry* find(const std::string& name) const;
    // Newest first, as OTP's list (new nodes are linked at the head).
    const std::list<entry>& active() const noexcept { return reg_; }
    const std::deque<entry>& unused() const noexcept { return unreg_; }
    bool empty() const noexcept { return reg_.empty(); }

  private:
    void retire(std::list<entry>::iterator it);

    std::size_t max_unreg_;
    std::function<std::uint32_t()> clock_;
    std::list<entry> reg_;
    std::deque<entry> unreg_;  // oldest first (FIFO)
};

}  // namespace erl::epmd::detail
