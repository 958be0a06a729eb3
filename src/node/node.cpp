#include <erl/epmd.hpp>
#include <erl/node.hpp>

#include "node/async_call.hpp"
#include "node/async_op.hpp"
#include "node/connection.hpp"
#include "node/decode_pool.hpp"
#include "node/node_core.hpp"
#include "node/runtime.hpp"
#include "node/runtime_atoms.hpp"
#include "transport/cloexec.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netdb.h>
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <sstream>
#include <variant>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace erl {

result<std::pair<std::string, std::string>> split_node_name(std::string_view full) {
    auto at = full.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 >= full.size() ||
        full.find('@', at + 1) != std::string_view::npos)
        return make_error_code(errc::bad_node_name);
    return std::pair<std::string, std::string>(std::string(full.substr(0, at)),
                                               std::string(full.substr(at + 1)));
}

namespace {

std::string this_host(bool long_names) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    std::string h(buf);
    if (!long_names) return h.substr(0, h.find('.'));
    if (h.find('.') != std::string::npos) return h;
    // Long names want a fully qualified name, as erl -name does.
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    addrinfo* res = nullptr;
    if (::getaddrinfo(h.c_str(), nullptr, &hints, &res) == 0 && res) {
        std::string canon = res->ai_canonname ? res->ai_canonname : h;
        ::freeaddrinfo(res);
        if (canon.find('.') != std::string::npos) return canon;
    }
    return h;
}

// OTP's auth module: ~/.erlang.cookie, created with 20 random upper-case letters and mode 0400
// when missing; a cookie file that group or others can access is refused ("Cookie file ...
// must be accessible by owner only").
result<std::string> read_or_create_cookie(std::string path, std::string& why) {
    if (path.empty()) {
        const char* home = std::getenv("HOME");
        if (!home || !*home) {
            why = "no cookie given and HOME is not set";
            return make_error_code(errc::cookie_file_error);
        }
        path = std::string(home) + "/.erlang.cookie";
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
            why = "cookie file " + path + " must be accessible by owner only";
            return make_error_code(errc::cookie_file_error);
        }
        std::ifstream in(path);
        if (!in) {
            why = "cannot read cookie file " + path;
            return make_error_code(errc::cookie_file_error);
        }
        std::string c;
        std::getline(in, c);
        while (!c.empty() && (c.back() == '\n' || c.back() == '\r' || c.back() == ' '))
            c.pop_back();
        if (c.empty()) {
            why = "cookie file " + path + " is empty";
            return make_error_code(errc::cookie_file_error);
        }
        return c;
    }
    std::string c(20, 'A');
    unsigned char rnd[20];
    RAND_bytes(rnd, sizeof rnd);
    for (int i = 0; i < 20; ++i)
        c[i] = static_cast<char>('A' + rnd[i] % 26);
    // Create it owner-only from the start (no window where others could read it).
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, S_IRUSR | S_IWUSR);
    if (fd < 0) {
        why = "cannot create cookie file " + path;
        return make_error_code(errc::cookie_file_error);
    }
    bool ok = ::write(fd, c.data(), c.size()) == static_cast<ssize_t>(c.size());
    ::close(fd);
    ::chmod(path.c_str(), S_IRUSR);
    if (!ok) {
        why = "cannot write cookie file " + path;
        return make_error_code(errc::cookie_file_error);
    }
    return c;
}

}  // namespace

// ------------------------------------------------------------------------------------------

node::node(node_options opts) : impl_(std::make_shared<impl>(std::move(opts))) {
    impl_->facade = this;
}

node::node(node_options opts, asio::io_context& ioc) : node(std::move(opts)) {
    impl_->user_ioc = &ioc;
    std::lock_guard lk(impl_->async_ops->mu);
    impl_->async_ops->io_runs = true;  // the caller runs it, whatever the node's state
}

node::~node() {
    stop();
    auto& c = *impl_;
    c.facade = nullptr;
    if (c.on_io_thread()) {
        // Destroyed by one of its own handlers: the stopper cannot join the thread running
        // this destructor. It owns the core and finishes on its own.
        if (c.stopper.joinable()) c.stopper.detach();
        return;
    }
    c.join_stopper();
}

error_code node::start() {
    diagnostics ignored;
    return start(ignored);
}

