// erl::code::server: loads C++ modules (include/erl/module.hpp) and answers kernel's `code`
// API (kernel/src/code.erl, code_server.erl) with the two-version semantics of
// erts_code_purger.erl.
#include <erl/code.hpp>
#include <erl/gen_server.hpp>
#include <erl/mailbox.hpp>
#include <erl/module.hpp>
#include <erl/node.hpp>

#include "services/gen_server_internal.hpp"
#include "services/sys_protocol.hpp"

#include <openssl/evp.h>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace erl::code {
namespace detail {

namespace {

struct names {
    atom code{"code"}, module{"module"}, error{"error"}, file{"file"}, nofile{"nofile"},
        not_purged{"not_purged"}, badfile{"badfile"}, badarg{"badarg"},
        on_load_failure{"on_load_failure"}, sticky_directory{"sticky_directory"},
        non_existing{"non_existing"}, bad_directory{"bad_directory"}, undefined{"undefined"},
        undef{"undef"}, kill{"kill"}, rex{"rex"}, function_clause{"function_clause"},
        cpp_exception{"cpp_exception"}, error_class{"error"};
};
const names& N() {
    static const names n;
    return n;
}

term error_tuple(atom what) {
    return make_tuple({term(N().error), term(what)});
}

// The MD5 of the object code: what code:module_md5/1 and M:module_info(md5) give on BEAM.
std::string md5_of(std::span<const std::uint8_t> bytes) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), out, &len, EVP_md5(), nullptr) != 1) return {};
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::optional<std::vector<std::uint8_t>> read_file(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    if (in.bad()) return std::nullopt;
    return bytes;
}

// A path argument as OTP takes it: a charlist (or, for load_binary's File, an atom).
std::optional<std::string> path_text(const term& t, bool atom_ok) {
    if (t.is_atom()) {
        if (!atom_ok) return std::nullopt;
        return std::string(t.as_atom().str());
    }
    if (!t.is_list() && !t.is_nil()) return std::nullopt;
    auto s = from_term<std::string>(t);
    if (!s) return std::nullopt;
    return std::move(*s);
}

}  // namespace

// One loaded version of a module. Calls pin it with a shared_ptr; the last owner to let go
// destroys the handlers (their code is in the shared object) and then closes the object.
struct version {
    std::string file;  // what is_loaded/which report
    std::string md5;
    void* handle = nullptr;
    std::string vsn;  // the descriptor's version text
    std::vector<module::function_entry> fns;
    std::vector<module::server_entry> servers;
    std::shared_ptr<std::atomic<std::size_t>> resident;
    // Processes running this version's code (guarded by code_state::mu): erpc processes running
    // calls, and module gen_servers whose callbacks are this version's. purge kills them.
    std::vector<pid> running;

    ~version() {
        fns.clear();
        servers.clear();
        if (handle) ::dlclose(handle);
        resident->fetch_sub(1);
    }
    const module::function_entry* find(atom f, unsigned arity) const {
        for (auto& e : fns)
            if (e.function == f && e.arity == arity) return &e;
        return nullptr;
    }
    const module::server_entry* find_server(atom name) const {
        for (auto& e : servers)
            if (e.name == name) return &e;
        return nullptr;
    }
};

struct slot {
    std::shared_ptr<version> current, old;
    std::shared_ptr<std::atomic<std::size_t>> resident =
        std::make_shared<std::atomic<std::size_t>>(0);
    std::vector<std::pair<atom, unsigned>> registered;  // trampolines on the rpc server
    // The module's gen_servers the code server started, by registered name.
    std::map<atom, std::shared_ptr<gen_server::running>> servers;
};

struct code_state : std::enable_shared_from_this<code_state> {
    code_state(erl::node& n, rpc::server& r, options o) : node(n), rpc(r), opts(std::move(o)) {}

    erl::node& node;
    rpc::server& rpc;
    options opts;
    mailbox killer;  // the process that sends `kill` on purge
    mutable std::mutex mu;
    std::map<atom, slot> slots;
    std::vector<std::string> path;
    std::vector<std::pair<atom, unsigned>> code_fns;
    // `code` calls in progress; the server's destructor waits for them (they never block).
    std::condition_variable idle;
    std::size_t code_calls = 0;
    bool closing = false;

