// The pool of fixed-size blocks that processes are made of (common/block_pool.hpp): distinct
// aligned blocks, reuse, slabs given back after a burst, and blocks freed on other threads.
#include "common/block_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

namespace pool = erl::detail::block_pool;

TEST(BlockPool, blocks_are_distinct_aligned_and_reused_once_given_back) {
    std::set<void*> seen;
    std::vector<void*> blocks;
    for (int i = 0; i < 1000; ++i) {
        void* p = pool::allocate(100);
        ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u);
        std::memset(p, i & 0xff, 100);
        EXPECT_TRUE(seen.insert(p).second);
        blocks.push_back(p);
    }
    for (int i = 0; i < 1000; ++i) {
        const auto* b = static_cast<const unsigned char*>(blocks[i]);
        ASSERT_EQ(b[0], i & 0xff);
        ASSERT_EQ(b[99], i & 0xff);
    }
    void* last = blocks.back();
    pool::deallocate(last, 100);
    EXPECT_EQ(pool::allocate(100), last);  // the block just given back is handed out next
    for (void* p : blocks)
        pool::deallocate(p, 100);
}

TEST(BlockPool, a_burst_of_blocks_gives_its_slabs_back_when_freed) {
    const std::size_t before = pool::slabs();
    std::vector<void*> blocks;
    for (int i = 0; i < 100000; ++i)
        blocks.push_back(pool::allocate(496));  // ~48 MiB: about 190 slabs
    EXPECT_GE(pool::slabs(), before + 150);
    for (void* p : blocks)
        pool::deallocate(p, 496);
    // One slab of the class stays as the spare for the next burst.
    EXPECT_LE(pool::slabs(), before + 1);
}

TEST(BlockPool, sizes_beyond_the_largest_class_go_to_operator_new) {
    const std::size_t before = pool::slabs();
    void* big = pool::allocate(pool::max_block + 1);
    std::memset(big, 1, pool::max_block + 1);
    pool::deallocate(big, pool::max_block + 1);
    EXPECT_EQ(pool::slabs(), before);
}

TEST(BlockPool, blocks_freed_on_other_threads_keep_their_contents_apart) {
    constexpr int threads = 4;
    constexpr int per_thread = 20000;
    std::vector<std::vector<void*>> made(threads);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                auto* p = static_cast<std::uint64_t*>(pool::allocate(48));
                p[0] = p[5] = static_cast<std::uint64_t>(t) << 32 | static_cast<std::uint32_t>(i);
                made[t].push_back(p);
            }
        });
    for (auto& t : ts)
        t.join();
    ts.clear();
    std::atomic<int> bad{0};
    // Each thread frees another's blocks while allocating and freeing its own.
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            const int other = (t + 1) % threads;
            for (int i = 0; i < per_thread; ++i) {
                auto* p = static_cast<std::uint64_t*>(made[other][i]);
                const auto want =
                    static_cast<std::uint64_t>(other) << 32 | static_cast<std::uint32_t>(i);
                if (p[0] != want || p[5] != want) ++bad;
                pool::deallocate(p, 48);
                void* q = pool::allocate(48);
                std::memset(q, 0xab, 48);
                pool::deallocate(q, 48);
            }
        });
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(bad, 0);
}

TEST(BlockPool, serves_allocate_shared_and_node_containers) {
    struct thing {
        explicit thing(int v) : v(v) {}
        int v;
        char pad[200];
    };
    auto p = std::allocate_shared<thing>(pool::allocator<thing>(), 7);
    EXPECT_EQ(p->v, 7);
    std::unordered_map<int, int, std::hash<int>, std::equal_to<int>,
                       pool::allocator<std::pair<const int, int>>>
        m;
    for (int i = 0; i < 10000; ++i)
        m.emplace(i, i * 2);  // nodes from the pool, the bucket array (large) from operator new
    EXPECT_EQ(m.at(4321), 8642);
    m.clear();
    p.reset();
}

}  // namespace
