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

#include <erl/rpc.hpp>
#include <erl/term.hpp>
#include <erl/version.hpp>

#include <cstdint>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace erl::module {

// Raised whenever the layout of descriptor, registrar or the handler types changes.
inline constexpr std::uint32_t abi_version = 1;

// One function recorded by a module's init function.
struct function_entry {
    atom function;
    unsigned arity = 0;
    std::variant<rpc::sync_handler, rpc::async_handler> handler;
    rpc::function_options options;
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

    const std::vector<function_entry>& entries() const noexcept { return entries_; }
    std::vector<function_entry> take() && { return std::move(entries_); }

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
