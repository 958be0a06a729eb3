// How library code reaches the runtime behind the public types (erl::node, erl::mailbox,
// rpc::call_context, gen_server::running) without public accessors: those types befriend
// `access`, and only files under src/ include this header. Tests use node/test_access.hpp.
#pragma once

#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "node/node_core.hpp"

#include <memory>
#include <utility>

namespace erl::detail {

struct access {
    static node_core& core(erl::node& n) noexcept { return *n.impl_; }
    static const std::shared_ptr<process>& proc(const mailbox& m) noexcept { return m.p_; }
    // A handle on `p`. Dropping it does not end the process (node_core::make_handle does).
    static mailbox handle(std::shared_ptr<process> p) noexcept { return mailbox(std::move(p)); }
    // Constructs a public type through its private constructor.
    template <class T, class... Args>
    static T make(Args&&... args) {
        return T(std::forward<Args>(args)...);
    }
    template <class T, class... Args>
    static std::unique_ptr<T> make_unique(Args&&... args) {
        return std::unique_ptr<T>(new T(std::forward<Args>(args)...));
    }
    template <class T, class... Args>
    static std::shared_ptr<T> make_shared(Args&&... args) {
        return std::shared_ptr<T>(new T(std::forward<Args>(args)...));
    }
};

}  // namespace erl::detail
