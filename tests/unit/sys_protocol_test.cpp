// sys.erl's system messages handled by erl::detail::sys::protocol, without a node: each test
// feeds {system, From, Request} and checks the answer against the shape OTP 25's sys.erl and
// gen_server.erl give.
#include "services/sys_protocol.hpp"

#include <erl/parse.hpp>
#include <erl/rpc.hpp>

#include <gtest/gtest.h>

namespace {

using erl::term;
using erl::detail::sys::protocol;

term T(std::string_view text) {
    auto t = erl::parse(text);
    EXPECT_TRUE(t) << text;
    return t ? *t : term();
}

struct fake_owner : erl::detail::sys::owner {
    term state = term(7);
    bool fail_get = false;
    std::optional<term> change_error;
    std::vector<term> changes;  // {Module, OldVsn, Extra} of each code_change
    term get_state() override {
        if (fail_get) erl::rpc::raise_error(term(erl::atom("boom")));
        return state;
    }
    term replace_state(const term& fun) override {
        if (!fun.is_integer()) erl::rpc::raise_error(term(erl::atom("undef")));
        state = fun;
        return state;
    }
    std::optional<term> code_change(const term& m, const term& vsn, const term& extra) override {
        changes.push_back(erl::make_tuple({m, vsn, extra}));
        return change_error;
    }
    std::optional<erl::atom> registered_name() const override { return erl::atom("counter"); }
};

// The {data, [{"Status", _}, {"Parent", _}, {"Logged events", _}]} items of a get_status answer.
std::span<const term> status_data(const term& status) {
    return status[3].as_list().elements[4].as_list().elements[1][1].as_list().elements;
}

struct sys_protocol_test : ::testing::Test {
    term self = term(erl::pid{erl::atom("cpp@localhost"), 42, 3, 1});
    protocol p{erl::atom("gen_server"), self, self};
    fake_owner o;
    term from = T("{pid, [alias|tag]}");

