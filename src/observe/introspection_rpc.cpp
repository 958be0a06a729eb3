// The introspection BIFs registered as rpc functions (module erlang, net_adm:localhost/0).
// Argument checks and results follow erlang(3): a bad argument raises error:badarg with the
// call as its frame, which erpc:call reports as {exception, badarg, [{erlang, F, Args, []}]}
// and rpc:call as {badrpc, {'EXIT', {badarg, ...}}}, as for a BEAM node.
#include "observe/introspection.hpp"

#include <erl/node.hpp>

#include "node/access.hpp"
#include "node/connection.hpp"
#include "node/node_core.hpp"
#include "node/process.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace erl::detail::introspection {

void install_etop(rpc::server& s);

namespace {

using rpc::call_context;
using rpc::detail::raise_badarg;
using args_t = std::span<const term>;

// The program's start, for statistics(wall_clock) (BEAM counts from the emulator's start).
const std::chrono::steady_clock::time_point g_started = std::chrono::steady_clock::now();

// "Since the last call" of statistics/1 (one per node, as BEAM keeps one per node).
struct stats_state {
    std::mutex mu;
    std::int64_t wall_ms = 0, runtime_ms = 0;  // guarded by mu
    std::uint64_t reductions = 0;              // guarded by mu
};

// Port identifiers this node hands out (dist_ctrl's connections, dbg's trace port), one
// counter per node.
struct port_state {
    std::mutex mu;
    std::uint64_t next = 1;               // guarded by mu
    std::map<atom, std::uint64_t> peers;  // guarded by mu
};

erl::port connection_port(node_core& core, atom peer) {
    auto st = core.service_state<port_state>();
    std::lock_guard lk(st->mu);
    auto [it, fresh] = st->peers.try_emplace(peer, st->next);
    if (fresh) ++st->next;
    return {core.name, it->second, core.creation.load()};
}

node_core& core_of(call_context& ctx) {
    return access::core(ctx.node());
}

term num(std::uint64_t v) {
    return term(static_cast<long long>(v));
}

// Local pid argument (erlang(3): a pid of another node is badarg for these BIFs).
const pid& local_pid(call_context& ctx, const term& t) {
    if (!t.is_pid() || !core_of(ctx).is_local(t.as_pid())) raise_badarg(ctx);
    return t.as_pid();
}

std::uint64_t total_reductions(node_core& core) {
    std::uint64_t n = 0;
    for (const auto& p : core.table.snapshot()) {
        std::lock_guard lk(p->mu);
        n += p->delivered.load(std::memory_order_relaxed) - p->queue.size();
    }
    return n;
}

std::int64_t cpu_ms() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

// Parts per second of a time unit (erlang(3) time_unit()); 0 if it is not one. The native
// and perf_counter units are nanoseconds, as on BEAM under Linux.
std::int64_t unit_pps(const term& u) {
    if (u.type() == kind::integer) return u.as_int64() > 0 ? u.as_int64() : 0;
    if (!u.is_atom()) return 0;
    const auto s = u.as_atom().str();
    if (s == "second" || s == "seconds") return 1;
    if (s == "millisecond" || s == "milli_seconds") return 1000;
    if (s == "microsecond" || s == "micro_seconds") return 1000000;
    if (s == "nanosecond" || s == "nano_seconds" || s == "native" || s == "perf_counter")
        return 1000000000;
    return 0;
}

// erlang:convert_time_unit/3 from nanoseconds: rounds towards negative infinity.
term in_unit(std::int64_t ns, std::int64_t pps) {
    const __int128 x = static_cast<__int128>(ns) * pps;
    __int128 q = x / 1000000000;
    if (x % 1000000000 < 0) --q;
    return term(static_cast<long long>(q));
}

std::int64_t system_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}
std::int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

term time_in(call_context& ctx, args_t a, std::int64_t ns) {
    const std::int64_t pps = a.empty() ? 1000000000 : unit_pps(a[0]);
    if (!pps) raise_badarg(ctx);
    return in_unit(ns, pps);
}

std::vector<atom> item_list(call_context& ctx, const term& items) {
    if (!items.is_list() || !items.is_proper_list()) raise_badarg(ctx);
    std::vector<atom> out;
    for (const term& i : items.as_list().elements) {
        if (!i.is_atom() || !known_item(i.as_atom())) raise_badarg(ctx);
        out.push_back(i.as_atom());
    }
    return out;
}