    // Loads `bytes` as a new version of m; the answer of code:load_file / load_binary.
    term load(atom m, std::string file, std::span<const std::uint8_t> bytes);
    // Starts the gen_servers of m's current version that do not run (after a load).
    void start_servers(atom m);
    std::optional<std::string> find_on_path(atom m) const;
    void sync_registrations(atom m, slot& s);  // with mu held
};

std::optional<std::string> code_state::find_on_path(atom m) const {
    const std::string name = std::string(m.str()) + ".so";
    std::vector<std::string> dirs;
    {
        std::lock_guard lk(mu);
        dirs = path;
    }
    for (auto& d : dirs) {
        std::error_code ec;
        std::string p = d.empty() || d.back() == '/' ? d + name : d + "/" + name;
        if (std::filesystem::is_regular_file(p, ec)) return p;
    }
    return std::nullopt;
}

namespace {

// Runs M:F/A on the version current when the call starts, pinning it until the call returns.
rpc::async_handler trampoline(std::weak_ptr<code_state> weak, atom m, atom f, unsigned arity) {
    return [weak, m, f, arity](rpc::call_context& ctx,
                               std::vector<term> args) -> boost::asio::awaitable<term> {
        std::shared_ptr<version> v;
        const module::function_entry* e = nullptr;
        auto st = weak.lock();
        if (st) {
            std::lock_guard lk(st->mu);
            auto it = st->slots.find(m);
            if (it != st->slots.end() && it->second.current) {
                v = it->second.current;
                e = v->find(f, arity);
                if (e) v->running.push_back(ctx.self());
            }
        }
        if (!e) {
            // As the rpc server answers an unknown function (error_handler:undefined_function).
            throw rpc::erlang_exception(
                N().error_class, term(N().undef),
                make_list({make_tuple({term(m), term(f), ctx.args(), term()})}));
        }
        struct unpin {
            std::shared_ptr<code_state> st;
            version* v;
            pid self;
            ~unpin() {
                std::lock_guard lk(st->mu);
                auto it = std::find(v->running.begin(), v->running.end(), self);
                if (it != v->running.end()) v->running.erase(it);
            }
        } g{st, v.get(), ctx.self()};
        // Exceptions are rethrown as the node's own types while the version is pinned: the
        // exception objects (and their destructors) may come from the module's code.
        std::optional<rpc::erlang_exception> failed;
        term result;
        try {
            if (auto* s = std::get_if<rpc::sync_handler>(&e->handler))
                result = (*s)(ctx, args);
            else
                result = co_await std::get<rpc::async_handler>(e->handler)(ctx, std::move(args));
        } catch (const rpc::erlang_exception& x) {
            failed.emplace(x.class_of(), x.reason(), x.stacktrace());
        } catch (const std::exception& x) {
            failed.emplace(N().error_class,
                           make_tuple({term(N().cpp_exception), binary(x.what())}));
        } catch (...) {
            failed.emplace(N().error_class, term(N().cpp_exception));
        }
        if (failed) throw std::move(*failed);
        co_return result;
    };
}

// A module's gen_server (include/erl/module.hpp): the process, its queue and its sys protocol
// belong to this host; the callbacks are those of `impl`, an object made by the factory of the
// version `pin`, which stays loaded while the object exists. sys:change_code switches impl to
// an object of the current version.
// Between callbacks the host is what a BEAM gen_server waiting in receive is: not a process
// executing old code (erts check_process_code/2), so soft_purge and purge neither wait for it
// nor kill it; a version it pins stays in memory after purge until sys:change_code moves the
// server on or the server ends.
class module_server final : public gen_server::server {
  public:
    module_server(std::weak_ptr<code_state> st, atom m, atom name, std::shared_ptr<version> v,
                  std::shared_ptr<gen_server::server> impl)
        : st_(std::move(st)), module_(m), name_(name), pin_(std::move(v)), impl_(std::move(impl)) {}
    // The object goes before the version its code is in.
    ~module_server() override { impl_.reset(); }

