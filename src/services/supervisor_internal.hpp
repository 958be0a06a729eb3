// What erl::supervisor's process loop (supervisor.cpp) shares with its Erlang-facing half
// (supervisor_terms.cpp): child specs as OTP's terms and OTP's child-spec checks. Pure
// functions, unit-tested without a network.
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

// supervisor.erl check_childspec/2 on a map or a 6-tuple from Erlang: the checked fields of the
// spec and its {M, F, A} (`mfa`), or OTP's error term
// ({invalid_child_spec, X}, missing_id, {invalid_mfa, F}, {invalid_restart_type, R}, ...).
struct parsed_spec {
    std::optional<child_spec> spec;
    term mfa;
    term error;  // when !spec
};
parsed_spec parse_spec(const term& t);

// The reason term of {error, Reason} for a C++ error (the errc's short name as an atom, e.g.
// noconnection, notsup, badarg, timeout).
term error_reason(const error_code& ec);

}  // namespace erl::detail::sup
