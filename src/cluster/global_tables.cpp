// global.erl's name and lock tables (kernel 8.5); the functions cited are in global.erl.
#include "cluster/global_tables.hpp"

#include <algorithm>

namespace erl::cluster {

// ---- names ---------------------------------------------------------------------------------

void global_name_table::insert(const term& name, const term& pid, const term& method,
                               std::optional<atom> ext_node, const monitor_alloc& alloc,
                               actions& out) {
    erase(name, out);  // ins_name: delete_global_name_keep_pid, then insert_global_name
    auto id = alloc();
    out.push_back(monitor_pid{id, pid});
    names_[name] = entry{pid, method, id, ext_node};
    by_monitor_[id] = name;
}

bool global_name_table::erase(const term& name, actions& out) {
    auto it = names_.find(name);
    if (it == names_.end()) return false;
    out.push_back(demonitor_pid{it->second.mon});
    by_monitor_.erase(it->second.mon);
    names_.erase(it);
    return true;
}

std::optional<term> global_name_table::erase_by_monitor(monitor_id id) {
    auto m = by_monitor_.find(id);
    if (m == by_monitor_.end()) return std::nullopt;
    term name = m->second;
    by_monitor_.erase(m);
    names_.erase(name);
    return name;
}

const global_name_table::entry* global_name_table::find(const term& name) const {
    auto it = names_.find(name);
    return it == names_.end() ? nullptr : &it->second;
}

bool global_name_table::pid_has_name(const term& pid) const {
    return std::any_of(names_.begin(), names_.end(),
                       [&](const auto& n) { return n.second.pid == pid; });
}

term global_name_table::exchange_list() const {
    std::vector<term> out;
    for (const auto& [name, e] : names_)
        out.push_back(tuple(name, e.pid, e.method));
    return make_list(std::move(out));
}

term global_name_table::ext_list() const {
    std::vector<term> out;
    for (const auto& [name, e] : names_)
        if (e.ext_node) out.push_back(tuple(name, e.pid, *e.ext_node));
    return make_list(std::move(out));
}

std::vector<term> global_name_table::names() const {
    std::vector<term> out;
    for (const auto& [name, e] : names_)
        out.push_back(name);
    return out;
}

// ---- locks ---------------------------------------------------------------------------------

bool global_lock_table::can_set(const term& resource, const term& requester) const {
    auto it = locks_.find(resource);
    return it == locks_.end() || it->second.requester == requester;
}

bool global_lock_table::set(const term& resource, const term& requester, const term& pid,
                            const monitor_alloc& alloc, actions& out) {
    if (!can_set(resource, requester)) return false;
    auto& e = locks_[resource];
    e.requester = requester;
    // pid_is_locking/2: a holder asking again keeps its one entry.
    for (const auto& h : e.holders)
        if (h.pid == pid) return true;
    auto id = alloc();
    out.push_back(monitor_pid{id, pid});
    e.holders.insert(e.holders.begin(), holder{pid, id});
    by_monitor_[id] = resource;
    return true;
}

void global_lock_table::remove_holder(std::map<term, entry>::iterator it, std::size_t index) {
    by_monitor_.erase(it->second.holders[index].mon);
    it->second.holders.erase(it->second.holders.begin() + static_cast<std::ptrdiff_t>(index));
    if (it->second.holders.empty()) locks_.erase(it);
}

void global_lock_table::del(const term& resource, const term& requester, const term& pid,
                            actions& out) {
    auto it = locks_.find(resource);
    if (it == locks_.end() || it->second.requester != requester) return;
    auto& hs = it->second.holders;
    for (std::size_t i = 0; i < hs.size(); ++i)
        if (hs[i].pid == pid) {
            out.push_back(demonitor_pid{hs[i].mon});
            remove_holder(it, i);
            return;
        }
}

std::vector<term> global_lock_table::down(monitor_id id) {
    auto m = by_monitor_.find(id);
    if (m == by_monitor_.end()) return {};
    term resource = m->second;
    auto it = locks_.find(resource);
    if (it != locks_.end()) {
        auto& hs = it->second.holders;
        for (std::size_t i = 0; i < hs.size(); ++i)
            if (hs[i].mon == id) {
                remove_holder(it, i);
                break;
            }
    }
    by_monitor_.erase(id);
    return {resource};
}

const global_lock_table::entry* global_lock_table::find(const term& resource) const {
    auto it = locks_.find(resource);
    return it == locks_.end() ? nullptr : &it->second;
}

}  // namespace erl::cluster