term processes_0(call_context& ctx, args_t) {
    std::vector<term> out;
    for (const auto& p : living(core_of(ctx)))
        out.push_back(p->self_term);
    return make_list(std::move(out));
}

term whereis_1(call_context& ctx, args_t a) {
    if (!a[0].is_atom()) raise_badarg(ctx);
    auto p = core_of(ctx).find_name(a[0].as_atom());
    return p && !p->exited ? p->self_term : term(atom("undefined"));
}

term process_info_1(call_context& ctx, args_t a) {
    auto& core = core_of(ctx);
    auto p = core.find_process(local_pid(ctx, a[0]));
    if (!p || p->exited) return term(atom("undefined"));
    std::vector<atom> items;
    {
        std::lock_guard lk(p->mu);
        if (p->name) items.push_back(atom("registered_name"));
    }
    const auto& d = default_items();
    items.insert(items.end(), d.begin(), d.end());
    return make_list(process_info(core, *p, items, &ctx.self()));
}

term process_info_2(call_context& ctx, args_t a) {
    auto& core = core_of(ctx);
    const pid& target = local_pid(ctx, a[0]);
    const bool single = a[1].is_atom();
    if (single && !known_item(a[1].as_atom())) raise_badarg(ctx);
    const std::vector<atom> items =
        single ? std::vector<atom>{a[1].as_atom()} : item_list(ctx, a[1]);
    auto p = core.find_process(target);
    if (!p || p->exited) return term(atom("undefined"));
    auto out = process_info(core, *p, items, &ctx.self());
    if (!single) return make_list(std::move(out));
    // process_info(P, registered_name) of an unregistered process is [] (erlang(3)).
    if (items[0] == atom("registered_name") && out[0][1].is_nil()) return term();
    return out[0];
}

term memory_0(call_context& ctx, args_t) {
    std::vector<term> out;
    for (const auto& [k, v] : memory(core_of(ctx)))
        out.push_back(make_tuple({term(k), num(v)}));
    return make_list(std::move(out));
}

term memory_1(call_context& ctx, args_t a) {
    const auto all = memory(core_of(ctx));
    auto value = [&](const term& k) {
        if (k.is_atom())
            for (const auto& [key, v] : all)
                if (key == k.as_atom()) return num(v);
        raise_badarg(ctx);
    };
    if (a[0].is_atom()) return value(a[0]);
    if (!a[0].is_list() || !a[0].is_proper_list()) raise_badarg(ctx);
    std::vector<term> out;
    for (const term& k : a[0].as_list().elements)
        out.push_back(make_tuple({k, value(k)}));
    return make_list(std::move(out));
}

std::string machine_architecture() {
#if defined(__x86_64__)
    std::string cpu = "x86_64";
#elif defined(__aarch64__)
    std::string cpu = "aarch64";
#else
    std::string cpu = "unknown";
#endif
    return cpu + "-pc-linux-gnu";
}

term system_info(call_context& ctx, args_t a, unsigned pool_threads) {
    auto& core = core_of(ctx);
    if (!a[0].is_atom()) raise_badarg(ctx);
    const auto k = a[0].as_atom().str();
    const auto threads = static_cast<long long>(std::max(1u, core.opts.threads));
    if (k == "process_count") return num(core.table.size());
    // No limit of its own; reported as BEAM's largest +P.
    if (k == "process_limit") return term(134217727);
    if (k == "atom_count") return num(atom_table_size());
    if (k == "atom_limit") return num(atom_table_limit());
    if (k == "port_count" || k == "ets_count") return term(0);
    if (k == "schedulers" || k == "schedulers_online") return term(threads);
    // The rpc pool is the dirty scheduler of a C++ node (docs/rpc.md).
    if (k == "dirty_cpu_schedulers" || k == "dirty_cpu_schedulers_online")
        return term(static_cast<long long>(pool_threads));
    if (k == "logical_processors" || k == "logical_processors_online" ||
        k == "logical_processors_available")
        return term(static_cast<long long>(std::max(1u, std::thread::hardware_concurrency())));
    if (k == "threads" || k == "smp_support" || k == "kernel_poll") return term(atom("true"));
    if (k == "thread_pool_size") return term(0);
    if (k == "wordsize") return term(static_cast<long long>(sizeof(void*)));
    // The distribution protocol this node speaks is OTP 25's (docs/protocol.md).
    if (k == "otp_release") return charlist("25");
    if (k == "version") return charlist("13.1.5");
    if (k == "system_version")
        return charlist(std::string("erlcpp (distribution of Erlang/OTP 25) [64-bit] [smp:") +
                        std::to_string(threads) + ":" + std::to_string(threads) +
                        "] [rpc-threads:" + std::to_string(pool_threads) + "]\n");
    if (k == "machine") return charlist("erlcpp");
    if (k == "system_architecture") return charlist(machine_architecture());
    if (k == "creation") return num(core.creation.load());
    if (k == "dist_ctrl") {
        // {Node, Port} as for BEAM's TCP distribution: a port per peer stands for the C++
        // connection (it is no Erlang port: ports/0 stays []).
        std::vector<term> out;
        for (atom n : core.connections.connected_nodes(node_type::connected))
            out.push_back(make_tuple({term(n), term(connection_port(core, n))}));
        return make_list(std::move(out));
    }
    raise_badarg(ctx);
}

