// Interop: cookies and access control (issue 7) against real OTP nodes: the cookie from an
// option, an environment variable or a cookie file (created 0400 when missing, refused when
// others can read it), per-peer cookies (erlang:set_cookie/2), an allow-list
// (net_kernel:allow/1), hidden and published nodes.
#include <erl/node.hpp>

#include "harness/harness.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::epmd_instance;
namespace fs = std::filesystem;

namespace {

struct cpp_node {
    std::unique_ptr<erl::node> node;
    std::vector<std::string> log;
    std::mutex log_mu;
    erl::error_code start_error;

    cpp_node(std::uint16_t epmd_port, const std::function<void(erl::node_options&)>& tweak) {
        erl::node_options o;
        o.name = erl::interop::unique_name("cppacc") + "@127.0.0.1";
        o.epmd_port = epmd_port;
        o.epmd = erl::epmd_mode::require_running;
        o.threads = 2;
        o.log = [this](std::string_view m) {
            std::lock_guard lk(log_mu);
            log.emplace_back(m);
        };
        tweak(o);
        node = std::make_unique<erl::node>(o);
        start_error = node->start();
    }
    ~cpp_node() {
        node->stop();
        if (std::getenv("ERLCPP_TEST_VERBOSE")) std::fprintf(stderr, "%s", log_text().c_str());
    }
    std::string name() const { return std::string(node->name().str()); }
    bool wait_log(std::string_view needle, std::chrono::milliseconds timeout = 10s) {
        auto end = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            {
                std::lock_guard lk(log_mu);
                for (auto& l : log)
                    if (l.find(needle) != std::string::npos) return true;
            }
            if (std::chrono::steady_clock::now() > end) return false;
            std::this_thread::sleep_for(20ms);
        }
    }
    std::string log_text() {
        std::lock_guard lk(log_mu);
        std::string s;
        for (auto& l : log)
            s += l + "\n";
        return s;
    }
};

beam_node::options beam_opts(std::uint16_t epmd, const std::string& cookie,
                             std::vector<std::string> extra = {}) {
    beam_node::options o;
    o.epmd_port = epmd;
    o.cookie = cookie;
    o.name_prefix = "beamacc";
    o.extra_args = std::move(extra);
    return o;
}

std::string q(const std::string& node) {
    return "'" + node + "'";
}

struct temp_dir {
    std::string path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "erlcpp-access-XXXXXX").string();
        if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, ec);
        for (auto& e : fs::directory_iterator(path, ec))
            fs::permissions(e.path(), fs::perms::owner_all, ec);
        fs::remove_all(path, ec);
    }
};

