// Shared interop test harness: private epmd instances, real erl/elixir nodes driven through a
// stdin/stdout REPL, child processes that are always cleaned up.
//
// Every helper here starts processes only on 127.0.0.1 with private ports; nothing touches the
// machine's epmd on 4369. Objects are not thread-safe: use each from one thread at a time.
//
// Children are started in their own process group and with PR_SET_PDEATHSIG=SIGKILL, so a
// crashing test binary does not leave them behind; destructors kill (SIGKILL) the whole group
// and reap it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace erl::interop {

// Binds 127.0.0.1:0, reads the port the kernel chose, closes the socket.
std::uint16_t free_tcp_port();

// prefix + "_" + pid + "_" + counter: unique within the machine for this run and a valid node
// name part (letters, digits, '_' as long as the prefix uses only those).
std::string unique_name(std::string_view prefix);

// 20 random letters and digits.
std::string random_cookie();

// Directory holding this build's executables (erlcpp-epmd, erlcpp-demo, ...): ERLCPP_BIN_DIR.
std::string bin_dir();

// Host name erl uses for -sname nodes (the part after '@' of node() with short names).
std::string short_host_name();

// 'text': an Erlang quoted-atom literal for expressions given to beam_node::eval. No escaping:
// meant for node names and other atoms without quotes or backslashes.
std::string quote_atom(std::string_view text);

// Polls `pred` every `poll` until it holds or `timeout` has passed, and once more at the
// deadline; true if it held. For states other threads or nodes reach asynchronously (a log
// line, a process exit, a connection gone); never for timing assertions.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(20));

// The whole content of a file ("" if it cannot be read).
std::string read_text_file(const std::string& path);

// A fresh directory under the system temp directory (mkdtemp, name erlcpp-<tag>-XXXXXX).
// Guarantees: the destructor removes it with all it holds, also files the test made read-only
// or unreadable (it restores owner permissions first). Throws std::runtime_error if mkdtemp fails.
class temp_dir {
  public:
    explicit temp_dir(std::string_view tag);
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::string& path() const noexcept { return path_; }
    std::string path(std::string_view file) const { return path_ + "/" + std::string(file); }

  private:
    std::string path_;
};

// A child process started with fork/exec. stdout goes to a pipe (options::stdout_pipe) or a
// temporary file; stderr always goes to a temporary file. The destructor kills (SIGKILL) the
// process group and reaps the child if it is still running.
class process {
  public:
    struct options {
        std::vector<std::string> args;  // args[0] is the program (searched in PATH)
        std::vector<std::pair<std::string, std::string>> env;  // set/override in the child
        std::vector<std::string> unset_env;                    // removed in the child
        bool stdin_pipe = false;   // write_stdin()/close_stdin() usable; else /dev/null
        bool stdout_pipe = false;  // read_line() usable; else captured in a file (output())
    };

    struct run_result {
        int exit_code = -1;  // exit status; 128+signal if killed by a signal; -1 on timeout
        std::string out;
        std::string err;
    };

    // Starts the child; throws std::runtime_error if the program cannot be found or forked.
    explicit process(options o);
    process(process&& other) noexcept;
    process& operator=(process&& other) noexcept;
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    ~process();

    // Runs a command to completion (killing it after `timeout`) and returns its exit code and
    // captured output.
    static run_result run(std::vector<std::string> args,
                          std::vector<std::pair<std::string, std::string>> env = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));

    int pid() const noexcept { return pid_; }
    bool running();      // false once the child exited (reaps it)
    void kill(int sig);  // signals the child's process group
    // Waits for the exit; returns the exit code (128+signal if signalled), or -1 if it is still
    // running after `timeout`.
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    std::optional<int> exit_code() const noexcept { return exit_code_; }

    std::string output() const;        // captured stdout (file mode) so far
    std::string error_output() const;  // captured stderr so far

    bool write_stdin(std::string_view data);
    void close_stdin();
    // Reads one line from the stdout pipe (without the '\n'); nullopt on timeout or EOF.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  private:
    void reap_blocking_kill();
    void release() noexcept;

    int pid_ = -1;
    std::optional<int> exit_code_;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    std::string stdout_file_;
    std::string stderr_file_;
    std::string read_buf_;
};

// A private epmd on a free port (OTP's `epmd` or our `erlcpp-epmd`, in the foreground).
// The constructor waits until it answers a NAMES request; the destructor kills it.
class epmd_instance {
  public:
    enum class flavor { otp, erlcpp };

    explicit epmd_instance(flavor f = flavor::otp);
    // extra_args are appended to the command line (e.g. "-relaxed_command_check", "-d").
    epmd_instance(flavor f, std::vector<std::string> extra_args);
    epmd_instance(const epmd_instance&) = delete;
    epmd_instance& operator=(const epmd_instance&) = delete;
    ~epmd_instance();

    std::uint16_t port() const noexcept { return port_; }
    flavor kind() const noexcept { return flavor_; }
    process& proc() { return *proc_; }
    std::string program() const;  // "epmd" or the path of erlcpp-epmd

  private:
    flavor flavor_;
    std::uint16_t port_ = 0;
    std::optional<process> proc_;
};

// True if something answers an epmd NAMES request on 127.0.0.1:port within `timeout`.
bool epmd_answers(std::uint16_t port,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

// A real erl (or elixir) node driven through a REPL on its stdin/stdout.
class beam_node {
  public:
    struct options {
        std::string name_prefix = "beam";
        bool long_names = true;  // -name x@127.0.0.1; false: -sname x (host = short_host_name())
        std::string cookie;      // empty: a random cookie
        std::uint16_t epmd_port = 0;  // required: ERL_EPMD_PORT for the node
        bool elixir = false;
        std::vector<std::string> extra_args;  // appended to erl's command line (for elixir: --erl)
        std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
    };

    struct eval_result {
        bool ok = false;
        std::string value;  // formatted result, or the error text (class:reason + stack)
    };

    // Starts `erl -noshell -start_epmd false -name ... -setcookie ...` (or elixir with
    // --erl "-start_epmd false") with ERL_EPMD_PORT=epmd_port and waits until the REPL is ready.
    // Throws std::runtime_error (with the node's stderr) if it does not come up.
    explicit beam_node(options o);
    beam_node(const beam_node&) = delete;
    beam_node& operator=(const beam_node&) = delete;
    ~beam_node();  // closes stdin (the node halts), then kills and reaps if needed

    std::string node_name() const { return node_name_; }  // e.g. beam_1234_1@127.0.0.1
    const std::string& cookie() const noexcept { return cookie_; }

    // Evaluates an Erlang expression sequence (no trailing '.'; may span lines) and returns the
    // result formatted with io_lib:format("~0p") (one line, no pretty breaks). For elixir nodes
    // the code is Elixir (Code.eval_string) and the result is inspect(v, limit: :infinity).
    // Bindings persist between calls. Throws std::runtime_error on an evaluation error, a
    // timeout, or a dead node.
    std::string eval(std::string_view expr,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));
    // Like eval, but an evaluation error is returned (ok=false) instead of thrown; timeouts and
    // a dead node still throw.
    eval_result try_eval(std::string_view expr,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));

    void kill9();  // SIGKILL the node (its process group) and reap it
    int os_pid() const noexcept { return proc_ ? proc_->pid() : -1; }
    bool running() { return proc_ && proc_->running(); }
    std::string stderr_text() const { return proc_ ? proc_->error_output() : std::string(); }

  private:
    options opts_;
    std::string cookie_;
    std::string node_name_;
    std::optional<process> proc_;
};

}  // namespace erl::interop