error_code node::start(diagnostics& diag) {
    using life = detail::node_core::life;
    auto& c = *impl_;
    {
        std::unique_lock lk(c.life_mu);
        if (c.on_io_thread()) {
            // A handler of the node cannot wait for a start or a stop it is part of.
            if (c.state == life::starting || c.state == life::stopping) {
                diag.clear();
                return make_error_code(errc::shutting_down);
            }
        } else {
            // Unlike async_start, start() waits for a stop in progress and then starts.
            c.life_cv.wait(lk, [&] { return c.state != life::stopping; });
        }
    }
    std::promise<error_code> done;
    auto outcome = done.get_future();
    initiate_start(&diag, [&done](error_code ec) { done.set_value(ec); });
    return outcome.get();
}

namespace {
// Runs `h` with `ec` on its associated executor, `fallback` if it has none; never inline.
void complete_later(detail::error_handler h, const asio::any_completion_executor& fallback,
                    error_code ec) {
    auto ex = asio::get_associated_executor(h, fallback);
    asio::prefer(ex, asio::execution::blocking.never, asio::execution::relationship.fork)
        .execute([h = std::move(h), ec]() mutable { std::move(h)(ec); });
}
}  // namespace

void node::initiate_start(diagnostics* diag, detail::error_handler handler) {
    using life = detail::node_core::life;
    auto& c = *impl_;
    if (diag) diag->clear();
    const asio::any_completion_executor system_ex =
        asio::prefer(asio::system_executor(), asio::execution::blocking.never);
    {
        std::unique_lock lk(c.life_mu);
        if (c.state == life::running) {
            lk.unlock();
            return complete_later(std::move(handler), c.ioc().get_executor(), {});
        }
        if (c.state == life::stopping) {
            lk.unlock();
            return complete_later(std::move(handler), system_ex,
                                  make_error_code(errc::shutting_down));
        }
        if (c.state == life::starting) {
            // Completes with the outcome of the start in progress.
            auto h = std::make_shared<detail::error_handler>(std::move(handler));
            c.start_waiters.push_back([h, core = impl_, system_ex](error_code ec) {
                complete_later(std::move(*h), ec ? system_ex : core->ioc().get_executor(), ec);
            });
            return;
        }
        c.state = life::starting;
    }
    auto fail = [&c, diag, system_ex](detail::error_handler h, error_code ec, std::string why) {
        c.fail_start(ec, std::move(why), diag);
        complete_later(std::move(h), system_ex, ec);
    };
    if (!c.join_stopper())
        return fail(std::move(handler), make_error_code(errc::shutting_down), {});
    std::string why;
    if (auto ec = c.start_prepare(why)) {
        // start_prepare fails before the I/O threads start, or with the node stopped again.
        return fail(std::move(handler), ec, std::move(why));
    }
    auto h = std::make_shared<detail::error_handler>(std::move(handler));
    asio::co_spawn(c.ioc(), c.start_register(),
                   [core = impl_, h, diag, fail, system_ex](std::exception_ptr, error_code ec) {
                       auto& c = *core;
                       if (!ec) {
                           c.start_complete();
                           c.end_start({});
                           return complete_later(std::move(*h), c.ioc().get_executor(), {});
                       }
                       c.begin_stop();
                       // The start completes once the stop has finished: until then the node
                       // stays `starting`, so no other start can run into the tear-down.
                       std::function<void()> failed = [h, ec, why = c.epmd_failure(ec), fail] {
                           fail(std::move(*h), ec, why);
                       };
                       if (c.user_ioc) return c.finish_stop(std::move(failed));
                       // On an I/O thread of the node, which the stop must join: a thread of the
                       // node finishes it and then completes the start (start() and ~node join it).
                       c.stopper = std::thread([core, failed = std::move(failed)]() mutable {
                           core->finish_stop(std::move(failed));
                       });
                   });
}

void node::stop() {
    auto& c = *impl_;
    {
        std::unique_lock lk(c.life_mu);
        if (c.state == detail::node_core::life::stopped) return;
        if (c.state != detail::node_core::life::running) {
            // Another thread is starting or stopping the node: wait for it to finish (a
            // handler of the node cannot: it is part of that).
            if (c.on_io_thread()) return;
            c.life_cv.wait(lk, [&] {
                return c.state == detail::node_core::life::stopped ||
                       c.state == detail::node_core::life::running;
            });
            if (c.state == detail::node_core::life::stopped) return;
        }
        c.state = detail::node_core::life::stopping;
    }
    c.begin_stop();
    if (c.user_ioc) {
        // On the caller's io_context there is no thread of ours to join: finish_stop waits for
        // the node's handlers there (or, called on a thread running it, leaves them to finish).
        c.finish_stop();
        return;
    }
    if (c.on_io_thread()) {
        // This thread is one of those that must be joined: a thread of the node finishes the
        // stop once this handler has returned (start() and ~node wait for it).
        c.stopper = std::thread([core = impl_] { core->finish_stop(); });
        return;
    }
    c.finish_stop();
}

