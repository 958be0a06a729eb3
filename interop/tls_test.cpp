// Interop: TLS distribution against real OTP nodes started with
// `-proto_dist inet_tls -ssl_dist_optfile FILE`. Certificates are made by the test with the
// openssl CLI in a temporary directory (removed afterwards): a test CA, a node certificate it
// signs (subjectAltName DNS:127.0.0.1 and IP:127.0.0.1, as an OTP 25 client checks the host part
// of the node name as a DNS name), and a rogue CA with its own node certificate.
#include <erl/node.hpp>
#include <erl/rpc.hpp>

#include "harness/cluster.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::cpp_node;
using erl::interop::echo_service;

namespace {

// A temporary PKI: ca/ca-node (trusted) and rogue/rogue-node (signed by an unknown CA).
struct test_pki {
    erl::interop::temp_dir dir{"tls"};  // removed with everything in it

    test_pki() {
        write("ext.cnf",
              "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n"
              "extendedKeyUsage=serverAuth,clientAuth\n"
              "basicConstraints=CA:FALSE\n"
              "keyUsage=digitalSignature\n");
        for (std::string ca : {"ca", "rogue"}) {
            openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", path(ca + ".key"), "-out", path(ca + ".pem"), "-days",
                     "2", "-subj", "/CN=erlcpp-test-" + ca, "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext",
                     "keyUsage=critical,keyCertSign,cRLSign"});
            openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path(ca + "-node.key"), "-out", path(ca + "-node.csr"), "-subj",
                     "/CN=127.0.0.1"});
            openssl({"x509", "-req", "-in", path(ca + "-node.csr"), "-CA", path(ca + ".pem"),
                     "-CAkey", path(ca + ".key"), "-CAcreateserial", "-out", path(ca + "-node.pem"),
                     "-days", "2", "-extfile", path("ext.cnf")});
        }
    }
    std::string path(const std::string& f) const { return dir.path(f); }
    void write(const std::string& f, const std::string& text) const {
        std::ofstream(path(f)) << text;
    }
    void openssl(std::vector<std::string> args) const {
        args.insert(args.begin(), "openssl");
        auto r = erl::interop::process::run(args);
        if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
    }

    // An -ssl_dist_optfile for a BEAM node. `who` is "ca" or "rogue" (whose node certificate
    // it presents); it always trusts the test CA.
    std::string optfile(const std::string& who, bool verify, bool fail_if_no_peer_cert = false) {
        auto q = [](const std::string& s) { return "\"" + s + "\""; };
        std::string common = "{certfile, " + q(path(who + "-node.pem")) + "}, {keyfile, " +
                             q(path(who + "-node.key")) + "}, {cacertfile, " + q(path("ca.pem")) +
                             "}";
        std::string v = verify ? "{verify, verify_peer}" : "{verify, verify_none}";
        std::string text =
            "[{server, [" + common + ", " + v +
            (verify && fail_if_no_peer_cert ? ", {fail_if_no_peer_cert, true}" : "") +
            "]},\n {client, [" + common + ", " + v + "]}].\n";
        std::string f = "opt-" + std::to_string(counter_++) + ".conf";
        write(f, text);
        return path(f);
    }

    erl::tls_options tls(const std::string& who, bool verify, bool fail_if_no_peer_cert = false) {
        erl::tls_options t;
        t.enabled = true;
        t.cert_file = path(who + "-node.pem");
        t.key_file = path(who + "-node.key");
        t.ca_file = path("ca.pem");
        t.verify_peer = verify;
        t.fail_if_no_peer_cert = fail_if_no_peer_cert;
        return t;
    }

  private:
    int counter_ = 0;
};

// A BEAM node with TLS distribution (optfile empty: plain TCP distribution). Its logger also
// writes to a file so the test can read what OTP reported about a refused TLS peer.
struct tls_beam {
    std::string log_file;
    beam_node node;

    static beam_node::options with_tls(beam_node::options o, const std::string& optfile) {
        if (!optfile.empty())
            o.extra_args = {"-proto_dist", "inet_tls", "-ssl_dist_optfile", optfile};
        return o;
    }
    tls_beam(beam_node::options o, const std::string& optfile, const std::string& log_path)
        : log_file(log_path), node(with_tls(std::move(o), optfile)) {
        node.eval("logger:add_handler(tlstest, logger_std_h, #{config => #{file => \"" + log_file +
                  "\"}})");
    }
    std::string logged() {
        node.try_eval("logger_std_h:filesync(tlstest)");
        return erl::interop::read_text_file(log_file);
    }
    // OTP's TLS alert report reaches the logger asynchronously, after the failed handshake
    // returned: wait for it (bounded) rather than read the file once.
    bool wait_logged(std::string_view needle, std::chrono::milliseconds timeout = 10s) {
        return erl::interop::wait_until([&] { return logged().find(needle) != std::string::npos; },
                                        timeout, 100ms);
    }
};

}  // namespace

