#include <erl/mailbox.hpp>
#include <erl/process.hpp>

#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/selective_receive.hpp"
#include "node/signals.hpp"

#include <stdexcept>

namespace erl {

namespace {
template <class Pred>
receive_result take_if(detail::process& p, Pred&& pred, std::chrono::milliseconds timeout) {
    std::unique_lock lk(p.mu);
    auto deadline = timeout == infinity ? std::chrono::steady_clock::time_point::max()
                                        : std::chrono::steady_clock::now() + timeout;
    detail::receive_cursor cursor;
    for (;;) {
        if (auto t = cursor.take(p, pred)) return std::move(*t);
        if (p.exited) return receive_result(make_error_code(errc::exited));
        if (!p.cv) p.cv = std::make_unique<std::condition_variable>();
        if (deadline == std::chrono::steady_clock::time_point::max()) {
            p.cv->wait(lk);
        } else if (p.cv->wait_until(lk, deadline) == std::cv_status::timeout) {
            // One last scan of what arrived meanwhile.
            if (auto t = cursor.take(p, pred)) return std::move(*t);
            return receive_result(make_error_code(errc::timeout));
        }
    }
}
}  // namespace

const pid& mailbox::self() const noexcept {
    return p_->self;
}
const term& mailbox::self_term() const noexcept {
    return p_->self_term;
}

std::optional<atom> mailbox::registered_name() const {
    std::lock_guard lk(p_->mu);
    return p_->name;
}

receive_result mailbox::receive(std::chrono::milliseconds timeout) {
    return take_if(
        *p_, [](const term&) { return true; }, timeout);
}

receive_result mailbox::receive_if(const std::function<bool(const term&)>& pred,
                                   std::chrono::milliseconds timeout) {
    return take_if(*p_, pred, timeout);
}

std::size_t mailbox::pending() const {
    std::lock_guard lk(p_->mu);
    return p_->queue.size();
}

// A process that has ended sends nothing (a C++ thread may still be running after its process
// was killed; its messages must not appear to come from a dead pid).
void mailbox::send(const pid& to, term msg) const {
    if (p_->exited.load(std::memory_order_relaxed)) return;
    p_->node->send_pid(p_->self_term, to, std::move(msg), detail::send_mode::wait);
}
void mailbox::send(atom registered_name, term msg) const {
    if (p_->exited.load(std::memory_order_relaxed)) return;
    p_->node->send_name(p_->self_term, registered_name, p_->node->name, std::move(msg));
}
void mailbox::send(atom registered_name, atom to_node, term msg) const {
    if (p_->exited.load(std::memory_order_relaxed)) return;
    p_->node->send_name(p_->self_term, registered_name, to_node, std::move(msg),
                        detail::send_mode::wait);
}
error_code mailbox::try_send(const pid& to, term msg) const {
    if (p_->exited.load(std::memory_order_relaxed)) return {};
    return p_->node->send_pid(p_->self_term, to, std::move(msg), detail::send_mode::try_);
}
error_code mailbox::try_send(atom registered_name, atom to_node, term msg) const {
    if (p_->exited.load(std::memory_order_relaxed)) return {};
    return p_->node->send_name(p_->self_term, registered_name, to_node, std::move(msg),
                               detail::send_mode::try_);
}
void mailbox::send_alias(const reference& alias, term msg) const {
    if (p_->exited.load(std::memory_order_relaxed)) return;
    p_->node->send_alias(p_->self_term, alias, std::move(msg));
}

error_code process_context::try_send(const pid& to, term msg) const {
    if (auto m = handle()) return m.try_send(to, std::move(msg));
    return {};
}
error_code process_context::try_send(atom registered_name, atom to_node, term msg) const {
    if (auto m = handle()) return m.try_send(registered_name, to_node, std::move(msg));
    return {};
}

void mailbox::link(const pid& other) const {
    detail::link(*p_->node, p_, other);
}
void mailbox::unlink(const pid& other) const {
    detail::unlink(*p_->node, p_, other);
}
std::vector<pid> mailbox::links() const {
    std::lock_guard lk(p_->mu);
    std::vector<pid> out;
    for (auto& t : p_->links.active())
        out.push_back(t.as_pid());
    return out;
}

bool mailbox::trap_exit(bool on) const {
    std::lock_guard lk(p_->mu);
    return std::exchange(p_->trap_exit, on);
}
bool mailbox::trapping_exits() const {
    std::lock_guard lk(p_->mu);
    return p_->trap_exit;
}
void mailbox::exit(const pid& to, term reason) const {
    if (p_->exited.load(std::memory_order_relaxed)) return;
    detail::send_exit2(*p_->node, p_->self_term, to, reason);
}

reference mailbox::monitor(const pid& target) const {
    return detail::monitor(*p_->node, p_, term(target));
}
reference mailbox::monitor(atom registered_name) const {
    return detail::monitor(*p_->node, p_, term(registered_name));
}
reference mailbox::monitor(atom registered_name, atom node) const {
    return detail::monitor(*p_->node, p_, make_tuple({term(registered_name), term(node)}));
}
bool mailbox::demonitor(const reference& ref, bool flush) const {
    return detail::demonitor(*p_->node, p_, ref, flush);
}
void mailbox::monitor_node(atom node, bool on) const {
    detail::monitor_node(*p_->node, p_, node, on);
}

std::optional<term> mailbox::exit_reason() const {
    std::lock_guard lk(p_->mu);
    if (!p_->exited) return std::nullopt;
    return p_->exit_reason;
}

reference mailbox::make_alias() const {
    return detail::runtime::make_alias(p_);
}

void mailbox::remove_alias(const reference& alias) const {
    detail::runtime::remove_alias(p_, alias);
}

void mailbox::exit(term reason) const {
    p_->node->process_exit(p_, std::move(reason));
}

bool mailbox::exited() const noexcept {
    std::lock_guard lk(p_->mu);
    return p_->exited;
}

node& mailbox::owner() const {
    node* n = p_->node->facade.load();
    if (!n) throw std::logic_error("erl::mailbox::owner: the node has been destroyed");
    return *n;
}

}  // namespace erl
