// Room for large byte buffers that are filled at once (a message being encoded, the output
// queue). A buffer of megabytes that is new memory costs a page fault per 4 KiB page on first
// touch, more than the copy into it; on kernels with transparent huge pages in `madvise` mode
// the 2 MiB-aligned part of such a buffer is advised to use huge pages, so it faults once per
// 2 MiB instead. Not for buffers filled by a peer's bytes as they arrive: a huge page is backed
// whole on first touch, ahead of what the input bounds count.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace erl::detail {

inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

// Reserves at least `capacity` bytes in v; from 4 MiB on, the whole 2 MiB pages of the new
// storage are advised MADV_HUGEPAGE (before anything touches them).
inline void reserve_large(std::vector<std::uint8_t>& v, std::size_t capacity) {
    if (capacity <= v.capacity()) return;
    v.reserve(capacity);
    if (capacity < 2 * huge_page_bytes) return;
    const auto begin = reinterpret_cast<std::uintptr_t>(v.data() + v.size());
    const auto end = reinterpret_cast<std::uintptr_t>(v.data() + v.capacity());
    const std::uintptr_t first = (begin + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
    const std::uintptr_t last = end & ~(huge_page_bytes - 1);
    if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

}  // namespace erl::detail
