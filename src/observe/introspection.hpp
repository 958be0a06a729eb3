// Introspection over rpc/erpc: the BIFs BEAM's own tools call on a node they look at
// (erlang:processes/0, process_info/1,2, memory/0,1, system_info/1, statistics/1, ...),
// answered by the C++ node about itself with BEAM's result shapes and BEAM's errors, and
// etop's backend (observer_backend:vsn/0, etop_collect/1, dbg's relay for its trace port).
// docs/observability.md lists what each call returns and how it differs from BEAM.
#pragma once

#include <erl/rpc.hpp>
#include <erl/term.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace erl::detail {

struct process;
struct node_core;

namespace introspection {

// What runs in a process, for process_info initial_call / current_function ({M, F, Arity}).
// A process nobody described is named by its kind: {erlcpp, service, 1} for an inline service
// process, {erlcpp, mailbox, 0} for a queueing one.
void describe(process& p, atom initial_m, atom initial_f, std::uint32_t initial_arity, atom m,
              atom f, std::uint32_t arity);

// A gen_server or supervisor: {proc_lib, init_p, 5} and {gen_server, loop, 7}, as BEAM shows
// one waiting in its loop (tools that look for gen_servers by those find it).
void describe_gen_server(process& p);

// The living processes, in pid order.
std::vector<std::shared_ptr<process>> living(node_core& core);
// Processes with messages waiting (BEAM's run queue: ready to run, not yet running).
std::uint64_t runnable(node_core& core);

// statistics(scheduler_wall_time): [{Id, Active, Total}] per I/O thread (nanoseconds on the
// CPU and since the thread started), `undefined` on a caller's io_context.
term scheduler_wall_time(node_core& core);

// A port identifier of this node, never handed out before (dbg's trace port).
erl::port new_port(node_core& core);

// Registers the introspection and etop functions on `s` (rpc::server_options::introspection).
void install(rpc::server& s, unsigned pool_threads);

// Bytes of memory by BEAM's erlang:memory/0 keys, in its order (total, processes,
// processes_used, system, atom, atom_used, binary, code, ets).
std::vector<std::pair<atom, std::size_t>> memory(node_core& core);

// True if process_info/2 knows `item` (else it raises badarg, as BEAM does).
bool known_item(atom item);
// The items process_info/1 lists, in BEAM's order (registered_name first when registered).
const std::vector<atom>& default_items();

// process_info(P, Items) for a local process: one {Item, Value} per item (all known_item).
// `self` is the asking process (its status is `running`).
std::vector<term> process_info(node_core& core, process& p, const std::vector<atom>& items,
                               const pid* self);

// Upper bound of process_info(P, messages): the first this many queued messages.
inline constexpr std::size_t messages_bound = 1000;

}  // namespace introspection
}  // namespace erl::detail
