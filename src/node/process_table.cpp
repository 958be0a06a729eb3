#include "node/process_table.hpp"

#include "node/process.hpp"

#include <mutex>

namespace erl::detail {

result<std::shared_ptr<process>> process_table::create(
    atom node_name, std::uint32_t creation, function_ref<std::shared_ptr<process>(const pid&)> make,
    std::optional<atom> name) {
    std::unique_lock lk(mu_);
    if (name && names_.count(*name)) return make_error_code(errc::name_taken);
    // At most size() numbers are in use, so this loop ends after size() + 1 steps at most.
    for (;;) {
        const auto [id, serial] = numbers_of(next_++);
        pid p{node_name, id, serial, creation};
        const auto key = key_of(p);
        if (procs_.count(key)) continue;  // still alive from before the counter wrapped
        auto proc = make(p);
        if (name) {
            proc->name = *name;  // not yet published: no other thread can see it
            names_[*name] = proc;
            cache_name(*name, proc);
        }
        procs_.emplace(key, proc);
        pid_cache_.store(slot_of(p), proc);
        // A bigger read array once there are more processes than slots, holding them all.
        pid_cache_.fit(procs_.size(), [this](auto&& fill) {
            for (auto& [k, q] : procs_)
                fill(slot_of(q->self), q);
        });
        return proc;
    }
}

void process_table::remove(const std::shared_ptr<process>& p) {
    std::unique_lock lk(mu_);
    std::optional<atom> name;
    std::vector<reference> aliases;
    {
        std::lock_guard plk(p->mu);
        name = p->name;
        if (p->more) aliases.swap(p->more->aliases);
    }
    auto it = procs_.find(key_of(p->self));
    if (it != procs_.end() && it->second == p) {
        pid_cache_.clear_if(slot_of(p->self), p.get());
        procs_.erase(it);
    }
    if (name) {
        auto n = names_.find(*name);
        if (n != names_.end() && n->second == p) {
            uncache_name(*name);
            names_.erase(n);
        }
    }
    for (auto& r : aliases)
        aliases_.erase(r);
}

void process_table::cache_name(atom n, const std::shared_ptr<process>& p) {
    name_cache_.store(n.hash(), std::make_shared<const name_entry>(name_entry{n, p}));
    name_cache_.fit(names_.size(), [this](auto&& fill) {
        for (auto& [m, q] : names_)
            fill(m.hash(), std::make_shared<const name_entry>(name_entry{m, q}));
    });
}

void process_table::uncache_name(atom n) {
    auto e = name_cache_.load(n.hash());
    if (e && e->name == n) name_cache_.clear_if(n.hash(), e.get());
}

std::shared_ptr<process> process_table::find(const pid& p) const {
    if (auto hit = pid_cache_.load(slot_of(p)); hit && key_of(hit->self) == key_of(p)) return hit;
    std::shared_lock lk(mu_);
    auto it = procs_.find(key_of(p));
    if (it == procs_.end()) return nullptr;
    // Into the read array for the next lookups. Safe under the shared lock: remove() and
    // fit(), which clear slots, take the lock exclusively; two lookups storing into one slot
    // both store a process that is in the table.
    pid_cache_.store(slot_of(p), it->second);
    return it->second;
}

std::shared_ptr<process> process_table::find_name(atom n) const {
    // The entry keeps its process alive: hand out the process under the entry's ownership
    // rather than take another reference.
    if (auto hit = name_cache_.load(n.hash()); hit && hit->name == n) {
        process* proc = hit->proc.get();
        return std::shared_ptr<process>(std::move(hit), proc);
    }
    std::shared_lock lk(mu_);
    auto it = names_.find(n);
    return it == names_.end() ? nullptr : it->second;
}

std::shared_ptr<process> process_table::find_alias(const reference& r) const {
    std::shared_lock lk(mu_);
    auto it = aliases_.find(r);
    return it == aliases_.end() ? nullptr : it->second.lock();
}

bool process_table::name_in_use(atom n) const {
    std::shared_lock lk(mu_);
    return names_.count(n) != 0;
}

error_code process_table::register_name(atom n, const std::shared_ptr<process>& p) {
    std::unique_lock lk(mu_);
    if (names_.count(n)) return make_error_code(errc::name_taken);
    {
        std::lock_guard plk(p->mu);
        // An exiting process has already been (or is being) removed: do not leave its name.
        if (p->exited) return make_error_code(errc::noproc);
        if (p->name) return make_error_code(errc::name_taken);
        p->name = n;
    }
    names_[n] = p;
    cache_name(n, p);
    return {};
}

bool process_table::unregister_name(atom n) {
    std::unique_lock lk(mu_);
    auto it = names_.find(n);
    if (it == names_.end()) return false;
    {
        std::lock_guard plk(it->second->mu);
        it->second->name.reset();
    }
    uncache_name(n);
    names_.erase(it);
    return true;
}

std::vector<atom> process_table::registered() const {
    std::shared_lock lk(mu_);
    std::vector<atom> out;
    out.reserve(names_.size());
    for (auto& [n, p] : names_)
        out.push_back(n);
    return out;
}

void process_table::add_alias(const reference& r, const std::shared_ptr<process>& p) {
    std::unique_lock lk(mu_);
    {
        std::lock_guard plk(p->mu);
        if (p->exited) return;
        p->more_locked().aliases.push_back(r);
    }
    aliases_[r] = p;
}

void process_table::remove_alias(const reference& r, const std::shared_ptr<process>& p) {
    std::unique_lock lk(mu_);
    {
        std::lock_guard plk(p->mu);
        if (p->more) std::erase(p->more->aliases, r);
    }
    auto it = aliases_.find(r);
    if (it != aliases_.end() && it->second.lock() == p) aliases_.erase(it);
}

std::vector<std::shared_ptr<process>> process_table::snapshot() const {
    std::shared_lock lk(mu_);
    std::vector<std::shared_ptr<process>> out;
    out.reserve(procs_.size());
    for (auto& [k, p] : procs_)
        out.push_back(p);
    return out;
}

std::size_t process_table::size() const {
    std::shared_lock lk(mu_);
    return procs_.size();
}

void process_table::set_next_number(std::uint64_t n) {
    std::unique_lock lk(mu_);
    next_ = n;
}

}  // namespace erl::detail