term statistics(call_context& ctx, args_t a) {
    auto& core = core_of(ctx);
    if (!a[0].is_atom()) raise_badarg(ctx);
    const auto k = a[0].as_atom().str();
    auto st = core.service_state<stats_state>();
    auto since_last = [&](std::int64_t now, std::int64_t& last) {
        std::lock_guard lk(st->mu);
        const std::int64_t d = now - last;
        last = now;
        return make_tuple({term(static_cast<long long>(now)), term(static_cast<long long>(d))});
    };
    if (k == "wall_clock")
        return since_last(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - g_started)
                              .count(),
                          st->wall_ms);
    if (k == "runtime") return since_last(cpu_ms(), st->runtime_ms);
    if (k == "run_queue" || k == "total_run_queue_lengths" || k == "total_active_tasks" ||
        k == "total_run_queue_lengths_all" || k == "total_active_tasks_all")
        return num(runnable(core));
    if (k == "reductions" || k == "exact_reductions") {
        const std::uint64_t now = total_reductions(core);
        std::lock_guard lk(st->mu);
        const std::uint64_t d = now >= st->reductions ? now - st->reductions : 0;
        st->reductions = now;
        return make_tuple({num(now), num(d)});
    }
    if (k == "context_switches") {
        rusage ru{};
        ::getrusage(RUSAGE_SELF, &ru);
        return make_tuple({num(static_cast<std::uint64_t>(ru.ru_nvcsw + ru.ru_nivcsw)), term(0)});
    }
    if (k == "io") {
        std::uint64_t in = 0, out = 0;
        for (const auto& c : core.stats().connections) {
            in += c.bytes_received;
            out += c.bytes_sent;
        }
        return make_tuple({make_tuple({term(atom("input")), num(in)}),
                           make_tuple({term(atom("output")), num(out)})});
    }
    if (k == "garbage_collection") return make_tuple({term(0), term(0), term(0)});
    if (k == "scheduler_wall_time" || k == "scheduler_wall_time_all")
        return scheduler_wall_time(core);
    raise_badarg(ctx);
}

term nodes_of(call_context& ctx, const term& which) {
    auto& n = ctx.node();
    std::vector<atom> kinds;
    if (which.is_atom()) {
        kinds.push_back(which.as_atom());
    } else if (which.is_list() && which.is_proper_list()) {
        for (const term& w : which.as_list().elements) {
            if (!w.is_atom()) raise_badarg(ctx);
            kinds.push_back(w.as_atom());
        }
    } else {
        raise_badarg(ctx);
    }
    std::vector<term> out;
    auto add = [&](atom x) {
        if (std::find(out.begin(), out.end(), term(x)) == out.end()) out.emplace_back(x);
    };
    for (atom k : kinds) {
        const auto s = k.str();
        if (s == "this" || s == "known") add(n.name());
        if (s == "visible" || s == "connected" || s == "known")
            for (atom x : n.nodes(node_type::visible))
                add(x);
        if (s == "hidden" || s == "connected" || s == "known")
            for (atom x : n.nodes(node_type::hidden))
                add(x);
        if (s != "this" && s != "known" && s != "visible" && s != "connected" && s != "hidden")
            raise_badarg(ctx);
    }
    return make_list(std::move(out));
}

