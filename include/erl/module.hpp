// erl::module — C++ modules that an erl::code::server loads, replaces and unloads at run time.
//
// A module is a shared object (`<name>.so`, built with the CMake helper erlcpp_add_module) that
// declares its name and version and registers its functions with the same typed signatures as
// erl::rpc::server::add:
//
//     #include <erl/module.hpp>
//
//     ERLCPP_MODULE(demo_plugin, "2") {
//         r.add("version", [] { return 2; });
//         r.add("add", [](std::int64_t a, std::int64_t b) { return a + b; });
//         r.add("nap", [](erl::rpc::call_context& ctx, std::int64_t ms)
//                   -> boost::asio::awaitable<erl::atom> { ... });
//     }
//     %% in erl, once loaded:  rpc:call('cpp@host', demo_plugin, add, [1, 2])  ->  3
//
// The block after ERLCPP_MODULE is the module's init function; `r` is an erl::module::registrar.
// It runs once per load, on the thread that loads the module; the handlers it records belong to
// that version only (see erl::code for how calls are routed to versions).
//
// Module gen_servers: r.add_server("name", factory) declares a gen_server implementation
// (an erl::gen_server::server) of this version. The code server starts it, registered as
// `name`, when a version that declares it is loaded and no such server runs. A running server
// keeps the code of the version it started with (its callbacks, and its state as that code
// holds it) until OTP's upgrade sequence switches it to the current version:
//
//     sys:suspend(demo_plugin_server),
//     {module, demo_plugin} = rpc:call(N, code, load_file, [demo_plugin]),
//     ok = sys:change_code({demo_plugin_server, N}, demo_plugin, "1", []),
//     sys:resume({demo_plugin_server, N})
//
// sys:change_code makes a server object with the current version's factory and calls its
// code_change(OldVsn, OldState, Extra), OldState being the old object's state(); on success
// the new object serves from then on (same process, same queue) and the old one is destroyed;
// on failure (an error term or an exception) the new object is dropped, the old one keeps
// serving and sys:change_code returns {error, Error}. OldVsn is what the caller passes; OTP's
// release_handler passes the old version's vsn (the descriptor's vsn text as a string, "1")
// on an upgrade and {down, Vsn} (Vsn: the version downgraded to) on a downgrade.
// Between callbacks a module server is what a BEAM gen_server waiting in receive is: not a
// process executing old code, so soft_purge does not wait for it and purge does not kill it;
// the version it runs stays in memory (code::server::resident_versions counts it) until
// sys:change_code moves it to the current version or the server ends.
//
// Binary compatibility: the module is compiled against the same erlcpp headers as the node that
// loads it and is linked WITHOUT the erlcpp library: its references to erlcpp (terms, atoms,
// conversions) bind to the node's copy at load, so both share one atom table. The node must
// therefore export erlcpp's symbols (link liberlcpp.so, or set ENABLE_EXPORTS on an executable
// that links the static library; erlcpp_enable_modules(target) in cmake/ErlcppModule.cmake does
// that). The descriptor carries erl::module::abi_version and the erlcpp version the module was
// built with; the code server refuses a module whose values differ from its own
// ({error, badfile}).
//
// What a module must not do (the code server cannot undo it): leave threads, timers, asio work
// or callbacks running after its handlers return, or hand out objects whose code or static data
// lives in the module (function pointers, vtables, std::function, string literals) that outlive
// the call. Everything a handler returns must be an erl::term (or convert to one). See
// docs/hot-code.md.
#pragma once

#include <erl/gen_server.hpp>
#include <erl/rpc.hpp>
#include <erl/term.hpp>
#include <erl/version.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace erl::module {

// Raised whenever the layout of descriptor, registrar or the handler types changes.
inline constexpr std::uint32_t abi_version = 2;

// One function recorded by a module's init function.
struct function_entry {
    atom function;
    unsigned arity = 0;
    std::variant<rpc::sync_handler, rpc::async_handler> handler;
    rpc::function_options options;
};

