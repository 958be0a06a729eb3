// The introspection BIFs (src/observe/introspection.hpp) as rpc functions of module `erlang`
// (and net_adm:localhost/0). Shapes and errors follow the Erlang reference manual (erlang(3):
// process_info/2, memory/0, system_info/1, statistics/1, time and time unit sections); every
// value is read from the node's own state when the call arrives, nothing is kept up to date in
// advance except the counters of process.hpp and term.cpp.
#include "observe/introspection.hpp"

#include <erl/node.hpp>

#include "node/access.hpp"
#include "node/connection.hpp"
#include "node/node_core.hpp"
#include "node/process.hpp"
#include "term/term_internal.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace erl::detail::introspection {

namespace {

struct atoms {
    atom erlang{"erlang"}, erlcpp{"erlcpp"}, service{"service"}, mailbox{"mailbox"},
        undefined{"undefined"}, true_{"true"}, false_{"false"}, process{"process"},
        registered_name{"registered_name"}, message_queue_len{"message_queue_len"},
        messages{"messages"}, links{"links"}, monitors{"monitors"}, monitored_by{"monitored_by"},
        status{"status"}, trap_exit{"trap_exit"}, memory{"memory"},
        current_function{"current_function"}, initial_call{"initial_call"},
        reductions{"reductions"}, dictionary{"dictionary"}, error_handler{"error_handler"},
        priority{"priority"}, normal{"normal"}, group_leader{"group_leader"},
        total_heap_size{"total_heap_size"}, heap_size{"heap_size"}, stack_size{"stack_size"},
        garbage_collection{"garbage_collection"}, suspending{"suspending"},
        current_stacktrace{"current_stacktrace"}, message_queue_data{"message_queue_data"},
        on_heap{"on_heap"}, exiting{"exiting"}, waiting{"waiting"}, running{"running"},
        runnable{"runnable"}, total{"total"}, processes{"processes"},
        processes_used{"processes_used"}, system{"system"}, atom_{"atom"}, atom_used{"atom_used"},
        binary{"binary"}, code{"code"}, ets{"ets"}, net_kernel{"net_kernel"}, proc_lib{"proc_lib"},
        init_p{"init_p"}, gen_server{"gen_server"}, loop{"loop"};
};
const atoms& X() {
    static const atoms a;
    return a;
}

term mfa_term(atom m, atom f, std::uint32_t arity) {
    return make_tuple({term(m), term(f), term(static_cast<long long>(arity))});
}

// {M, F, Arity} of what was described, else the process kind.
term described(const process& p, const process::mfa& d) {
    if (!d.m.empty()) return mfa_term(d.m, d.f, d.arity);
    return p.handler ? mfa_term(X().erlcpp, X().service, 1) : mfa_term(X().erlcpp, X().mailbox, 0);
}

// Bytes of the heap blocks reachable from `t`, each block once (shared subterms are shared in
// memory too). An explicit stack: terms may be a million levels deep.
class heap_walk {
  public:
    void add(const term& t) {
        stack_.push_back(&t);
        while (!stack_.empty()) {
            const term* x = stack_.back();
            stack_.pop_back();
            heap_header* h = x->heap();
            if (!h || !seen_.insert(h).second) continue;
            bytes_ += block_bytes(h);
            switch (h->kind) {
                case kind::tuple: {
                    term* e = reinterpret_cast<tuple_block*>(h)->elems();
                    for (std::size_t i = 0; i < h->size; ++i)
                        stack_.push_back(e + i);
                    break;
                }
                case kind::list: {
                    auto* b = reinterpret_cast<list_block*>(h);
                    stack_.push_back(&b->tail);
                    if (h->flags == elems_immediate) break;
                    for (std::size_t i = 0; i < h->size; ++i)
                        stack_.push_back(b->elems() + i);
                    break;
                }
                case kind::map: {
                    auto* pr = reinterpret_cast<map_block*>(h)->pairs();
                    for (std::size_t i = 0; i < h->size; ++i) {
                        stack_.push_back(&pr[i].first);
                        stack_.push_back(&pr[i].second);
                    }
                    break;
                }
                case kind::fun:
                    if (h->flags != 1) {
                        const auto& c = reinterpret_cast<value_block<closure>*>(h)->value;
                        stack_.push_back(&c.pid);
                        for (const auto& v : c.free_vars)
                            stack_.push_back(&v);
                    }
                    break;
                default:
                    break;
            }
        }
    }
    std::size_t bytes() const noexcept { return bytes_; }