    void init() override {
        adopt(*impl_);
        impl_->init();
        forward_stop();
    }
    std::optional<term> handle_call(const term& req, const from& f) override {
        auto r = impl_->handle_call(req, f);
        forward_stop();
        return r;
    }
    void handle_cast(const term& req) override {
        impl_->handle_cast(req);
        forward_stop();
    }
    void handle_info(const term& msg) override {
        impl_->handle_info(msg);
        forward_stop();
    }
    // Last callback of the process: the object and then its version are let go at once (no
    // callback can follow), so a purged version closes without waiting for the host.
    void terminate(const term& reason) override {
        impl_->terminate(reason);
        impl_.reset();
        pin_.reset();
    }
    std::optional<term> state() const override {
        return gen_server::detail_access::state_of(*impl_);
    }
    term replace_state(const term& fun) override { return impl_->replace_state(fun); }
    std::optional<term> code_change(const term& old_vsn, const term& state,
                                    const term& extra) override;

  private:
    void adopt(gen_server::server& s) { gen_server::detail_access::set_self(s, self()); }
    void forward_stop() {
        if (auto& r = gen_server::detail_access::stop_reason(*impl_)) stop(*r);
    }
    std::weak_ptr<code_state> st_;
    atom module_, name_;
    std::shared_ptr<version> pin_;
    std::shared_ptr<gen_server::server> impl_;
};

std::optional<term> module_server::code_change(const term& old_vsn, const term& state,
                                               const term& extra) {
    std::shared_ptr<version> cur;
    if (auto st = st_.lock()) {
        std::lock_guard lk(st->mu);
        auto it = st->slots.find(module_);
        if (it != st->slots.end()) cur = it->second.current;
    }
    // No newer version to switch to (or none at all after delete/1): the running code
    // converts its own state, as gen_server's code_change/3 does without a reload.
    if (!cur || cur == pin_) return impl_->code_change(old_vsn, state, extra);
    const module::server_entry* e = cur->find_server(name_);
    if (!e || !e->make)  // the current version has no such server: as a missing code_change/3
        return make_tuple(
            {term(atom("EXIT")),
             make_tuple(
                 {term(N().undef), make_list({make_tuple({term(module_), term(atom("code_change")),
                                                          term(3), term()})})})});
    std::shared_ptr<gen_server::server> fresh;
    try {
        fresh = e->make();
        if (!fresh) return make_tuple({term(atom("no_server")), term(name_)});
        adopt(*fresh);
        if (auto failed = fresh->code_change(old_vsn, state, extra)) {
            fresh.reset();
            return failed;
        }
    } catch (...) {
        // Converted while the new version (which may have thrown it) is still loaded.
        auto failed = erl::detail::sys::code_change_failure(std::current_exception());
        fresh.reset();
        return failed;
    }
    auto old = std::move(impl_);
    auto old_pin = std::move(pin_);
    impl_ = std::move(fresh);
    pin_ = std::move(cur);
    old.reset();  // before its version may close
    return std::nullopt;
}

}  // namespace

void code_state::start_servers(atom m) {
    std::shared_ptr<version> cur;
    std::vector<atom> wanted;
    std::vector<std::shared_ptr<gen_server::running>> ended;  // joined after the lock
    {
        std::lock_guard lk(mu);
        auto& s = slots[m];
        cur = s.current;
        if (!cur) return;
        for (auto& e : cur->servers) {
            auto it = s.servers.find(e.name);
            if (it != s.servers.end()) {
                if (it->second->alive()) continue;  // keeps its version until sys:change_code
                ended.push_back(std::move(it->second));
                s.servers.erase(it);
            }
            wanted.push_back(e.name);
        }
    }
    ended.clear();
    for (atom name : wanted) {
        const module::server_entry* e = cur->find_server(name);
        std::shared_ptr<gen_server::server> impl;
        try {
            impl = e->make ? e->make() : nullptr;
        } catch (...) {
        }
        if (!impl) {
            node.log({log_level::error,
                      log_kind::code_load_failed,
                      {},
                      {},
                      {},
                      std::string(m.str()) + " could not make server " + std::string(name.str())});
            continue;
        }
        auto host =
            std::make_shared<module_server>(weak_from_this(), m, name, cur, std::move(impl));
        auto r = gen_server::start(node, std::move(host), name);
        if (!r) {
            node.log(
                {log_level::error,
                 log_kind::code_load_failed,
                 {},
                 {},
                 r.error(),
                 "cannot start server " + std::string(name.str()) + " of " + std::string(m.str())});
            continue;
        }
        std::lock_guard lk(mu);
        slots[m].servers[name] = std::move(*r);
    }
}

