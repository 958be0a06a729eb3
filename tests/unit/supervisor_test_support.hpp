// What the erl::supervisor unit tests share: a node with a `collector` mailbox, workers that
// report their starts and stops to it, and OTP's supervisor calls sent as gen_server calls.
#pragma once

#include <erl/node.hpp>
#include <erl/process.hpp>
#include <erl/supervisor.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace erl::test {

inline erl::atom A(const char* s) {
    return erl::atom(s);
}

// The body of the test workers: tells `collector` {started, Id, Pid}; when it traps exits it
// reports {stopped, Id, Reason} on an 'EXIT' and returns (ignore_shutdown: it keeps running);
// {exit, R} makes it exit with R.
inline void report_loop(erl::mailbox& m, const erl::term& id, bool ignore_shutdown) {
    m.send(erl::atom("collector"), erl::tuple(erl::atom("started"), id, m.self()));
    while (auto msg = m.receive()) {
        if (msg->is_tuple(3) && (*msg)[0].is_atom(erl::atom("EXIT"))) {
            if (ignore_shutdown) {
                m.send(erl::atom("collector"), erl::tuple(erl::atom("ignored"), id, (*msg)[2]));
                continue;
            }
            m.send(erl::atom("collector"), erl::tuple(erl::atom("stopped"), id, (*msg)[2]));
            return;
        }
        if (msg->is_tuple(2) && (*msg)[0].is_atom(erl::atom("exit")))
            throw erl::exit_exception((*msg)[1]);
    }
}

// A child running report_loop under `id`.
inline erl::child_spec reporting_worker(const char* id,
                                        erl::restart_type r = erl::restart_type::permanent,
                                        bool trap = false, bool ignore_shutdown = false) {
    using namespace std::chrono_literals;
    erl::spawn_options o;
    o.trap_exit = trap;
    const erl::atom ida(id);
    auto spec = erl::child_spec::worker(
        ida, [ida, ignore_shutdown](erl::mailbox& m) { report_loop(m, ida, ignore_shutdown); }, o,
        r);
    spec.shutdown = 2s;
    return spec;
}

// A simple_one_for_one template running report_loop under the last of its start arguments.
inline erl::child_spec reporting_template(erl::restart_type r = erl::restart_type::permanent,
                                          bool trap = false, bool ignore_shutdown = false) {
    using namespace std::chrono_literals;
    erl::spawn_options o;
    o.trap_exit = trap;
    auto spec = erl::child_spec::worker(
        erl::atom("template"),
        [ignore_shutdown](erl::mailbox& m, const erl::term& args) {
            report_loop(m, args.as_list().elements.back(), ignore_shutdown);
        },
        o, r);
    spec.shutdown = 2s;
    return spec;
}

class SupervisorTest : public ::testing::Test {
  protected:
    void SetUp() override {
        node = std::make_unique<erl::node>(
            erl::test::local_node_options("sup", "sup_cookie", epmd_port));
        ASSERT_FALSE(node->start());
        collector = node->spawn_mailbox(erl::atom("collector")).value();
        self = node->spawn_mailbox().value();
    }
    void TearDown() override {
        node->stop();
        erl::join_processes(*node, std::chrono::seconds(10));
    }
    // Next {started, Id, Pid}: the pid.
    erl::pid started(const char* id) {
        auto m = collector.receive_if(
            [&](const erl::term& t) {
                return t.is_tuple(3) && t[0].is_atom(erl::atom("started")) &&
                       t[1].is_atom(erl::atom(id));
            },
            std::chrono::seconds(10));
        if (!m) throw std::runtime_error(std::string("no start of ") + id);
        return (*m)[2].as_pid();
    }
    // gen_server:call(Sup, Req) as supervisor.erl's API makes it: the reply term.
    erl::term sup_call(const erl::pid& sup, const erl::term& req) {
        return await_reply(send_call(sup, erl::atom("$gen_call"), req), req);
    }
    // gen:call(Sup, system, Req) as sys.erl makes it: the reply term.
    erl::term sys_call(const erl::pid& sup, const erl::term& req) {
        return await_reply(send_call(sup, erl::atom("system"), req), req);
    }
    // Sends {Label, {Self, Ref}, Req}; returns Ref.
    erl::reference send_call(const erl::pid& to, erl::atom label, const erl::term& req) {
        const auto ref = node->make_ref();
        self.send(to, erl::tuple(label, erl::tuple(self.self(), ref), req));
        return ref;
    }
    erl::term await_reply(const erl::reference& ref, const erl::term& req,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto m = self.receive_if(
            [&](const erl::term& t) { return t.is_tuple(2) && t[0] == erl::term(ref); }, timeout);
        if (!m) throw std::runtime_error("no reply to " + req.to_string());
        return (*m)[1];
    }
    std::uint16_t epmd_port = free_port();  // the in-process epmd of `node`, for more nodes
    std::unique_ptr<erl::node> node;
    erl::mailbox collector, self;
};

}  // namespace erl::test

// The names every supervisor test uses unqualified (TEST_F needs the fixture's bare name).
using namespace std::chrono_literals;
using erl::test::A;
using erl::test::reporting_template;
using erl::test::reporting_worker;
using erl::test::SupervisorTest;
