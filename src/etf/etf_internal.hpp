// Shared helpers of the ETF encoder and decoder (not installed).
#pragma once

#include <erl/etf.hpp>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

namespace erl::etf::detail {

inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    return v;
}
inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
}
inline void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}
inline void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    std::memcpy(p, &v, 8);
}

}  // namespace erl::etf::detail

namespace erl::etf::detail {

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
