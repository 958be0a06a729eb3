// An erlcpp-demo node as a child process, for tests that need the node's own memory figures
// (VmRSS of its process, not of the test binary) or that stop and continue it with signals.
#pragma once

#include "harness/harness.hpp"

#include <signal.h>
#include <sys/types.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace erl::interop {

class demo_child {
  public:
    // Starts erlcpp-demo registered with the epmd on `epmd_port` and waits for "ready <node>".
    // `extra` is appended to the command line (e.g. {"--ticktime", "4000"}), `env` set in its
    // environment; `prefix` runs it under another command and `host` is its name's host part.
    demo_child(std::uint16_t epmd_port, const std::string& cookie,
               std::vector<std::string> extra = {},
               std::vector<std::pair<std::string, std::string>> env = {},
               std::vector<std::string> prefix = {}, const std::string& host = "127.0.0.1")
        : name_(unique_name("demo") + "@" + host) {
        process::options po;
        po.args = std::move(prefix);
        po.args.insert(po.args.end(),
                       {bin_dir() + "/erlcpp-demo", "--name", name_, "--cookie", cookie,
                        "--epmd-port", std::to_string(epmd_port), "--epmd", "require"});
        po.args.insert(po.args.end(), extra.begin(), extra.end());
        po.env = std::move(env);
        po.stdout_pipe = true;
        proc_.emplace(po);
        auto line = proc_->read_line(std::chrono::seconds(20));
        if (!line || *line != "ready " + name_)
            throw std::runtime_error("erlcpp-demo did not start: " + proc_->error_output());
    }
    ~demo_child() {
        if (proc_) proc_->kill(SIGCONT);  // a stopped child must not outlive a failed test
    }

    const std::string& name() const noexcept { return name_; }
    std::string quoted_name() const { return quote_atom(name_); }
    int pid() const noexcept { return proc_->pid(); }
    bool running() { return proc_->running(); }
    void signal(int sig) { proc_->kill(sig); }
    // The node's log (erlcpp-demo logs to stderr).
    std::string log() const { return proc_->error_output(); }

    // VmRSS of the child in KiB (/proc/<pid>/status); 0 if it cannot be read.
    std::size_t rss_kib() const {
        const std::string s = read_text_file("/proc/" + std::to_string(pid()) + "/status");
        auto at = s.find("VmRSS:");
        if (at == std::string::npos) return 0;
        return std::strtoull(s.c_str() + at + 6, nullptr, 10);
    }

  private:
    std::string name_;
    std::optional<process> proc_;
};

}  // namespace erl::interop
