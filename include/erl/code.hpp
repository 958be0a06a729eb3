// erl::code — a code server for C++ modules (include/erl/module.hpp), answering BEAM's `code`
// API over rpc/erpc, with BEAM's two-version semantics.
//
//     erl::rpc::server rpc(node);
//     erl::code::server code(node, rpc, {.code_path = {"/opt/plugins"}});
//     %% in erl:
//     rpc:call(N, code, load_file, [demo_plugin])   ->  {module, demo_plugin}
//     rpc:call(N, demo_plugin, version, [])          ->  1
//
// Module M is the file M.so in the first directory of the code path that has one. The code
// server registers, on the rpc server, the functions of `code` listed below and one entry per
// function of each loaded module; a call to M:F(...) runs on the version of M that is current
// when the call starts and pins that version until it returns.
//
// Answers (kernel/src/code.erl, code_server.erl, erts_code_purger.erl):
//   load_file(M)          {module, M} | {error, nofile | not_purged | badfile | on_load_failure}
//   ensure_loaded(M)      {module, M} | {error, nofile | not_purged | badfile | on_load_failure}
//   load_binary(M, F, B)  {module, M} | {error, badfile | on_load_failure | sticky_directory}
//                         (purges old code first, as code_server.erl does; sticky_directory
//                         when options::allow_load_binary is false)
//   is_loaded(M)          {file, Path} | false      which(M)   Path | non_existing
//   delete(M)             true | false              purge(M)   true if a call was killed
//   soft_purge(M)         false while a call runs old code, else true (old code removed)
//   all_loaded()          [{M, Path}] of the C++ modules
//   get_path()            [Dir]                     add_patha/add_pathz(Dir)  true | {error,
//   bad_directory} module_md5(M)         <<MD5 of the .so>> (16 bytes) | undefined
// Paths are charlists, as on a BEAM node.
//
// Two versions: loading M makes the current version old and the new one current; loading
// again while old code exists is {error, not_purged} (after delete/1, with no current version,
// a load goes in beside the old code, as erts' loader allows). purge(M) kills every erpc process
// still running old code (its caller sees the exit reason `killed`: rpc:call returns {badrpc,
// {'EXIT', killed}}) and forgets the old version; its shared object is closed (dlclose) only after
// the last call that pinned it has returned, since a C++ function cannot be stopped from outside.
// Calls through the `rex` server cannot be killed (rex serves everyone); purge leaves them running
// and they finish normally.
//
// Thread safety: every member function may be called from any thread except the node's I/O
// threads. The server must be destroyed before the rpc server it registered with.
#pragma once

#include <erl/rpc.hpp>
#include <erl/term.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace erl {
class node;
}

namespace erl::code {

struct options {
    // Directories searched for M.so, in order (get_path/0, add_patha/1, add_pathz/1).
    std::vector<std::string> code_path;
    // code:load_binary/3 from peers; when false it answers {error, sticky_directory}, OTP's
    // answer to a load the code server refuses by policy.
    bool allow_load_binary = true;
    // Where private copies of shared objects are written before dlopen; empty: $TMPDIR or /tmp.
    std::string temp_dir;
};

namespace detail {
struct code_state;
}

class server {
  public:
    server(erl::node& n, rpc::server& rpc, options opts = {});
    // Unregisters `code` and the modules' functions and waits for running `code` calls (they
    // never block). Each shared object is closed when the last module call still running on it
    // returns (at once if none is running).
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // The `code` functions, with the answers listed above (what an rpc caller receives).
    term load_file(atom module);
    term ensure_loaded(atom module);
    term load_binary(atom module, const term& file, const term& bytes);
    term is_loaded(atom module) const;
    term which(atom module) const;
    term delete_module(atom module);
    term purge(atom module);
    term soft_purge(atom module);
    term all_loaded() const;
    term get_path() const;
    term add_path(const term& dir, bool first);
    term module_md5(atom module) const;

    // Versions of `module` whose shared object is still open: current, old and purged ones that
    // still have a call running. 0 once nothing of it is left in memory.
    std::size_t resident_versions(atom module) const;

  private:
    std::shared_ptr<detail::code_state> st_;
};

}  // namespace erl::code
