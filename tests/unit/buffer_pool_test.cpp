// The process-wide pool of large buffers (common/buffer_pool.hpp): reuse, its bounds, and
// giving idle memory back.
#include "common/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

namespace pool = erl::detail::buffer_pool;
using bytes = std::vector<std::uint8_t>;
constexpr std::size_t mib = std::size_t{1} << 20;

bytes with_capacity(std::size_t n) {
    bytes b;
    b.reserve(n);
    return b;
}

TEST(BufferPool, a_given_buffer_is_taken_again_empty) {
    pool::clear();
    pool::user reader;  // as a connection's reader is
    bytes b = with_capacity(3 * mib);
    b.assign(100, 7);
    const auto* mem = b.data();
    const std::size_t cap = b.capacity();
    pool::give(std::move(b));
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(pool::held_buffers(), 1u);
    EXPECT_EQ(pool::held_bytes(), cap);

    bytes again = pool::take(2 * mib);
    EXPECT_EQ(again.data(), mem);
    EXPECT_TRUE(again.empty());
    EXPECT_GE(again.capacity(), 2 * mib);
    EXPECT_EQ(pool::held_buffers(), 0u);
    EXPECT_EQ(pool::held_bytes(), 0u);
}

TEST(BufferPool, the_smallest_fitting_buffer_serves_and_never_one_over_twice_the_request) {
    pool::clear();
    pool::user reader;  // as a connection's reader is
    bytes small = with_capacity(2 * mib), large = with_capacity(8 * mib);
    const auto* small_mem = small.data();
    const auto* large_mem = large.data();
    pool::give(std::move(large));
    pool::give(std::move(small));

    // 1.5 MiB: both fit, the 2 MiB one is the smaller.
    bytes a = pool::take(3 * mib / 2);
    EXPECT_EQ(a.data(), small_mem);
    // 2 MiB: the 8 MiB buffer is more than twice that, so a new buffer is made.
    bytes b = pool::take(2 * mib);
    EXPECT_NE(b.data(), large_mem);
    EXPECT_EQ(pool::held_buffers(), 1u);
    // 5 MiB: the 8 MiB buffer.
    bytes c = pool::take(5 * mib);
    EXPECT_EQ(c.data(), large_mem);
    EXPECT_EQ(pool::held_buffers(), 0u);
    // Below min_capacity nothing is kept or handed out.
    pool::give(with_capacity(pool::min_capacity - 1));
    EXPECT_EQ(pool::held_buffers(), 0u);
}

TEST(BufferPool, count_and_byte_bounds_free_the_longest_kept_first) {
    pool::clear();
    pool::user reader;  // as a connection's reader is
    std::vector<const std::uint8_t*> mems;
    for (std::size_t i = 0; i < pool::max_buffers + 2; ++i) {
        bytes b = with_capacity(pool::min_capacity + i);
        mems.push_back(b.data());
        pool::give(std::move(b));
        EXPECT_LE(pool::held_buffers(), pool::max_buffers);
    }
    EXPECT_EQ(pool::held_buffers(), pool::max_buffers);
    // The last max_buffers given are the ones kept: each is handed out again.
    for (std::size_t i = 2; i < mems.size(); ++i) {
        bytes b = pool::take(pool::min_capacity + i);
        EXPECT_EQ(b.data(), mems[i]) << i;
    }
    EXPECT_EQ(pool::held_buffers(), 0u);

    // Bytes: three buffers of 100 MiB (never touched, so never backed) exceed max_bytes.
    static_assert(3 * 100 * mib > pool::max_bytes && 2 * 100 * mib <= pool::max_bytes);
    for (int i = 0; i < 3; ++i)
        pool::give(with_capacity(100 * mib));
    EXPECT_EQ(pool::held_buffers(), 2u);
    EXPECT_LE(pool::held_bytes(), pool::max_bytes);
    // A buffer larger than max_bytes is never kept, and evicts nothing.
    pool::give(with_capacity(pool::max_bytes + 1));
    EXPECT_EQ(pool::held_buffers(), 2u);
    pool::clear();
    EXPECT_EQ(pool::held_bytes(), 0u);
}

TEST(BufferPool, buffers_idle_longer_than_max_idle_are_freed) {
    pool::clear();
    pool::user reader;  // as a connection's reader is
    const auto given = std::chrono::steady_clock::now();
    pool::give(with_capacity(2 * mib));
    pool::trim(given);
    EXPECT_EQ(pool::held_buffers(), 1u);
    // As a trim at a later tick would see it.
    pool::trim(std::chrono::steady_clock::now() + pool::max_idle + std::chrono::milliseconds(1));
    EXPECT_EQ(pool::held_buffers(), 0u);
    EXPECT_EQ(pool::held_bytes(), 0u);
}

// Kept only while a reader may take them: the last user's end empties the pool, and what is
// given back with no user (a binary outliving every connection) is freed at once.
TEST(BufferPool, buffers_are_kept_only_while_there_is_a_user) {
    pool::clear();
    {
        pool::user first;
        {
            pool::user second;
            pool::give(with_capacity(2 * mib));
            EXPECT_EQ(pool::held_buffers(), 1u);
        }
        EXPECT_EQ(pool::held_buffers(), 1u);  // `first` may still take it
    }
    EXPECT_EQ(pool::held_buffers(), 0u);
    EXPECT_EQ(pool::held_bytes(), 0u);
    pool::give(with_capacity(2 * mib));
    EXPECT_EQ(pool::held_buffers(), 0u);
    EXPECT_EQ(pool::held_bytes(), 0u);
}

}  // namespace
