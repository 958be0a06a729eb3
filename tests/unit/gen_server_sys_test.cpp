// sys messages on erl::gen_server servers, threaded and inline, inside one node: a mailbox
// sends what sys:Func sends ({system, {Pid, Tag}, Request}) and gen_server calls, and checks
// the answers and their order.
#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/parse.hpp>

#include "node_test_support.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace {

using erl::term;

term T(std::string_view text) {
    auto t = erl::parse(text);
    EXPECT_TRUE(t) << text;
    return t ? *t : term();
}

struct counter : erl::gen_server::server {
    std::int64_t n = 0;
    std::optional<term> handle_call(const term& req, const from&) override {
        if (req.is_atom(erl::atom("get"))) return term(n);
        return term(++n);
    }
    std::optional<term> state() const override { return term(n); }
    term replace_state(const term& fun) override {
        // The one fun this server implements: fun counter_ops:zero/1.
        if (fun.is_export() && fun.as_export().module == erl::atom("counter_ops") &&
            fun.as_export().function == erl::atom("zero") && fun.as_export().arity == 1) {
            n = 0;
            return term(n);
        }
        return erl::gen_server::server::replace_state(fun);
    }
    std::optional<term> code_change(const term& vsn, const term& state,
                                    const term& extra) override {
        if (vsn != T("\"1\"")) return erl::make_tuple({T("bad_vsn"), vsn});
        n = state.as_int64() + extra.as_int64();
        return std::nullopt;
    }
    std::vector<term> terminated;
    void terminate(const term& reason) override { terminated.push_back(reason); }
};

struct plain : erl::gen_server::server {
    std::optional<term> handle_call(const term&, const from&) override { return T("ok"); }
};

struct GenServerSys : ::testing::TestWithParam<bool> {
    std::uint16_t port = erl::test::free_port();
    erl::node node{erl::test::local_node_options("gssys", port)};
    erl::mailbox me;
    void SetUp() override {
        ASSERT_FALSE(node.start());
        auto mb = node.spawn_mailbox();
        ASSERT_TRUE(mb);
        me = std::move(*mb);
    }
    void TearDown() override {
        me.exit();
        node.stop();
    }
    std::unique_ptr<erl::gen_server::running> start(std::shared_ptr<erl::gen_server::server> s) {
        auto r =
            erl::gen_server::start(node, std::move(s), std::nullopt, {.run_inline = GetParam()});
        EXPECT_TRUE(r);
        return r ? std::move(*r) : nullptr;
    }
    int next_tag = 0;
    // Sends {Kind, {Me, Tag}, Request}; returns Tag.
    term send(const erl::pid& to, const char* kind, term request) {
        term tag(++next_tag);
        me.send(to, erl::make_tuple({term(erl::atom(kind)), erl::make_tuple({me.self_term(), tag}),
                                     std::move(request)}));
        return tag;
    }
    // The reply {Tag, Reply} for `tag`.
    term reply(const term& tag) {
        auto m = me.receive_if([&](const term& t) { return t.is_tuple(2) && t[0] == tag; }, 10s);
        EXPECT_TRUE(m);
        return m ? (*m)[1] : term();
    }
    term sys(const erl::pid& to, term request) { return reply(send(to, "system", request)); }
};

TEST_P(GenServerSys, get_state_and_replace_state_use_the_hooks) {
    auto c = std::make_shared<counter>();
    auto r = start(c);
    EXPECT_EQ(reply(send(r->self(), "$gen_call", T("inc"))), term(1));
    EXPECT_EQ(sys(r->self(), T("get_state")), term(1));
    term zero(erl::export_fun{erl::atom("counter_ops"), erl::atom("zero"), 1});
    EXPECT_EQ(sys(r->self(), erl::make_tuple({T("replace_state"), zero})), term(0));
    EXPECT_EQ(sys(r->self(), T("{replace_state, 42}")),
              T("{error, {callback_failed, {gen_server, system_replace_state}, {error, undef}}}"));
    EXPECT_EQ(reply(send(r->self(), "$gen_call", T("get"))), term(0));
}

