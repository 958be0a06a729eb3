// erlcpp-epmd: an epmd-compatible daemon with OTP's command line (erts/epmd/src/epmd.c,
// epmd_cli.c). Interactive commands print exactly what OTP's epmd prints and exit with the
// same codes.
#include <erl/epmd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using erl::epmd::raw_request;

// The option summary; docs/man/erlcpp-epmd.1 documents the same options (a test compares them).
constexpr const char* help_text =
    "usage: erlcpp-epmd [-d|-debug] [-port No] [-daemon] [-address List]\n"
    "                   [-relaxed_command_check] [-packet_timeout Seconds]\n"
    "       erlcpp-epmd [-d|-debug] [-port No] [-names|-kill|-dump|-stop name]\n"
    "\n"
    "An epmd-compatible port mapper daemon: OTP's command line, output and exit codes.\n"
    "\n"
    "Options:\n"
    "  -d, -debug               more debug output (repeat for more)\n"
    "  -port No                 port to listen on or to ask (default: $ERL_EPMD_PORT or 4369)\n"
    "  -address List            listen on these addresses only (comma or space separated;\n"
    "                           loopback is always included)\n"
    "  -daemon                  detach and run in the background\n"
    "  -relaxed_command_check   allow -kill and -stop while nodes are registered\n"
    "  -packet_timeout Seconds  close a connection that sends no complete request in time\n"
    "                           (default: 60)\n"
    "  -delay_accept Seconds, -delay_write Seconds\n"
    "                           OTP's test knobs: accepted and ignored\n"
    "  -h, -help, --help        print this help and exit\n"
    "\n"
    "Commands to a running daemon:\n"
    "  -names                   list the registered names\n"
    "  -started                 exit status 0 if a daemon answers, printing nothing\n"
    "  -dump                    list every registration (debugging)\n"
    "  -kill                    stop the daemon (refused while nodes are registered)\n"
    "  -stop name               unregister a name\n"
    "\n"
    "Environment: ERL_EPMD_PORT, ERL_EPMD_ADDRESS, ERL_EPMD_RELAXED_COMMAND_CHECK.\n"
    "See erlcpp-epmd(1) and docs/epmd.md.\n";

int usage() {
    std::fputs(help_text, stderr);
    return 1;
}

constexpr auto cli_timeout = std::chrono::seconds(10);

// NAMES / DUMP: epmd_cli.c epmd_call.
int call_listing(std::uint16_t port, char what, bool silent) {
    auto r = raw_request("127.0.0.1", port, std::string(1, what), cli_timeout);
    if (!r) {
        if (r.error() == erl::errc::epmd_unreachable) {
            if (!silent) std::fprintf(stderr, "epmd: Cannot connect to local epmd\n");
        } else if (!silent) {
            std::printf("epmd: no response from local epmd\n");
        }
        return 1;
    }
    if (r->size() < 4) {
        if (!silent) std::printf("epmd: no response from local epmd\n");
        return 1;
    }
    if (!silent) {
        auto* b = reinterpret_cast<const unsigned char*>(r->data());
        unsigned long p =
            (static_cast<unsigned long>(b[0]) << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
        std::printf("epmd: up and running on port %lu with data:\n", p);
        std::fwrite(r->data() + 4, 1, r->size() - 4, stdout);
    }
    return 0;
}

// A KILL or STOP request to the local epmd: its answer, or nullopt when there is none (the
// failure printed as epmd_cli.c prints it).
std::optional<std::string> call_local(std::uint16_t port, const std::string& request) {
    auto r = raw_request("127.0.0.1", port, request, cli_timeout);
    if (r) return std::move(*r);
    if (r.error() == erl::errc::epmd_unreachable)
        std::fprintf(stderr, "epmd: Cannot connect to local epmd\n");
    else
        std::printf("epmd: failed to read answer from local epmd\n");
    return std::nullopt;
}

int unexpected_answer(const std::string& answer) {
    std::printf("epmd: local epmd responded with <%s>\n", answer.c_str());
    return 1;
}

// epmd_cli.c kill_epmd.
int call_kill(std::uint16_t port) {
    auto r = call_local(port, "k");
    if (!r) return 1;
    if (r->size() >= 2) {
        if ((*r)[0] == 'O' && (*r)[1] == 'K') {
            std::printf("Killed\n");
            return 0;
        }
        std::printf("Killing not allowed - living nodes in database.\n");
        return 1;
    }
    return unexpected_answer(*r);
}

// epmd_cli.c stop_cli.
int call_stop(std::uint16_t port, const std::string& name) {
    if (name.size() > 1000) {
        std::printf("epmd: Name too long!");
        return 1;
    }
    auto r = call_local(port, "s" + name);
    if (!r) return 1;
    if (r->size() >= 7) {
        std::printf("%s\n", r->substr(0, 7).c_str());
        return 0;
    }
    return unexpected_answer(*r);
}

// epmd.c run_daemon: detach from the terminal and the caller's session.
bool daemonize() {
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid > 0) std::_Exit(0);
    if (::setsid() < 0) return false;
    std::signal(SIGHUP, SIG_IGN);
    pid = ::fork();
    if (pid < 0) return false;
    if (pid > 0) std::_Exit(0);
    if (::chdir("/") != 0) {
    }
    int fd = ::open("/dev/null", O_RDWR);
    if (fd >= 0) {
        ::dup2(fd, 0);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        if (fd > 2) ::close(fd);
    }
    // As epmd.c run_daemon: no descriptor of the starter stays open in the daemon.
    ::close_range(3, ~0u, 0);
    return true;
}

