// Demo node: a supervision tree for BEAM nodes to link to, monitor and crash.
//
//   demo_sup   registered supervisor (one_for_one), one permanent child:
//   worker     {link, Pid}             -> links to Pid, replies Pid ! {linked, WorkerPid}
//              {monitor, Pid}          -> monitors Pid; the 'DOWN' is forwarded to Pid (as
//                                         specified; it only arrives if Pid is reachable, e.g.
//                                         a noconnection DOWN is dropped like any message)
//              {monitor, Pid, ReplyTo} -> the same, the 'DOWN' goes to ReplyTo
//              {exit, Reason}          -> the worker exits with Reason; demo_sup restarts it
//   demo_pool  registered simple_one_for_one supervisor of transient pool workers:
//              supervisor:start_child(demo_pool, Args) starts one with Args; it answers
//              {From, args} -> From ! {args, Args}, and {exit, Reason} (a crash is restarted
//              with the same Args, a normal exit is not).
//   demo_pool:worker/1  the pool worker as a process kind other nodes (and remote children
//              of supervisors) may spawn: spawn(DemoNode, demo_pool, worker, [Tag]).
#pragma once

#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/supervisor.hpp>

#include <map>

namespace demo_supervision {

// The worker: not trapping exits, so a crash of a linked process takes it down too (and the
// supervisor restarts it under the same name).
inline void worker_loop(erl::mailbox& m) {
    static const erl::atom link_a("link"), monitor_a("monitor"), exit_a("exit"), linked_a("linked"),
        down_a("DOWN");
    std::map<erl::term, erl::pid> forward;  // monitor ref -> who gets the 'DOWN'
    while (auto msg = m.receive()) {
        if (msg->is_tuple(2) && (*msg)[0].is_atom(link_a) && (*msg)[1].is_pid()) {
            const auto to = (*msg)[1].as_pid();
            m.link(to);
            m.send(to, erl::tuple(linked_a, m.self()));
        } else if ((msg->is_tuple(2) || msg->is_tuple(3)) && (*msg)[0].is_atom(monitor_a) &&
                   (*msg)[1].is_pid()) {
            const auto target = (*msg)[1].as_pid();
            const auto reply_to =
                msg->is_tuple(3) && (*msg)[2].is_pid() ? (*msg)[2].as_pid() : target;
            forward[erl::term(m.monitor(target))] = reply_to;
        } else if (msg->is_tuple(5) && (*msg)[0].is_atom(down_a)) {
            auto it = forward.find((*msg)[1]);
            if (it != forward.end()) {
                m.send(it->second, *msg);
                forward.erase(it);
            }
        } else if (msg->is_tuple(2) && (*msg)[0].is_atom(exit_a)) {
            throw erl::exit_exception((*msg)[1]);
        }
    }
}

// A demo_pool worker: its start arguments are the extra arguments of start_child.
inline void pool_worker(erl::mailbox& m, const erl::term& args) {
    static const erl::atom args_a("args"), exit_a("exit");
    while (auto msg = m.receive()) {
        if (msg->is_tuple(2) && (*msg)[0].is_pid() && (*msg)[1].is_atom(args_a))
            m.send((*msg)[0].as_pid(), erl::tuple(args_a, args));
        else if (msg->is_tuple(2) && (*msg)[0].is_atom(exit_a))
            throw erl::exit_exception((*msg)[1]);
    }
}

// Starts demo_pool (it lives as long as the node) and returns demo_sup.
inline erl::supervisor start(erl::node& node) {
    erl::supervisor_flags flags;
    flags.strategy = erl::restart_strategy::one_for_one;
    flags.intensity = 100;  // a demo is crashed on purpose, often
    flags.period = std::chrono::seconds(10);
    erl::spawn_options worker_opts;
    worker_opts.name = erl::atom("worker");
    erl::spawn_options sup_opts;
    sup_opts.name = erl::atom("demo_sup");
    auto sup = erl::supervisor::start(
        node, flags, {erl::child_spec::worker(erl::atom("worker"), worker_loop, worker_opts)},
        sup_opts);
    erl::add_spawnable(node, erl::atom("demo_pool"), erl::atom("worker"), 1,
                       [](erl::mailbox& m, std::vector<erl::term> args) {
                           pool_worker(m, erl::make_list(std::move(args)));
                       });
    erl::supervisor_flags pool_flags = flags;
    pool_flags.strategy = erl::restart_strategy::simple_one_for_one;
    erl::spawn_options pool_opts;
    pool_opts.name = erl::atom("demo_pool");
    (void)erl::supervisor::start(
        node, pool_flags,
        {erl::child_spec::worker(erl::atom("pool_worker"), erl::args_process_body(pool_worker), {},
                                 erl::restart_type::transient)},
        pool_opts);
    return sup ? *sup : erl::supervisor{};
}

}  // namespace demo_supervision
