// Bad input never breaks the cores: every message the captured BEAM servers and scopes
// received is fed to the cores in order, each preceded by variants of it with parts replaced
// by terms of the wrong kind. Nothing may throw, and the cores must still be usable.
#include "cluster/global_server.hpp"
#include "cluster/pg_scope.hpp"

#include "global_trace_support.hpp"

#include <erl/parse.hpp>

#include <gtest/gtest.h>

namespace {

using erl::atom;
using erl::term;
using namespace erl::cluster;

std::vector<term> junk() {
    return {term(atom("junk")),
            term(0),
            term{},
            erl::make_tuple({}),
            erl::binary("x"),
            *erl::parse("<'x@h'.1.0.1>"),
            *erl::parse("[a|b]"),
            *erl::parse("123456789012345678901234567890")};
}

// t with one part (up to `depth` levels down, first 8 elements per level) replaced.
void mutants(const term& t, int depth, std::vector<term>& out) {
    if (depth == 0) return;
    std::vector<term> elems;
    bool tuple = t.is_tuple();
    if (tuple) {
        auto e = t.as_tuple();
        elems.assign(e.begin(), e.end());
    } else if (t.is_proper_list() && !t.is_nil()) {
        auto lv = t.as_list();
        elems.assign(lv.elements.begin(), lv.elements.end());
    } else {
        return;
    }
    auto rebuild = [&](std::vector<term> v) {
        return tuple ? erl::make_tuple(std::move(v)) : erl::make_list(std::move(v));
    };
    for (std::size_t i = 0; i < std::min<std::size_t>(elems.size(), 8); ++i) {
        for (const auto& j : junk()) {
            auto v = elems;
            v[i] = j;
            out.push_back(rebuild(std::move(v)));
        }
        std::vector<term> inner;
        mutants(elems[i], depth - 1, inner);
        for (auto& m : inner) {
            auto v = elems;
            v[i] = std::move(m);
            out.push_back(rebuild(std::move(v)));
        }
    }
}

// The mangled variants of a received message, then the message itself.
std::vector<term> variants_of(const term& msg) {
    std::vector<term> v;
    mutants(msg, 4, v);
    v.push_back(msg);
    return v;
}

TEST(cluster_robustness, global_server_survives_mangled_traffic) {
    std::size_t fed = 0;
    for (const char* s : {"connect", "three", "clash", "partition", "nodedown"}) {
        for (const auto& nt : erl::test::load_trace(s)) {
            global_config cfg;
            cfg.node = nt.node;
            cfg.server = nt.pid_of(term(atom("global_name_server")));
            cfg.locker = nt.pid_of(term(atom("global_locker")));
            cfg.registrar = nt.pid_of(term(atom("global_registrar")));
            global_server core(cfg);
            std::vector<call_id> calls;
            std::vector<timer_id> timers;
            for (const auto& e : nt.of(cfg.server)) {
                if (e.what != erl::test::trace_event::kind::receive) continue;
                for (const auto& m : variants_of(e.msg)) {
                    actions out;
                    ASSERT_NO_THROW({
                        if (m.is_tuple(3) && m[0].is_atom(atom("nodeup")) && m[1].is_atom())
                            core.node_up(m[1].as_atom(), 1, out);
                        else if (m.is_tuple(3) && m[0].is_atom(atom("nodedown")) && m[1].is_atom())
                            core.node_down(m[1].as_atom(), out);
                        else
                            core.message(m, out);
                    }) << m;
                    ++fed;
                    for (auto& a : out) {
                        if (auto* c = std::get_if<call_server>(&a)) calls.push_back(c->id);
                        if (auto* r = std::get_if<rpc_call>(&a)) calls.push_back(r->id);
                        if (auto* t = std::get_if<timer_start>(&a)) timers.push_back(t->id);
                    }
                }
                // Answers of every kind, and timers, in between.
                actions out;
                ASSERT_NO_THROW({
                    for (std::size_t i = 0; i < calls.size(); ++i)
                        core.call_result(
                            calls[i],
                            i % 3 == 0 ? std::nullopt : std::optional<term>(junk()[i % 8]), out);
                    calls.clear();
                    for (auto t : timers)
                        core.timer_fired(t, out);
                    timers.clear();
                    core.down(12345, out);
                });
            }
            // Still answers calls.
            actions out;
            auto from = erl::tuple(*erl::parse("<'x@h'.9.0.1>"), atom("t"));
            core.message(erl::tuple(atom("$gen_call"), from, atom("get_protocol_version")), out);
            bool answered = false;
            for (auto& a : out)
                if (auto* r = std::get_if<reply_to>(&a)) answered |= r->value == term(8);
            EXPECT_TRUE(answered);
        }
    }
    EXPECT_GT(fed, 10000u);
}

TEST(cluster_robustness, pg_scope_survives_mangled_traffic) {
    std::size_t fed = 0;
    for (const char* s : {"connect", "three", "partition", "nodedown"}) {
        for (const auto& nt : erl::test::load_trace(s)) {
            term self = nt.pid_of(erl::tuple(atom("pg"), atom("pg")));
            pg_scope core(atom("pg"), self);
            for (const auto& e : nt.of(self)) {
                if (e.what != erl::test::trace_event::kind::receive) continue;
                for (const auto& m : variants_of(e.msg)) {
                    actions out;
                    std::vector<pg_change> ch;
                    ASSERT_NO_THROW({
                        if (m.is_tuple(3) && m[0].is_atom(atom("$gen_call")) && m[2].is_tuple(3)) {
                            core.join(m[2][1], m[2][2], out, ch);
                            core.leave(m[2][1], m[2][2], out, ch);
                        } else {
                            core.message(m, out, ch);
                        }
                        core.down(7, out, ch);
                    }) << m;
                    ++fed;
                }
            }
        }
    }
    EXPECT_GT(fed, 1000u);
}

}  // namespace
