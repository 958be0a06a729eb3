// The erlcpp side of the interop harness: an erl::node started for one test (cpp_node), an echo
// service on it, and the gtest fixture base (cluster_test) that gives each test a private epmd
// and a fresh cookie. The BEAM side (epmd_instance, beam_node, process) is in harness.hpp.
#pragma once

#include <erl/mailbox.hpp>
#include <erl/node.hpp>

#include "harness/harness.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace erl::interop {

// An erl::node on 127.0.0.1 registered with a private epmd (epmd_mode::require_running, two I/O
// threads), its log captured in memory. Guarantees: the node is stopped, and its thread-bodied
// processes joined (up to 10 s), when the object goes away, also when the constructor throws
// or the test fails half-way; with ERLCPP_TEST_VERBOSE set the captured log goes to stderr then.
class cpp_node {
  public:
    struct options {
        std::uint16_t epmd_port = 0;  // required: the private epmd's port (never 4369)
        std::string cookie;           // empty: erl::node_options' own sources (env, file)
        std::string name_prefix = "cpp";
        bool long_names = true;  // name@127.0.0.1; false: name@short_host_name()
        bool must_start = true;  // a failed start() throws; false: kept in start_error
        std::function<void(erl::node_options&)> tweak;  // has the last word on every option
    };

    explicit cpp_node(options o);
    ~cpp_node();
    cpp_node(const cpp_node&) = delete;
    cpp_node& operator=(const cpp_node&) = delete;

    std::string name() const { return std::string(node->name().str()); }
    std::string quoted_name() const { return quote_atom(name()); }  // 'name@host'

    bool log_contains(std::string_view needle);
    // Log lines appear on I/O threads, possibly just after the event the test waited for.
    bool wait_log(std::string_view needle,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
    std::string log_text();  // every captured line, '\n'-terminated

  private:
    // Declared before `node`: the node's log callback writes here until the node is gone.
    std::mutex log_mu_;
    std::vector<std::string> log_;

  public:
    std::unique_ptr<erl::node> node;
    erl::error_code start_error;  // only set with options::must_start = false
};

// A mailbox registered as `name` on `n` whose thread answers {Pid, T} with Pid ! T. The
// destructor exits the mailbox and joins the thread, so the thread never outlives the test.
class echo_service {
  public:
    explicit echo_service(erl::node& n, const char* name = "echo");
    ~echo_service();
    echo_service(const echo_service&) = delete;
    echo_service& operator=(const echo_service&) = delete;

    erl::mailbox mb;

  private:
    std::thread thread_;
};

// Base of the interop fixtures: every test gets its own OTP epmd on a free port (killed after
// the test, whatever the outcome) and a fresh random cookie; beam_opts() and cpp_opts() describe
// nodes of that little cluster. The prefixes only make node names tell which suite made them.
// SIGCONT for a process the test stopped (SIGSTOP), whatever the test's outcome, so the harness
// can stop it normally.
struct continue_on_exit {
    int pid;
    ~continue_on_exit() {
        if (pid > 0) ::kill(pid, SIGCONT);
    }
};

class cluster_test : public ::testing::Test {
  protected:
    explicit cluster_test(std::string cpp_prefix = "cpp", std::string beam_prefix = "beam")
        : cpp_prefix_(std::move(cpp_prefix)), beam_prefix_(std::move(beam_prefix)) {}

    beam_node::options beam_opts(bool elixir = false) const {
        beam_node::options o;
        o.name_prefix = beam_prefix_;
        o.cookie = cookie;
        o.epmd_port = epmd.port();
        o.elixir = elixir;
        return o;
    }
    cpp_node::options cpp_opts(std::function<void(erl::node_options&)> tweak = {}) const {
        cpp_node::options o;
        o.epmd_port = epmd.port();
        o.cookie = cookie;
        o.name_prefix = cpp_prefix_;
        o.tweak = std::move(tweak);
        return o;
    }

    epmd_instance epmd{epmd_instance::flavor::otp};
    std::string cookie = random_cookie();

  private:
    std::string cpp_prefix_;
    std::string beam_prefix_;
};

// The gen_server checks both C++ `counter` servers of the tests pass (threaded and inline): as
// seen from `beam` through gen_server:call/cast to `dest` ("{counter, 'node'}"): get, add of a
// bignum, cast reset, [alias|Ref] tags, a hand-written '$gen_call' with a plain reference tag.
// The server answers get / {add, N} / tag (its From's tag) and the cast reset.
void expect_counter_gen_server(beam_node& beam, const std::string& dest);

}  // namespace erl::interop
