// Demo node: rpc functions (module `demo`) and a gen_server `counter`.
//
//   rpc:call(Demo, demo, echo, [T])     -> T
//   rpc:call(Demo, demo, add, [A, B])   -> A + B (any size integers)
//   rpc:call(Demo, demo, raise, [R])    -> raises error:R
//   rpc:call(Demo, demo, sleep, [Ms])   -> ok after Ms milliseconds (a timer, no thread held)
//   gen_server:call({counter, Demo}, get) -> N;  {add, N} -> new value;  {set, V} -> ok;
//   cast reset -> 0
#pragma once

#include <erl/gen_server.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

namespace demo_rpc {

struct counter : erl::gen_server::server {
    erl::term value{0};
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        static const erl::atom get("get"), add("add"), set("set"), badarg("badarg");
        if (req.is_atom(get)) return value;
        if (req.is_tuple(2) && req[0].is_atom(set)) {  // demo:locked_add's read-modify-write
            value = req[1];
            return erl::term(erl::atoms::ok());
        }
        if (req.is_tuple(2) && req[0].is_atom(add) && req[1].is_integer()) {
            value = *erl::add(value, req[1]);
            return value;
        }
        return erl::tuple(erl::atoms::error(), badarg);
    }
    void handle_cast(const erl::term& req) override {
        static const erl::atom reset("reset");
        if (req.is_atom(reset)) value = erl::term(0);
    }
    // sys:get_state({counter, Demo}) -> N
    std::optional<erl::term> state() const override { return value; }
};

struct services {
    std::unique_ptr<erl::rpc::server> rpc;
    std::unique_ptr<erl::gen_server::running> counter;
    ~services() {
        counter.reset();
        rpc.reset();
    }
};

inline std::unique_ptr<services> start(erl::node& node) {
    auto s = std::make_unique<services>();
    s->rpc = std::make_unique<erl::rpc::server>(node);
    auto& r = *s->rpc;
    // Quick functions that never block run inline on the I/O thread that read the request
    // (like a normal NIF); sleep stays on the pool (the default, like a dirty NIF).
    const erl::rpc::function_options quick{.run = erl::rpc::run_on::io_thread};
    r.add(
        "demo", "echo", [](const erl::term& t) { return t; }, quick);
    r.add(
        "demo", "add",
        [](const erl::term& a, const erl::term& b) {
            auto sum = erl::add(a, b);  // bignums included; non-integers are badarith as in Erlang
            if (!sum) erl::rpc::raise_error(erl::term(erl::atom("badarith")));
            return *sum;
        },
        quick);
    r.add(
        "demo", "raise",
        [](const erl::term& reason) -> erl::term { erl::rpc::raise_error(reason); }, quick);
    r.add("demo", "sleep",
          [](erl::rpc::call_context& ctx, std::int64_t ms) -> boost::asio::awaitable<void> {
              boost::asio::steady_timer t(ctx.executor(), std::chrono::milliseconds(ms));
              co_await t.async_wait(boost::asio::use_awaitable);
          });
    // The counter's callbacks are quick: they run on the delivering thread (no thread hop).
    if (auto c = erl::gen_server::start(node, std::make_shared<counter>(), erl::atom("counter"),
                                        {.run_inline = true}))
        s->counter = std::move(*c);
    return s;
}

}  // namespace demo_rpc
