// erl::supervisor — OTP-style supervision of C++ processes (the semantics of OTP's
// `supervisor` module, see docs/processes.md).
//
// A supervisor is itself a process (a thread-bodied C++ process that traps exits): BEAM nodes
// can link to it, monitor it and send it messages; it answers the gen_server calls OTP's
// supervisor module makes (which_children, count_children, get_childspec, start_child,
// terminate_child, restart_child, delete_child) with OTP's results and errors.
//
//   one_for_one         a child that must be restarted is restarted alone
//   one_for_all         all children are terminated (reverse start order) and restarted
//   rest_for_one        the child and those started after it are terminated and restarted
//   simple_one_for_one  one template (the only child spec given to start), no child at start;
//                       start_child(ExtraArgs) starts a child from it with the template's args
//                       followed by ExtraArgs; children are restarted alone, found by pid, and
//                       shut down all at once
//
// A child runs on the supervisor's node (a C++ start function) or on another node
// (child_spec::remote: M:F(Args) spawned linked there, on a BEAM or an erlcpp node, on one of
// a list of nodes or of the nodes of a pg group's members). A remote child whose node goes
// down ends with noconnection and is restarted, by its restart type, on another live node.
//
// Restart types: permanent (always restarted), transient (restarted unless it ended with
// normal, shutdown or {shutdown, _}), temporary (never restarted, forgotten when it ends).
// More than `intensity` restarts within `period` make the supervisor terminate all children
// and exit with reason `shutdown`. With backoff set, the n-th restart in a row waits
// min(backoff_initial * 2^(n-1), backoff_max) first (0 for the first by default).
// Shutdown (supervisor stop, terminate_child, group restarts) goes in reverse start order:
// exit(Child, shutdown) and up to `shutdown` for it to end, then exit(Child, kill);
// brutal_kill kills at once.
//
// Thread safety: every member may be called from any thread except the supervisor's own
// children's threads calling blocking members on themselves (they would wait on themselves).
#pragma once

#include <erl/error.hpp>
#include <erl/mailbox.hpp>
#include <erl/pg.hpp>
#include <erl/process.hpp>
#include <erl/term.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace erl {

class node;

enum class restart_strategy { one_for_one, one_for_all, rest_for_one, simple_one_for_one };
enum class restart_type { permanent, transient, temporary };

inline constexpr std::chrono::milliseconds brutal_kill{0};

// A thread body that also receives its start arguments (a list): `args` of its child_spec,
// followed for a simple_one_for_one child by the extra arguments of start_child.
using args_process_body = std::function<void(mailbox&, const term& args)>;

// Where a remote child may run. Candidates are `nodes` (in this order), or with `pg_group`
// the nodes of the members of that group in scope `pg_scope` (erl::pg, sorted by node name).
// At each start the child goes to the candidate running the fewest children of this
// supervisor (connected nodes first among equals); a node whose child just ended with
// noconnection is tried last. A node that cannot be reached, does not answer or cannot spawn the
// child (noconnection, timeout, notsup) is skipped; the start fails with the last such error when
// no candidate could start the child, with errc::no_target when there is no candidate at all.
// The supervisor is busy while a child starts, as an OTP supervisor is while a start function
// runs (it handles no other message meanwhile, so restarts keep their order): a remote start
// takes at most `start_timeout` in all, over every candidate together (each one gets what is
// left of it; a candidate that answers gives its answer at once), then fails with
// errc::timeout.
struct placement {
    std::vector<atom> nodes;
    std::optional<term> pg_group;
    atom pg_scope = pg::default_scope();
    std::chrono::milliseconds start_timeout = default_spawn_timeout;

    static placement on(std::vector<atom> nodes) {
        return {std::move(nodes), {}, pg::default_scope()};
    }
    static placement group(term g, atom scope = pg::default_scope()) {
        return {{}, std::move(g), scope};
    }
};

