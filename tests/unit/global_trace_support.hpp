// Loads the traces that interop/traces/capture_global.escript recorded from real OTP 25 nodes
// (<scenario>.etf = term_to_binary({Scenario, [{Label, Node, Roles, Trace}]})) for the unit
// tests of the global and pg cores.
#pragma once

#include <erl/etf.hpp>
#include <erl/term.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace erl::test {

struct trace_event {
    enum class kind { send, send_noproc, receive } what = kind::receive;
    term pid;  // the traced process
    term msg;
    term to;  // for sends
};

struct node_trace {
    atom label;
    atom node;
    std::vector<std::pair<term, term>> roles;  // {Pid, Role}
    std::vector<trace_event> events;

    // The pid that had `role` (e.g. atom global_name_server, or {pg, pg}) on this node.
    term pid_of(const term& role) const {
        for (const auto& [p, r] : roles)
            if (r == role) return p;
        ADD_FAILURE() << "no role " << role << " on " << label;
        return term{};
    }
    // The events of one process, in the order it saw them.
    std::vector<trace_event> of(const term& pid) const {
        std::vector<trace_event> out;
        for (const auto& e : events)
            if (e.pid == pid) out.push_back(e);
        return out;
    }
};

// The raw bytes of interop/traces/<scenario>.etf.
inline std::vector<std::uint8_t> trace_bytes(const std::string& scenario) {
    std::ifstream in(std::string(ERLCPP_SOURCE_DIR) + "/interop/traces/" + scenario + ".etf",
                     std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::vector<node_trace> load_trace(const std::string& scenario) {
    std::vector<node_trace> out;
    auto bytes = trace_bytes(scenario);
    auto decoded = etf::decode(bytes);
    if (!decoded) {
        ADD_FAILURE() << scenario << ".etf does not decode: " << decoded.error().message();
        return out;
    }
    const term& all = *decoded;
    for (const auto& n : all[1].as_list().elements) {
        node_trace nt;
        nt.label = n[0].as_atom();
        nt.node = n[1].as_atom();
        for (const auto& r : n[2].as_list().elements)
            nt.roles.emplace_back(r[0], r[1]);
        for (const auto& t : n[3].as_list().elements) {
            auto k = t[2].as_atom().str();
            if (k == "send" && t.size() == 6)
                nt.events.push_back({trace_event::kind::send, t[1], t[3], t[4]});
            else if (k == "send_to_non_existing_process" && t.size() == 6)
                nt.events.push_back({trace_event::kind::send_noproc, t[1], t[3], t[4]});
            else if (k == "receive" && t.size() == 5)
                nt.events.push_back({trace_event::kind::receive, t[1], t[3], term{}});
        }
        out.push_back(std::move(nt));
    }
    return out;
}

inline const node_trace& trace_of(const std::vector<node_trace>& all, const char* label) {
    for (const auto& n : all)
        if (n.label.str() == label) return n;
    ADD_FAILURE() << "no node " << label;
    static node_trace none;
    return none;
}

}  // namespace erl::test