  private:
    std::vector<const term*> stack_;
    std::unordered_set<const heap_header*> seen_;
    std::size_t bytes_ = 0;
};

// With p.mu held: the bytes the process holds — its structure, its queue's slots, the
// messages' heaps, its link, monitor and alias tables.
std::size_t memory_locked(const process& p, std::size_t* heap_bytes = nullptr) {
    heap_walk w;
    for (const term& m : p.queue)
        w.add(m);
    if (heap_bytes) *heap_bytes = w.bytes();
    return sizeof(process) + p.queue.size() * sizeof(term) + w.bytes() +
           p.links.entries().capacity() * sizeof(link_table::entry) +
           p.watchers.capacity() * sizeof(process::watcher) +
           p.monitors.capacity() * sizeof(process::watched) +
           (p.more
                ? sizeof(process::extras) + p.more->aliases.capacity() * sizeof(reference) +
                      p.more->node_watches.capacity() * sizeof(atom) +
                      p.more->spawn_requests.capacity() * sizeof(process::spawn_request) +
                      // a list node: the callable and its two links
                      p.more->waiters.size() * (sizeof(std::function<void()>) + 2 * sizeof(void*))
                : 0);
}

std::uint64_t reductions_locked(const process& p) {
    return p.delivered.load(std::memory_order_relaxed) - p.queue.size();
}

atom status_locked(const process& p, const pid* self) {
    if (p.exited) return X().exiting;
    if (self && *self == p.self) return X().running;
    if (!p.handler && !p.queue.empty()) return X().runnable;
    return X().waiting;
}

term kv(atom k, term v) {
    return make_tuple({term(k), std::move(v)});
}

}  // namespace

std::vector<std::shared_ptr<process>> living(node_core& core) {
    auto all = core.table.snapshot();
    std::erase_if(all, [](const auto& p) { return p->exited.load(); });
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return std::pair(a->self.serial, a->self.id) < std::pair(b->self.serial, b->self.id);
    });
    return all;
}

std::uint64_t runnable(node_core& core) {
    std::uint64_t n = 0;
    for (const auto& p : core.table.snapshot()) {
        std::lock_guard lk(p->mu);
        if (!p->handler && !p->exited && !p->queue.empty()) ++n;
    }
    return n;
}

void describe(process& p, atom initial_m, atom initial_f, std::uint32_t initial_arity, atom m,
              atom f, std::uint32_t arity) {
    std::lock_guard lk(p.mu);
    p.initial_call = {initial_m, initial_f, initial_arity};
    p.current_function = {m, f, arity};
}

void describe_gen_server(process& p) {
    const auto& a = X();
    describe(p, a.proc_lib, a.init_p, 5, a.gen_server, a.loop, 7);
}

bool known_item(atom item) {
    const auto& a = X();
    static const std::vector<atom> known{a.registered_name,
                                         a.message_queue_len,
                                         a.messages,
                                         a.links,
                                         a.monitors,
                                         a.monitored_by,
                                         a.status,
                                         a.trap_exit,
                                         a.memory,
                                         a.total_heap_size,
                                         a.heap_size,
                                         a.stack_size,
                                         a.current_function,
                                         a.initial_call,
                                         a.current_stacktrace,
                                         a.reductions,
                                         a.dictionary,
                                         a.garbage_collection,
                                         a.suspending,
                                         a.error_handler,
                                         a.priority,
                                         a.message_queue_data,
                                         a.group_leader};
    return std::find(known.begin(), known.end(), item) != known.end();
}

const std::vector<atom>& default_items() {
    const auto& a = X();
    // erlang(3) process_info/1: the items BEAM lists, in its order.
    static const std::vector<atom> items{
        a.current_function,  a.initial_call,    a.status,
        a.message_queue_len, a.links,           a.dictionary,
        a.trap_exit,         a.error_handler,   a.priority,
        a.group_leader,      a.total_heap_size, a.heap_size,
        a.stack_size,        a.reductions,      a.garbage_collection,
        a.suspending};
    return items;
}