bool parse_port(const char* s, std::uint16_t& out) {
    int v = std::atoi(s);  // as epmd.c: atoi, 0 is an error
    if (v <= 0 || v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    erl::epmd::server::options opts;
    opts.port = 4369;
    if (const char* p = std::getenv("ERL_EPMD_PORT"))
        opts.port = static_cast<std::uint16_t>(std::atoi(p));
    if (std::getenv("ERL_EPMD_RELAXED_COMMAND_CHECK")) opts.relaxed_command_check = true;
    std::string addresses;
    if (const char* a = std::getenv("ERL_EPMD_ADDRESS")) addresses = a;
    bool daemon = false;

    std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        bool has_value = i + 1 < args.size();
        bool last = i + 1 == args.size();
        if (a == "-h" || a == "-help" || a == "--help") {
            std::fputs(help_text, stdout);
            return 0;
        } else if (a == "-d" || a == "-debug") {
            ++opts.debug;
        } else if (a == "-packet_timeout") {
            if (!has_value || std::atoi(args[i + 1].c_str()) <= 0) return usage();
            opts.packet_timeout = std::chrono::seconds(std::atoi(args[++i].c_str()));
        } else if (a == "-delay_accept" || a == "-delay_write") {
            // OTP test knobs to simulate a busy server; accepted and ignored.
            if (!has_value || std::atoi(args[i + 1].c_str()) <= 0) return usage();
            ++i;
        } else if (a == "-daemon") {
            daemon = true;
        } else if (a == "-relaxed_command_check") {
            opts.relaxed_command_check = true;
        } else if (a == "-port") {
            if (!has_value || !parse_port(args[i + 1].c_str(), opts.port)) return usage();
            ++i;
        } else if (a == "-address") {
            if (!has_value) return usage();
            addresses = args[++i];
        } else if (a == "-names" || a == "-started") {
            if (!last) return usage();
            return call_listing(opts.port, 'n', a == "-started");
        } else if (a == "-dump") {
            if (!last) return usage();
            return call_listing(opts.port, 'd', false);
        } else if (a == "-kill") {
            if (!last) return usage();
            return call_kill(opts.port);
        } else if (a == "-stop") {
            if (i + 2 != args.size()) return usage();
            return call_stop(opts.port, args[i + 1]);
        } else {
            return usage();
        }
    }
    if (opts.port == 0) return usage();

    // -address: a list separated by commas and/or spaces (epmd_srv.c strtok(", ")).
    std::size_t pos = 0;
    while (pos < addresses.size()) {
        auto end = addresses.find_first_of(", ", pos);
        if (end == std::string::npos) end = addresses.size();
        if (end > pos) opts.addresses.push_back(addresses.substr(pos, end - pos));
        pos = end + 1;
    }

    opts.log_errors = !daemon;
    if (daemon) {
        opts.debug = 0;  // OTP's daemon logs to syslog only; ours is silent
        if (!daemonize()) return 1;
    }

    boost::asio::io_context io;
    opts.on_kill = [&io] { io.stop(); };
    erl::epmd::server srv(io.get_executor(), opts);
    if (auto ec = srv.start()) {
        if (ec == boost::asio::error::address_in_use) {
            // epmd_srv.c: "there is already a epmd running at port %d" and exit 0, so that
            // concurrent starters do not fail.
            if (opts.debug)
                std::fprintf(stderr, "there is already a epmd running at port %u\n", opts.port);
            return 0;
        }
        std::fprintf(stderr, "erlcpp-epmd: cannot listen on port %u: %s\n", opts.port,
                     ec.message().c_str());
        return 1;
    }
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) {
            srv.stop();
            io.stop();
        }
    });
    std::signal(SIGPIPE, SIG_IGN);
    io.run();
    return 0;
}
