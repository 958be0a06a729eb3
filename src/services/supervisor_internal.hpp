// What erl::supervisor's process loop (supervisor.cpp) shares with its Erlang-facing half
// (supervisor_terms.cpp): child specs as OTP's terms, OTP's child-spec checks, and the choice of
// a node for a remote child. Pure functions, unit-tested without a network.
#pragma once

#include <erl/supervisor.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace erl::detail::sup {

// The Modules of which_children / get_childspec: spec.modules, or [M] for a remote child and
// [] for a C++ start function.
term modules_term(const child_spec& s);
// get_childspec's map (supervisor.erl child_to_spec/1). A C++ start function has no Erlang
// {M, F, A}: it is shown as {undefined, undefined, Args}.
term spec_term(const child_spec& s);
term restart_term(restart_type r);

// supervisor.erl check_childspec/2 on a map or a 6-tuple from Erlang: the spec (its start is
// M:F(A), spawned linked on the supervisor's own node) or OTP's error term
// ({invalid_child_spec, X}, missing_id, {invalid_mfa, F}, {invalid_restart_type, R}, ...).
struct parsed_spec {
    std::optional<child_spec> spec;
    term error;  // when !spec
};
parsed_spec parse_spec(const term& t, atom local_node);

// The reason term of {error, Reason} for a C++ error (the errc's short name as an atom, e.g.
// noconnection, notsup, badarg, timeout).
term error_reason(const error_code& ec);

// The order in which to try the candidate nodes of a remote child: fewer children of this
// supervisor first; among equals connected nodes first, then candidate order; the node in
// `lost` (the child's last incarnation ended with noconnection there) last of all.
struct node_load {
    atom node;
    std::size_t children = 0;
};
std::vector<atom> placement_order(const std::vector<atom>& candidates,
                                  const std::vector<atom>& connected,
                                  const std::vector<node_load>& load,
                                  const std::optional<atom>& lost);
// The candidate nodes of a placement: its node list, or the distinct nodes of the members of
// its pg group (sorted), as `members` gives them.
std::vector<atom> candidate_nodes(const placement& p, const std::vector<pid>& members);

}  // namespace erl::detail::sup
