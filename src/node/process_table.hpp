// The process table of a node: pid -> process, registered names, aliases, and pid allocation.
//
// Lock order (the only place it is written down): the table lock is taken before a process's
// lock (process::mu), never the other way round. The table's methods are the only code that
// holds both, and they call nothing outside this class while holding them; callers never hold
// a process lock when they call into the table. A process's `name` and `aliases` are written
// only here (under both locks), so the table and the process always agree.
//
// Pid numbering. NEW_PID_EXT carries a 32-bit ID and a 32-bit Serial (erl_dist_protocol,
// "NEW_PID_EXT"). Peers that negotiated DFLAG_V4_NC (OTP 24 and later; mandatory from OTP 26)
// take all 64 bits: an OTP 25 node decodes <0.4294967294.4294967293> from another node as it
// is. Peers without V4_NC (OTP 23 and older) refuse an ID above 15 bits or a Serial above 13
// bits. So allocation counts through the 64-bit space such that the first 2^28 pids stay
// within 15+13 bits (every OTP version accepts them) and the numbers after that use the full
// width; the counter wraps only after 2^64 pids, and a number whose pid is still in the table
// is skipped, so a live pid is never handed out twice.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

namespace erl::detail {

struct process;

struct ref_key_hash {
    std::size_t operator()(const reference& r) const noexcept {
        std::size_t h = r.node.hash() ^ r.creation;
        for (auto w : r.words())
            h = h * 1000003u ^ w;
        return h;
    }
};

class process_table {
  public:
    // The table key of a local pid: ID and Serial, the two numbers that tell local pids apart.
    static std::uint64_t key_of(const pid& p) noexcept {
        return (std::uint64_t(p.id) << 32) | p.serial;
    }
    // ID and Serial of allocation number n (see the numbering above): n's bits 0-14 are ID
    // bits 0-14, bits 15-27 Serial bits 0-12, bits 28-44 ID bits 15-31, bits 45-63 Serial
    // bits 13-31. A bijection, so distinct numbers give distinct pids.
    static std::pair<std::uint32_t, std::uint32_t> numbers_of(std::uint64_t n) noexcept {
        const auto id = static_cast<std::uint32_t>((n & 0x7fff) | (((n >> 28) & 0x1ffff) << 15));
        const auto serial = static_cast<std::uint32_t>(((n >> 15) & 0x1fff) | ((n >> 45) << 13));
        return {id, serial};
    }

    // A new process with a pid no process in the table has: `make(pid)` builds it (called
    // with the table locked: it must only construct). With a name, the name is registered in
    // the same step (errc::name_taken if it is in use; nothing is inserted then).
    result<std::shared_ptr<process>> create(
        atom node_name, std::uint32_t creation,
        const std::function<std::shared_ptr<process>(const pid&)>& make,
        std::optional<atom> name = std::nullopt);

    // Removes an exited process: its pid, its name (if still its own) and its aliases.
    void remove(const std::shared_ptr<process>& p);

    std::shared_ptr<process> find(const pid& p) const;
    std::shared_ptr<process> find_name(atom n) const;
    std::shared_ptr<process> find_alias(const reference& r) const;
    bool name_in_use(atom n) const;

    // register/2: errc::name_taken if the name is used or the process has a name already,
    // errc::noproc if it has exited.
    error_code register_name(atom n, const std::shared_ptr<process>& p);
    bool unregister_name(atom n);
    std::vector<atom> registered() const;

    // erlang:alias/0 and unalias/1. Adding to an exited process does nothing.
    void add_alias(const reference& r, const std::shared_ptr<process>& p);
    void remove_alias(const reference& r, const std::shared_ptr<process>& p);

    // Every process in the table, for node-wide walks (node down, stop).
    std::vector<std::shared_ptr<process>> snapshot() const;
    std::size_t size() const;

    // Tests only: the next allocation number (to test the wrap of the counter).
    void set_next_number(std::uint64_t n);

  private:
    mutable std::shared_mutex mu_;
    std::unordered_map<std::uint64_t, std::shared_ptr<process>> procs_;  // key_of(pid)
    std::unordered_map<atom, std::shared_ptr<process>> names_;
    std::unordered_map<reference, std::weak_ptr<process>, ref_key_hash> aliases_;
    std::uint64_t next_ = 1;  // guarded by mu_
};

}  // namespace erl::detail
