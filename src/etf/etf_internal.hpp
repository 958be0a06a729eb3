// Shared helpers of the ETF encoder and decoder (not installed).
#pragma once

#include <erl/etf.hpp>

#include "common/byte_order.hpp"

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

namespace erl::etf::detail {

using namespace erl::detail::byte_order;

// Bytes of a binary that encode_body_gathered left out of its output: they belong at
// out[at] (before the byte there), and stay valid as long as the encoded term does.
struct byte_ref {
    std::size_t at;
    const std::uint8_t* data;
    std::size_t size;
};
// encode_body, except that the bytes of binaries of at least min_ref bytes are not copied: each
// is recorded in `refs` (appended, in output order) for a gathered write.
void encode_body_gathered(std::vector<std::uint8_t>& out, const erl::term& t,
                          atom_cache_writer* cache, std::size_t min_ref,
                          std::vector<byte_ref>& refs);

// The next slot of a walk over a map's pairs, key then value, that counts the halves in `i`.
template <class Pair>
inline auto* next_pair_half(Pair* pairs, std::size_t& i) noexcept {
    auto& pr = pairs[i >> 1];
    return (i++ & 1) ? &pr.second : &pr.first;
}

// A stack of trivially copyable frames with inline room for the common shallow case, so
// encoding or decoding a small term does not allocate for its walk.
template <class T, std::size_t N>
class small_stack {
    static_assert(std::is_trivially_copyable_v<T>);

  public:
    small_stack() = default;
    small_stack(const small_stack&) = delete;
    small_stack& operator=(const small_stack&) = delete;
    ~small_stack() {
        if (data_ != inline_) std::free(data_);
    }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    T& back() noexcept { return data_[size_ - 1]; }
    void pop_back() noexcept { --size_; }
    void push_back(const T& v) {
        if (size_ == cap_) grow();
        data_[size_++] = v;
    }

  private:
    void grow() {
        std::size_t cap = cap_ * 2;
        auto* p = static_cast<T*>(std::malloc(cap * sizeof(T)));
        if (!p) throw std::bad_alloc();
        std::memcpy(static_cast<void*>(p), data_, size_ * sizeof(T));
        if (data_ != inline_) std::free(data_);
        data_ = p;
        cap_ = cap;
    }
    T inline_[N];
    T* data_ = inline_;
    std::size_t size_ = 0;
    std::size_t cap_ = N;
};

}  // namespace erl::etf::detail