// Elixir's Process.info/1,2 and Process.whereis/1 (elixir/lib/process.ex): the BIFs with
// nil where erlang returns undefined, so :erpc.call(Node, Process, :info, [Pid]) works too.
term elixir_nil(term t) {
    return t.is_atom(atom("undefined")) ? term(atom("nil")) : t;
}

}  // namespace

erl::port new_port(node_core& core) {
    auto st = core.service_state<port_state>();
    std::lock_guard lk(st->mu);
    return {core.name, st->next++, core.creation.load()};
}

void install(rpc::server& s, unsigned pool_threads) {
    const atom erlang("erlang");
    const rpc::function_options quick{.run = rpc::run_on::io_thread};
    auto add = [&](const char* f, unsigned arity, rpc::sync_handler fn, bool inline_ = true) {
        s.add_raw(erlang, atom(f), arity, std::move(fn), inline_ ? quick : rpc::function_options{});
    };
    // Walks of every process (and of their queued messages) run on the pool.
    add("processes", 0, processes_0, false);
    add("registered", 0, [](call_context& ctx, args_t) {
        std::vector<term> out;
        for (atom n : core_of(ctx).table.registered())
            out.emplace_back(n);
        return make_list(std::move(out));
    });
    add("whereis", 1, whereis_1);
    add("is_process_alive", 1, [](call_context& ctx, args_t a) {
        auto p = core_of(ctx).find_process(local_pid(ctx, a[0]));
        return term(atom(p && !p->exited ? "true" : "false"));
    });
    add("process_info", 1, process_info_1, false);
    add("process_info", 2, process_info_2, false);
    add("memory", 0, memory_0, false);
    add("memory", 1, memory_1, false);
    add("system_info", 1,
        [pool_threads](call_context& ctx, args_t a) { return system_info(ctx, a, pool_threads); });
    add("statistics", 1, statistics, false);
    add("nodes", 0, [](call_context& ctx, args_t) { return nodes_of(ctx, term(atom("visible"))); });
    add("nodes", 1, [](call_context& ctx, args_t a) { return nodes_of(ctx, a[0]); });
    add("node", 0, [](call_context& ctx, args_t) { return term(ctx.node().name()); });
    add("node", 1, [](call_context& ctx, args_t a) {
        if (a[0].is_pid()) return term(a[0].as_pid().node);
        if (a[0].is_port()) return term(a[0].as_port().node);
        if (a[0].is_reference()) return term(a[0].as_reference().node);
        raise_badarg(ctx);
    });
    add("is_alive", 0, [](call_context& ctx, args_t) {
        return term(atom(ctx.node().alive() ? "true" : "false"));
    });
    add("ports", 0, [](call_context&, args_t) { return term(); });
    add("system_time", 0, [](call_context& ctx, args_t a) { return time_in(ctx, a, system_ns()); });
    add("system_time", 1, [](call_context& ctx, args_t a) { return time_in(ctx, a, system_ns()); });
    add("monotonic_time", 0,
        [](call_context& ctx, args_t a) { return time_in(ctx, a, monotonic_ns()); });
    add("monotonic_time", 1,
        [](call_context& ctx, args_t a) { return time_in(ctx, a, monotonic_ns()); });
    // net_adm:localhost/0: this machine's name, as inet:gethostname/0 gives it.
    s.add_raw(
        atom("net_adm"), atom("localhost"), 0,
        [](call_context&, args_t) {
            char buf[256] = {};
            if (::gethostname(buf, sizeof buf - 1) != 0) return charlist("localhost");
            return charlist(buf);
        },
        quick);
    const atom ex_process("Elixir.Process");
    s.add_raw(ex_process, atom("info"), 1,
              [](call_context& ctx, args_t a) { return elixir_nil(process_info_1(ctx, a)); });
    s.add_raw(ex_process, atom("info"), 2,
              [](call_context& ctx, args_t a) { return elixir_nil(process_info_2(ctx, a)); });
    s.add_raw(
        ex_process, atom("whereis"), 1,
        [](call_context& ctx, args_t a) { return elixir_nil(whereis_1(ctx, a)); }, quick);
    s.add_raw(ex_process, atom("list"), 0, processes_0);
    install_etop(s);
}

}  // namespace erl::detail::introspection
