#include "harness/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace erl::interop {

namespace {

using clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("interop harness: " + what);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string make_temp_file(const char* tag) {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/erlcpp-" + tag + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = ::mkstemp(buf.data());
    if (fd < 0) fail("mkstemp failed: " + std::string(std::strerror(errno)));
    ::close(fd);
    return std::string(buf.data());
}

// Resolves a program name against PATH before fork, so the child only calls execve.
std::string resolve_program(const std::string& prog) {
    if (prog.find('/') != std::string::npos) return prog;
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= p.size()) {
        std::size_t end = p.find(':', start);
        if (end == std::string::npos) end = p.size();
        std::string dir = p.substr(start, end - start);
        if (dir.empty()) dir = ".";
        std::string cand = dir + "/" + prog;
        if (::access(cand.c_str(), X_OK) == 0) return cand;
        start = end + 1;
    }
    fail("program not found in PATH: " + prog);
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

std::string hex_encode(std::string_view s) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> hex_decode(std::string_view s) {
    if (s.size() % 2) return std::nullopt;
    std::string out;
    out.reserve(s.size() / 2);
    for (std::size_t i = 0; i < s.size(); i += 2) {
        int hi = hex_val(s[i]), lo = hex_val(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return out;
}

constexpr std::string_view eval_marker = "@@ERLCPP_EVAL@@";

// The REPL run by erl -eval: one hex-encoded expression per stdin line; answers
// "<marker> ok|error <hex of text>" on stdout. EOF on stdin halts the node.
const char* erlang_repl =
    "M = \"@@ERLCPP_EVAL@@\","
    "L = fun L(B) ->"
    "  case io:get_line('') of"
    "    eof -> halt(0);"
    "    {error, _} -> halt(0);"
    "    Line ->"
    "      {Tag, Out, B2} = try"
    "          Src = binary_to_list(binary:decode_hex(string:trim(iolist_to_binary(Line)))),"
    "          {ok, Toks, _} = erl_scan:string(Src ++ \".\"),"
    "          {ok, Exprs} = erl_parse:parse_exprs(Toks),"
    "          {value, V, NB} = erl_eval:exprs(Exprs, B),"
    "          {\"ok\", io_lib:format(\"~0p\", [V]), NB}"
    "        catch C:R:S -> {\"error\", io_lib:format(\"~0p:~0p ~0p\", [C, R, S]), B}"
    "      end,"
    "      io:put_chars([M, \" \", Tag, \" \","
    "        binary:encode_hex(unicode:characters_to_binary(Out)), \"\\n\"]),"
    "      L(B2)"
    "  end"
    " end,"
    "io:put_chars([M, \" ready \", atom_to_list(node()), \"\\n\"]),"
    "L(erl_eval:new_bindings()).";

const char* elixir_repl = R"EX(
m = "@@ERLCPP_EVAL@@"
loop = fn loop, b ->
  case IO.gets("") do
    :eof -> System.halt(0)
    {:error, _} -> System.halt(0)
    line ->
      {tag, out, b2} =
        try do
          src = Base.decode16!(String.trim(line), case: :mixed)
          {v, nb} = Code.eval_string(src, b)
          {"ok", inspect(v, limit: :infinity, printable_limit: :infinity), nb}
        rescue
          e -> {"error", Exception.format(:error, e, __STACKTRACE__), b}
        catch
          k, r -> {"error", Exception.format(k, r, __STACKTRACE__), b}
        end
      IO.write(m <> " " <> tag <> " " <> Base.encode16(out) <> "\n")
      loop.(loop, b2)
  end
end
IO.write(m <> " ready " <> Atom.to_string(node()) <> "\n")
loop.(loop, [])
)EX";

}  // namespace

// ---------------------------------------------------------------------------------------------

std::uint16_t free_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        fail("bind failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string unique_name(std::string_view prefix) {
    static std::atomic<unsigned> counter{0};
    return std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

std::string random_cookie() {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device rd;
    std::uniform_int_distribution<int> dist(0, sizeof(alphabet) - 2);
    std::string s;
    for (int i = 0; i < 20; ++i)
        s.push_back(alphabet[dist(rd)]);
    return s;
}

std::string bin_dir() {
#ifdef ERLCPP_BIN_DIR
    return ERLCPP_BIN_DIR;
#else
    return ".";
#endif
}

std::string short_host_name() {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    std::string h(buf);
    auto dot = h.find('.');
    if (dot != std::string::npos) h.resize(dot);
    return h;
}

std::string quote_atom(std::string_view text) {
    return "'" + std::string(text) + "'";
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
    auto deadline = clock::now() + timeout;
    while (clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(poll);
    }
    return pred();
}

std::string read_text_file(const std::string& path) {
    return read_file(path);
}

temp_dir::temp_dir(std::string_view tag) {
    namespace fs = std::filesystem;
    std::string t =
        (fs::temp_directory_path() / ("erlcpp-" + std::string(tag) + "-XXXXXX")).string();
    if (!::mkdtemp(t.data())) fail("mkdtemp failed: " + std::string(std::strerror(errno)));
    path_ = t;
}

temp_dir::~temp_dir() {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    for (auto& e : fs::directory_iterator(path_, ec))
        fs::permissions(e.path(), fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
}

// ---------------------------------------------------------------------------------------------
// process

process::process(options o) {
    if (o.args.empty()) fail("process: no program");
    const std::string prog = resolve_program(o.args[0]);

    // Build argv and envp before fork: the child of a multithreaded parent may only call
    // async-signal-safe functions.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
        std::string_view kv(*e);
        auto key = kv.substr(0, kv.find('='));
        bool drop = false;
        for (auto& u : o.unset_env)
            drop |= (key == u);
        for (auto& [k, v] : o.env)
            drop |= (key == k);
        if (!drop) env_strings.emplace_back(kv);
    }
    for (auto& [k, v] : o.env)
        env_strings.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    for (auto& a : o.args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env_strings)
        envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    stderr_file_ = make_temp_file("err");
    if (!o.stdout_pipe) stdout_file_ = make_temp_file("out");
    int out_fd = o.stdout_pipe ? -1 : ::open(stdout_file_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    int err_fd = ::open(stderr_file_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    if (o.stdin_pipe && ::pipe2(in_pipe, O_CLOEXEC) != 0) fail("pipe failed");
    if (o.stdout_pipe && ::pipe2(out_pipe, O_CLOEXEC) != 0) fail("pipe failed");
    const pid_t parent = ::getpid();

    pid_t pid = ::fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) {
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        ::dup2(o.stdin_pipe ? in_pipe[0] : null_fd, 0);
        ::dup2(o.stdout_pipe ? out_pipe[1] : out_fd, 1);
        ::dup2(err_fd, 2);
        // The test process holds sockets of its C++ nodes (Asio's are not close-on-exec): a
        // child holding one would keep a connection open after the node closed it.
        ::close_range(3, ~0u, 0);
        ::execve(prog.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from the parent, so kill(-pid) works at once
    pid_ = pid;
    if (out_fd >= 0) ::close(out_fd);
    ::close(err_fd);
    ::close(null_fd);
    if (o.stdin_pipe) {
        ::close(in_pipe[0]);
        stdin_fd_ = in_pipe[1];
    }
    if (o.stdout_pipe) {
        ::close(out_pipe[1]);
        stdout_fd_ = out_pipe[0];
    }
}

process::process(process&& other) noexcept {
    *this = std::move(other);
}

process& process::operator=(process&& other) noexcept {
    if (this != &other) {
        release();
        pid_ = std::exchange(other.pid_, -1);
        exit_code_ = std::exchange(other.exit_code_, std::nullopt);
        stdin_fd_ = std::exchange(other.stdin_fd_, -1);
        stdout_fd_ = std::exchange(other.stdout_fd_, -1);
        stdout_file_ = std::move(other.stdout_file_);
        stderr_file_ = std::move(other.stderr_file_);
        other.stdout_file_.clear();
        other.stderr_file_.clear();
        read_buf_ = std::move(other.read_buf_);
    }
    return *this;
}

process::~process() {
    release();
}

void process::release() noexcept {
    if (pid_ > 0) {
        reap_blocking_kill();
        pid_ = -1;
    }
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    stdin_fd_ = stdout_fd_ = -1;
    if (!stdout_file_.empty()) ::unlink(stdout_file_.c_str());
    if (!stderr_file_.empty()) ::unlink(stderr_file_.c_str());
    stdout_file_.clear();
    stderr_file_.clear();
}

void process::reap_blocking_kill() {
    // Kill the whole group even if the leader already exited (its helpers may linger).
    ::kill(-pid_, SIGKILL);
    if (!exit_code_) {
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        exit_code_ = decode_status(status);
    }
}

bool process::running() {
    if (pid_ <= 0 || exit_code_) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_code_ = decode_status(status);
        return false;
    }
    return r == 0;
}

void process::kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(-pid_, sig);
    if (!exit_code_) ::kill(pid_, sig);
}

int process::wait(std::chrono::milliseconds timeout) {
    auto deadline = clock::now() + timeout;
    while (running()) {
        if (clock::now() >= deadline) return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_code_.value_or(-1);
}

std::string process::output() const {
    return stdout_file_.empty() ? std::string() : read_file(stdout_file_);
}

std::string process::error_output() const {
    return stderr_file_.empty() ? std::string() : read_file(stderr_file_);
}

bool process::write_stdin(std::string_view data) {
    if (stdin_fd_ < 0) return false;
    // A dead reader must not kill the test binary with SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    while (!data.empty()) {
        ssize_t n = ::write(stdin_fd_, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

void process::close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
}

std::optional<std::string> process::read_line(std::chrono::milliseconds timeout) {
    if (stdout_fd_ < 0) return std::nullopt;
    auto deadline = clock::now() + timeout;
    for (;;) {
        auto nl = read_buf_.find('\n');
        if (nl != std::string::npos) {
            std::string line = read_buf_.substr(0, nl);
            read_buf_.erase(0, nl + 1);
            return line;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{stdout_fd_, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        char buf[4096];
        ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::nullopt;  // EOF
        read_buf_.append(buf, static_cast<std::size_t>(n));
    }
}

process::run_result process::run(std::vector<std::string> args,
                                 std::vector<std::pair<std::string, std::string>> env,
                                 std::chrono::milliseconds timeout) {
    options o;
    o.args = std::move(args);
    o.env = std::move(env);
    process p(std::move(o));
    run_result r;
    r.exit_code = p.wait(timeout);
    if (r.exit_code == -1) {
        p.kill(SIGKILL);
        p.wait(std::chrono::seconds(5));
        r.exit_code = -1;
    }
    r.out = p.output();
    r.err = p.error_output();
    return r;
}

// ---------------------------------------------------------------------------------------------
// epmd

bool epmd_answers(std::uint16_t port, std::chrono::milliseconds timeout) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const unsigned char req[] = {0, 1, 'n'};  // NAMES_REQ
        if (::send(fd, req, sizeof req, MSG_NOSIGNAL) == 3) {
            unsigned char reply[4];
            std::size_t got = 0;
            while (got < 4) {
                ssize_t n = ::recv(fd, reply + got, 4 - got, 0);
                if (n <= 0) break;
                got += static_cast<std::size_t>(n);
            }
            ok = got == 4;
        }
    }
    ::close(fd);
    return ok;
}

epmd_instance::epmd_instance(flavor f) : epmd_instance(f, {}) {}

std::string epmd_instance::program() const {
    return flavor_ == flavor::otp ? std::string("epmd") : bin_dir() + "/erlcpp-epmd";
}

epmd_instance::epmd_instance(flavor f, std::vector<std::string> extra_args) : flavor_(f) {
    std::string last_err;
    // A free port may be taken between free_tcp_port() and the bind; retry a few times.
    for (int attempt = 0; attempt < 5; ++attempt) {
        port_ = free_tcp_port();
        process::options o;
        o.args = {program(), "-port", std::to_string(port_)};
        for (auto& a : extra_args)
            o.args.push_back(a);
        o.unset_env = {"ERL_EPMD_PORT", "ERL_EPMD_ADDRESS"};
        process p(std::move(o));
        auto deadline = clock::now() + std::chrono::seconds(10);
        while (clock::now() < deadline && p.running()) {
            if (epmd_answers(port_)) {
                proc_.emplace(std::move(p));
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        last_err = p.error_output();
    }
    fail("epmd (" + program() + ") did not start: " + last_err);
}

epmd_instance::~epmd_instance() {
    if (proc_) {
        proc_->kill(SIGTERM);
        if (proc_->wait(std::chrono::seconds(3)) == -1) proc_->kill(SIGKILL);
        proc_.reset();  // reaps
    }
}

// ---------------------------------------------------------------------------------------------
// beam_node

beam_node::beam_node(options o) : opts_(std::move(o)) {
    if (opts_.epmd_port == 0) fail("beam_node needs options::epmd_port");
    cookie_ = opts_.cookie.empty() ? random_cookie() : opts_.cookie;
    std::string name = unique_name(opts_.name_prefix);
    if (opts_.long_names) name += "@127.0.0.1";

    process::options po;
    po.stdin_pipe = true;
    po.stdout_pipe = true;
    po.env = {{"ERL_EPMD_PORT", std::to_string(opts_.epmd_port)}};
    po.unset_env = {"ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_EPMD_ADDRESS"};
    if (!opts_.elixir) {
        po.args = {
            "erl", "-noshell",   "-start_epmd", "false", opts_.long_names ? "-name" : "-sname",
            name,  "-setcookie", cookie_};
        for (auto& a : opts_.extra_args)
            po.args.push_back(a);
        po.args.push_back("-eval");
        po.args.push_back(erlang_repl);
    } else {
        std::string erl_flags = "-start_epmd false";
        for (auto& a : opts_.extra_args)
            erl_flags += " " + a;
        po.args = {"elixir",   opts_.long_names ? "--name" : "--sname",
                   name,       "--cookie",
                   cookie_,    "--erl",
                   erl_flags,  "-e",
                   elixir_repl};
    }
    proc_.emplace(std::move(po));

    auto deadline = clock::now() + opts_.start_timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) break;
        auto line = proc_->read_line(left);
        if (!line) break;
        std::string prefix = std::string(eval_marker) + " ready ";
        if (line->rfind(prefix, 0) == 0) {
            node_name_ = line->substr(prefix.size());
            return;
        }
    }
    std::string err = proc_->error_output();
    proc_.reset();
    fail("node " + name + " did not start: " + err);
}

beam_node::~beam_node() {
    if (!proc_) return;
    proc_->close_stdin();  // the REPL halts on EOF
    if (proc_->wait(std::chrono::seconds(5)) == -1) proc_->kill(SIGKILL);
    proc_.reset();
}

beam_node::eval_result beam_node::try_eval(std::string_view expr,
                                           std::chrono::milliseconds timeout) {
    if (!proc_ || !proc_->running()) fail("eval on a dead node " + node_name_);
    if (!proc_->write_stdin(hex_encode(expr) + "\n")) fail("cannot write to node " + node_name_);
    auto deadline = clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) break;
        auto line = proc_->read_line(left);
        if (!line) break;
        if (line->rfind(eval_marker, 0) != 0) continue;  // output printed by the expression
        std::string_view rest(*line);
        rest.remove_prefix(eval_marker.size() + 1);
        auto sp = rest.find(' ');
        if (sp == std::string_view::npos) continue;
        auto text = hex_decode(rest.substr(sp + 1));
        if (!text) fail("garbled eval answer from " + node_name_);
        return {rest.substr(0, sp) == "ok", std::move(*text)};
    }
    fail("eval timed out or node died (" + node_name_ + "): " + std::string(expr) +
         "\nstderr: " + proc_->error_output());
}

std::string beam_node::eval(std::string_view expr, std::chrono::milliseconds timeout) {
    auto r = try_eval(expr, timeout);
    if (!r.ok) fail("eval error on " + node_name_ + ": " + std::string(expr) + " -> " + r.value);
    return r.value;
}

void beam_node::kill9() {
    if (!proc_) return;
    proc_->kill(SIGKILL);
    proc_->wait(std::chrono::seconds(5));
}

}  // namespace erl::interop
