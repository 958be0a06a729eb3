// Start-up policy: like erl, which runs `epmd -daemon` when no epmd answers so that the
// registrations outlive the node that started it.
#include <erl/epmd.hpp>

#include "epmd/io.hpp"

#include <boost/asio/steady_timer.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

extern char** environ;

namespace erl::epmd {

namespace asio = boost::asio;

namespace {

bool executable(const std::string& p) {
    return !p.empty() && ::access(p.c_str(), X_OK) == 0;
}

std::string find_daemon(const std::string& explicit_path) {
    if (!explicit_path.empty()) return executable(explicit_path) ? explicit_path : std::string();
    if (const char* env = std::getenv("ERLCPP_EPMD"); env && executable(env)) return env;
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        std::string dir(self, static_cast<std::size_t>(n));
        dir.resize(dir.rfind('/') + 1);
        if (executable(dir + "erlcpp-epmd")) return dir + "erlcpp-epmd";
    }
    if (const char* path = std::getenv("PATH")) {
        std::string p(path);
        std::size_t start = 0;
        while (start <= p.size()) {
            auto end = p.find(':', start);
            if (end == std::string::npos) end = p.size();
            std::string cand = p.substr(start, end - start) + "/erlcpp-epmd";
            if (executable(cand)) return cand;
            start = end + 1;
        }
    }
    return {};
}

asio::awaitable<bool> async_answers(std::uint16_t port, std::chrono::milliseconds timeout) {
    auto r = co_await async_names("127.0.0.1", port, timeout);
    co_return r.has_value();
}

}  // namespace

asio::awaitable<erl::result<std::unique_ptr<server>>> async_ensure_epmd(std::uint16_t port,
                                                                        startup_mode mode,
                                                                        std::string daemon_path) {
    port = detail::effective_port(port);
    if (co_await async_answers(port, std::chrono::milliseconds(1000)))
        co_return std::unique_ptr<server>();

    switch (mode) {
        case startup_mode::require_running:
            co_return erl::make_error_code(erl::errc::epmd_unreachable);

        case startup_mode::in_process: {
            server::options o;
            o.port = port;
            auto s = std::make_unique<server>(co_await asio::this_coro::executor, std::move(o));
            if (auto ec = s->start()) {
                // Someone else may have started one in the meantime.
                if (co_await async_answers(port, std::chrono::milliseconds(1000)))
                    co_return std::unique_ptr<server>();
                co_return ec;
            }
            co_return std::move(s);
        }

        case startup_mode::spawn_daemon: {
            std::string bin = find_daemon(daemon_path);
            if (bin.empty()) co_return erl::make_error_code(erl::errc::epmd_unreachable);
            std::string port_s = std::to_string(port);
            std::vector<char*> argv = {bin.data(), const_cast<char*>("-daemon"),
                                       const_cast<char*>("-port"), port_s.data(), nullptr};
            pid_t pid = -1;
            // posix_spawn, not fork: the caller is usually a multithreaded process. The daemon
            // outlives us, so it must not inherit our descriptors (Asio's sockets are not
            // close-on-exec): a listening socket or a connection held by it would stay open —
            // still accepting, never closed for the peer — long after this node stopped.
            posix_spawn_file_actions_t actions;
            ::posix_spawn_file_actions_init(&actions);
            ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
            const int spawned =
                ::posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ);
            ::posix_spawn_file_actions_destroy(&actions);
            if (spawned != 0) co_return erl::make_error_code(erl::errc::epmd_unreachable);
            // The daemon forks itself away and its first process exits at once; reap it and
            // wait until the daemon answers (a concurrent starter's daemon counts too).
            asio::steady_timer timer(co_await asio::this_coro::executor);
            bool reaped = false;
            for (int i = 0; i < 200; ++i) {
                if (!reaped) {
                    int status = 0;
                    reaped = ::waitpid(pid, &status, WNOHANG) == pid;
                }
                if (co_await async_answers(port, std::chrono::milliseconds(200))) {
                    if (!reaped) ::waitpid(pid, nullptr, 0);
                    co_return std::unique_ptr<server>();
                }
                timer.expires_after(std::chrono::milliseconds(50));
                co_await timer.async_wait(detail::as_tuple_awaitable);
            }
            if (!reaped) ::waitpid(pid, nullptr, WNOHANG);
            co_return erl::make_error_code(erl::errc::epmd_unreachable);
        }
    }
    co_return erl::make_error_code(erl::errc::epmd_unreachable);
}

}  // namespace erl::epmd
