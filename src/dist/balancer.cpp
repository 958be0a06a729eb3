// Target choice for erl::dispatch (src/dist/balancer.hpp).
#include "dist/balancer.hpp"

#include <erl/etf.hpp>

#include <algorithm>
#include <limits>

namespace erl::dispatch::detail {

namespace {

// FNV-1a over bytes, then a 64-bit finaliser (splitmix64) so that nearby inputs (the ring
// points of one target differ in one counter) land far apart on the ring.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::uint64_t fnv(std::span<const std::uint8_t> b, std::uint64_t h = 0xcbf29ce484222325ULL) {
    for (auto c : b) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

term target_term(const dispatch::target& t) {
    if (t.process) return term(*t.process);
    return term(t.node);
}

}  // namespace

std::uint64_t term_hash(const term& t) {
    const auto bytes = etf::encode(t);
    return mix(fnv(bytes));
}

target_stats target_state::stats() const {
    return {.target = id,
            .up = up,
            .in_flight = in_flight,
            .calls = calls,
            .failures = failures,
            .overloads = overloads,
            .latency_total = latency_total,
            .latency_max = latency_max,
            .reported_load = reported_load,
            .up_since = up_since};
}

balancer::balancer(strategy how, std::size_t max_in_flight, unsigned hash_points,
                   std::uint64_t seed)
    : how_(how),
      cap_(max_in_flight ? max_in_flight : 1),
      hash_points_(hash_points ? hash_points : 1),
      rng_(seed ? seed : std::random_device{}()) {}

void balancer::add(const dispatch::target& t) {
    for (auto& x : targets_) {
        if (x->id == t) {
            if (!x->up) x->up_since = std::chrono::steady_clock::now();
            x->up = true;
            return;
        }
    }
    auto s = std::make_shared<target_state>();
    s->id = t;
    s->up_since = std::chrono::steady_clock::now();
    targets_.push_back(std::move(s));
    rebuild_ring();
}

bool balancer::remove(const dispatch::target& t) {
    auto it =
        std::find_if(targets_.begin(), targets_.end(), [&](const auto& x) { return x->id == t; });
    if (it == targets_.end()) return false;
    (*it)->up = false;  // a call still holding it sees it gone
    targets_.erase(it);
    rebuild_ring();
    return true;
}

void balancer::set_up(atom node, bool up) {
    const auto now = std::chrono::steady_clock::now();
    for (auto& x : targets_) {
        if (x->id.node != node) continue;
        if (up && !x->up) x->up_since = now;
        x->up = up;
    }
}

void balancer::assign(const std::vector<dispatch::target>& ts) {
    std::vector<std::shared_ptr<target_state>> next;
    for (const auto& t : ts) {
        auto it = std::find_if(targets_.begin(), targets_.end(),
                               [&](const auto& x) { return x->id == t; });
        if (it != targets_.end()) {
            next.push_back(*it);
        } else {
            auto s = std::make_shared<target_state>();
            s->id = t;
            s->up_since = std::chrono::steady_clock::now();
            next.push_back(std::move(s));
        }
    }
    for (auto& old : targets_)
        if (std::find(next.begin(), next.end(), old) == next.end()) old->up = false;
    targets_ = std::move(next);
    rebuild_ring();
}

void balancer::rebuild_ring() {
    ring_.clear();
    if (how_ != strategy::consistent_hash) return;
    for (auto& t : targets_) {
        const std::uint64_t base = term_hash(target_term(t->id));
        for (unsigned i = 0; i < hash_points_; ++i)
            ring_.emplace(mix(base + i), t);
    }
}

bool balancer::eligible(const target_state& t,
                        std::span<const std::shared_ptr<target_state>> exclude) const {
    if (!t.up) return false;
    for (auto& e : exclude)
        if (e.get() == &t) return false;
    return true;
}

balancer::choice balancer::pick(const std::optional<term>& key,
                                std::span<const std::shared_ptr<target_state>> exclude) {
    choice c;
    std::shared_ptr<target_state> chosen;
    bool any_eligible = false;
    const std::size_t n = targets_.size();
    // Up, not excluded and under its cap (a refusal at the cap is counted).
    auto usable = [&](target_state& t) {
        if (!eligible(t, exclude)) return false;
        any_eligible = true;
        if (t.in_flight < cap_) return true;
        ++t.overloads;
        return false;
    };
    switch (how_) {
        case strategy::round_robin: {
            for (std::size_t i = 0; i < n && !chosen; ++i) {
                auto& t = targets_[(next_ + i) % n];
                if (!usable(*t)) continue;
                chosen = t;
                next_ = (next_ + i + 1) % n;
            }
            break;
        }
        case strategy::least_loaded:
        case strategy::least_reported_load: {
            // Scan from the round-robin position so ties go to each target in turn.
            auto better = [&](const target_state& a, const target_state& b) {
                if (how_ == strategy::least_reported_load && a.reported_load != b.reported_load)
                    return a.reported_load < b.reported_load;
                return a.in_flight < b.in_flight;
            };
            std::size_t best_i = 0;
            for (std::size_t i = 0; i < n; ++i) {
                auto& t = targets_[(next_ + i) % n];
                if (!usable(*t)) continue;
                if (!chosen || better(*t, *chosen)) {
                    chosen = t;
                    best_i = i;
                }
            }
            if (chosen) next_ = (next_ + best_i + 1) % n;
            break;
        }
        case strategy::random: {
            std::vector<std::shared_ptr<target_state>*> live;
            for (auto& t : targets_)
                if (usable(*t)) live.push_back(&t);
            if (!live.empty()) {
                std::uniform_int_distribution<std::size_t> d(0, live.size() - 1);
                chosen = *live[d(rng_)];
            }
            break;
        }
        case strategy::consistent_hash: {
            if (ring_.empty()) break;
            auto it = ring_.lower_bound(term_hash(key ? *key : term()));
            // Walk the ring from the key's point to its first live target; a busy one ends
            // the walk: the key's calls do not move while their target lives.
            for (std::size_t seen = 0; seen < ring_.size(); ++seen, ++it) {
                if (it == ring_.end()) it = ring_.begin();
                if (!eligible(*it->second, exclude)) continue;
                if (usable(*it->second)) chosen = it->second;
                break;
            }
            break;
        }
    }
    if (!chosen) {
        c.error = any_eligible ? errc::overloaded : errc::no_target;
        return c;
    }
    ++chosen->in_flight;
    ++chosen->calls;
    c.target = std::move(chosen);
    return c;
}

void balancer::finish(const std::shared_ptr<target_state>& t, std::chrono::nanoseconds latency,
                      bool failed) {
    if (t->in_flight) --t->in_flight;
    if (failed) ++t->failures;
    t->latency_total += latency;
    t->latency_max = std::max(t->latency_max, latency);
}

void balancer::report_load(atom node, double load) {
    for (auto& t : targets_)
        if (t->id.node == node) t->reported_load = load;
}

std::vector<target_stats> balancer::stats() const {
    std::vector<target_stats> out;
    out.reserve(targets_.size());
    for (auto& t : targets_)
        out.push_back(t->stats());
    return out;
}

std::vector<dispatch::target> balancer::targets(bool up_only) const {
    std::vector<dispatch::target> out;
    for (auto& t : targets_)
        if (!up_only || t->up) out.push_back(t->id);
    return out;
}

}  // namespace erl::dispatch::detail