bool node::alive() const noexcept {
    return impl_->alive;
}
atom node::name() const noexcept {
    return impl_->name;
}
std::uint32_t node::creation() const noexcept {
    return impl_->creation;
}
std::uint16_t node::listen_port() const noexcept {
    return impl_->connections.port();
}
const node_options& node::options() const noexcept {
    return impl_->opts;
}
asio::any_io_executor node::executor() const {
    return impl_->ioc().get_executor();
}
void node::log(log_event e) const {
    if (!impl_->logs(e.level)) return;
    if (e.node.empty()) e.node = impl_->name.str();
    detail::emit_log(impl_->opts, e);
}

result<mailbox> node::spawn_mailbox(std::optional<atom> name) {
    auto& c = *impl_;
    if (!c.alive) return make_error_code(errc::not_alive);
    if (!name) return c.make_handle(c.new_process());
    auto p = c.new_named_process(*name);
    if (!p) return p.error();
    return c.make_handle(*p);
}

error_code node::register_name(atom name, const pid& p) {
    auto& c = *impl_;
    auto proc = c.find_process(p);
    if (!proc) return make_error_code(errc::noproc);
    return c.table.register_name(name, proc);
}

bool node::unregister_name(atom name) {
    return impl_->table.unregister_name(name);
}

std::optional<pid> node::whereis(atom name) const {
    auto p = impl_->find_name(name);
    if (!p) return std::nullopt;
    return p->self;
}

std::vector<atom> node::registered() const {
    return impl_->table.registered();
}

reference node::make_ref() {
    return impl_->make_ref();
}

void node::send(const pid& to, term msg) {
    if (!impl_->alive) return;
    impl_->send_pid(impl_->node_process->self_term, to, std::move(msg), detail::send_mode::wait);
}
void node::send(atom registered_name, term msg) {
    if (!impl_->alive) return;
    impl_->deliver_local_name(impl_->node_process->self_term, registered_name, std::move(msg));
}
void node::send(atom registered_name, atom to_node, term msg) {
    if (!impl_->alive) return;
    impl_->send_name(impl_->node_process->self_term, registered_name, to_node, std::move(msg),
                     detail::send_mode::wait);
}
void node::send_alias(const reference& alias, term msg) {
    if (!impl_->alive) return;
    impl_->send_alias(impl_->node_process->self_term, alias, std::move(msg));
}

std::vector<atom> node::nodes() const {
    return impl_->connections.connected_nodes();
}

std::vector<atom> node::nodes(node_type which) const {
    return impl_->connections.connected_nodes(which);
}

node_stats node::stats() const {
    return impl_->stats();
}

bool node::is_connected(atom peer) const {
    return detail::runtime::is_connected(*impl_, peer);
}

error_code node::connect(atom peer, std::chrono::milliseconds timeout) {
    return impl_->connections.connect(peer, timeout);
}

void node::initiate_connect(atom peer, std::chrono::milliseconds timeout,
                            detail::error_handler handler) {
    auto op = std::make_shared<detail::connect_op>(impl_, peer, timeout);
    detail::launch(*impl_, op, std::move(handler));
}

namespace detail {
namespace {

// net_adm:ping/1: gen:call({net_kernel, Node}, {is_auth, node()}) once connected; `yes` is
// pong. The connection is made first (with the same deadline) so that a set-up failure says
// why (bad_cookie, not_allowed, ...) rather than only noconnection.
class ping_op : public std::enable_shared_from_this<ping_op> {
  public:
    using done_fn = std::function<void(error_code)>;
    ping_op(std::shared_ptr<node_core> core, atom peer, std::chrono::milliseconds timeout)
        : core_(std::move(core)), peer_(peer), timeout_(timeout) {}

    void start(done_fn done) {
        const auto started = std::chrono::steady_clock::now();
        done_ = std::move(done);
        if (peer_ == core_->name && core_->alive) return done_({});
        auto conn = std::make_shared<connect_op>(core_, peer_, timeout_);
        {
            std::lock_guard lk(mu_);
            if (cancelled_) return done_(make_error_code(boost::asio::error::operation_aborted));
            step_ = conn;
        }
        conn->start([self = shared_from_this(), started](error_code ec) {
            if (ec) return self->done_(ec);
            self->call(started);
        });
    }

