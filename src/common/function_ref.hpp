// A non-owning reference to a callable, for a call that only runs it before it returns: unlike
// std::function it never allocates, whatever the callable captures.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace erl::detail {

template <class Sig>
class function_ref;

template <class R, class... Args>
class function_ref<R(Args...)> {
  public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref> &&
                                                std::is_invocable_r_v<R, F&, Args...>>>
    function_ref(F&& f) noexcept  // NOLINT: converts like std::function
        : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* o, Args... a) -> R {
              return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
          }) {}

    R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

  private:
    void* obj_;
    R (*call_)(void*, Args...);
};

}  // namespace erl::detail