void code_state::sync_registrations(atom m, slot& s) {
    std::vector<std::pair<atom, unsigned>> want;
    if (s.current)
        for (auto& e : s.current->fns)
            want.emplace_back(e.function, e.arity);
    for (auto& r : s.registered)
        if (std::find(want.begin(), want.end(), r) == want.end()) rpc.remove(m, r.first, r.second);
    for (auto& w : want)
        if (std::find(s.registered.begin(), s.registered.end(), w) == s.registered.end())
            rpc.add_raw_async(m, w.first, w.second,
                              trampoline(weak_from_this(), m, w.first, w.second));
    s.registered = std::move(want);
}

term code_state::load(atom m, std::string file, std::span<const std::uint8_t> bytes) {
    const auto& n = N();
    {
        std::lock_guard lk(mu);
        auto it = slots.find(m);
        if (it != slots.end() && it->second.old && it->second.current)
            return error_tuple(n.not_purged);
    }
    // A private copy per load: dlopen of a path already open returns the open object, and the
    // file on the path may be replaced while this version is in use.
    std::string dir = opts.temp_dir;
    if (dir.empty()) {
        const char* t = std::getenv("TMPDIR");
        dir = t && *t ? t : "/tmp";
    }
    std::string tmpl = dir + "/erlcpp-code-" + std::string(m.str()) + "-XXXXXX.so";
    int fd = ::mkstemps(tmpl.data(), 3);
    if (fd < 0) return error_tuple(n.badfile);
    bool written = true;
    for (std::size_t off = 0; off < bytes.size();) {
        ssize_t k = ::write(fd, bytes.data() + off, bytes.size() - off);
        if (k <= 0) {
            written = false;
            break;
        }
        off += static_cast<std::size_t>(k);
    }
    ::close(fd);
    void* h = written ? ::dlopen(tmpl.c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
    ::unlink(tmpl.c_str());
    if (!h) {
        const char* why = ::dlerror();
        node.log({log_level::error,
                  log_kind::code_load_failed,
                  {},
                  {},
                  {},
                  "cannot load " + file + ": " + (why ? why : "dlopen failed")});
        return error_tuple(n.badfile);
    }
    auto* d = static_cast<const module::descriptor*>(::dlsym(h, module::descriptor_symbol));
    // The ABI check reads only the two leading integers; nothing else of a foreign module is
    // touched. The declared name must be the file's module name (BEAM: "module name in object
    // code is X", {error, badfile}).
    if (!d || d->abi != module::abi_version || d->erlcpp_version != ERLCPP_VERSION || !d->name ||
        std::string_view(d->name) != m.str() || !d->init) {
        node.log({log_level::error,
                  log_kind::code_load_failed,
                  {},
                  {},
                  {},
                  file + " is not an erlcpp module for this node"});
        ::dlclose(h);
        return error_tuple(n.badfile);
    }
    auto v = std::make_shared<version>();
    v->file = std::move(file);
    v->vsn = d->vsn ? d->vsn : "";
    v->md5 = md5_of(bytes);
    v->handle = h;
    {
        std::lock_guard lk(mu);
        v->resident = slots[m].resident;
    }
    v->resident->fetch_add(1);
    try {
        module::registrar r;
        d->init(r);
        v->fns = std::move(r).take();
        v->servers = std::move(r).take_servers();
    } catch (...) {
        // The module's init failed as an on_load function can (code_server.erl: on_load_failure).
        return error_tuple(n.on_load_failure);
    }
    std::shared_ptr<version> replaced;  // released after the lock
    {
        std::lock_guard lk(mu);
        auto& s = slots[m];
        // As erts' loader: the current version must become old, which needs a free old slot.
        // Without current code (after delete/1) the new version loads beside the old one.
        if (s.current) {
            if (s.old) {
                replaced = std::move(v);
                return error_tuple(n.not_purged);
            }
            s.old = std::move(s.current);
        }
        s.current = std::move(v);
        sync_registrations(m, s);
    }
    start_servers(m);
    return make_tuple({term(n.module), term(m)});
}

}  // namespace detail

namespace {

using detail::N;

atom atom_arg(std::span<const term> a, std::size_t i) {
    if (!a[i].is_atom()) rpc::raise_error(term(N().function_clause));
    return a[i].as_atom();
}

}  // namespace