    void cancel() {
        std::unique_lock lk(mu_);
        cancelled_ = true;
        auto step = step_;
        lk.unlock();
        std::visit(
            [](auto& s) {
                if (s) s->cancel();
            },
            step);
    }

  private:
    void call(std::chrono::steady_clock::time_point started) {
        const auto& a = A();
        auto left = timeout_;
        if (timeout_ != std::chrono::milliseconds::max())
            left = std::max(std::chrono::milliseconds(0),
                            timeout_ - std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - started));
        auto op = std::make_shared<gen_call_op>(core_, term(a.net_kernel), peer_,
                                                tuple(a.is_auth, core_->name), left);
        {
            std::lock_guard lk(mu_);
            if (cancelled_) return done_(make_error_code(boost::asio::error::operation_aborted));
            step_ = op;
        }
        op->start([self = shared_from_this()](error_code ec, term reply) {
            if (!ec && !reply.is_atom(A().yes)) ec = make_error_code(errc::pang);
            self->done_(ec);
        });
    }

    std::shared_ptr<node_core> core_;
    atom peer_;
    std::chrono::milliseconds timeout_;
    done_fn done_;
    std::mutex mu_;
    bool cancelled_ = false;
    std::variant<std::shared_ptr<connect_op>, std::shared_ptr<gen_call_op>> step_;
};

}  // namespace
}  // namespace detail

bool node::ping(atom peer, std::chrono::milliseconds timeout) {
    auto op = std::make_shared<detail::ping_op>(impl_, peer, timeout);
    return !std::get<0>(detail::run_blocking<detail::ping_op, error_code>(*impl_, op));
}

void node::initiate_ping(atom peer, std::chrono::milliseconds timeout,
                         detail::error_handler handler) {
    auto op = std::make_shared<detail::ping_op>(impl_, peer, timeout);
    detail::launch(*impl_, op, std::move(handler));
}

void node::disconnect(atom peer) {
    detail::runtime::disconnect(*impl_, peer);
}

std::uint64_t node::monitor_nodes(std::function<void(const node_event&)> cb) {
    return detail::runtime::monitor_nodes(*impl_, std::move(cb));
}

void node::demonitor_nodes(std::uint64_t id) {
    detail::runtime::demonitor_nodes(*impl_, id);
}

// ------------------------------------------------------------------------------------------
// Lifecycle: node::start()/stop() above keep the state; these do the work.

