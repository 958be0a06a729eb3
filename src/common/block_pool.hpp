// Fixed-size blocks for the objects a process is made of (the process, its coroutine state,
// its table node, its wake-up record, its first mailbox slots), carved from 256 KiB slabs. A node
// spawns and ends processes by the hundred thousand in a row: glibc's allocator then works
// through its bins and coalesces the freed chunks (a third of the instructions of a spawned and
// stopped process went to malloc and free), while a slab hands out the next block of its size
// class and takes it back on a list of its own, under one lock per class.
//
// Bounds: a slab whose blocks are all free again goes back to the system, except one per class
// kept for the next spawns, so the memory of a burst of processes is returned once they are
// gone. Blocks are 16-byte granules up to max_block; larger requests go to operator new. Under
// AddressSanitizer a free block is poisoned until it is handed out again, so a use after free
// is still reported. Term blocks have their own pool (src/term/term.cpp): per-thread free lists
// for blocks that a decode makes and a receive frees soon after, with no lock; this one is
// shared by all threads, for objects made on one thread and freed on another much later.
#pragma once

#include <cstddef>
#include <new>

namespace erl::detail::block_pool {

inline constexpr std::size_t max_block = 512;

// A block of at least `bytes` (aligned to 16); throws std::bad_alloc.
void* allocate(std::size_t bytes);
// Returns a block from allocate(bytes) (the same `bytes`).
void deallocate(void* p, std::size_t bytes) noexcept;

// Slabs held now, all classes together (for tests and stats).
std::size_t slabs() noexcept;

// A standard allocator over the pool, for allocate_shared and node-based containers.
template <class T>
struct allocator {
    using value_type = T;
    allocator() noexcept = default;
    template <class U>
    allocator(const allocator<U>&) noexcept {}  // NOLINT: rebinding converts implicitly
    T* allocate(std::size_t n) {
        static_assert(alignof(T) <= 16, "pool blocks are aligned to 16 bytes");
        return static_cast<T*>(block_pool::allocate(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept { block_pool::deallocate(p, n * sizeof(T)); }
    template <class U>
    friend bool operator==(const allocator&, const allocator<U>&) noexcept {
        return true;
    }
};

}  // namespace erl::detail::block_pool
