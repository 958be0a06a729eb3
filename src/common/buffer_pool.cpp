#include "common/buffer_pool.hpp"

#include <array>
#include <mutex>

namespace erl::detail::buffer_pool {

namespace {

using clock = std::chrono::steady_clock;

struct kept {
    std::vector<std::uint8_t> bytes;
    clock::time_point since;
};

// The kept buffers, oldest first. `buffers` has room for max_buffers entries from the start,
// so keeping one never allocates (give() cannot fail).
struct state {
    state() { buffers.reserve(max_buffers); }
    std::mutex mu;
    std::vector<kept> buffers;
    std::size_t bytes = 0;
    std::size_t users = 0;
};

// Never destroyed: binaries that outlive main() give their buffers back here.
state& pool() {
    static state* s = new state;
    return *s;
}

// Buffers removed from the pool, freed when this goes out of scope (after the pool's lock).
struct released {
    std::array<std::vector<std::uint8_t>, max_buffers> bytes;
    std::size_t n = 0;
};

// Moves the front (oldest) entry of s to `out`.
void release_front(state& s, released& out) noexcept {
    s.bytes -= s.buffers.front().bytes.capacity();
    out.bytes[out.n++] = std::move(s.buffers.front().bytes);
    s.buffers.erase(s.buffers.begin());
}

void release_all(state& s, released& out) noexcept {
    while (!s.buffers.empty())
        release_front(s, out);
}

void release_stale(state& s, clock::time_point now, released& out) noexcept {
    while (!s.buffers.empty() && now - s.buffers.front().since > max_idle)
        release_front(s, out);
}

}  // namespace

user::user() noexcept {
    auto& s = pool();
    std::lock_guard lock(s.mu);
    ++s.users;
}

user::~user() {
    released all;
    auto& s = pool();
    std::lock_guard lock(s.mu);
    if (--s.users == 0) release_all(s, all);
}

std::vector<std::uint8_t> take(std::size_t n) {
    std::vector<std::uint8_t> found;
    if (n >= min_capacity) {
        released stale;
        auto& s = pool();
        std::lock_guard lock(s.mu);
        release_stale(s, clock::now(), stale);
        auto best = s.buffers.end();
        for (auto i = s.buffers.begin(); i != s.buffers.end(); ++i) {
            const std::size_t cap = i->bytes.capacity();
            if (cap >= n && cap / 2 <= n &&
                (best == s.buffers.end() || cap < best->bytes.capacity()))
                best = i;
        }
        if (best != s.buffers.end()) {
            s.bytes -= best->bytes.capacity();
            found = std::move(best->bytes);
            s.buffers.erase(best);
        }
    }
    found.reserve(n);
    return found;
}

void give(std::vector<std::uint8_t>&& v) noexcept {
    std::vector<std::uint8_t> mine = std::move(v);
    const std::size_t cap = mine.capacity();
    if (cap < min_capacity || cap > max_bytes) return;  // freed here
    mine.clear();
    released out;
    auto& s = pool();
    std::lock_guard lock(s.mu);
    if (s.users == 0) return;  // nothing will take it: freed here, after the lock
    const auto now = clock::now();
    release_stale(s, now, out);
    while (!s.buffers.empty() && (s.buffers.size() >= max_buffers || s.bytes + cap > max_bytes))
        release_front(s, out);
    s.buffers.push_back({std::move(mine), now});
    s.bytes += cap;
}

void trim(clock::time_point now) noexcept {
    released stale;
    auto& s = pool();
    std::lock_guard lock(s.mu);
    release_stale(s, now, stale);
}

std::size_t held_bytes() noexcept {
    auto& s = pool();
    std::lock_guard lock(s.mu);
    return s.bytes;
}

std::size_t held_buffers() noexcept {
    auto& s = pool();
    std::lock_guard lock(s.mu);
    return s.buffers.size();
}

void clear() noexcept {
    released all;
    auto& s = pool();
    std::lock_guard lock(s.mu);
    release_all(s, all);
}

}  // namespace erl::detail::buffer_pool
