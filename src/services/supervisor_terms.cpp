// erl::supervisor's Erlang-facing terms: child specs as supervisor.erl shows and checks them,
// and the node order for remote children (src/services/supervisor_internal.hpp).
#include "services/supervisor_internal.hpp"

#include <algorithm>
#include <tuple>

namespace erl::detail::sup {

namespace {

const term& nil() {
    static const term t = make_list({});
    return t;
}

// The thrown errors of supervisor.erl do_check_childspec/2, as values.
struct invalid {
    term reason;
};

atom check_restart(const term& r) {
    for (const char* name : {"permanent", "transient", "temporary"})
        if (r.is_atom(atom(name))) return atom(name);
    throw invalid{tuple(atom("invalid_restart_type"), r)};
}

std::chrono::milliseconds check_shutdown(const term& s) {
    if (s.is_atom(atom("infinity"))) return infinity;
    if (s.is_atom(atom("brutal_kill"))) return brutal_kill;
    // validShutdown: a non-negative integer (milliseconds); bignums are out of our range.
    if (s.is_small() && s.as_int64() >= 0) return std::chrono::milliseconds(s.as_int64());
    throw invalid{tuple(atom("invalid_shutdown"), s)};
}

void check_modules(const term& m) {
    if (m.is_atom(atom("dynamic"))) return;
    if (!m.is_list() || !m.is_proper_list()) throw invalid{tuple(atom("invalid_modules"), m)};
    for (const auto& e : m.as_list().elements)
        if (!e.is_atom()) throw invalid{tuple(atom("invalid_module"), e)};
}

child_spec check_map(const term& spec, atom local_node) {
    auto get = [&](const char* key) { return spec.find(term(atom(key))); };
    const term* id = get("id");
    if (!id) throw invalid{term(atom("missing_id"))};
    const term* start = get("start");
    if (!start) throw invalid{term(atom("missing_start"))};
    // validFunc: {M, F, A} with atoms M, F and a list A.
    if (!start->is_tuple(3) || !(*start)[0].is_atom() || !(*start)[1].is_atom() ||
        !(*start)[2].is_list())
        throw invalid{tuple(atom("invalid_mfa"), *start)};
    const term* restart = get("restart");
    const atom r = check_restart(restart ? *restart : term(atom("permanent")));
    // validSignificant: our supervisors run with auto_shutdown = never, where OTP refuses
    // significant => true.
    if (const term* sig = get("significant")) {
        if (sig->is_atom(atoms::true_()))
            throw invalid{
                tuple(atom("bad_combination"), list(tuple(atom("auto_shutdown"), atom("never")),
                                                    tuple(atom("significant"), true)))};
        if (!sig->is_bool()) throw invalid{tuple(atom("invalid_significant"), *sig)};
    }
    const term* type = get("type");
    const term type_t = type ? *type : term(atom("worker"));
    if (!type_t.is_atom(atom("worker")) && !type_t.is_atom(atom("supervisor")))
        throw invalid{tuple(atom("invalid_child_type"), type_t)};
    const bool is_sup = type_t.is_atom(atom("supervisor"));
    const term* shutdown = get("shutdown");
    const auto sd = shutdown ? check_shutdown(*shutdown)
                    : is_sup ? infinity
                             : std::chrono::milliseconds(5000);
    std::optional<term> modules;
    if (const term* m = get("modules")) {
        check_modules(*m);
        modules = *m;
    }
    child_spec s = child_spec::remote(*id, (*start)[0].as_atom(), (*start)[1].as_atom(),
                                      (*start)[2], placement::on({local_node}));
    s.restart = r == atom("transient")   ? restart_type::transient
                : r == atom("temporary") ? restart_type::temporary
                                         : restart_type::permanent;
    s.shutdown = sd;
    s.is_supervisor = is_sup;
    s.modules = std::move(modules);
    return s;
}

}  // namespace

term restart_term(restart_type r) {
    switch (r) {
        case restart_type::transient:
            return atom("transient");
        case restart_type::temporary:
            return atom("temporary");
        case restart_type::permanent:
            break;
    }
    return atom("permanent");
}

term modules_term(const child_spec& s) {
    if (s.modules) return *s.modules;
    if (s.remote_mfa) return list(s.remote_mfa->module);
    return nil();
}

term spec_term(const child_spec& s) {
    term start = s.remote_mfa ? tuple(s.remote_mfa->module, s.remote_mfa->function, s.args)
                              : tuple(atoms::undefined(), atoms::undefined(), s.args);
    term shutdown = s.shutdown == brutal_kill ? term(atom("brutal_kill"))
                    : s.shutdown == infinity  ? term(atom("infinity"))
                                              : term(static_cast<long long>(s.shutdown.count()));
    return make_map({{atom("id"), s.id},
                     {atom("start"), std::move(start)},
                     {atom("restart"), restart_term(s.restart)},
                     {atom("significant"), false},
                     {atom("shutdown"), std::move(shutdown)},
                     {atom("type"), atom(s.is_supervisor ? "supervisor" : "worker")},
                     {atom("modules"), modules_term(s)}});
}

parsed_spec parse_spec(const term& t, atom local_node) {
    try {
        if (t.is_map()) return {check_map(t, local_node), {}};
        if (t.is_tuple(6)) {
            // check_childspec/2: the tuple form is the map with significant => false.
            const auto e = t.as_tuple();
            return {check_map(make_map({{atom("id"), e[0]},
                                        {atom("start"), e[1]},
                                        {atom("restart"), e[2]},
                                        {atom("significant"), false},
                                        {atom("shutdown"), e[3]},
                                        {atom("type"), e[4]},
                                        {atom("modules"), e[5]}}),
                              local_node),
                    {}};
        }
        return {std::nullopt, tuple(atom("invalid_child_spec"), t)};
    } catch (const invalid& e) {
        return {std::nullopt, e.reason};
    }
}

term error_reason(const error_code& ec) {
    if (ec.category() == error_category()) return atom(to_string(static_cast<errc>(ec.value())));
    return binary(ec.message());
}

std::vector<atom> placement_order(const std::vector<atom>& candidates,
                                  const std::vector<atom>& connected,
                                  const std::vector<node_load>& load,
                                  const std::optional<atom>& lost) {
    struct entry {
        bool lost, unconnected;
        std::size_t children, index;
        atom node;
    };
    std::vector<entry> es;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        const atom n = candidates[i];
        if (std::any_of(es.begin(), es.end(), [&](const entry& e) { return e.node == n; }))
            continue;  // listed twice: the first place counts
        std::size_t children = 0;
        for (const auto& l : load)
            if (l.node == n) children += l.children;
        const bool up = std::find(connected.begin(), connected.end(), n) != connected.end();
        es.push_back({lost && *lost == n, !up, children, i, n});
    }
    std::stable_sort(es.begin(), es.end(), [](const entry& a, const entry& b) {
        return std::tie(a.lost, a.children, a.unconnected, a.index) <
               std::tie(b.lost, b.children, b.unconnected, b.index);
    });
    std::vector<atom> out;
    for (const auto& e : es)
        out.push_back(e.node);
    return out;
}

std::vector<atom> candidate_nodes(const placement& p, const std::vector<pid>& members) {
    if (!p.pg_group) return p.nodes;
    std::vector<atom> out;
    for (const auto& m : members)
        if (std::find(out.begin(), out.end(), m.node) == out.end()) out.push_back(m.node);
    std::sort(out.begin(), out.end(), [](atom a, atom b) { return a.str() < b.str(); });
    return out;
}

}  // namespace erl::detail::sup
