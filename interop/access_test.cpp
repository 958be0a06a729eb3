// Interop: cookies and access control against real OTP nodes: the cookie from an
// option, an environment variable or a cookie file (created 0400 when missing, refused when
// others can read it), per-peer cookies (erlang:set_cookie/2), an allow-list
// (net_kernel:allow/1), hidden and published nodes.
#include <erl/node.hpp>

#include "harness/cluster.hpp"
#include "harness/named_cluster_test.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::quote_atom;
using erl::interop::read_text_file;

class AccessInterop : public erl::interop::named_cluster_test<"cppacc", "beamacc"> {
  protected:
    // A C++ node whose cookie and access options all come from `tweak` (no cookie is preset, so
    // the environment and cookie-file sources can be tested); a failed start is kept in
    // start_error, not thrown.
    cpp_node::options acc_opts(std::function<void(erl::node_options&)> tweak) const {
        auto o = cpp_opts(std::move(tweak));
        o.cookie.clear();
        o.must_start = false;
        return o;
    }
    beam_node::options beam_with(const std::string& c, std::vector<std::string> extra = {}) const {
        auto o = beam_opts();
        o.cookie = c;
        o.extra_args = std::move(extra);
        return o;
    }
};

TEST_F(AccessInterop, allow_list_admits_listed_node_and_refuses_others_both_directions) {
    beam_node listed(beam_with(cookie));
    beam_node other(beam_with(cookie));
    cpp_node cpp(acc_opts([&](erl::node_options& o) {
        o.cookie = cookie;
        o.allow = {listed.node_name()};
    }));
    ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
    // Incoming: the listed node gets pong, the other one "not_allowed" (pang).
    EXPECT_EQ(listed.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(other.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pang");
    EXPECT_TRUE(cpp.wait_log("warning handshake_refused peer=" + other.node_name() +
                             ": not in the allow-list"))
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
    beam_node common(beam_with(cookie));
    beam_node in_peer(beam_with(special));
    beam_node out_peer(beam_with(outgoing));
    beam_node stranger(beam_with(special));  // right cookie, not configured for it
    cpp_node cpp(acc_opts([&](erl::node_options& o) {
        o.cookie = cookie;
        o.peer_cookies = {{in_peer.node_name(), special}, {out_peer.node_name(), outgoing}};
    }));
    ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
    EXPECT_EQ(common.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(in_peer.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(stranger.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pang");
    EXPECT_TRUE(cpp.node->ping(erl::atom(out_peer.node_name())));
    // The same per-peer cookie configured on the BEAM side (erlang:set_cookie/2) lets the
    // stranger in from our side too: we dial it with our default cookie.
    EXPECT_EQ(stranger.eval("erlang:set_cookie(" + cpp.quoted_name() + ", '" + cookie + "')"),
              "true");
    EXPECT_TRUE(cpp.node->ping(erl::atom(stranger.node_name())));
}

TEST_F(AccessInterop, cookie_from_environment_variable) {
    const std::string var = "ERLCPP_TEST_COOKIE_" + std::to_string(::getpid());
    ::setenv(var.c_str(), cookie.c_str(), 1);
    cpp_node cpp(acc_opts([&](erl::node_options& o) { o.cookie_env = var; }));
    ::unsetenv(var.c_str());
    ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
    beam_node beam(beam_with(cookie));
    EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(AccessInterop, cookie_file_created_owner_only_and_used) {
    erl::interop::temp_dir home("access");
    const std::string file = home.path(".erlang.cookie");
    // Default location: $HOME/.erlang.cookie, created when missing (mode 0400, as OTP).
    const char* old_home = std::getenv("HOME");
    std::string saved = old_home ? old_home : "";
    ::setenv("HOME", home.path().c_str(), 1);
    std::string created;
    {
        cpp_node cpp(acc_opts([&](erl::node_options& o) { o.cookie_env.clear(); }));
        if (old_home)
            ::setenv("HOME", saved.c_str(), 1);
        else
            ::unsetenv("HOME");
        ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
        struct stat st {};
        ASSERT_EQ(::stat(file.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0400u);
        created = read_text_file(file);
        EXPECT_EQ(created.size(), 20u);
        // An OTP node given the same cookie talks to us.
        beam_node beam(beam_with(created));
        EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    }
    // An existing file is read, not rewritten; an explicit cookie_file works the same way.
    {
        cpp_node cpp(acc_opts([&](erl::node_options& o) {
            o.cookie_env.clear();
            o.cookie_file = file;
        }));
        ASSERT_FALSE(cpp.start_error) << cpp.start_error.message();
        EXPECT_EQ(read_text_file(file), created);
        beam_node beam(beam_with(created));
        EXPECT_EQ(beam.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    }
    // A cookie file others can read is refused, as OTP's auth refuses it.
    const std::string open_file = home.path("open.cookie");
    std::ofstream(open_file) << "SOMECOOKIE";
    ::chmod(open_file.c_str(), 0644);
    cpp_node bad(acc_opts([&](erl::node_options& o) {
        o.cookie_env.clear();
        o.cookie_file = open_file;
    }));
    EXPECT_EQ(bad.start_error, erl::make_error_code(erl::errc::cookie_file_error));
    EXPECT_TRUE(bad.wait_log("must be accessible by owner only", 1s)) << bad.log_text();
}

TEST_F(AccessInterop, hidden_node_is_listed_only_in_nodes_hidden) {
    beam_node beam(beam_with(cookie));
    cpp_node hidden(acc_opts([&](erl::node_options& o) {
        o.cookie = cookie;
        o.hidden = true;
    }));
    cpp_node published(acc_opts([&](erl::node_options& o) { o.cookie = cookie; }));
    ASSERT_FALSE(hidden.start_error);
    ASSERT_FALSE(published.start_error);
    EXPECT_TRUE(hidden.node->ping(erl::atom(beam.node_name())));
    EXPECT_TRUE(published.node->ping(erl::atom(beam.node_name())));
    EXPECT_EQ(beam.eval("nodes()"), "[" + quote_atom(published.name()) + "]");
    EXPECT_EQ(beam.eval("nodes(hidden)"), "[" + quote_atom(hidden.name()) + "]");
    // epmd knows the node types too (77 normal, 72 hidden); OTP's hidden nodes see a published
    // C++ node as hidden-connected, as with any node.
    beam_node hidden_beam(beam_with(cookie, {"-hidden"}));
    EXPECT_EQ(hidden_beam.eval("net_adm:ping(" + quote_atom(published.name()) + ")"), "pong");
    EXPECT_EQ(hidden_beam.eval("nodes(hidden)"), "[" + quote_atom(published.name()) + "]");
}
