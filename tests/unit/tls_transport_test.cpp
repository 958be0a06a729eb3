// TLS transport and limit plumbing without OTP: the per-thread atom creation cap, TLS context
// configuration errors, and two erl::node instances talking TLS distribution to each other
// over loopback (in-process EPMD on a private port; certificates made with the openssl CLI).
#include <erl/node.hpp>
#include <erl/term.hpp>

#include "transport/dist_stream.hpp"

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using erl::test::free_port;

struct certs {
    std::string dir;
    certs() {
        std::string t = (fs::temp_directory_path() / "erlcpp-unit-tls-XXXXXX").string();
        if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
        dir = t;
        std::ofstream(dir + "/ext.cnf") << "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n"
                                           "extendedKeyUsage=serverAuth,clientAuth\n";
        const std::string q = "'" + dir + "/";
        const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        std::string cmd =
            "openssl req -x509 " + ec + " -keyout " + q + "ca.key' -out " + q +
            "ca.pem' -days 2 -subj /CN=unit-ca -addext basicConstraints=critical,CA:TRUE && "
            "openssl req " +
            ec + " -keyout " + q + "n.key' -out " + q +
            "n.csr' -subj /CN=127.0.0.1 && openssl x509 -req -in " + q + "n.csr' -CA " + q +
            "ca.pem' -CAkey " + q + "ca.key' -CAcreateserial -out " + q +
            "n.pem' -days 2 -extfile " + q + "ext.cnf' >/dev/null 2>&1";
        if (std::system((cmd + " 2>/dev/null").c_str()) != 0)
            throw std::runtime_error("openssl failed");
    }
    ~certs() {
        std::error_code e;
        fs::remove_all(dir, e);
    }
    erl::tls_options tls(bool verify) const {
        erl::tls_options t;
        t.enabled = true;
        t.cert_file = dir + "/n.pem";
        t.key_file = dir + "/n.key";
        t.ca_file = dir + "/ca.pem";
        t.verify_peer = verify;
        t.fail_if_no_peer_cert = verify;
        return t;
    }
};

struct logged_node {
    std::mutex mu;
    std::string log;
    std::unique_ptr<erl::node> node;
    logged_node(const std::string& name, std::uint16_t epmd_port, erl::tls_options tls,
                erl::epmd_mode mode) {
        erl::node_options o;
        o.name = name;
        o.cookie = "unitcookie";
        o.epmd_port = epmd_port;
        o.epmd = mode;
        o.tls = std::move(tls);
        o.net_setuptime = 3s;
        o.log = [this](std::string_view m) {
            std::lock_guard lk(mu);
            log += std::string(m) + "\n";
        };
        node = std::make_unique<erl::node>(o);
    }
    std::string text() {
        std::lock_guard lk(mu);
        return log;
    }
};

}  // namespace

TEST(TlsTransport, thread_atom_creation_cap_refuses_new_atoms_only) {
    const erl::atom known("tls_unit_known_atom");
    const std::size_t base = erl::atoms_created_by_this_thread();
    erl::set_thread_atom_creation_cap(base);
    auto fresh = erl::atom::make("tls_unit_fresh_atom_" + std::to_string(::getpid()));
    auto again = erl::atom::make("tls_unit_known_atom");
    erl::set_thread_atom_creation_cap(SIZE_MAX);
    EXPECT_EQ(fresh.error(), erl::make_error_code(erl::errc::atom_table_full));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, known);
    EXPECT_EQ(erl::atoms_created_by_this_thread(), base);
    auto later = erl::atom::make("tls_unit_fresh_atom_" + std::to_string(::getpid()));
    EXPECT_TRUE(later);
    EXPECT_EQ(erl::atoms_created_by_this_thread(), base + 1);
}

TEST(TlsTransport, context_errors_name_the_problem) {
    std::string why;
    erl::tls_options t;
    t.enabled = true;
    EXPECT_FALSE(erl::detail::make_tls_contexts(t, why));
    EXPECT_NE(why.find("cert_file"), std::string::npos) << why;
    t.cert_file = "/nonexistent/cert.pem";
    t.key_file = "/nonexistent/key.pem";
    why.clear();
    EXPECT_FALSE(erl::detail::make_tls_contexts(t, why));
    EXPECT_NE(why.find("/nonexistent/cert.pem"), std::string::npos) << why;
    certs c;
    auto ok = c.tls(true);
    ok.ca_file.clear();
    why.clear();
    EXPECT_FALSE(erl::detail::make_tls_contexts(ok, why));
    EXPECT_NE(why.find("ca_file"), std::string::npos) << why;
    why.clear();
    EXPECT_TRUE(erl::detail::make_tls_contexts(c.tls(true), why)) << why;
}

TEST(TlsTransport, two_cpp_nodes_talk_tls_and_refuse_plaintext) {
    certs c;
    const std::uint16_t epmd = free_port();
    logged_node a("tls_unit_a@127.0.0.1", epmd, c.tls(true), erl::epmd_mode::in_process);
    ASSERT_FALSE(a.node->start()) << a.text();
    logged_node b("tls_unit_b@127.0.0.1", epmd, c.tls(true), erl::epmd_mode::require_running);
    ASSERT_FALSE(b.node->start()) << b.text();
    logged_node p("tls_unit_p@127.0.0.1", epmd, erl::tls_options{},
                  erl::epmd_mode::require_running);
    ASSERT_FALSE(p.node->start()) << p.text();

    EXPECT_TRUE(b.node->ping(a.node->name(), 5s)) << b.text() << a.text();
    auto mb = a.node->spawn_mailbox(erl::atom("tls_unit_box"));
    ASSERT_TRUE(mb);
    b.node->send(erl::atom("tls_unit_box"), a.node->name(), erl::tuple(1, erl::binary("x")));
    auto m = mb->receive(5s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, erl::tuple(1, erl::binary("x")));

    // Plaintext -> TLS and TLS -> plaintext fail, both within net_setuptime.
    EXPECT_FALSE(p.node->ping(a.node->name(), 10s));
    EXPECT_FALSE(a.node->ping(p.node->name(), 10s));
    EXPECT_NE(a.text().find("TLS handshake failed"), std::string::npos) << a.text();
    EXPECT_EQ(a.node->nodes(), std::vector<erl::atom>{b.node->name()});
    p.node->stop();
    b.node->stop();
    a.node->stop();
}