namespace detail {

namespace {
// The node whose io_context the current thread runs (null on other threads).
thread_local const node_core* io_thread_of = nullptr;

// An I/O thread: ioc.run(); with `spin`, after the last handler it polls for up to `spin` more
// before it waits (run_one), so that work posted meanwhile finds it awake instead of waking it.
void run_io(asio::io_context& ioc, std::chrono::microseconds spin) {
    if (spin.count() <= 0) {
        ioc.run();
        return;
    }
    using clk = std::chrono::steady_clock;
    while (!ioc.stopped()) {
        if (ioc.poll() > 0) continue;
        bool more = false;
        for (const auto until = clk::now() + spin; !more && clk::now() < until && !ioc.stopped();)
            more = ioc.poll() > 0;
        if (!more && !ioc.stopped()) ioc.run_one();
    }
}
}  // namespace

error_code node_core::start_prepare(std::string& why) {
    auto& c = *this;
    c.stopping = false;
    {
        std::lock_guard lk(c.async_ops->mu);
        c.async_ops->stopping = false;
    }
    // Name.
    std::string full = c.opts.name;
    if (full.find('@') == std::string::npos) full += "@" + this_host(c.opts.long_names);
    auto parts = split_node_name(full);
    if (!parts) {
        why = "bad node name '" + full + "' (not name@host)";
        return parts.error();
    }
    auto a = atom::make(full);
    if (!a) {
        why = "bad node name '" + full + "': " + a.error().message();
        return a.error();
    }
    c.name = *a;
    c.host = parts->second;
    // Cookie: option, then environment, then cookie file (see node_options::cookie).
    const char* env_cookie =
        c.opts.cookie_env.empty() ? nullptr : std::getenv(c.opts.cookie_env.c_str());
    if (!c.opts.cookie.empty()) {
        c.cookie = c.opts.cookie;
    } else if (env_cookie && *env_cookie) {
        c.cookie = env_cookie;
    } else {
        auto ck = read_or_create_cookie(c.opts.cookie_file, why);
        if (!ck) return ck.error();
        c.cookie = *ck;
    }
    // Transport and access control shared by every connection.
    if (auto ec = c.connections.configure(why)) return ec;
    if (c.opts.max_atoms != 0) set_atom_table_limit(c.opts.max_atoms);
    if (c.opts.epmd_port == 0) c.opts.epmd_port = epmd::default_port();

    // A fresh io_context if an earlier run shut the current one down (the caller's is never
    // shut down).
    if (c.ioc_used && !c.user_ioc)
        c.retired_iocs.push_back(std::exchange(c.ioc_, std::make_shared<owned_io_context>()));
    c.ioc_used = true;

    // Listen.
    if (auto ec = c.connections.listen(why)) return ec;

    // I/O threads (none on the caller's io_context: the caller runs it).
    if (!c.user_ioc) {
        auto guard = std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(
            c.ioc().get_executor());
        c.work_guard = guard;
        for (unsigned i = 0; i < std::max(1u, c.opts.threads); ++i)
            c.threads.emplace_back([ioc = c.ioc_, self = &c] {
                io_thread_of = self;
                clockid_t cpu{};
                if (::pthread_getcpuclockid(::pthread_self(), &cpu) == 0) {
                    std::lock_guard lk(self->io_clocks_mu);
                    self->io_clocks.push_back({cpu, std::chrono::steady_clock::now()});
                }
                run_io(*ioc, self->opts.io_spin);
            });
        std::lock_guard lk(c.async_ops->mu);
        c.async_ops->io_runs = true;
    }

    return {};
}

// EPMD: make sure one answers (spawning or embedding one as configured), then register.
asio::awaitable<error_code> node_core::start_register() {
    auto& c = *this;
    auto srv =
        co_await epmd::async_ensure_epmd(c.opts.epmd_port, c.opts.epmd, c.opts.epmd_daemon_path);
    if (!srv) co_return srv.error();
    c.embedded_epmd = std::move(*srv);
    epmd::node_info info;
    info.name = std::string(c.name.str().substr(0, c.name.str().find('@')));
    info.port = c.connections.port();
    info.type = c.opts.hidden ? epmd::node_type::hidden : epmd::node_type::normal;
    auto reg =
        co_await epmd::async_register("127.0.0.1", c.opts.epmd_port, info, c.opts.net_setuptime);
    if (!reg) co_return reg.error();
    c.creation = reg->creation();
    c.registration = std::make_unique<epmd::registration>(std::move(*reg));
    co_return error_code{};
}

void node_core::start_complete() {
    auto& c = *this;
    c.node_process = c.new_process();
    c.start_services();
    c.alive = true;
    c.log(log_level::info, log_kind::node_started, {}, {},
          "listening on port " + std::to_string(c.connections.port()) + ", creation " +
              std::to_string(c.creation));
    c.connections.start_accepting();
}

std::string node_core::epmd_failure(error_code ec) const {
    return "EPMD on 127.0.0.1:" + std::to_string(opts.epmd_port) + ": " + ec.message();
}

void node_core::fail_start(error_code ec, std::string why, diagnostics* diag) {
    if (why.empty()) why = ec.message();
    log(log_level::error, log_kind::start_failed, {}, ec, why);
    if (diag) diag->assign(std::move(why));
    end_start(ec);
}

void node_core::end_start(error_code ec) {
    std::vector<std::function<void(error_code)>> waiters;
    {
        std::lock_guard lk(life_mu);
        state = ec ? life::stopped : life::running;
        waiters.swap(start_waiters);
        life_cv.notify_all();
    }
    for (auto& w : waiters)
        w(ec);
}

bool node_core::on_io_thread() const noexcept {
    if (user_ioc) return user_ioc->get_executor().running_in_this_thread();
    return io_thread_of == this;
}

bool node_core::join_stopper() {
    if (!stopper.joinable()) return true;
    if (stopper.get_id() == std::this_thread::get_id()) return false;
    stopper.join();
    return true;
}

void node_core::abort_async_ops() {
    std::unordered_map<std::uint64_t, std::function<void()>> all;
    {
        std::lock_guard lk(async_ops->mu);
        async_ops->stopping = true;
        all.swap(async_ops->ops);
    }
    for (auto& [id, end] : all)
        end();
}

void node_core::wait_async_completions() {
    std::unique_lock lk(async_ops->mu);
    async_ops->cv.wait(lk, [&] { return async_ops->completions == 0; });
    // Our io_context is about to stop: completions from now on go elsewhere (launch).
    if (!user_ioc) async_ops->io_runs = false;
}

void node_core::begin_stop() {
    stopping = true;
    // Operations waiting for something (a message, a reply, a connection) end first, with
    // shutting_down, before the connections and processes they wait on go away.
    abort_async_ops();
    if (alive.exchange(false)) log(log_level::info, log_kind::node_stopped, {}, {}, "stopping");
    // Close every connection: peers see nodedown; links and monitors fire noconnection.
    connections.close_all(make_error_code(errc::shutting_down));
    // Every process exits.
    for (auto& p : table.snapshot())
        process_exit(p, term(A().shutdown));
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> node_core::io_thread_times() {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lk(io_clocks_mu);
    for (const auto& c : io_clocks) {
        timespec ts{};
        if (::clock_gettime(c.cpu, &ts) != 0) continue;
        const auto active = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
                            static_cast<std::uint64_t>(ts.tv_nsec);
        const auto total = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.started).count());
        out.emplace_back(std::min(active, total), total);
    }
    return out;
}

