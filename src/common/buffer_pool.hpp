// Large byte buffers kept for reuse. A buffer of megabytes that is new memory costs a page
// fault (and the kernel's clearing of the page) per 4 KiB on first touch: for a 64 MiB
// fragmented message that is ~16,000 faults, about a fifth of its round trip. glibc maps every
// allocation above its mmap threshold (at most 32 MiB) on its own and unmaps it when freed, so a
// stream of large messages would pay that for each one. The buffers that the distribution
// reader assembles large frames and fragmented messages in are taken from here and, once the
// last binary that refers to them is gone, given back here instead of to malloc.
//
// Bounds (process-wide): only buffers of at least `min_capacity` bytes are kept, at most
// `max_buffers` of them and `max_bytes` together; take(n) hands out a kept buffer only if it
// is at most twice n, so a buffer in use is never more than twice what its user asked for. A
// buffer kept longer than `max_idle` is freed at the next take, give or trim (each node's
// connection ticks trim), so a node that stops receiving large messages gives the memory back.
// Buffers are kept only while something may take them again: every distribution reader holds
// a `user`; when the last one ends the pool is emptied, and a buffer given back while there is
// none (a binary that outlived its connections) is freed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace erl::detail::buffer_pool {

inline constexpr std::size_t min_capacity = std::size_t{1} << 20;
inline constexpr std::size_t max_buffers = 4;
inline constexpr std::size_t max_bytes = std::size_t{256} << 20;
inline constexpr std::chrono::milliseconds max_idle{2000};

// Held by each taker of large buffers (a connection's reader) for as long as it may take one.
class user {
  public:
    user() noexcept;
    ~user();
    user(const user&) = delete;
    user& operator=(const user&) = delete;
};

// An empty buffer whose capacity is at least n: the smallest kept one that fits (and is at
// most 2n), else a new one. Below min_capacity, always a new one. Throws std::bad_alloc as
// reserve() does.
std::vector<std::uint8_t> take(std::size_t n);

// Keeps v's memory for reuse when there is a user and the bounds allow (making room by freeing
// the longest-kept buffers), else frees it; v is left empty, holding no buffer. Never throws.
void give(std::vector<std::uint8_t>&& v) noexcept;

// Frees the buffers kept longer than max_idle before `now`.
void trim(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) noexcept;

// Bytes (capacity) and number of the buffers kept now.
std::size_t held_bytes() noexcept;
std::size_t held_buffers() noexcept;

// Frees every kept buffer.
void clear() noexcept;

}  // namespace erl::detail::buffer_pool
