// The internal runtime interface (src/node/runtime.hpp) over the process table, routing and
// the signal layer. The parts that build control messages live in src/node/signals.cpp.
#include "node/runtime.hpp"

#include "node/access.hpp"
#include "node/connection.hpp"
#include "node/runtime_atoms.hpp"

namespace erl::detail::runtime {

result<std::shared_ptr<process>> spawn_service(node_core& n, std::function<void(term)> handler,
                                               std::function<void(const term&)> on_exit,
                                               std::optional<atom> name) {
    auto p = n.new_process(std::move(handler), std::move(on_exit));
    if (name) {
        if (auto ec = n.table.register_name(*name, p)) {
            n.process_exit(p, term(A().normal));
            return ec;
        }
    }
    return p;
}

mailbox spawn_mailbox(node_core& n) {
    return n.make_handle(n.new_process());
}

mailbox owning_handle(const std::shared_ptr<process>& p) {
    return p->node->make_handle(p);
}

error_code register_name(node_core& n, atom name, const std::shared_ptr<process>& p) {
    return n.table.register_name(name, p);
}

std::shared_ptr<process> whereis(node_core& n, atom name) {
    return n.find_name(name);
}

void exit(const std::shared_ptr<process>& p, term reason) {
    p->node->process_exit(p, std::move(reason));
}

void send(const process& from, const pid& to, term msg) {
    if (from.exited.load(std::memory_order_relaxed)) return;
    from.node->send_pid(from.self_term, to, std::move(msg));
}

void send(const process& from, atom name, atom node, term msg) {
    if (from.exited.load(std::memory_order_relaxed)) return;
    from.node->send_name(from.self_term, name, node, std::move(msg));
}

namespace {
// The Ref of an [alias|Ref] tag, or [] if the term is not such a tag.
term alias_ref(const term& t) {
    if (t.type() != kind::list) return {};
    auto lv = t.as_list();
    if (lv.elements.size() == 1 && lv.elements[0].is_atom(A().alias) && lv.tail.is_reference())
        return lv.tail;
    return {};
}
}  // namespace

void reply(node_core& n, const term& from, term value) {
    // gen:reply/2: a tag [alias|Ref] (or [[alias|Ref]|_]) means "reply to the alias", so a
    // caller that gave up drops the late reply; otherwise reply to the pid.
    if (!from.is_tuple(2) || !n.node_process) return;
    const term& to = from[0];
    const term& tag = from[1];
    term ref = alias_ref(tag);
    if (!ref.is_reference() && tag.type() == kind::list) ref = alias_ref(tag.as_list().elements[0]);
    term msg = make_tuple({tag, std::move(value)});
    if (ref.is_reference()) {
        n.send_alias(n.node_process->self_term, ref.as_reference(), std::move(msg));
    } else if (to.is_pid()) {
        n.send_pid(n.node_process->self_term, to.as_pid(), std::move(msg));
    }
}

reference make_ref(node_core& n) {
    return n.make_ref();
}

reference make_alias(const std::shared_ptr<process>& self) {
    reference r = self->node->make_ref();
    self->node->table.add_alias(r, self);
    return r;
}

void remove_alias(const std::shared_ptr<process>& self, const reference& alias) {
    self->node->table.remove_alias(alias, self);
}

std::uint64_t monitor_nodes(node_core& n, std::function<void(const node_event&)> cb) {
    return n.connections.subscribe(std::move(cb));
}

void demonitor_nodes(node_core& n, std::uint64_t id) {
    n.connections.unsubscribe(id);
}

bool is_connected(node_core& n, atom node) {
    return n.connections.is_up(node);
}

void disconnect(node_core& n, atom node) {
    if (auto c = n.connections.connection_to(node, false))
        c->close(make_error_code(errc::connection_closed), "disconnected by the local node");
}

}  // namespace erl::detail::runtime