void node_core::finish_stop(std::function<void()> stopped) {
    if (user_ioc) return finish_stop_on_user_ioc(std::move(stopped));
    if (!threads.empty()) {
        // The completions of the operations begin_stop ended run on the I/O threads first.
        wait_async_completions();
        // Close the listener, the EPMD registration and an embedded EPMD on the I/O threads
        // (where the accept loop and the registration's reads run) and wait for that, so their
        // ports are free when stop() returns (a restarted node can bind them again at once).
        // What the closes posted before (sockets of closed connections) runs first.
        std::promise<void> done;
        auto closed = done.get_future();
        asio::post(ioc(), [this, &done] {
            connections.close_listener();
            if (registration) registration->close();
            if (embedded_epmd) embedded_epmd->stop();
            done.set_value();
        });
        closed.wait();
    }
    work_guard.reset();
    {
        std::lock_guard lk(io_clocks_mu);
        io_clocks.clear();
    }
    ioc_->stop();
    for (auto& t : threads)
        t.join();
    threads.clear();
    // Decodes still running post their results to ioc_, which no thread runs now: those
    // handlers are destroyed with the rest below.
    if (decoder) decoder->join();
    // No thread runs the context any more: destroy the handlers still queued (suspended
    // coroutines of connections, accept loops, timers) so they release the node.
    ioc_->shutdown();
    release_after_stop();
    mark_stopped(stopped);
}

void node_core::mark_stopped(const std::function<void()>& stopped) {
    if (stopped) return stopped();
    std::lock_guard lk(life_mu);
    state = life::stopped;
    life_cv.notify_all();
}

void node_core::release_after_stop() {
    connections.release();
    registration.reset();
    embedded_epmd.reset();
    node_process.reset();
}

// The caller's io_context keeps running: closing the listener, the EPMD registration and an
// embedded EPMD is done there (where their handlers run), and the node is stopped once every
// connection it made is gone (their handlers finish once the closes posted by begin_stop have
// run). Called on a thread that runs the io_context, it cannot wait for handlers behind it:
// the node is marked stopped by the posted tear-down, and connections finish after it.
void node_core::finish_stop_on_user_ioc(std::function<void()> stopped) {
    auto tear_down = [this] {
        connections.close_listener();
        if (registration) registration->close();
        if (embedded_epmd) embedded_epmd->stop();
        release_after_stop();
    };
    auto mark = [this, stopped = std::move(stopped)] { mark_stopped(stopped); };
    if (user_ioc->stopped()) {
        // Nobody runs it: no handler of the node runs either.
        tear_down();
        return mark();
    }
    if (on_io_thread()) {
        asio::post(*user_ioc, [self = shared_from_this(), tear_down, mark] {
            tear_down();
            mark();
        });
        return;
    }
    wait_async_completions();
    std::promise<void> done;
    auto closed = done.get_future();
    asio::post(*user_ioc, [&done, tear_down] {
        tear_down();
        done.set_value();
    });
    closed.wait();
    connections.wait_connections_gone();
    mark();
}

}  // namespace detail
}  // namespace erl