std::string read_file(const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

class AccessInterop : public ::testing::Test {
  protected:
    epmd_instance epmd{epmd_instance::flavor::otp};
    std::string cookie = erl::interop::random_cookie();
};

TEST_F(AccessInterop, allow_list_admits_listed_node_and_refuses_others_both_directions) {
    beam_node listed(beam_opts(epmd.port(), cookie));
    beam_node other(beam_opts(epmd.port(), cookie));
    cpp_node cpp(epmd.port(), [&](erl::node_options& o) {
        o.cookie = cookie;
        o.allow = {listed.node_name()};
    });
    ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
    // Incoming: the listed node gets pong, the other one "not_allowed" (pang).
    EXPECT_EQ(listed.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pong");
    EXPECT_EQ(other.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pang");
    EXPECT_TRUE(cpp.wait_log("connection from " + other.node_name() +
                             " refused: node not in the allow-list"))
        << cpp.log_text();
    // Outgoing: we do not dial a node outside the list.
    EXPECT_EQ(cpp.node->connect(erl::atom(other.node_name()), 5s),
              erl::make_error_code(erl::errc::node_not_allowed));
    EXPECT_TRUE(cpp.wait_log("is not in the allow-list")) << cpp.log_text();
    EXPECT_EQ(cpp.node->nodes(), std::vector<erl::atom>{erl::atom(listed.node_name())});
    EXPECT_EQ(other.eval("nodes()"), "[]");
}

TEST_F(AccessInterop, per_peer_cookies_both_directions) {
    const std::string special = erl::interop::random_cookie();
    const std::string outgoing = erl::interop::random_cookie();
    beam_node common(beam_opts(epmd.port(), cookie));
    beam_node in_peer(beam_opts(epmd.port(), special));
    beam_node out_peer(beam_opts(epmd.port(), outgoing));
    beam_node stranger(beam_opts(epmd.port(), special));  // right cookie, not configured for it
    cpp_node cpp(epmd.port(), [&](erl::node_options& o) {
        o.cookie = cookie;
        o.peer_cookies = {{in_peer.node_name(), special}, {out_peer.node_name(), outgoing}};
    });
    ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
    EXPECT_EQ(common.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pong");
    EXPECT_EQ(in_peer.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pong");
    EXPECT_EQ(stranger.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pang");
    EXPECT_TRUE(cpp.node->ping(erl::atom(out_peer.node_name())));
    // The same per-peer cookie configured on the BEAM side (erlang:set_cookie/2) lets the
    // stranger in from our side too: we dial it with our default cookie.
    EXPECT_EQ(stranger.eval("erlang:set_cookie(" + q(cpp.name()) + ", '" + cookie + "')"), "true");
    EXPECT_TRUE(cpp.node->ping(erl::atom(stranger.node_name())));
}

TEST_F(AccessInterop, cookie_from_environment_variable) {
    const std::string var = "ERLCPP_TEST_COOKIE_" + std::to_string(::getpid());
    ::setenv(var.c_str(), cookie.c_str(), 1);
    cpp_node cpp(epmd.port(), [&](erl::node_options& o) { o.cookie_env = var; });
    ::unsetenv(var.c_str());
    ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
    beam_node beam(beam_opts(epmd.port(), cookie));
    EXPECT_EQ(beam.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pong");
}

TEST_F(AccessInterop, cookie_file_created_owner_only_and_used) {
    temp_dir home;
    const std::string file = home.path + "/.erlang.cookie";
    // Default location: $HOME/.erlang.cookie, created when missing (mode 0400, as OTP).
    const char* old_home = std::getenv("HOME");
    std::string saved = old_home ? old_home : "";
    ::setenv("HOME", home.path.c_str(), 1);
    std::string created;
    {
        cpp_node cpp(epmd.port(), [&](erl::node_options& o) { o.cookie_env.clear(); });
        if (old_home)
            ::setenv("HOME", saved.c_str(), 1);
        else
            ::unsetenv("HOME");
        ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
        struct stat st {};
        ASSERT_EQ(::stat(file.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0400u);
        created = read_file(file);
        EXPECT_EQ(created.size(), 20u);
        // An OTP node given the same cookie talks to us.
        beam_node beam(beam_opts(epmd.port(), created));
        EXPECT_EQ(beam.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pong");
    }
    // An existing file is read, not rewritten; an explicit cookie_file works the same way.
    {
        cpp_node cpp(epmd.port(), [&](erl::node_options& o) {
            o.cookie_env.clear();
            o.cookie_file = file;
        });
        ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
        EXPECT_EQ(read_file(file), created);
        beam_node beam(beam_opts(epmd.port(), created));
        EXPECT_EQ(beam.eval("net_adm:ping(" + q(cpp.name()) + ")"), "pong");
    }
    // A cookie file others can read is refused, as OTP's auth refuses it.
    const std::string open_file = home.path + "/open.cookie";
    std::ofstream(open_file) << "SOMECOOKIE";
    ::chmod(open_file.c_str(), 0644);
    cpp_node bad(epmd.port(), [&](erl::node_options& o) {
        o.cookie_env.clear();
        o.cookie_file = open_file;
    });
    EXPECT_EQ(bad.start_error, erl::make_error_code(erl::errc::bad_cookie));
    EXPECT_TRUE(bad.wait_log("must be accessible by owner only", 1s)) << bad.log_text();
}

TEST_F(AccessInterop, hidden_node_is_listed_only_in_nodes_hidden) {
    beam_node beam(beam_opts(epmd.port(), cookie));
    cpp_node hidden(epmd.port(), [&](erl::node_options& o) {
        o.cookie = cookie;
        o.hidden = true;
    });
    cpp_node published(epmd.port(), [&](erl::node_options& o) { o.cookie = cookie; });
    ASSERT_FALSE(hidden.start_error);
    ASSERT_FALSE(published.start_error);
    EXPECT_TRUE(hidden.node->ping(erl::atom(beam.node_name())));
    EXPECT_TRUE(published.node->ping(erl::atom(beam.node_name())));
    EXPECT_EQ(beam.eval("nodes()"), "[" + q(published.name()) + "]");
    EXPECT_EQ(beam.eval("nodes(hidden)"), "[" + q(hidden.name()) + "]");
    // epmd knows the node types too (77 normal, 72 hidden); OTP's hidden nodes see a published
    // C++ node as hidden-connected, as with any node.
    beam_node hidden_beam(beam_opts(epmd.port(), cookie, {"-hidden"}));
    EXPECT_EQ(hidden_beam.eval("net_adm:ping(" + q(published.name()) + ")"), "pong");
    EXPECT_EQ(hidden_beam.eval("nodes(hidden)"), "[" + q(published.name()) + "]");
}
