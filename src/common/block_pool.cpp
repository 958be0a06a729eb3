#include "common/block_pool.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#if defined(__SANITIZE_ADDRESS__)
#define ERLCPP_BLOCK_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ERLCPP_BLOCK_POOL_ASAN 1
#endif
#endif
#ifdef ERLCPP_BLOCK_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define ERLCPP_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define ERLCPP_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ERLCPP_POISON(p, n) ((void)(p), (void)(n))
#define ERLCPP_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace erl::detail::block_pool {

namespace {

constexpr std::size_t granule = 16;
constexpr std::size_t classes = max_block / granule;
constexpr std::size_t slab_size = std::size_t{256} << 10;  // also the slabs' alignment

struct free_block {
    free_block* next;
};

// At the start of its slab; the blocks follow. All fields are guarded by the class's lock.
struct alignas(granule) slab {
    slab* prev = nullptr;  // in the class's list of slabs with room
    slab* next = nullptr;
    free_block* free = nullptr;  // blocks given back
    char* bump = nullptr;        // the first block never handed out
    char* end = nullptr;
    std::size_t used = 0;  // blocks handed out and not given back
    bool listed = false;   // in the list of slabs with room
};

// Plain data with a constant initializer and no destructor to run: usable by objects freed
// during static destruction.
struct size_class {
    std::mutex mu;
    slab* room = nullptr;   // slabs with a free block or room to carve one
    slab* spare = nullptr;  // one slab with no block in use, kept for the next burst
};

constinit size_class g_classes[classes]{};
constinit std::atomic<std::size_t> g_slabs{0};

slab* slab_of(void* p) noexcept {
    return reinterpret_cast<slab*>(reinterpret_cast<std::uintptr_t>(p) & ~(slab_size - 1));
}

// A slab_size-aligned mapping of slab_size bytes: twice that mapped, the unaligned ends unmapped.
slab* new_slab(std::size_t block) {
    void* m =
        ::mmap(nullptr, 2 * slab_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    const auto at = reinterpret_cast<std::uintptr_t>(m);
    const auto aligned = (at + slab_size - 1) & ~(slab_size - 1);
    if (aligned > at) ::munmap(m, aligned - at);
    const auto tail = at + 2 * slab_size - (aligned + slab_size);
    if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + slab_size), tail);
    auto* s = new (reinterpret_cast<void*>(aligned)) slab;
    s->bump = reinterpret_cast<char*>(s) + sizeof(slab);
    s->end = reinterpret_cast<char*>(s) + slab_size - (slab_size - sizeof(slab)) % block;
    g_slabs.fetch_add(1, std::memory_order_relaxed);
    return s;
}

void release(slab* s) noexcept {
    ::munmap(s, slab_size);
    g_slabs.fetch_sub(1, std::memory_order_relaxed);
}

void link(size_class& c, slab* s) noexcept {
    s->prev = nullptr;
    s->next = c.room;
    if (c.room) c.room->prev = s;
    c.room = s;
    s->listed = true;
}

void unlink(size_class& c, slab* s) noexcept {
    if (s->prev)
        s->prev->next = s->next;
    else
        c.room = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
    s->listed = false;
}

}  // namespace

void* allocate(std::size_t bytes) {
    if (bytes == 0 || bytes > max_block) return ::operator new(bytes);
    const std::size_t ci = (bytes + granule - 1) / granule - 1;
    const std::size_t block = (ci + 1) * granule;
    size_class& c = g_classes[ci];
    std::lock_guard lk(c.mu);
    slab* s = c.room;
    if (!s) {
        if (c.spare) {
            s = c.spare;
            c.spare = nullptr;
        } else {
            s = new_slab(block);
        }
        link(c, s);
    }
    void* p;
    if (free_block* f = s->free) {
        ERLCPP_UNPOISON(f, block);
        s->free = f->next;
        p = f;
    } else {
        p = s->bump;
        s->bump += block;
    }
    ++s->used;
    if (!s->free && s->bump + block > s->end) unlink(c, s);
    return p;
}

void deallocate(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    if (bytes == 0 || bytes > max_block) return ::operator delete(p);
    const std::size_t ci = (bytes + granule - 1) / granule - 1;
    const std::size_t block = (ci + 1) * granule;
    size_class& c = g_classes[ci];
    slab* s = slab_of(p);
    slab* gone = nullptr;
    {
        std::lock_guard lk(c.mu);
        auto* f = static_cast<free_block*>(p);
        f->next = s->free;
        s->free = f;
        ERLCPP_POISON(f, block);
        if (!s->listed) link(c, s);
        if (--s->used == 0) {
            // Every block free: carve from the start again, keep it as the spare or unmap it.
            unlink(c, s);
            ERLCPP_UNPOISON(reinterpret_cast<char*>(s) + sizeof(slab), slab_size - sizeof(slab));
            s->free = nullptr;
            s->bump = reinterpret_cast<char*>(s) + sizeof(slab);
            if (!c.spare)
                c.spare = s;
            else
                gone = s;
        }
    }
    if (gone) release(gone);
}

std::size_t slabs() noexcept {
    return g_slabs.load(std::memory_order_relaxed);
}

}  // namespace erl::detail::block_pool
