// The ETF codec on what global and pg send: the captured traces (interop/traces/*.etf, written
// by term_to_binary on OTP 25) hold every protocol message of the scenarios, with maps keyed
// by tuples (init_connect's Known), no_longer_a_pid, local funs (global's default resolve
// method) and export funs, references, 64-bit tags. They must decode, and re-encode to OTP's
// bytes exactly.
#include "global_trace_support.hpp"

#include <erl/etf.hpp>

#include <gtest/gtest.h>

namespace {

using erl::atom;
using erl::term;

// Every subterm of t, depth first (explicit stack).
template <class F>
void walk(const term& t, F&& f) {
    std::vector<term> stack{t};
    while (!stack.empty()) {
        term x = std::move(stack.back());
        stack.pop_back();
        f(x);
        if (x.is_tuple())
            for (const auto& e : x.as_tuple())
                stack.push_back(e);
        else if (x.type() == erl::kind::list) {
            auto lv = x.as_list();
            for (const auto& e : lv.elements)
                stack.push_back(e);
            stack.push_back(lv.tail);
        } else if (x.is_map())
            for (const auto& [k, v] : x.as_map())
                stack.push_back(k), stack.push_back(v);
    }
}

class global_etf_trace : public ::testing::TestWithParam<const char*> {};

TEST_P(global_etf_trace, decodes_and_reencodes_to_otps_bytes) {
    auto bytes = erl::test::trace_bytes(GetParam());
    ASSERT_FALSE(bytes.empty());
    auto t = erl::etf::decode(bytes);
    ASSERT_TRUE(t) << t.error().message();
    EXPECT_EQ(erl::etf::encode(*t), bytes);
    EXPECT_EQ(erl::etf::encoded_size(*t), bytes.size());
}

INSTANTIATE_TEST_SUITE_P(scenarios, global_etf_trace,
                         ::testing::Values("connect", "three", "clash", "partition", "nodedown"));

TEST(global_etf_trace_terms, protocol_terms_come_through) {
    bool tuple_keyed_map = false, no_longer_a_pid = false, closure = false, export_fun = false,
         big_tag = false, reference = false;
    for (const char* s : {"connect", "clash", "three"}) {
        for (const auto& nt : erl::test::load_trace(s))
            for (const auto& e : nt.events)
                walk(e.msg, [&](const term& x) {
                    if (x.is_map())
                        for (const auto& [k, v] : x.as_map())
                            if (k.is_tuple(2) && k[0].is_atom(atom("connection_id")) &&
                                v.is_integer())
                                tuple_keyed_map = true;
                    no_longer_a_pid |= x.is_atom(atom("no_longer_a_pid"));
                    if (x.is_closure() && x.as_closure().module == atom("global")) closure = true;
                    if (x.is_export() && x.as_export().function == atom("random_notify_name"))
                        export_fun = true;
                    if (x.is_small() && x.as_int64() <= -(std::int64_t{1} << 59)) big_tag = true;
                    reference |= x.is_reference();
                });
    }
    EXPECT_TRUE(tuple_keyed_map);
    EXPECT_TRUE(no_longer_a_pid);
    EXPECT_TRUE(closure);
    EXPECT_TRUE(export_fun);
    EXPECT_TRUE(big_tag);
    EXPECT_TRUE(reference);
}

}  // namespace