server::server(erl::node& n, rpc::server& rpc, options opts)
    : st_(std::make_shared<detail::code_state>(n, rpc, std::move(opts))) {
    st_->path = st_->opts.code_path;
    if (auto mb = n.spawn_mailbox()) st_->killer = std::move(*mb);
    auto add = [&](const char* f, unsigned arity, auto body) {
        const atom fa(f);
        std::weak_ptr<detail::code_state> weak = st_;
        server* self = this;
        rpc.add_raw(N().code, fa, arity,
                    [weak, self, body](rpc::call_context&, std::span<const term> a) -> term {
                        auto st = weak.lock();
                        if (!st) rpc::raise_error(term(N().undef));
                        {
                            std::lock_guard lk(st->mu);
                            if (st->closing) rpc::raise_error(term(N().undef));
                            ++st->code_calls;
                        }
                        struct done {
                            detail::code_state& st;
                            ~done() {
                                std::lock_guard lk(st.mu);
                                if (--st.code_calls == 0) st.idle.notify_all();
                            }
                        } g{*st};
                        return body(*self, a);
                    });
        st_->code_fns.emplace_back(fa, arity);
    };
    add("load_file", 1, [](server& s, auto a) { return s.load_file(atom_arg(a, 0)); });
    add("ensure_loaded", 1, [](server& s, auto a) { return s.ensure_loaded(atom_arg(a, 0)); });
    add("load_binary", 3,
        [](server& s, auto a) { return s.load_binary(atom_arg(a, 0), a[1], a[2]); });
    add("is_loaded", 1, [](server& s, auto a) { return s.is_loaded(atom_arg(a, 0)); });
    add("which", 1, [](server& s, auto a) { return s.which(atom_arg(a, 0)); });
    add("delete", 1, [](server& s, auto a) { return s.delete_module(atom_arg(a, 0)); });
    add("purge", 1, [](server& s, auto a) { return s.purge(atom_arg(a, 0)); });
    add("soft_purge", 1, [](server& s, auto a) { return s.soft_purge(atom_arg(a, 0)); });
    add("all_loaded", 0, [](server& s, auto) { return s.all_loaded(); });
    add("get_path", 0, [](server& s, auto) { return s.get_path(); });
    add("add_patha", 1, [](server& s, auto a) { return s.add_path(a[0], true); });
    add("add_pathz", 1, [](server& s, auto a) { return s.add_path(a[0], false); });
    add("add_path", 1, [](server& s, auto a) { return s.add_path(a[0], false); });
    add("module_md5", 1, [](server& s, auto a) {
        // code:module_md5/1 takes object code on BEAM; a module name gives the loaded version's.
        if (a[0].is_binary()) return binary(detail::md5_of(a[0].as_bytes()));
        return s.module_md5(atom_arg(a, 0));
    });
}

server::~server() {
    // The module servers end first (terminate runs on their code); outside the lock, which
    // their terminate takes.
    std::vector<std::shared_ptr<gen_server::running>> servers;
    {
        std::lock_guard lk(st_->mu);
        for (auto& [m, s] : st_->slots) {
            for (auto& [name, r] : s.servers)
                servers.push_back(std::move(r));
            s.servers.clear();
        }
    }
    servers.clear();
    std::vector<std::shared_ptr<detail::version>> drop;  // closed after the lock
    {
        std::unique_lock lk(st_->mu);
        st_->closing = true;
        for (auto& f : st_->code_fns)
            st_->rpc.remove(N().code, f.first, f.second);
        st_->idle.wait(lk, [&] { return st_->code_calls == 0; });
        for (auto& [m, s] : st_->slots) {
            for (auto& r : s.registered)
                st_->rpc.remove(m, r.first, r.second);
            s.registered.clear();
            if (s.current) drop.push_back(std::move(s.current));
            if (s.old) drop.push_back(std::move(s.old));
        }
    }
    // Versions still pinned by running calls close when those calls return.
}

term server::load_file(atom m) {
    auto p = st_->find_on_path(m);
    if (!p) return detail::error_tuple(N().nofile);
    auto bytes = detail::read_file(*p);
    if (!bytes) return detail::error_tuple(N().nofile);
    return st_->load(m, *p, *bytes);
}

term server::ensure_loaded(atom m) {
    {
        std::lock_guard lk(st_->mu);
        auto it = st_->slots.find(m);
        if (it != st_->slots.end() && it->second.current)
            return make_tuple({term(N().module), term(m)});
    }
    return load_file(m);
}

