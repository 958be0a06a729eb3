#include "node/node_core.hpp"

#include "node/decode_pool.hpp"

#include "common/block_pool.hpp"

#include "node/access.hpp"
#include "node/connection.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "proto/dist_codec.hpp"
#include "proto/dist_flags.hpp"

#include <erl/epmd.hpp>

#include <deque>
#include <iostream>

namespace erl::detail {

namespace dop = proto::dop;

node_core::node_core(node_options o) : opts(std::move(o)) {
    if (opts.decode_threads != 0 && opts.decode_offload_threshold != SIZE_MAX)
        decoder = std::make_unique<decode_pool>(opts.decode_threads);
}

std::shared_ptr<process> node_core::spawn_service(atom service_name,
                                                  std::function<void(term)> handler) {
    auto proc = new_process(std::move(handler));
    table.register_name(service_name, proc);
    return proc;
}

void node_core::start_services() {
    // net_kernel: answers net_adm:ping ({is_auth, Node}) as OTP's net_kernel does; other
    // gen_server calls to net_kernel are ignored (the caller times out, as with a busy
    // net_kernel) and never crash anything.
    spawn_service(A().net_kernel, [this](term msg) {
        if (!msg.is_tuple(3) || !msg[0].is_atom(A().gen_call)) return;
        const term& req = msg[2];
        if (req.is_tuple(2) && req[0].is_atom(A().is_auth))
            runtime::reply(*this, msg[1], term(A().yes));
    });
}

node_core::~node_core() = default;

void node_core::set_spawn_handler(spawn_handler_fn h) {
    std::lock_guard lk(services_mu_);
    spawn_handler_ = std::move(h);
}

node_core::spawn_handler_fn node_core::spawn_handler() const {
    std::lock_guard lk(services_mu_);
    return spawn_handler_;
}

// ------------------------------------------------------------------------------------------
// Statistics (node::stats)

void node_counters::rpc_done(std::chrono::steady_clock::duration d, bool failed) noexcept {
    rpc_served.fetch_add(1, std::memory_order_relaxed);
    if (failed) rpc_failed.fetch_add(1, std::memory_order_relaxed);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    rpc_duration_ns.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
    const double sec = static_cast<double>(ns) * 1e-9;
    std::size_t i = 0;
    while (i < rpc_bounds.size() && sec > rpc_bounds[i])
        ++i;
    rpc_buckets[i].fetch_add(1, std::memory_order_relaxed);
}

void node_counters::handshake_failed(const error_code& why) {
    std::string reason = why.category() == error_category()
                             ? std::string(to_string(static_cast<errc>(why.value())))
                             : why.message();
    std::lock_guard lk(handshake_mu_);
    ++handshake_failures_[reason];
}

void node_counters::fill(node_stats& s) const {
    s.messages_dropped_queue_limit = queue_limit_drops.load(std::memory_order_relaxed);
    s.processes_killed_queue_limit = queue_limit_kills.load(std::memory_order_relaxed);
    s.rpc_calls_served = rpc_served.load(std::memory_order_relaxed);
    s.rpc_calls_failed = rpc_failed.load(std::memory_order_relaxed);
    auto& h = s.rpc_call_duration;
    for (std::size_t i = 0; i < rpc_bounds.size(); ++i) {
        h.upper_bounds.emplace_back(rpc_bounds[i]);
        h.counts.push_back(rpc_buckets[i].load(std::memory_order_relaxed));
    }
    h.overflow = rpc_buckets.back().load(std::memory_order_relaxed);
    h.sum = std::chrono::nanoseconds(rpc_duration_ns.load(std::memory_order_relaxed));
    std::lock_guard lk(handshake_mu_);
    for (const auto& [reason, n] : handshake_failures_)
        s.handshake_failures.push_back({reason, n});
}

node_stats node_core::stats() const {
    node_stats s;
    s.node = name;
    s.taken = std::chrono::system_clock::now();
    s.processes = table.size();
    for (const auto& p : table.snapshot()) {
        std::lock_guard lk(p->mu);
        const std::size_t n = p->queue.size();
        s.message_queue_len_total += n;
        if (n > s.message_queue_len_max) {
            s.message_queue_len_max = n;
            s.message_queue_len_max_pid = p->self;
        }
    }
    s.atoms = atom_table_size();
    s.network_atoms = network_atom_count();
    s.network_atoms_freed = network_atoms_freed();
    s.atom_limit = atom_table_limit();
    counters.fill(s);
    const auto cs = connections.snapshot();
    // Only what the node accounts: the read and write buffers of its connections. Term heaps
    // and mailboxes are not tracked by an allocator of the node's own.
    std::size_t buffers = 0;
    for (const auto& c : cs) {
        std::size_t b = 0;
        s.connections.push_back(c->stats(b));
        buffers += b;
    }
    s.memory.push_back({"connection_buffers", buffers});
    return s;
}

void emit_log(const node_options& opts, const log_event& e) {
    if (opts.logger) {
        opts.logger(e);
    } else if (opts.log) {
        opts.log(format_log_line(e));
    } else {
        std::cerr << format_log_line(e) << std::endl;
    }
}

void node_core::log(log_level level, log_kind kind, std::string_view peer, error_code reason,
                    std::string detail) const {
    if (!logs(level)) return;
    emit_log(opts, {level, kind, name.str(), peer, reason, std::move(detail)});
}

// ------------------------------------------------------------------------------------------
// Processes

std::shared_ptr<process> node_core::new_process(std::function<void(term)> handler,
                                                std::function<void(const term&)> on_exit) {
    auto made = table.create(name, creation.load(), [&](const pid& p) {
        auto proc =
            std::allocate_shared<process>(block_pool::allocator<process>(), shared_from_this(), p);
        // Both set before the process is published.
        if (handler)
            proc->handler = std::make_unique<std::function<void(term)>>(std::move(handler));
        proc->max_queue_len = opts.max_message_queue_len;
        proc->drop_over_limit = opts.message_queue_limit == message_queue_limit_action::drop;
        if (on_exit)
            proc->on_exit = std::make_unique<std::function<void(const term&)>>(std::move(on_exit));
        return proc;
    });
    return std::move(*made);  // without a name, create cannot fail
}

result<std::shared_ptr<process>> node_core::new_named_process(atom n) {
    return table.create(
        name, creation.load(),
        [&](const pid& p) {
            auto proc = std::allocate_shared<process>(block_pool::allocator<process>(),
                                                      shared_from_this(), p);
            proc->max_queue_len = opts.max_message_queue_len;
            proc->drop_over_limit = opts.message_queue_limit == message_queue_limit_action::drop;
            return proc;
        },
        n);
}

void message_queue_limit_reached(process& p, std::size_t refused) {
    node_core& core = *p.node;
    std::size_t limit;
    bool drop, first;
    {
        std::lock_guard lk(p.mu);
        if (p.exited) return;
        limit = p.max_queue_len;
        drop = p.drop_over_limit;
        first = !std::exchange(p.queue_limit_logged, true);
    }
    core.counters.queue_limit_drops.fetch_add(refused, std::memory_order_relaxed);
    if (drop) {
        if (first && core.logs(log_level::warning))
            core.log(log_level::warning, log_kind::limit_exceeded, {},
                     make_error_code(errc::limit_exceeded),
                     "process " + to_string(p.self_term) +
                         ": message queue at max_message_queue_len (" + std::to_string(limit) +
                         "), messages beyond it are dropped");
        return;
    }
    // OTP's max_heap_size with kill => true: an untrappable kill, the process exits `killed`.
    core.counters.queue_limit_kills.fetch_add(1, std::memory_order_relaxed);
    if (core.logs(log_level::warning))
        core.log(log_level::warning, log_kind::limit_exceeded, {},
                 make_error_code(errc::limit_exceeded),
                 "process " + to_string(p.self_term) +
                     " killed: message queue reached max_message_queue_len (" +
                     std::to_string(limit) + ")");
    core.process_exit(p.shared_from_this(), term(A().killed));
}

mailbox node_core::make_handle(const std::shared_ptr<process>& p) {
    // The handle shares ownership through a separate control block: when the last user handle
    // goes away the process exits with `normal`, while the table's own reference stays valid
    // until then.
    auto keep = p;
    std::shared_ptr<process> handle(p.get(), [keep](process* raw) mutable {
        if (!raw->exited) keep->node->process_exit(keep, term(atoms::normal()));
    });
    return access::handle(std::move(handle));
}

std::shared_ptr<process> node_core::find_process(const pid& p) const {
    if (!is_local(p)) return nullptr;
    return table.find(p);
}

std::shared_ptr<process> node_core::find_name(atom n) const {
    return table.find_name(n);
}

namespace {
// What an ended process still has to tell: its exit reason along every link, DOWN to every
// monitoring process, and the end of the monitors it held.
struct exit_fanout {
    std::shared_ptr<process> p;
    term reason;
    std::vector<term> links;
    std::vector<process::watcher> watchers;
    std::vector<process::watched> monitors;
};

// Fan-outs of processes that ended on this thread while an outer process_exit was telling its
// own: that outer call runs them one after another instead of inside each other, so an exit
// running along a chain of links (a process tree, or 100,000 processes each linked to the next)
// takes no stack per process. Each ended process is marked exited at once either way.
thread_local std::deque<exit_fanout>* pending_fanouts = nullptr;

void fan_out(exit_fanout& f) {
    node_core& n = *f.p->node;
    for (auto& l : f.links)
        n.send_exit_signal(f.p->self_term, l, f.reason);
    for (auto& w : f.watchers)
        n.send_monitor_down(w.ident, w.pid, w.ref, f.reason);
    for (auto& m : f.monitors)
        n.remove_monitor_remote(f.p->self_term, m);
}
}  // namespace

void node_core::process_exit(const std::shared_ptr<process>& p, term reason) {
    exit_fanout f{p, std::move(reason), {}, {}, {}};
    process::wake_list wake;
    {
        std::lock_guard lk(p->mu);
        if (p->exited) return;
        p->exited = true;
        p->exit_reason = f.reason;
        p->queue.clear();
        ++p->queue_epoch;
        f.links = p->links.take_active();
        f.watchers.swap(p->watchers);
        f.monitors.swap(p->monitors);
        p->take_waiters_locked(wake);
    }
    process::notify(wake);
    if (p->on_exit) (*p->on_exit)(f.reason);
    table.remove(p);
    // Exit signals to linked processes, DOWN to monitoring ones (Erlang semantics: a process
    // that ends sends its exit reason along every link and monitor).
    if (f.links.empty() && f.watchers.empty() && f.monitors.empty()) return;
    if (pending_fanouts) {
        pending_fanouts->push_back(std::move(f));
        return;
    }
    std::deque<exit_fanout> pending;
    pending_fanouts = &pending;
    struct drained {
        ~drained() { pending_fanouts = nullptr; }
    } reset;
    fan_out(f);
    while (!pending.empty()) {
        exit_fanout next = std::move(pending.front());
        pending.pop_front();
        fan_out(next);
    }
}

reference node_core::make_ref() {
    // Three words as OTP's ordinary references; unique per creation thanks to the counter.
    std::uint64_t n = ref_counter.fetch_add(1, std::memory_order_relaxed);
    reference r;
    r.node = name;
    r.creation = creation.load();
    r.len = 3;
    r.ids = {static_cast<std::uint32_t>(n & 0x3ffff), static_cast<std::uint32_t>(n >> 18),
             static_cast<std::uint32_t>(n >> 50), 0, 0};
    return r;
}

// ------------------------------------------------------------------------------------------
// Routing

error_code node_core::send_pid(const term& from, const pid& to, term msg, send_mode mode) {
    if (to.node == name) {
        if (auto p = find_process(to)) p->deliver(std::move(msg));
        return {};
    }
    if (auto c = connections.connection_to(to.node, true))
        return c->send_to_pid(from, to, msg, mode);
    return {};
}

error_code node_core::send_name(const term& from, atom to_name, atom to_node, term msg,
                                send_mode mode) {
    if (to_node == name) {
        deliver_local_name(from, to_name, std::move(msg));
        return {};
    }
    if (auto c = connections.connection_to(to_node, true))
        return c->send_to_name(from, to_name, msg, mode);
    return {};
}

void node_core::deliver_local_name(const term& from, atom to_name, term msg) {
    if (auto p = find_name(to_name)) p->deliver(std::move(msg));
}

// ------------------------------------------------------------------------------------------
// Incoming distribution messages

void node_core::on_dist_message(const std::shared_ptr<connection>& c, proto::dist_message& m,
                                delivery_batch& batch) {
    // A plain message for a queueing process joins the batch; a service process (handled
    // inline) sees everything batched before it first.
    auto to_process = [&](std::shared_ptr<process> p, term& msg) {
        if (!p) return;
        if (p->handler) {
            batch.flush();
            p->deliver(std::move(msg));
        } else {
            batch.add(std::move(p), std::move(msg));
        }
    };
    // The reader read where the message goes without building its control tuple (and a
    // route always comes with its payload).
    if (m.route.op == dop::reg_send) return to_process(find_name(m.route.to_name), *m.payload);
    if (m.route.op >= 0) return to_process(find_process(m.route.to), *m.payload);
    const term& control = m.control;
    term* payload = m.payload ? &*m.payload : nullptr;
    if (!control.is_tuple() || control.size() < 1 || !control[0].is_small()) {
        batch.flush();
        c->close(make_error_code(errc::bad_control_message), "control message is not a tuple");
        return;
    }
    const auto op = control[0].as_int64();
    const std::size_t n = control.size();
    auto bad = [&] {
        batch.flush();
        c->close(make_error_code(errc::bad_control_message),
                 "malformed control message " + control.to_string());
    };
    switch (op) {
        case dop::send:
        case dop::send_tt:
        case dop::send_sender:
        case dop::send_sender_tt:
            if (n < 3 || !control[2].is_pid() || !payload) return bad();
            to_process(find_process(control[2].as_pid()), *payload);
            return;
        case dop::reg_send:
        case dop::reg_send_tt:
            if (n < 4 || !control[3].is_atom() || !payload) return bad();
            to_process(find_name(control[3].as_atom()), *payload);
            return;
        default:
            break;
    }
    batch.flush();
    switch (op) {
        case dop::alias_send:
        case dop::alias_send_tt:
            if (n < 3 || !control[2].is_reference() || !payload) return bad();
            send_alias(control[1], control[2].as_reference(), std::move(*payload));
            return;
        default:
            on_signal(c, control, payload);
            return;
    }
}

}  // namespace erl::detail
