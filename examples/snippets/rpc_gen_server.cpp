// The README's "rpc and gen_server, both ways", compiled: the README block is the two regions
// between the readme markers, joined by an empty line (cmake/readme-snippets.pl checks it).
// serve() holds the statements that follow node.start().
// [readme:rpc]
#include <erl/gen_server.hpp>
#include <erl/rpc.hpp>
// [/readme:rpc]

#include <erl/node.hpp>

#include <memory>
#include <optional>
#include <string>

void serve(erl::node& node) {
    // [readme:rpc]
    erl::rpc::server rpc(node);  // right after node.start()
    rpc.add("demo", "add", [](const erl::term& a, const erl::term& b) { return *erl::add(a, b); });
    rpc.add("demo", "greet", [](const std::string& who) { return "hello " + who; });
    // Quick functions that never block may run inline on the I/O thread (no thread hand-off, like
    // a normal NIF; the default pool is the "dirty" one): see docs/rpc.md.
    rpc.add("demo", "echo", [](const erl::term& t) { return t; },
            {.run = erl::rpc::run_on::io_thread});

    struct counter : erl::gen_server::server {  // answers gen_server:call / GenServer.call
        erl::term n{0};
        std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
            if (req.is_tuple(2) && req[0].is_atom(erl::atom("add")))
                return n = *erl::add(n, req[1]);
            return n;
        }
        void handle_cast(const erl::term&) override { n = erl::term(0); }
    };
    auto srv = erl::gen_server::start(node, std::make_shared<counter>(), erl::atom("counter"));

    // C++ calling BEAM: the result, or the Erlang exception as data.
    auto r = erl::rpc::call(node, erl::atom("beam@127.0.0.1"), "lists", "reverse",
                            erl::list(erl::list(1, 2, 3)), std::chrono::seconds(5));
    // [/readme:rpc]
}

int main() {
    erl::node_options o;
    o.name = "snippet@127.0.0.1";
    o.cookie = "secret";
    erl::node node(o);
    if (node.start()) return 1;
    serve(node);
}
