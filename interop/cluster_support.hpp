// What the global and pg interop tests share: an erlcpp node running the cluster services,
// BEAM nodes whose warnings and errors are written to a file the test reads at the end, and
// evaluations bounded by a deadline on the BEAM side.
#pragma once

#include <erl/cluster.hpp>
#include <erl/global.hpp>
#include <erl/pg.hpp>
#include <erl/rpc.hpp>

#include "harness/cluster.hpp"

#include <memory>
#include <string>

namespace erl::interop {

// A cpp_node with an rpc server and the cluster services (global_name_server, scope pg),
// started before the node connects anywhere.
struct cluster_node : cpp_node {
    std::unique_ptr<erl::rpc::server> rpc;
    erl::cluster::running services;

    explicit cluster_node(options o, erl::cluster::options co = {}) : cpp_node(std::move(o)) {
        rpc = std::make_unique<erl::rpc::server>(*node);
        co.rpc = rpc.get();
        auto r = erl::cluster::start(*node, co);
        if (!r) throw std::runtime_error("cluster::start: " + r.error().message());
        services = std::move(*r);
    }
    // The services go first (they use the rpc server), then the server, then the node.
    ~cluster_node() {
        services.stop();
        rpc.reset();
    }
    erl::atom atom_name() const { return node->name(); }
};

// A BEAM node whose logger writes warnings and worse to a file of the test's temp_dir.
struct logged_beam : beam_node {
    std::string log_file;
    logged_beam(beam_node::options o, const temp_dir& dir, const std::string& tag)
        : beam_node(std::move(o)), log_file(dir.path() + "/" + tag + ".log") {
        eval(
            "ok = logger:add_handler(erlcpp_test, logger_std_h, #{level => warning, "
            "config => #{file => \"" +
            log_file + "\"}})");
    }
    // What the logger wrote so far (after a logger_std_h sync).
    std::string warnings() {
        eval("logger_std_h:filesync(erlcpp_test)");
        return read_text_file(log_file);
    }
    // Evaluates `expr` in a process of its own; "timeout" if it has not returned within ms.
    std::string eval_within(const std::string& expr, int ms = 10000) {
        return eval(
            "(fun() -> ErlcppSelf_ = self(), ErlcppRef_ = make_ref(), "
            "spawn(fun() -> ErlcppSelf_ ! {ErlcppRef_, begin " +
                expr + " end} end), receive {ErlcppRef_, ErlcppRes_} -> ErlcppRes_ after " +
                std::to_string(ms) + " -> timeout end end)()",
            std::chrono::milliseconds(ms + 5000));
    }
};

}  // namespace erl::interop