term server::load_binary(atom m, const term& file, const term& bytes) {
    auto f = detail::path_text(file, true);
    if (!f || !bytes.is_binary()) rpc::raise_error(term(N().function_clause));
    if (!st_->opts.allow_load_binary) return detail::error_tuple(N().sticky_directory);
    // code_server.erl do_load_binary: a loaded module's old code is purged first (killing what
    // still runs it), so load_binary is never not_purged.
    purge(m);
    return st_->load(m, *f, bytes.as_bytes());
}

term server::is_loaded(atom m) const {
    std::lock_guard lk(st_->mu);
    auto it = st_->slots.find(m);
    if (it == st_->slots.end() || !it->second.current) return term(atoms::false_());
    return make_tuple({term(N().file), charlist(it->second.current->file)});
}

term server::which(atom m) const {
    {
        std::lock_guard lk(st_->mu);
        auto it = st_->slots.find(m);
        if (it != st_->slots.end() && it->second.current) return charlist(it->second.current->file);
    }
    auto p = st_->find_on_path(m);
    return p ? charlist(*p) : term(N().non_existing);
}

// erlang:delete_module/1: current code becomes old; false if there is old code already or no
// current code (code_server.erl catches the badarg).
term server::delete_module(atom m) {
    std::lock_guard lk(st_->mu);
    auto it = st_->slots.find(m);
    if (it == st_->slots.end() || !it->second.current || it->second.old)
        return term(atoms::false_());
    auto& s = it->second;
    s.old = std::move(s.current);
    st_->sync_registrations(m, s);
    return term(atoms::true_());
}

// erts_code_purger:purge/1: kills the processes running old code; true if any was killed.
term server::purge(atom m) {
    std::shared_ptr<detail::version> old;
    std::vector<pid> victims;
    {
        std::lock_guard lk(st_->mu);
        auto it = st_->slots.find(m);
        if (it == st_->slots.end() || !it->second.old) return term(atoms::false_());
        old = std::move(it->second.old);
        const auto rex = st_->node.whereis(N().rex);
        for (auto& p : old->running)
            if (!rex || p != *rex) victims.push_back(p);
    }
    for (auto& p : victims)
        if (st_->killer) st_->killer.exit(p, term(N().kill));
    old.reset();  // closes the object now unless a call still runs on it
    return term(victims.empty() ? atoms::false_() : atoms::true_());
}

// erts_code_purger:soft_purge/1: false while a process runs old code; else removes it.
term server::soft_purge(atom m) {
    std::shared_ptr<detail::version> old;
    std::lock_guard lk(st_->mu);
    auto it = st_->slots.find(m);
    if (it == st_->slots.end() || !it->second.old) return term(atoms::true_());
    if (!it->second.old->running.empty()) return term(atoms::false_());
    old = std::move(it->second.old);
    return term(atoms::true_());
}

term server::all_loaded() const {
    std::vector<term> out;
    std::lock_guard lk(st_->mu);
    for (auto& [m, s] : st_->slots)
        if (s.current) out.push_back(make_tuple({term(m), charlist(s.current->file)}));
    return make_list(std::move(out));
}

term server::get_path() const {
    std::vector<term> out;
    std::lock_guard lk(st_->mu);
    for (auto& d : st_->path)
        out.push_back(charlist(d));
    return make_list(std::move(out));
}

// code_server.erl add_path/4: the directory must exist; it moves to the front (patha) or the
// end (pathz) of the path.
term server::add_path(const term& dir, bool first) {
    auto d = detail::path_text(dir, false);
    if (!d) rpc::raise_error(term(N().function_clause));
    std::error_code ec;
    if (d->empty() || !std::filesystem::is_directory(*d, ec))
        return detail::error_tuple(N().bad_directory);
    std::lock_guard lk(st_->mu);
    auto& p = st_->path;
    p.erase(std::remove(p.begin(), p.end(), *d), p.end());
    if (first)
        p.insert(p.begin(), *d);
    else
        p.push_back(*d);
    return term(atoms::true_());
}

term server::module_md5(atom m) const {
    std::lock_guard lk(st_->mu);
    auto it = st_->slots.find(m);
    if (it == st_->slots.end() || !it->second.current) return term(N().undefined);
    return binary(it->second.current->md5);
}

std::size_t server::resident_versions(atom m) const {
    std::lock_guard lk(st_->mu);
    auto it = st_->slots.find(m);
    return it == st_->slots.end() ? 0 : it->second.resident->load();
}

}  // namespace erl::code
