// Demo node: a code server for C++ modules (erl::code, docs/hot-code.md).
//
//   erlcpp-demo --code-path build/plugins/v1     loads demo_plugin at start if the path has it
//   rpc:call(Demo, demo_plugin, version, [])       -> 1
//   rpc:call(Demo, code, add_patha, ["build/plugins/v2"]),
//   rpc:call(Demo, code, load_file, [demo_plugin]) -> {module, demo_plugin}
//   rpc:call(Demo, demo_plugin, version, [])       -> 2
//
// Loading demo_plugin starts its gen_server demo_plugin_server (a counter); the live upgrade of
// that server is OTP's sequence (docs/hot-code.md):
//   sys:suspend({demo_plugin_server, Demo}),
//   rpc:call(Demo, code, load_file, [demo_plugin]),
//   sys:change_code({demo_plugin_server, Demo}, demo_plugin, "1", []),
//   sys:resume({demo_plugin_server, Demo}),
//   sys:get_state({demo_plugin_server, Demo})      -> #{count => N, history => []}
#pragma once

#include <erl/code.hpp>
#include <erl/node.hpp>
#include <erl/rpc.hpp>
#include <erl/term.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace demo_code {

// The code server on `rpc` (destroy it before the rpc server). With demo_plugin.so on the
// path, the plugin is loaded now; a failed load is reported and the node runs without it.
inline std::unique_ptr<erl::code::server> start(erl::node& node, erl::rpc::server& rpc,
                                                std::vector<std::string> code_path) {
    auto code =
        std::make_unique<erl::code::server>(node, rpc, erl::code::options{.code_path = code_path});
    const erl::atom plugin("demo_plugin");
    if (code->which(plugin).is_list()) {
        auto r = code->load_file(plugin);
        std::cerr << "erlcpp-demo: code:load_file(demo_plugin) -> " << r.to_string() << "\n";
    }
    return code;
}

}  // namespace demo_code