struct child_spec {
    term id;  // any term, as OTP's child_id(); unique within the supervisor
    // Starts the child and returns its pid. It is called on the supervisor's thread with the
    // supervisor's mailbox; the supervisor links to the returned pid (spawn_link(sup, ...) is
    // the usual way to start it). An error fails the start (a restart is retried and counts
    // toward the intensity).
    std::function<result<pid>(const mailbox& sup)> start;
    // Instead of `start`: a start function that receives the argument list (`args`, followed
    // for a simple_one_for_one child by start_child's extra arguments).
    std::function<result<pid>(const mailbox& sup, const term& args)> start_with_args;
    term args;  // a proper list; [] by default
    // Instead of a C++ start function: spawn_link(Node, module, function, args) on a node
    // chosen from `where` (see placement). Set by child_spec::remote.
    struct remote_start {
        atom module;
        atom function;
        erl::placement where;
    };
    std::optional<remote_start> remote_mfa;
    restart_type restart = restart_type::permanent;
    std::chrono::milliseconds shutdown{5000};  // brutal_kill, a timeout, or erl::infinity
    bool is_supervisor = false;                // reported as type supervisor by which_children
    // The Modules which_children and get_childspec report (a list of atoms, or `dynamic`);
    // nullopt: [M] for a remote child, [] for a C++ start function.
    std::optional<term> modules;

    // A worker running `body` on its own thread / as a coroutine, optionally registered.
    static child_spec worker(term id, process_body body, spawn_options opts = {},
                             restart_type restart = restart_type::permanent);
    static child_spec worker(term id, coroutine_body body, spawn_options opts = {},
                             restart_type restart = restart_type::permanent);
    // A worker whose thread body receives its start arguments (simple_one_for_one templates).
    static child_spec worker(term id, args_process_body body, spawn_options opts = {},
                             restart_type restart = restart_type::permanent);
    // M:F(Args) spawned linked on a node of `where` (a BEAM node, or an erlcpp node where
    // M:F/A names a registered C++ function).
    static child_spec remote(term id, atom module, atom function, term args, placement where,
                             restart_type restart = restart_type::permanent);
};

struct supervisor_flags {
    restart_strategy strategy = restart_strategy::one_for_one;
    int intensity = 1;                             // max restarts ...
    std::chrono::milliseconds period{5000};        // ... within this period
    std::chrono::milliseconds backoff_initial{0};  // 0: no backoff
    std::chrono::milliseconds backoff_max{0};
    bool backoff_first = false;  // also delay the first restart in a row
};

struct child_info {
    term id;                      // undefined for the children of a simple_one_for_one
    std::optional<erl::pid> pid;  // nullopt: not running (terminated, or waiting for a restart)
    restart_type restart = restart_type::permanent;
    bool is_supervisor = false;
    bool restarting = false;      // waiting for a restart (which_children's `restarting`)
    std::optional<atom> on_node;  // the node a remote child runs on (or last ran on)
};

class supervisor {
  public:
    supervisor() = default;

    // Starts the supervisor and its children in order. If a child fails to start, the ones
    // started are shut down and the error returned. opts: name (registered), link_to.
    // simple_one_for_one takes exactly one child spec, the template (errc::badarg otherwise),
    // and starts no child.
    static result<supervisor> start(node& n, supervisor_flags flags,
                                    std::vector<child_spec> children, spawn_options opts = {});

    const pid& self() const noexcept;
    explicit operator bool() const noexcept { return st_ != nullptr; }

    // Dynamic children (supervisor:start_child/2 ...). Errors: name_taken (id in use),
    // not_found (no child with that id), child_running (delete/restart of a child that is
    // running or waiting for a restart), no_start_function (a spec without start), noproc
    // (supervisor gone), timeout, notsup (a call a simple_one_for_one supervisor refuses: a
    // child spec, or an id instead of a pid; the extra-arguments form on any other), or the
    // child's start error.
    result<pid> start_child(child_spec spec,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // supervisor:start_child(Sup, ExtraArgs) of a simple_one_for_one supervisor: extra_args
    // (a proper list, errc::badarg otherwise) is appended to the template's args.
    result<pid> start_child(const std::vector<term>& extra_args,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // By id, or by pid (the only way for a simple_one_for_one supervisor, as in OTP).
    error_code terminate_child(const term& id_or_pid,
                               std::chrono::milliseconds timeout = std::chrono::seconds(30));
    error_code delete_child(const term& id,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));
    result<pid> restart_child(const term& id,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));
    result<std::vector<child_info>> which_children(
        std::chrono::milliseconds timeout = std::chrono::seconds(30));

    // Stops the supervisor: children shut down in reverse order, then it exits with `shutdown`.
    // Returns once it has ended (or timeout).
    error_code stop(std::chrono::milliseconds timeout = std::chrono::seconds(60));

    struct state;

  private:
    explicit supervisor(std::shared_ptr<state> st) : st_(std::move(st)) {}
    std::shared_ptr<state> st_;
};

}  // namespace erl
