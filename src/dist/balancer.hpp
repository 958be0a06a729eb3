// The target set and the choice of target of erl::dispatch::dispatcher, without I/O: targets
// come and go (add / remove / set_up), calls start and finish (begin / finish), and pick()
// applies the strategy. Pure data: the dispatcher guards it with its mutex; the unit tests drive
// it directly.
#pragma once

#include <erl/dispatch.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace erl::dispatch::detail {

struct target_state {
    dispatch::target id;
    bool up = true;
    std::size_t in_flight = 0;
    double reported_load = 0;
    std::uint64_t calls = 0;
    std::uint64_t failures = 0;
    std::uint64_t overloads = 0;
    std::uint64_t retried_away = 0;
    std::chrono::nanoseconds latency_total{0};
    std::chrono::nanoseconds latency_max{0};
    std::chrono::steady_clock::time_point up_since{};

    target_stats stats() const;
};

class balancer {
  public:
    balancer(strategy how, std::size_t max_in_flight, unsigned hash_points, std::uint64_t seed);

    // Target set. add() of a target already present marks it up; remove() forgets it (its
    // counters go with it); set_up() marks every target on `node`.
    void add(const dispatch::target& t);
    bool remove(const dispatch::target& t);
    void set_up(atom node, bool up);
    // Replaces the set by `ts` (counters of targets that stay are kept).
    void assign(const std::vector<dispatch::target>& ts);

    struct choice {
        std::shared_ptr<target_state> target;  // null: see `error`
        errc error = errc::ok;                 // no_target or overloaded
    };
    // Chooses a target that is up, under its in-flight cap and not in `exclude`, and counts
    // the call as in flight on it. consistent_hash routes by `key` (a missing key hashes as
    // []): the key's first live target on the ring, the next ones only once it is down or
    // excluded (a target at its cap gives overloaded: stateful routing does not move).
    choice pick(const std::optional<term>& key,
                std::span<const std::shared_ptr<target_state>> exclude = {});
    // The call on `t` ended after `latency`; failed: it did not return a value.
    void finish(const std::shared_ptr<target_state>& t, std::chrono::nanoseconds latency,
                bool failed);
    void report_load(atom node, double load);

    std::vector<target_stats> stats() const;
    std::vector<dispatch::target> targets(bool up_only) const;
    std::size_t size() const noexcept { return targets_.size(); }

  private:
    bool eligible(const target_state& t,
                  std::span<const std::shared_ptr<target_state>> exclude) const;
    void rebuild_ring();

    strategy how_;
    std::size_t cap_;
    unsigned hash_points_;
    std::vector<std::shared_ptr<target_state>> targets_;  // in the order they came
    std::size_t next_ = 0;                                // round robin position
    std::mt19937_64 rng_;
    std::map<std::uint64_t, std::shared_ptr<target_state>> ring_;  // consistent hashing
};

// A stable 64-bit hash of a term (its external format), for the hash ring.
std::uint64_t term_hash(const term& t);

}  // namespace erl::dispatch::detail