TEST_P(GenServerSys, default_state_names_the_cpp_type) {
    auto r = start(std::make_shared<plain>());
    auto s = sys(r->self(), T("get_state"));
    ASSERT_TRUE(s.is_tuple(2));
    EXPECT_EQ(s[0], T("cpp_server"));
    EXPECT_NE(s[1].as_string_view().find("plain"), std::string_view::npos);
}

TEST_P(GenServerSys, suspended_server_answers_calls_after_resume_in_order) {
    auto c = std::make_shared<counter>();
    auto r = start(c);
    EXPECT_EQ(sys(r->self(), T("suspend")), T("ok"));
    const term c1 = send(r->self(), "$gen_call", T("inc"));
    const term c2 = send(r->self(), "$gen_call", T("inc"));
    // A system message queued behind the calls is answered first; the calls' replies, which
    // a running server would have sent before it, are not there.
    auto status = sys(r->self(), T("get_status"));
    EXPECT_EQ(status[3].as_list().elements[1], T("suspended"));
    EXPECT_EQ(sys(r->self(), T("get_state")), term(0));
    EXPECT_EQ(me.pending(), 0u);
    EXPECT_EQ(sys(r->self(), T("resume")), T("ok"));
    EXPECT_EQ(reply(c1), term(1));
    EXPECT_EQ(reply(c2), term(2));
}

TEST_P(GenServerSys, change_code_runs_the_hook_only_while_suspended) {
    auto c = std::make_shared<counter>();
    auto r = start(c);
    reply(send(r->self(), "$gen_call", T("inc")));
    EXPECT_EQ(sys(r->self(), T("{change_code, counter, \"1\", 10}")),
              T("{error, {unknown_system_msg, {change_code, counter, \"1\", 10}}}"));
    sys(r->self(), T("suspend"));
    EXPECT_EQ(sys(r->self(), T("{change_code, counter, \"0\", 10}")),
              T("{error, {bad_vsn, \"0\"}}"));
    EXPECT_EQ(sys(r->self(), T("get_state")), term(1));
    EXPECT_EQ(sys(r->self(), T("{change_code, counter, \"1\", 10}")), T("ok"));
    sys(r->self(), T("resume"));
    EXPECT_EQ(reply(send(r->self(), "$gen_call", T("get"))), term(11));
}

TEST_P(GenServerSys, statistics_count_calls_and_replies) {
    auto r = start(std::make_shared<counter>());
    EXPECT_EQ(sys(r->self(), T("{debug, {statistics, true}}")), T("ok"));
    for (int i = 0; i < 3; ++i)
        reply(send(r->self(), "$gen_call", T("inc")));
    me.send(r->self(), T("{'$gen_cast', x}"));
    auto s = sys(r->self(), T("{debug, {statistics, get}}"));
    ASSERT_EQ(s[0], T("ok"));
    auto items = s[1].as_list().elements;
    ASSERT_EQ(items.size(), 5u);
    EXPECT_EQ(items[3], T("{messages_in, 4}"));
    EXPECT_EQ(items[4], T("{messages_out, 3}"));
}

TEST_P(GenServerSys, sys_terminate_replies_then_runs_terminate) {
    auto c = std::make_shared<counter>();
    auto r = start(c);
    const auto ref = me.monitor(r->self());
    EXPECT_EQ(sys(r->self(), T("{terminate, shutdown}")), T("ok"));
    auto down =
        me.receive_if([&](const term& t) { return t.is_tuple(5) && t[1] == term(ref); }, 10s);
    ASSERT_TRUE(down);
    EXPECT_EQ((*down)[4], T("shutdown"));
    ASSERT_EQ(c->terminated.size(), 1u);
    EXPECT_EQ(c->terminated[0], T("shutdown"));
}

INSTANTIATE_TEST_SUITE_P(modes, GenServerSys, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? "inline" : "threaded"; });

}  // namespace