// A gen_server implementation recorded by a module's init function: `make` creates a server
// object of this version (for the first start, and for sys:change_code to this version).
struct server_entry {
    atom name;
    std::function<std::shared_ptr<gen_server::server>()> make;
};

// Given to a module's init function; add() mirrors erl::rpc::server::add without the module
// name (the module's own name is implied).
class registrar {
  public:
    // fn is any callable accepted by erl::rpc::server::add (sync or coroutine, with or without a
    // leading call_context&). Replaces an earlier entry of the same name and arity.
    template <class F>
    void add(std::string_view function, F&& fn, rpc::function_options opts = {});
    void add_raw(atom function, unsigned arity, rpc::sync_handler fn,
                 rpc::function_options opts = {}) {
        put({function, arity, std::move(fn), opts});
    }
    void add_raw_async(atom function, unsigned arity, rpc::async_handler fn) {
        put({function, arity, std::move(fn), {}});
    }

    // A gen_server of this module, registered as `name` (see the top of this header). Replaces
    // an earlier entry of the same name.
    void add_server(std::string_view name,
                    std::function<std::shared_ptr<gen_server::server>()> make) {
        const atom n(name);
        for (auto& x : servers_)
            if (x.name == n) {
                x.make = std::move(make);
                return;
            }
        servers_.push_back({n, std::move(make)});
    }

    const std::vector<function_entry>& entries() const noexcept { return entries_; }
    const std::vector<server_entry>& servers() const noexcept { return servers_; }
    std::vector<function_entry> take() && { return std::move(entries_); }
    std::vector<server_entry> take_servers() && { return std::move(servers_); }

  private:
    void put(function_entry e) {
        for (auto& x : entries_)
            if (x.function == e.function && x.arity == e.arity) {
                x = std::move(e);
                return;
            }
        entries_.push_back(std::move(e));
    }
    std::vector<function_entry> entries_;
    std::vector<server_entry> servers_;
};

// What a module exports under the C name `erlcpp_module_descriptor` (ERLCPP_MODULE defines it).
// Plain C layout: the loader reads abi and erlcpp_version before it touches anything else.
struct descriptor {
    std::uint32_t abi;             // abi_version of the headers the module was built with
    std::uint32_t erlcpp_version;  // ERLCPP_VERSION of those headers
    const char* name;              // the module's name (must match the file name M.so)
    const char* vsn;               // free-form version text (code:module_md5 is the identity)
    void (*init)(registrar&);
};

inline constexpr const char* descriptor_symbol = "erlcpp_module_descriptor";

}  // namespace erl::module

// Declares the module `name` (an identifier) with version text `vsn` and opens the body of its
// init function, in which `r` is the erl::module::registrar.
#define ERLCPP_MODULE(name, vsn) ERLCPP_MODULE_I(name, vsn)
#define ERLCPP_MODULE_I(name, vsn)                                                     \
    static void erlcpp_module_init_(::erl::module::registrar& r);                      \
    extern "C" __attribute__((visibility("default")))                                  \
    const ::erl::module::descriptor erlcpp_module_descriptor{                          \
        ::erl::module::abi_version, ERLCPP_VERSION, #name, vsn, &erlcpp_module_init_}; \
    static void erlcpp_module_init_([[maybe_unused]] ::erl::module::registrar& r)

// ---------------------------------------------------------------------------------------------
// Implementation of registrar::add: the conversions of erl::rpc::server::add (rpc::detail).
namespace erl::module {

template <class F>
void registrar::add(std::string_view function, F&& fn, rpc::function_options opts) {
    const atom f(function);
    rpc::detail::register_typed(
        std::forward<F>(fn), opts, "erl::module::registrar::add",
        [&](unsigned arity, rpc::sync_handler h) { add_raw(f, arity, std::move(h), opts); },
        [&](unsigned arity, rpc::async_handler h) { add_raw_async(f, arity, std::move(h)); });
}

}  // namespace erl::module