    term call(const term& request) {
        auto msg = erl::make_tuple({term(erl::atom("system")), from, request});
        EXPECT_TRUE(protocol::is_system(msg));
        auto a = p.handle(msg, o);
        EXPECT_EQ(a.from, from);
        EXPECT_FALSE(a.terminate);
        return a.reply;
    }
};

TEST_F(sys_protocol_test, recognises_only_system_messages_with_a_from_pair) {
    EXPECT_TRUE(protocol::is_system(T("{system, {p, t}, get_state}")));
    EXPECT_FALSE(protocol::is_system(T("{system, p, get_state}")));
    EXPECT_FALSE(protocol::is_system(T("{'$gen_call', {p, t}, get_state}")));
    EXPECT_FALSE(protocol::is_system(T("{system, {p, t}}")));
}

TEST_F(sys_protocol_test, get_state_returns_the_owner_state) {
    EXPECT_EQ(call(T("get_state")), term(7));
}

TEST_F(sys_protocol_test, failing_get_state_is_callback_failed) {
    o.fail_get = true;
    EXPECT_EQ(call(T("get_state")),
              T("{error, {callback_failed, {gen_server, system_get_state}, {error, boom}}}"));
}

TEST_F(sys_protocol_test, replace_state_answers_the_new_state_or_callback_failed) {
    EXPECT_EQ(call(T("{replace_state, 9}")), term(9));
    EXPECT_EQ(o.state, term(9));
    EXPECT_EQ(call(T("{replace_state, 'fun'}")),
              T("{error, {callback_failed, {gen_server, system_replace_state}, {error, undef}}}"));
    EXPECT_EQ(o.state, term(9));
}

TEST_F(sys_protocol_test, get_status_has_otp_shape) {
    // {status, Pid, {module, gen_server}, [PDict, SysState, Parent, Debug, Misc]} with Misc as
    // gen_server:format_status/2 builds it.
    using erl::make_list;
    using erl::make_tuple;
    auto want = make_tuple(
        {T("status"), self, T("{module, gen_server}"),
         make_list({term(), T("running"), self, term(),
                    make_list({T("{header, \"Status for generic server counter\"}"),
                               make_tuple({T("data"),
                                           make_list({T("{\"Status\", running}"),
                                                      make_tuple({erl::charlist("Parent"), self}),
                                                      T("{\"Logged events\", []}")})}),
                               T("{data, [{\"State\", 7}]}")})})});
    EXPECT_EQ(call(T("get_status")), want);
}

TEST_F(sys_protocol_test, suspend_resume_and_status_follows) {
    EXPECT_EQ(call(T("suspend")), T("ok"));
    EXPECT_TRUE(p.suspended());
    EXPECT_EQ(status_data(call(T("get_status")))[0], T("{\"Status\", suspended}"));
    EXPECT_EQ(call(T("resume")), T("ok"));
    EXPECT_FALSE(p.suspended());
}

TEST_F(sys_protocol_test, change_code_only_while_suspended) {
    EXPECT_EQ(call(T("{change_code, m, \"1\", x}")),
              T("{error, {unknown_system_msg, {change_code, m, \"1\", x}}}"));
    EXPECT_TRUE(o.changes.empty());
    call(T("suspend"));
    EXPECT_EQ(call(T("{change_code, m, \"1\", x}")), T("ok"));
    ASSERT_EQ(o.changes.size(), 1u);
    EXPECT_EQ(o.changes[0], T("{m, \"1\", x}"));
    o.change_error = T("{unsupported, \"0\"}");
    EXPECT_EQ(call(T("{change_code, m, \"0\", x}")), T("{error, {unsupported, \"0\"}}"));
    EXPECT_TRUE(p.suspended());
}

TEST_F(sys_protocol_test, statistics_count_messages_in_and_out) {
    EXPECT_EQ(call(T("{debug, {statistics, get}}")), T("{ok, no_statistics}"));
    EXPECT_EQ(call(T("{debug, {statistics, true}}")), T("ok"));
    p.note_in(T("{'$gen_call', {p, t}, get}"));
    p.note_out(term(1), T("{p, t}"), o);
    p.note_in(T("{'$gen_cast', reset}"));
    auto s = call(T("{debug, {statistics, get}}"));
    ASSERT_TRUE(s.is_tuple(2));
    EXPECT_EQ(s[0], T("ok"));
    const term& l = s[1];
    ASSERT_EQ(l.size(), 5u);
    auto items = l.as_list().elements;
    EXPECT_EQ(items[0][0], T("start_time"));
    EXPECT_TRUE(items[0][1].is_tuple(2) && items[0][1][0].is_tuple(3));
    EXPECT_EQ(items[1][0], T("current_time"));
    // Messages handled since statistics started: the two in-messages and this request.
    EXPECT_EQ(items[2], T("{reductions, 3}"));
    EXPECT_EQ(items[3], T("{messages_in, 2}"));
    EXPECT_EQ(items[4], T("{messages_out, 1}"));
    EXPECT_EQ(call(T("{debug, {statistics, false}}")), T("ok"));
    EXPECT_EQ(call(T("{debug, {statistics, get}}")), T("{ok, no_statistics}"));
}

TEST_F(sys_protocol_test, log_keeps_the_last_events) {
    EXPECT_EQ(call(T("{debug, {log, get}}")), T("{ok, []}"));
    EXPECT_EQ(call(T("{debug, {log, {true, 2}}}")), T("ok"));
    p.note_in(T("a"));
    p.note_in(T("b"));
    p.note_out(T("r"), T("{p, t}"), o);
    EXPECT_EQ(call(T("{debug, {log, get}}")), T("{ok, [{in, b}, {out, r, {p, t}, 7}]}"));
    EXPECT_EQ(status_data(call(T("get_status")))[2],
              T("{\"Logged events\", [{in, b}, {out, r, {p, t}, 7}]}"));
    EXPECT_EQ(call(T("{debug, no_debug}")), T("ok"));
    EXPECT_EQ(call(T("{debug, {log, get}}")), T("{ok, []}"));
}

TEST_F(sys_protocol_test, unsupported_debug_commands_answer_as_sys_does) {
    EXPECT_EQ(call(T("{debug, {trace, false}}")), T("ok"));
    EXPECT_EQ(call(T("{debug, {log_to_file, \"/tmp/x\"}}")), T("{error, open_file}"));
    EXPECT_EQ(call(T("{debug, {install, {f, s}}}")), T("unknown_debug"));
    EXPECT_EQ(call(T("{debug, {remove, f}}")), T("ok"));
    EXPECT_EQ(call(T("{debug, bogus}")), T("unknown_debug"));
    EXPECT_EQ(call(T("bogus")), T("{error, {unknown_system_msg, bogus}}"));
}

TEST_F(sys_protocol_test, terminate_replies_ok_then_asks_to_end) {
    auto a = p.handle(T("{system, {p, t}, {terminate, shutdown}}"), o);
    EXPECT_EQ(a.reply, T("ok"));
    ASSERT_TRUE(a.terminate);
    EXPECT_EQ(*a.terminate, T("shutdown"));
}

}  // namespace
