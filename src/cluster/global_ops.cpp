// The node's own global operations on global_server: global.erl's client functions
// register_name/3, re_register_name/3, unregister_name/1 (through the registrar's
// trans_all_known/1), set_lock/4, del_lock/2, with random_sleep/1's back-off.
#include "cluster/global_server.hpp"
#include "cluster/global_terms.hpp"

#include <algorithm>

namespace erl::cluster {

using namespace detail;

// random_sleep/1: 1/4 s the first time, doubling up to 8 s.
void global_server::after_random_sleep(int times, std::function<void(actions&)> then,
                                       actions& out) {
    std::uint64_t tmax = times > 5 ? 8000 : ((std::uint64_t{1} << times) * 1000) / 8;
    auto t = next_timer_++;
    timers_[t] = std::move(then);
    out.push_back(timer_start{t, std::chrono::milliseconds(1 + random_below(tmax))});
}

// trans_all_known/1 + set_lock_known/2: take {global, Registrar} on the boss, then on every
// known node, and make sure no node became known meanwhile; run `fun` on the locked nodes;
// release (boss last); then the operation is done with fun's result.
void global_server::trans_all_known(
    std::uint64_t op, int times,
    std::function<void(std::vector<atom>, std::function<void(term, actions&)>, actions&)> fun,
    actions& out) {
    term id = tuple(A("global"), cfg_.registrar);
    std::vector<atom> known_now = known();
    std::vector<atom> nodes = known_now;
    nodes.insert(nodes.begin(), cfg_.node);
    atom boss = max_node(nodes);
    auto retry = [this, op, times, fun](actions& o) { trans_all_known(op, times + 1, fun, o); };
    set_lock_on_nodes(
        id, cfg_.registrar, {boss},
        [=, this](bool ok, actions& o1) {
            if (!ok) {
                after_random_sleep(times, retry, o1);
                return;
            }
            set_lock_on_nodes(
                id, cfg_.registrar, nodes,
                [=, this](bool ok2, actions& o2) {
                    auto now = known();
                    bool grown = std::any_of(now.begin(), now.end(), [&](atom n) {
                        return std::find(known_now.begin(), known_now.end(), n) == known_now.end();
                    });
                    if (!ok2 || grown) {
                        multi_call_servers({boss}, tuple(A("del_lock"), id), cfg_.registrar, {},
                                           o2);
                        after_random_sleep(times, retry, o2);
                        return;
                    }
                    fun(
                        nodes,
                        [this, op, id, nodes](term result, actions& o3) {
                            delete_global_lock(
                                id, nodes, cfg_.registrar,
                                [this, op, result](actions& o4) { finish_op(op, result, o4); }, o3);
                        },
                        o2);
                },
                o1);
        },
        out);
}

std::uint64_t global_server::register_name(const term& name, const term& pid, const term& method,
                                           actions& out) {
    return register_op(name, pid, method, true, out);
}

std::uint64_t global_server::re_register_name(const term& name, const term& pid, const term& method,
                                              actions& out) {
    return register_op(name, pid, method, false, out);
}

// register_name/3 (only_free: a free name, and check_dupname/2) and re_register_name/3.
std::uint64_t global_server::register_op(const term& name, const term& pid, const term& method,
                                         bool only_free, actions& out) {
    auto op = next_op_++;
    trans_all_known(
        op, 0,
        [this, name, pid, method, only_free](std::vector<atom> nodes,
                                             std::function<void(term, actions&)> fin, actions& o) {
            if (only_free && names_.find(name)) {
                fin(A("no"), o);
                return;
            }
            if (only_free && names_.pid_has_name(pid)) {
                o.push_back(
                    log_line{log_line::level::error,
                             "global: " + pid.to_string() + " registered under several names"});
                fin(A("no"), o);
                return;
            }
            multi_call_servers(
                nodes, tuple(A("register"), name, pid, method), cfg_.registrar,
                [fin](std::vector<std::pair<atom, term>>, actions& o2) { fin(A("yes"), o2); }, o);
        },
        out);
    locker_pump(out);
    return op;
}

std::uint64_t global_server::unregister_name(const term& name, actions& out) {
    auto op = next_op_++;
    if (!names_.find(name)) {
        finish_op(op, atoms::ok(), out);
        return op;
    }
    trans_all_known(
        op, 0,
        [this, name](std::vector<atom> nodes, std::function<void(term, actions&)> fin, actions& o) {
            multi_call_servers(
                nodes, tuple(A("unregister"), name), cfg_.registrar,
                [fin](std::vector<std::pair<atom, term>>, actions& o2) { fin(atoms::ok(), o2); },
                o);
        },
        out);
    locker_pump(out);
    return op;
}

void global_server::set_lock_retry(std::uint64_t op, const term& id, const term& caller,
                                   std::vector<atom> nodes, int retries, int times, actions& out) {
    if (nodes.empty()) {
        finish_op(op, true, out);
        return;
    }
    set_lock_on_nodes(
        id, caller, nodes,
        [=, this](bool ok, actions& o) {
            if (ok) {
                finish_op(op, true, o);
            } else if (retries == 0) {
                finish_op(op, false, o);
            } else {
                after_random_sleep(
                    times,
                    [=, this](actions& o2) {
                        set_lock_retry(op, id, caller, nodes, retries < 0 ? retries : retries - 1,
                                       times + 1, o2);
                    },
                    o);
            }
        },
        out);
}

std::uint64_t global_server::set_lock(const term& id, const term& caller, std::vector<atom> nodes,
                                      int retries, actions& out) {
    auto op = next_op_++;
    set_lock_retry(op, id, caller, std::move(nodes), retries, 1, out);
    locker_pump(out);
    return op;
}

std::uint64_t global_server::del_lock(const term& id, const term& caller, std::vector<atom> nodes,
                                      actions& out) {
    auto op = next_op_++;
    multi_call_servers(
        std::move(nodes), tuple(A("del_lock"), id), caller,
        [this, op](std::vector<std::pair<atom, term>>, actions& o) { finish_op(op, true, o); },
        out);
    locker_pump(out);
    return op;
}

}  // namespace erl::cluster