class TlsInterop : public erl::interop::cluster_test {
  protected:
    TlsInterop() : cluster_test("cpptls", "beamtls") {}
    std::string beam_log(const char* tag) { return pki.path(std::string("beam-") + tag + ".log"); }
    // A C++ node of this cluster with these TLS settings (tls.enabled false: plain TCP).
    cpp_node::options tls_cpp(erl::tls_options tls, std::chrono::milliseconds setuptime = 7s) {
        return cpp_opts([tls = std::move(tls), setuptime](erl::node_options& o) {
            o.tls = tls;
            o.net_setuptime = setuptime;
        });
    }

    test_pki pki;
};

TEST_F(TlsInterop, beam_pings_cpp_and_messages_flow_both_ways) {
    cpp_node cpp(tls_cpp(pki.tls("ca", /*verify=*/false)));
    echo_service echo(*cpp.node);
    tls_beam beam(beam_opts(), pki.optfile("ca", false), beam_log("a"));
    EXPECT_EQ(beam.node.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    // The BEAM side really runs TLS distribution.
    EXPECT_EQ(beam.node.eval("init:get_argument(proto_dist)"), "{ok,[[\"inet_tls\"]]}");
    // BEAM -> C++ registered name -> back to the BEAM pid.
    EXPECT_EQ(beam.node.eval("{echo, " + cpp.quoted_name() +
                             "} ! {self(), {hello, <<\"tls\">>, [1,2,3]}}, "
                             "receive M -> M after 5000 -> timeout end"),
              "{hello,<<\"tls\">>,[1,2,3]}");
    // A large message crosses many TLS records and distribution fragments.
    EXPECT_EQ(beam.node.eval("B = crypto:strong_rand_bytes(3000000), {echo, " + cpp.quoted_name() +
                                 "} ! {self(), B}, receive B2 -> B2 =:= B after 20000 -> "
                                 "timeout end",
                             60s),
              "true");
    // C++ -> BEAM registered name.
    EXPECT_EQ(beam.node.eval("register(listener, self())"), "true");
    cpp.node->send(erl::atom("listener"), erl::atom(beam.node.node_name()),
                   erl::tuple(erl::atom("from_cpp"), 7));
    EXPECT_EQ(beam.node.eval("receive M2 -> M2 after 5000 -> timeout end"), "{from_cpp,7}");
}

TEST_F(TlsInterop, cpp_pings_beam_rpc_and_links_both_ways) {
    cpp_node cpp(tls_cpp(pki.tls("ca", false)));
    tls_beam beam(beam_opts(), pki.optfile("ca", false), beam_log("b"));
    const erl::atom peer(beam.node.node_name());
    ASSERT_TRUE(cpp.node->ping(peer));
    EXPECT_EQ(beam.node.eval("nodes()"), "[" + cpp.quoted_name() + "]");

    // rpc C++ -> BEAM: a '$gen_call' to rex, as rpc:call/4 does.
    auto mb = cpp.node->spawn_mailbox(erl::atom("tls_probe"));
    ASSERT_TRUE(mb);
    erl::term ref(cpp.node->make_ref());
    erl::term args = erl::list(erl::list(1, 2, 3));
    mb->send(erl::atom("rex"), peer,
             erl::tuple(erl::atom("$gen_call"), erl::tuple(mb->self_term(), ref),
                        erl::tuple(erl::atom("call"), erl::atom("lists"), erl::atom("reverse"),
                                   args, erl::atom("user"))));
    auto reply =
        mb->receive_if([&](const erl::term& m) { return m.is_tuple(2) && m[0] == ref; }, 10s);
    ASSERT_TRUE(reply);
    EXPECT_EQ((*reply)[1].to_string(), "[3,2,1]");

    // BEAM -> C++ rpc over TLS: rpc:call (erpc, SPAWN_REQUEST) answered by the rpc server.
    erl::rpc::server rpc_server(*cpp.node);
    rpc_server.add("tls_demo", "twice", [](std::int64_t x) -> std::int64_t { return 2 * x; });
    EXPECT_EQ(beam.node.eval("rpc:call(" + cpp.quoted_name() + ", erlang, node, [], 10000)"),
              cpp.quoted_name());
    EXPECT_EQ(beam.node.eval("rpc:call(" + cpp.quoted_name() + ", tls_demo, twice, [21], 10000)"),
              "42");

    // Links, exit signal C++ -> BEAM: a trapping BEAM process linked to a C++ process sees its
    // exit reason.
    EXPECT_EQ(beam.node.eval("process_flag(trap_exit, true), {tls_probe, " + cpp.quoted_name() +
                             "} ! {hello, self()}, ok"),
              "ok");
    auto hello = mb->receive(5s);
    ASSERT_TRUE(hello && hello->is_tuple(2));
    const erl::pid beam_pid = (*hello)[1].as_pid();
    mb->send(beam_pid, erl::tuple(erl::atom("my_pid"), mb->self_term()));
    EXPECT_EQ(beam.node.eval("receive {my_pid, P} -> CppPid = P, link(P), ok after 5000 -> "
                             "timeout end"),
              "ok");
    // The LINK has reached the C++ node once a later message from the same sender arrives
    // (order per pair): then the exit must come back as an EXIT message.
    EXPECT_EQ(beam.node.eval("CppPid ! sync, ok"), "ok");
    auto sync = mb->receive(5s);
    ASSERT_TRUE(sync);
    EXPECT_EQ(sync->to_string(), "sync");
    mb->exit(erl::atom("tls_boom"));
    EXPECT_EQ(beam.node.eval("receive {'EXIT', CppPid, R} -> R after 5000 -> timeout end"),
              "tls_boom");

    // Links, exit signal BEAM -> C++: a BEAM process linked to a C++ process exits abnormally;
    // the (non-trapping) C++ process dies.
    auto victim = cpp.node->spawn_mailbox(erl::atom("tls_victim"));
    ASSERT_TRUE(victim);
    victim->send(beam_pid, erl::tuple(erl::atom("victim"), victim->self_term()));
    EXPECT_EQ(beam.node.eval("receive {victim, VP} -> "
                             "K2 = spawn(fun() -> link(VP), VP ! linked, "
                             "receive die -> exit(tls_kill) end end), "
                             "put(k2, K2), ok after 5000 -> timeout end"),
              "ok");
    auto linked = victim->receive(5s);
    ASSERT_TRUE(linked);
    EXPECT_EQ(linked->to_string(), "linked");
    EXPECT_EQ(beam.node.eval("get(k2) ! die, ok"), "ok");
    EXPECT_TRUE(erl::interop::wait_until([&] { return victim->exited(); }, 5s));

    // A link made by the C++ side (LINK sent over TLS): the BEAM process that dies takes the
    // trapping C++ process's link with it as an {'EXIT', Pid, Reason} message.
    auto linker = cpp.node->spawn_mailbox(erl::atom("tls_linker"));
    ASSERT_TRUE(linker);
    linker->trap_exit(true);
    EXPECT_EQ(beam.node.eval("K3 = spawn(fun() -> receive die -> exit(tls_linked_exit) end end), "
                             "{tls_linker, " +
                             cpp.quoted_name() + "} ! {target, K3}, ok"),
              "ok");
    auto target = linker->receive(5s);
    ASSERT_TRUE(target && target->is_tuple(2) && (*target)[1].is_pid());
    linker->link((*target)[1].as_pid());
    // The LINK is on the wire before this message (order per pair), so K3 is linked when it dies.
    linker->send((*target)[1].as_pid(), erl::atom("die"));
    auto ex = linker->receive(10s);
    ASSERT_TRUE(ex);
    ASSERT_TRUE(ex->is_tuple(3));
    EXPECT_EQ((*ex)[0].to_string(), "'EXIT'");
    EXPECT_EQ((*ex)[2].to_string(), "tls_linked_exit");
}

TEST_F(TlsInterop, mutual_tls_verify_peer_both_directions) {
    // Both sides: verify_peer + fail_if_no_peer_cert, both present certificates of the test CA.
    cpp_node cpp(tls_cpp(pki.tls("ca", true, true)));
    echo_service echo(*cpp.node);
    tls_beam b1(beam_opts(), pki.optfile("ca", true, true), beam_log("m1"));
    tls_beam b2(beam_opts(), pki.optfile("ca", true, true), beam_log("m2"));
    // BEAM (TLS client, checks our certificate and host name) -> C++ (TLS server, requires
    // BEAM's certificate).
    EXPECT_EQ(b1.node.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
    EXPECT_EQ(b1.node.eval("{echo, " + cpp.quoted_name() +
                           "} ! {self(), mutual}, receive M -> M after 5000 -> timeout end"),
              "mutual");
    // C++ (TLS client) -> BEAM (TLS server requiring our certificate).
    EXPECT_TRUE(cpp.node->ping(erl::atom(b2.node.node_name())));
    EXPECT_EQ(b2.node.eval("lists:member(" + cpp.quoted_name() + ", nodes())"), "true");
}

TEST_F(TlsInterop, untrusted_cpp_certificate_refused_on_both_sides) {
    // The C++ node presents a certificate of an unknown CA; both BEAM nodes verify.
    cpp_node cpp(tls_cpp(pki.tls("rogue", true, true)));
    tls_beam b1(beam_opts(), pki.optfile("ca", true, true), beam_log("u1"));
    // BEAM -> C++: the BEAM client refuses our certificate.
    EXPECT_EQ(b1.node.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pang");
    EXPECT_TRUE(cpp.wait_log("TLS handshake failed")) << cpp.log_text();
    EXPECT_TRUE(cpp.wait_log("unknown ca")) << cpp.log_text();
    EXPECT_TRUE(b1.wait_logged("Unknown CA")) << b1.logged();
    // C++ -> BEAM: the BEAM server refuses our client certificate.
    tls_beam b2(beam_opts(), pki.optfile("ca", true, true), beam_log("u2"));
    EXPECT_FALSE(cpp.node->ping(erl::atom(b2.node.node_name()), 10s));
    EXPECT_TRUE(cpp.wait_log("handshake_refused peer=" + b2.node.node_name() + ": TLS"))
        << cpp.log_text();
    EXPECT_TRUE(b2.wait_logged("Unknown CA")) << b2.logged();
    EXPECT_EQ(b2.node.eval("nodes()"), "[]");
    EXPECT_EQ(b1.node.eval("nodes()"), "[]");
}

TEST_F(TlsInterop, untrusted_beam_certificate_refused_on_both_sides) {
    // The BEAM nodes present certificates of an unknown CA; the C++ node verifies.
    cpp_node cpp(tls_cpp(pki.tls("ca", true, true)));
    tls_beam b1(beam_opts(), pki.optfile("rogue", true, true), beam_log("r1"));
    // C++ -> BEAM: we refuse the server certificate.
    EXPECT_FALSE(cpp.node->ping(erl::atom(b1.node.node_name()), 10s));
    EXPECT_TRUE(cpp.wait_log("certificate verify failed")) << cpp.log_text();
    EXPECT_TRUE(b1.wait_logged("Unknown CA")) << b1.logged();
    // BEAM -> C++: we refuse the client certificate.
    tls_beam b2(beam_opts(), pki.optfile("rogue", true, true), beam_log("r2"));
    EXPECT_EQ(b2.node.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pang");
    EXPECT_TRUE(cpp.wait_log("TLS handshake failed: ")) << cpp.log_text();
    EXPECT_TRUE(cpp.node->nodes().empty());
}

TEST_F(TlsInterop, plaintext_beam_and_tls_cpp_fail_fast_both_ways) {
    cpp_node cpp(tls_cpp(pki.tls("ca", false), /*setuptime=*/3s));
    tls_beam plain(beam_opts(), /*optfile=*/"", beam_log("p"));
    // Plain BEAM -> TLS C++: our TLS server sees a send_name instead of a ClientHello and
    // closes at once; the BEAM side gets pang and stays healthy.
    EXPECT_EQ(plain.node.eval("net_adm:ping(" + cpp.quoted_name() + ")", 30s), "pang");
    EXPECT_TRUE(cpp.wait_log("TLS handshake failed")) << cpp.log_text();
    // TLS C++ -> plain BEAM: the BEAM node waits for the rest of what it takes for a 2-byte
    // length; our net_setuptime (3 s) ends the attempt, and BEAM's own set-up timer ends its
    // side.
    EXPECT_FALSE(cpp.node->ping(erl::atom(plain.node.node_name()), 20s));
    EXPECT_EQ(plain.node.eval("nodes()"), "[]");
    EXPECT_EQ(plain.node.eval("1 + 1"), "2");
    EXPECT_TRUE(cpp.node->nodes().empty());
    // The C++ node still serves TLS peers afterwards.
    tls_beam ok(beam_opts(), pki.optfile("ca", false), beam_log("p2"));
    EXPECT_EQ(ok.node.eval("net_adm:ping(" + cpp.quoted_name() + ")"), "pong");
}

TEST_F(TlsInterop, plaintext_cpp_and_tls_beam_fail_fast_both_ways) {
    cpp_node plain(tls_cpp(erl::tls_options{}, /*setuptime=*/3s));
    tls_beam beam(beam_opts(), pki.optfile("ca", false), beam_log("q"));
    // Plain C++ -> TLS BEAM: the BEAM TLS server refuses our send_name as a bad record.
    EXPECT_FALSE(plain.node->ping(erl::atom(beam.node.node_name()), 20s));
    // TLS BEAM -> plain C++: the ClientHello read as a 2-byte handshake length (0x1603) is far
    // above any handshake message: refused at once.
    EXPECT_EQ(beam.node.eval("net_adm:ping(" + plain.quoted_name() + ")", 30s), "pang");
    EXPECT_TRUE(
        plain.wait_log("handshake_refused: incoming connection: handshake message too large"))
        << plain.log_text();
    EXPECT_EQ(beam.node.eval("nodes()"), "[]");
    EXPECT_TRUE(plain.node->nodes().empty());
}