std::vector<term> process_info(node_core& core, process& p, const std::vector<atom>& items,
                               const pid* self) {
    const auto& a = X();
    std::vector<term> out;
    out.reserve(items.size());
    std::lock_guard lk(p.mu);
    for (atom it : items) {
        if (it == a.registered_name) {
            out.push_back(kv(it, p.name ? term(*p.name) : term()));
        } else if (it == a.message_queue_len) {
            out.push_back(kv(it, term(static_cast<long long>(p.queue.size()))));
        } else if (it == a.messages) {
            std::vector<term> ms;
            const std::size_t n = std::min(p.queue.size(), messages_bound);
            ms.reserve(n);
            for (std::size_t i = 0; i < n; ++i)
                ms.push_back(p.queue[i]);
            out.push_back(kv(it, make_list(std::move(ms))));
        } else if (it == a.links) {
            out.push_back(kv(it, make_list(p.links.active())));
        } else if (it == a.monitors) {
            // erlang(3): {process, Pid} for a monitor by pid, {process, {Name, Node}} by name.
            std::vector<term> ms;
            for (const auto& m : p.monitors) {
                if (m.target.is_pid())
                    ms.push_back(kv(a.process, m.target));
                else if (m.target.is_atom())
                    ms.push_back(kv(a.process, make_tuple({m.target, term(m.node)})));
            }
            out.push_back(kv(it, make_list(std::move(ms))));
        } else if (it == a.monitored_by) {
            std::vector<term> ws;
            for (const auto& w : p.watchers)
                if (std::find(ws.begin(), ws.end(), w.pid) == ws.end()) ws.push_back(w.pid);
            out.push_back(kv(it, make_list(std::move(ws))));
        } else if (it == a.status) {
            out.push_back(kv(it, term(status_locked(p, self))));
        } else if (it == a.trap_exit) {
            out.push_back(kv(it, term(p.trap_exit ? a.true_ : a.false_)));
        } else if (it == a.memory) {
            out.push_back(kv(it, term(static_cast<long long>(memory_locked(p)))));
        } else if (it == a.total_heap_size || it == a.heap_size) {
            // Words, as BEAM counts heaps: the queued messages' heap blocks.
            std::size_t heap = 0;
            memory_locked(p, &heap);
            out.push_back(kv(it, term(static_cast<long long>(heap / sizeof(void*)))));
        } else if (it == a.stack_size) {
            out.push_back(kv(it, term(0)));  // C++ code keeps no Erlang stack
        } else if (it == a.current_function) {
            out.push_back(kv(it, described(p, p.current_function)));
        } else if (it == a.initial_call) {
            out.push_back(kv(it, described(p, p.initial_call)));
        } else if (it == a.current_stacktrace) {
            term f = described(p, p.current_function);
            out.push_back(kv(it, make_list({make_tuple({f[0], f[1], f[2], term()})})));
        } else if (it == a.reductions) {
            out.push_back(kv(it, term(static_cast<long long>(reductions_locked(p)))));
        } else if (it == a.dictionary || it == a.garbage_collection || it == a.suspending) {
            out.push_back(kv(it, term()));  // no process dictionary, no GC, never suspends
        } else if (it == a.error_handler) {
            out.push_back(kv(it, term(a.error_handler)));  // undefined functions raise undef
        } else if (it == a.priority) {
            out.push_back(kv(it, term(a.normal)));
        } else if (it == a.message_queue_data) {
            out.push_back(kv(it, term(a.on_heap)));
        } else if (it == a.group_leader) {
            // No io servers on a C++ node: the node's own process stands for init's <0.0.0>.
            out.push_back(kv(it, core.node_process ? core.node_process->self_term : p.self_term));
        }
    }
    return out;
}

std::vector<std::pair<atom, std::size_t>> memory(node_core& core) {
    const auto& a = X();
    std::size_t procs = 0;
    for (const auto& p : core.table.snapshot()) {
        std::lock_guard lk(p->mu);
        procs += memory_locked(*p);
    }
    std::size_t buffers = 0;
    for (const auto& c : core.connections.snapshot()) {
        std::size_t b = 0;
        (void)c->stats(b);
        buffers += b;
    }
    // Everything the process holds from the C allocator (glibc's counts of blocks in use and
    // of mmapped ones): term heaps, mailboxes, buffers, atoms, and the program's own data, as
    // BEAM's total counts all the emulator allocated.
    const struct mallinfo2 mi = ::mallinfo2();
    // An atom costs its entry and its slot in the table; the text is not counted.
    const std::size_t atoms = atom_table_size() * (sizeof(atom_entry) + 2 * sizeof(void*));
    const std::size_t total = std::max(mi.uordblks + mi.hblkhd, procs + buffers + atoms);
    const std::size_t binary = large_binary_bytes();
    return {{a.total, total},          {a.processes, procs}, {a.processes_used, procs},
            {a.system, total - procs}, {a.atom_, atoms},     {a.atom_used, atoms},
            {a.binary, binary},        {a.code, 0},          {a.ets, 0}};
}

term scheduler_wall_time(node_core& core) {
    const auto times = core.io_thread_times();
    if (times.empty()) return term(X().undefined);
    std::vector<term> out;
    long long id = 0;
    for (const auto& [active, total] : times)
        out.push_back(make_tuple({term(++id), term(static_cast<long long>(active)),
                                  term(static_cast<long long>(total))}));
    return make_list(std::move(out));
}

}  // namespace erl::detail::introspection
