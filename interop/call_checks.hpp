// Checks the interop tests run as tables: Erlang (or Elixir) expressions evaluated on a BEAM
// node against the text their value prints as, `$D` in an expression standing for what the test
// is about (a quoted node name or a "{Name, Node}" destination); and the C++ `counter`
// gen_server of the gen_server and rpc tests with the checks they share.
#pragma once

#include <erl/gen_server.hpp>

#include "harness/harness.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace erl::interop {

// `s` with every `from` replaced by `to`.
inline std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
    return s;
}

// An expression and the text its value must print as.
struct eval_check {
    std::string expr;
    std::string expected;
};

// Evaluates the checks in order on `beam` (bindings carry over from one to the next, as with
// beam_node::eval) and expects each one's value, every `$D` in both replaced by `dest`.
inline void expect_evals(beam_node& beam, const std::string& dest,
                         const std::vector<eval_check>& checks) {
    for (const auto& c : checks) {
        const std::string expr = replace_all(c.expr, "$D", dest);
        EXPECT_EQ(beam.eval(expr), replace_all(c.expected, "$D", dest)) << expr;
    }
}

// Evaluates each check's expression on `beam` twice, `$D` standing first for `cpp_dest` and
// then for `beam_dest`, each time in a fun of its own (bindings do not carry over): the C++
// side answers as the BEAM side does, and as expected (any value where `expected` is empty).
inline void expect_same_evals(beam_node& beam, const std::string& cpp_dest,
                              const std::string& beam_dest, const std::vector<eval_check>& checks) {
    for (const auto& c : checks) {
        auto on = [&](const std::string& dest) {
            return beam.eval("(fun() -> " + replace_all(c.expr, "$D", dest) + " end)()");
        };
        const std::string cpp = on(cpp_dest);
        EXPECT_EQ(cpp, on(beam_dest)) << c.expr;
        if (!c.expected.empty()) EXPECT_EQ(cpp, c.expected) << c.expr;
    }
}

// A C++ gen_server as expect_counter_gen_server (harness/cluster.hpp) expects it: get,
// {add, N}, tag (its From's tag), stop (replies stopping, then stops with reason asked) and
// the cast reset; any other call gets {error, Request}.
struct counter_server : erl::gen_server::server {
    erl::term value{0};
    std::optional<erl::term> handle_call(const erl::term& req, const from& f) override {
        if (req.is_atom(erl::atom("get"))) return value;
        if (req.is_tuple(2) && req[0].is_atom(erl::atom("add")))
            return value = *erl::add(value, req[1]);
        if (req.is_atom(erl::atom("tag"))) return f.tag;
        if (req.is_atom(erl::atom("stop"))) {
            stop(erl::atom("asked"));
            return erl::atom("stopping");
        }
        return erl::tuple(erl::atoms::error(), req);
    }
    void handle_cast(const erl::term& req) override {
        if (req.is_atom(erl::atom("reset"))) value = erl::term(0);
    }
};

// From an Elixir node: GenServer.call / cast on the counter_server registered as `counter` on
// the node named `node` (unquoted).
inline void expect_elixir_counter(beam_node& ex, const std::string& node) {
    expect_evals(ex, "{:counter, :\"" + node + "\"}",
                 {
                     {"GenServer.call($D, {:add, 5})", "5"},
                     {"GenServer.cast($D, :reset)", ":ok"},
                     {"GenServer.call($D, :get)", "0"},
                 });
}

// From an Erlang node: the counter_server registered as `counter` on `quoted_node` stops when
// asked, and a later call exits noproc as with a BEAM gen_server.
inline void expect_counter_stops(beam_node& beam, const std::string& quoted_node) {
    expect_evals(
        beam, "{counter, " + quoted_node + "}",
        {
            {"gen_server:call($D, stop)", "stopping"},
            {"catch gen_server:call($D, get, 2000)",
             "{'EXIT',{noproc,{gen_server,call,[{counter," + quoted_node + "},get,2000]}}}"},
        });
}

}  // namespace erl::interop
