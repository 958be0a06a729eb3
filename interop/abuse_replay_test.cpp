// Interop: every attack the node defends against, replayed by raw distribution clients against
// an erlcpp-demo child process while a real OTP node checks, during and after the attack, that
// it is still served (net_adm:ping answers pong, a message through the demo's echo service comes
// back), and that the node's own memory (VmRSS of the child) returns near its pre-attack
// baseline once the attack ends. All waits are deadlines; the latencies the witness measures
// are reported (test properties "witness_max_us"), not asserted.
#include <erl/epmd.hpp>
#include <erl/etf.hpp>
#include <erl/node.hpp>

#include "common/byte_order.hpp"
#include "demo_child.hpp"
#include "harness/cluster.hpp"
#include "proto/dist_codec.hpp"
#include "raw_peer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using erl::interop::beam_node;
using erl::interop::demo_child;
using erl::interop::raw_peer;
using bytes = std::vector<std::uint8_t>;

namespace {

// What the node's RSS may stay above its pre-attack baseline once an attack is over: freed
// memory the allocator keeps for reuse (arenas of the I/O threads), not anything the attack
// still holds. The attacks below make the node allocate from 15 MiB up to several hundred MiB.
constexpr std::size_t rss_slack_kib = 48 * 1024;

// glibc keeps freed memory for reuse: small chunks in fastbins and tcache (never coalesced or
// trimmed until a later malloc consolidates them) and large ones on the heap once the dynamic
// mmap threshold has risen. The demo child is told to hand freed memory back to the kernel
// (no fastbins, no tcache, a fixed 128 KiB mmap and trim threshold), so its RSS after an
// attack measures what the node still holds rather than what the allocator caches.
const std::vector<std::pair<std::string, std::string>> returning_allocator = {
    {"GLIBC_TUNABLES",
     "glibc.malloc.mxfast=0:glibc.malloc.tcache_count=0:"
     "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072"}};

bytes framed(const bytes& body) {
    bytes f;
    erl::detail::append_be32(f, static_cast<std::uint32_t>(body.size()));
    f.insert(f.end(), body.begin(), body.end());
    return f;
}

// One distribution message frame with control and payload given as ETF bodies (no 131): the
// 131 68 header without atom cache refs when the connection negotiated a distribution header,
// else pass-through 112 with 131 before each term (OTP's erts/emulator/beam/dist.c).
bytes message_frame(std::uint64_t flags, const bytes& control, const bytes& payload) {
    using namespace erl::proto;
    bytes body;
    const bool hdr = flags & (dflag::dist_hdr_atom_cache | dflag::fragments);
    if (hdr)
        body = {131, 68, 0};
    else
        body = {112, 131};
    body.insert(body.end(), control.begin(), control.end());
    if (!hdr) body.push_back(131);
    body.insert(body.end(), payload.begin(), payload.end());
    return framed(body);
}

// REG_SEND {6, From, '', To} from a process of `peer`.
bytes reg_send(const raw_peer& peer, const char* to) {
    bytes b;
    erl::etf::encode_body(b, erl::tuple(erl::term(6), erl::pid{erl::atom(peer.name), 1, 0, 0x1234},
                                        erl::atom(""), erl::atom(to)));
    return b;
}

bytes body_of(const erl::term& t, int compression = 0) {
    auto b = erl::etf::encode(t, {.compression_level = compression});
    b.erase(b.begin());  // the 131 version byte
    return b;
}

// The bytes printed by a BEAM for binary_to_list(term_to_binary(X)): "[131,88,...]".
bytes parse_byte_list(const std::string& s) {
    bytes out;
    std::istringstream in(s.substr(1));
    int v;
    char sep;
    while (in >> v) {
        out.push_back(static_cast<std::uint8_t>(v));
        in >> sep;
    }
    return out;
}

std::unique_ptr<raw_peer> authenticated(const demo_child& demo, std::uint16_t port,
                                        const std::string& cookie, int rcvbuf = 0) {
    auto p = std::make_unique<raw_peer>(port, rcvbuf);
    if (!p->handshake(demo.name(), cookie)) return nullptr;
    return p;
}

// n authenticated connections that negotiated fragments (empty if one fails).
std::vector<std::unique_ptr<raw_peer>> fragment_peers(const demo_child& demo, std::uint16_t port,
                                                      const std::string& cookie, int n) {
    std::vector<std::unique_ptr<raw_peer>> peers;
    for (int i = 0; i < n; ++i) {
        auto p = authenticated(demo, port, cookie);
        if (!p || !(p->flags & erl::proto::dflag::fragments)) return {};
        peers.push_back(std::move(p));
    }
    return peers;
}

// Sends the first fragment only of n messages {6, _, '', nobody} ! payload on `p`, each split
// at fragment_size, so that all n stay unfinished; counts them in `started`.
void start_unfinished(raw_peer& p, std::size_t fragment_size, int n, const erl::term& payload,
                      std::atomic<int>& started) {
    const erl::term control =
        erl::tuple(erl::term(6), erl::pid{}, erl::atom(""), erl::atom("nobody"));
    erl::proto::dist_writer w(p.flags, {.fragment_size = fragment_size});
    for (int k = 0; k < n; ++k, ++started) {
        bytes all;
        w.append_message(all, control, &payload);
        const std::size_t first = 4 + erl::detail::load_be32(all.data());
        if (!p.send_all(std::span(all).first(first))) return;
    }
}

}  // namespace

class AbuseReplay : public erl::interop::cluster_test {
  protected:
    AbuseReplay() : cluster_test("cppar", "beamar") {}

    void SetUp() override { start_demo({}); }

    // (Re)starts the demo child with `args` and takes the pre-attack baseline.
    void start_demo(std::vector<std::string> args) {
        beam.reset();
        demo.emplace(epmd.port(), cookie, std::move(args), returning_allocator);
        port = epmd_port_of(demo->name());
        beam.emplace(beam_opts());
        // Warm up: the connection, the echo path and a raw peer's connection all allocated
        // once, so the baseline includes what any peer costs.
        witness(*beam, "warmup");
        ASSERT_TRUE(authenticated(*demo, port, cookie));
        ASSERT_TRUE(erl::interop::wait_until([&] { return demo->rss_kib() > 0; }, 5s));
        baseline_kib = demo->rss_kib();
    }

    // The demo's listening port, as its epmd registration says.
    std::uint16_t epmd_port_of(const std::string& node) {
        auto info =
            erl::epmd::port_please("127.0.0.1", epmd.port(), node.substr(0, node.find('@')), 5s);
        if (!info) throw std::runtime_error("port_please failed: " + info.error().message());
        return info->port;
    }

    // Ten rounds of net_adm:ping + a message through echo, from `b`; returns the slowest round
    // in microseconds. Fails the test (eval throws) if a round gets pang or no echo in 10 s.
    long witness(beam_node& b, const std::string& tag) {
        const std::string n = demo->quoted_name();
        const std::string t = "{w, '" + tag + "', I}";
        const std::string r = b.eval(
            "lists:max([begin T0 = erlang:monotonic_time(microsecond), pong = net_adm:ping(" + n +
                "), {echo, " + n + "} ! {self(), " + t + "}, receive " + t +
                " -> ok after 10000 -> exit(no_echo) end, timer:sleep(20), "
                "erlang:monotonic_time(microsecond) - T0 - 20000 end || I <- lists:seq(1, 10)])",
            60s);
        long us = std::stol(r);
        max_us = std::max(max_us, us);
        return us;
    }

    // Waits until the node's RSS is within rss_slack_kib of the baseline; reports both.
    void expect_rss_back(std::size_t slack_kib = rss_slack_kib) {
        std::size_t now = 0;
        bool back = erl::interop::wait_until(
            [&] {
                now = demo->rss_kib();
                return now <= baseline_kib + slack_kib;
            },
            20s, 100ms);
        RecordProperty("rss_baseline_kib", static_cast<int>(baseline_kib));
        RecordProperty("rss_after_kib", static_cast<int>(now));
        RecordProperty("witness_max_us", static_cast<int>(max_us));
        std::printf(
            "[ figures  ] rss baseline %zu KiB, after %zu KiB, peak seen %zu KiB, "
            "slowest witness round %ld us\n",
            baseline_kib, now, peak_kib.load(), max_us);
        EXPECT_TRUE(back) << "RSS " << now << " KiB, baseline " << baseline_kib << " KiB";
        EXPECT_TRUE(demo->running());
    }

    // Runs `attack` on a thread while the witness checks the node from `beam`; the attack gets
    // `stop` set once the witness is done. Samples the peak RSS meanwhile.
    void during(const std::function<void(std::atomic<bool>& stop)>& attack,
                const std::function<bool()>& started = {}) {
        std::atomic<bool> stop{false};
        std::atomic<bool> sampling{true};
        std::thread sampler([&] {
            while (sampling) {
                peak_kib = std::max(peak_kib.load(), demo->rss_kib());
                std::this_thread::sleep_for(50ms);
            }
        });
        std::thread t([&] { attack(stop); });
        if (started) EXPECT_TRUE(erl::interop::wait_until(started, 30s));
        try {
            witness(*beam, "during");
        } catch (...) {
            stop = true;
            t.join();
            sampling = false;
            sampler.join();
            throw;
        }
        stop = true;
        t.join();
        sampling = false;
        sampler.join();
    }

    std::optional<demo_child> demo;
    std::optional<beam_node> beam;
    std::uint16_t port = 0;
    std::size_t baseline_kib = 0;
    std::atomic<std::size_t> peak_kib{0};
    long max_us = 0;
};

// Issue of record: every unique name in send_name used to become an atom before the challenge.
// 5,000 handshakes with unique names that never answer the challenge; a BEAM node with a name
// the node has never seen still connects afterwards, and memory comes back.
TEST_F(AbuseReplay, unauthenticated_name_flood) {
    std::atomic<int> sent{0};
    during(
        [&](std::atomic<bool>& stop) {
            std::deque<std::unique_ptr<raw_peer>> open;
            while (!stop || sent < 5000) {
                auto p = std::make_unique<raw_peer>(port);
                erl::proto::handshake_config cfg;
                cfg.role = erl::proto::handshake_role::initiator;
                cfg.our_name = p->name;
                cfg.cookie = "not_the_cookie";
                cfg.peer_name = demo->name();
                erl::proto::handshake hs(std::move(cfg));
                hs.start();
                p->send_all(hs.take_output());
                open.push_back(std::move(p));
                if (open.size() > 200) open.pop_front();
                ++sent;
            }
        },
        [&] { return sent >= 500; });
    beam_node fresh(beam_opts());
    EXPECT_EQ(fresh.eval("net_adm:ping(" + demo->quoted_name() + ")"), "pong");
    witness(fresh, "fresh");
    witness(*beam, "after");
    expect_rss_back();
}

// 1,300 silent TCP connections (more than max_connections) held open: a BEAM node that
// connects meanwhile gets pong; the oldest pending handshakes gave way.
TEST_F(AbuseReplay, idle_socket_flood) {
    std::vector<std::unique_ptr<raw_peer>> held;
    for (int i = 0; i < 1300; ++i)
        held.push_back(std::make_unique<raw_peer>(port));
    peak_kib = demo->rss_kib();
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return demo->log().find("max_pending_handshakes") != std::string::npos; }, 10s));
    beam_node fresh(beam_opts());
    EXPECT_EQ(fresh.eval("net_adm:ping(" + demo->quoted_name() + ")"), "pong");
    witness(fresh, "fresh");
    witness(*beam, "during");
    held.clear();
    witness(*beam, "after");
    expect_rss_back();
}

// Decompression amplification: 64 KiB frames that inflate to 64 MiB binaries (legitimate, each
// delivered to the demo's sink), a frame declaring 4 GiB (refused before inflating) and one
// declaring 200 MiB with 1 MiB inside (refused when the stream ends early).
TEST_F(AbuseReplay, decompression_bomb_frames) {
    if (std::getenv("SLICE_NOOFF"))
        start_demo({"--decode-offload-threshold", std::getenv("SLICE_NOOFF")});
    const bytes bomb = body_of(erl::binary(bytes(64u << 20, 0)), 9);
    ASSERT_LT(bomb.size(), 200u * 1024);
    bytes huge_claim = bomb;
    erl::detail::store_be32(huge_claim.data() + 1, 0xffffffffu);
    bytes short_stream = body_of(erl::binary(bytes(1u << 20, 0)), 9);
    erl::detail::store_be32(short_stream.data() + 1, 200u << 20);
    auto a = authenticated(*demo, port, cookie);
    ASSERT_TRUE(a);
    std::atomic<int> bombs{0};
    during(
        [&](std::atomic<bool>&) {
            for (int i = 0; i < 4; ++i, ++bombs)
                a->send_all(message_frame(a->flags, reg_send(*a, "sink"), bomb));
            for (const bytes* lie : {&huge_claim, &short_stream}) {
                auto p = authenticated(*demo, port, cookie);
                if (!p) return;
                p->send_all(message_frame(p->flags, reg_send(*p, "sink"), *lie));
                EXPECT_TRUE(p->closed_within(20s));
            }
        },
        [&] { return bombs >= 1; });
    // All four bombs were decoded and delivered. The decode workers may still hold some when
    // the first count is asked for, so the counts are summed. Bindings persist between evals:
    // each round binds a variable of its own (a bound C would only match a count equal to the
    // previous one), and a reply that comes after a round's 5 s is taken by the next round.
    long total = 0;
    int round = 0;
    std::string counts;  // the sink's count per round
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            const std::string c = "C" + std::to_string(++round);
            const long n = std::stol(beam->eval("{sink, " + demo->quoted_name() +
                                                "} ! {done, self()}, receive {count, " + c +
                                                "} -> " + c + " after 5000 -> 0 end"));
            total += n;
            counts += (counts.empty() ? "" : "+") + std::to_string(n);
            return total >= 4;
        },
        30s, 200ms));
    std::printf("[ figures  ] bombs counted by the sink per round: %s\n", counts.c_str());
    EXPECT_EQ(total, 4) << counts << "\n" << demo->log();
    EXPECT_NE(demo->log().find("max_message_size"), std::string::npos) << demo->log();
    a.reset();
    witness(*beam, "after");
    expect_rss_back();
}

// A 1,000,000-deep list sent by a raw peer to echo, addressed to the BEAM witness, arrives
// there intact while the witness is being served; sent twice, the second costs no more.
//
// Bound: each cons cell is a small allocation, and glibc returns a freed heap only down to the
// highest chunk still in use, so ~1M freed cells stay resident as free heap space (measured:
// a 2M-deep list leaves ~100-145 MiB that repeats of it reuse: 146, 101, 98, 98 MiB after
// rounds 1-4). The bound is therefore the term's own size class (96 MiB over the baseline),
// and the repeat must not grow the node by more than rss_slack_kib.
TEST_F(AbuseReplay, deeply_nested_term) {
    const std::size_t depth = 1'000'000;
    const bytes me = parse_byte_list(beam->eval("binary_to_list(term_to_binary(self()))"));
    ASSERT_GT(me.size(), 1u);
    bytes payload = {104, 2};
    payload.insert(payload.end(), me.begin() + 1, me.end());
    payload.reserve(payload.size() + depth * 6 + 1);
    for (std::size_t i = 0; i < depth; ++i)
        payload.insert(payload.end(), {108, 0, 0, 0, 1});
    payload.push_back(106);
    payload.insert(payload.end(), depth, 106);
    auto a = authenticated(*demo, port, cookie);
    ASSERT_TRUE(a);
    // Bindings persist between evals: each use gets its own variable names.
    auto depth_of_received = [](const std::string& v) {
        return "D" + v + " = fun F([X], N) -> F(X, N + 1); F([], N) -> N end, receive L" + v +
               " when is_list(L" + v + ") -> D" + v + "(L" + v + ", 0) after 30000 -> timeout end";
    };
    during([&](std::atomic<bool>&) {
        a->send_all(message_frame(a->flags, reg_send(*a, "echo"), payload));
    });
    EXPECT_EQ(beam->eval(depth_of_received("1"), 60s), std::to_string(depth));
    witness(*beam, "after");
    expect_rss_back(96 * 1024);
    const std::size_t after_first = demo->rss_kib();
    a->send_all(message_frame(a->flags, reg_send(*a, "echo"), payload));
    EXPECT_EQ(beam->eval(depth_of_received("2"), 60s), std::to_string(depth));
    a.reset();
    witness(*beam, "again");
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return demo->rss_kib() <= after_first + rss_slack_kib; }, 20s, 100ms))
        << "after the first " << after_first << " KiB, now " << demo->rss_kib() << " KiB";
}

// 16 connections each hold 60 unfinished fragmented messages (under max_fragment_sequences 64),
// a 17th starts 65 and is closed; when they go, so does their memory.
TEST_F(AbuseReplay, unfinished_fragment_sequences) {
    auto peers = fragment_peers(*demo, port, cookie, 17);
    ASSERT_EQ(peers.size(), 17u);
    const erl::term payload = erl::binary(bytes(64 * 1024, 7));
    std::atomic<int> started{0};
    during(
        [&](std::atomic<bool>&) {
            for (std::size_t i = 0; i < peers.size(); ++i)
                start_unfinished(*peers[i], 16 * 1024, i + 1 < peers.size() ? 60 : 65, payload,
                                 started);
        },
        [&] { return started >= 200; });
    EXPECT_TRUE(peers.back()->closed_within(10s));
    EXPECT_TRUE(erl::interop::wait_until(
        [&] { return demo->log().find("max_fragment_sequences (64)") != std::string::npos; }, 10s))
        << demo->log();
    peers.clear();
    witness(*beam, "after");
    expect_rss_back();
}

// Length fields that lie (a 4 GiB frame, LIST / BINARY / MAP / STRING / LARGE_TUPLE counts past
// the frame's end, an atom longer than its bytes) and atom cache references the header never
// defined: each closes its own connection only, over and over while the witness runs.
TEST_F(AbuseReplay, lying_lengths_and_bad_atom_cache_refs) {
    const std::vector<bytes> bad_payloads = {
        {108, 0xff, 0xff, 0xff, 0xff, 97, 1},    // LIST_EXT
        {109, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3},  // BINARY_EXT
        {116, 0xff, 0xff, 0xff, 0xff, 97, 1},    // MAP_EXT
        {107, 0xff, 0xff, 1, 2, 3},              // STRING_EXT
        {105, 0xff, 0xff, 0xff, 0xff, 97, 1},    // LARGE_TUPLE_EXT
        {119, 200, 'a'},                         // SMALL_ATOM_UTF8_EXT
    };
    // {1, Ref0} with one atom cache ref to segment 2, slot 9, never defined; and a ref to
    // index 3 of a header that has one entry (erts_decode_dist_ext's atom cache check).
    const std::vector<bytes> bad_cache = {
        framed({131, 68, 1, 0x02, 9, 104, 2, 97, 1, 82, 0}),
        framed({131, 68, 1, 0x02, 9, 104, 2, 97, 1, 82, 3}),
    };
    bytes huge_len = {0xff, 0xff, 0xff, 0xff};
    huge_len.insert(huge_len.end(), 100, 0);
    std::atomic<int> rounds{0};
    std::atomic<int> not_closed{0};
    auto one = [&](const bytes& frame) {
        auto p = authenticated(*demo, port, cookie);
        if (!p) return;
        p->send_all(frame);
        if (!p->closed_within(10s)) ++not_closed;
    };
    during(
        [&](std::atomic<bool>& stop) {
            while (!stop || rounds < 3) {
                one(huge_len);
                for (const auto& b : bad_payloads) {
                    auto p = authenticated(*demo, port, cookie);
                    if (!p) return;
                    p->send_all(message_frame(p->flags, reg_send(*p, "sink"), b));
                    if (!p->closed_within(10s)) ++not_closed;
                }
                for (const auto& f : bad_cache)
                    one(f);
                ++rounds;
            }
        },
        [&] { return rounds >= 1; });
    EXPECT_EQ(not_closed.load(), 0);
    EXPECT_GE(rounds.load(), 3);
    witness(*beam, "after");
    expect_rss_back();
}

// A peer that sends 60 KB echo requests addressed to itself and never reads what comes back:
// the replies queue on its connection until output_queue_limit (64 MiB) closes it, over and
// over with fresh connections while the witness runs. Peak RSS stays within the queue bound
// plus the growth of its buffer and the decode buffers (asserted: baseline + 192 MiB); the
// witness is served.
// Before output was bounded, 30,000 such requests grew the node to 1.8 GB.
TEST_F(AbuseReplay, peer_that_never_reads) {
    std::atomic<int> closed{0};
    std::atomic<long> requests{0};
    during(
        [&](std::atomic<bool>& stop) {
            while (!stop || closed < 2) {
                // Keep what the kernel buffers for us small, from the connect on.
                auto a = authenticated(*demo, port, cookie, 4096);
                if (!a) return;
                const erl::term me = erl::pid{erl::atom(a->name), 1, 0, 0x1234};
                const bytes request =
                    message_frame(a->flags, reg_send(*a, "echo"),
                                  body_of(erl::tuple(me, erl::binary(bytes(60'000, 5)))));
                for (int i = 0; i < 30'000; ++i, ++requests)
                    if (!a->send_all(request)) break;
                if (a->closed_within(20s)) ++closed;
                if (closed >= 20) return;
            }
        },
        [&] { return closed >= 1; });
    EXPECT_GE(closed.load(), 2);
    EXPECT_NE(demo->log().find("above output_queue_limit (67108864): the peer is not reading"),
              std::string::npos)
        << demo->log();
    RecordProperty("rss_peak_kib", static_cast<int>(peak_kib.load()));
    RecordProperty("requests", static_cast<int>(requests.load()));
    EXPECT_LE(peak_kib.load(), baseline_kib + 192 * 1024) << "baseline " << baseline_kib;
    witness(*beam, "after");
    expect_rss_back();
}

// 8 authenticated connections each start 8 fragmented messages of 4 MiB and never finish
// them (1 MiB first fragments: 64 MiB in all, each connection far below its own
// max_fragmented_bytes); the demo's node-wide max_fragmented_bytes_total is 40 MiB, so the
// connection whose fragment would pass it is closed before the fragment is copied, and RSS
// stays within that bound plus slack.
TEST_F(AbuseReplay, unfinished_fragments_on_many_connections) {
    constexpr std::size_t total_limit = 40u << 20;
    start_demo({"--max-fragmented-total", std::to_string(total_limit)});
    auto peers = fragment_peers(*demo, port, cookie, 8);
    ASSERT_EQ(peers.size(), 8u);
    const erl::term payload = erl::binary(bytes(4u << 20, 7));
    std::atomic<int> started{0};
    during(
        [&](std::atomic<bool>&) {
            for (auto& p : peers)
                start_unfinished(*p, 1u << 20, 8, payload, started);
        },
        [&] { return started >= 8; });
    EXPECT_TRUE(erl::interop::wait_until(
        [&] {
            return demo->log().find("max_fragmented_bytes_total (" + std::to_string(total_limit) +
                                    ")") != std::string::npos;
        },
        10s))
        << demo->log();
    // Which connections are refused depends on the order the node read them in; at least one
    // is, and not all (the bound refuses only what does not fit).
    int refused = 0;
    for (auto& p : peers)
        if (p->closed_within(2s)) ++refused;
    EXPECT_GE(refused, 1);
    EXPECT_LE(refused, 7);
    RecordProperty("rss_peak_kib", static_cast<int>(peak_kib.load()));
    EXPECT_LE(peak_kib.load(), baseline_kib + (total_limit >> 10) + rss_slack_kib)
        << "baseline " << baseline_kib;
    witness(*beam, "during");
    peers.clear();
    witness(*beam, "after");
    expect_rss_back();
}

// One connection sends huge terms back to back (a 64 MiB binary, a list of 4,000,000 small
// integers, a 1,000,000-deep list) while a second floods small messages, against a demo with
// one I/O thread: the witness's rounds stay fast because large messages are decoded by the
// node's decode workers, not on the I/O thread, and the reader yields after every read. Run
// again with decoding on the I/O thread (--decode-offload-threshold SIZE_MAX) for comparison;
// both latencies are printed, only the witness's 10 s deadline is asserted.
TEST_F(AbuseReplay, huge_terms_back_to_back_do_not_starve_other_peers) {
    bytes bin = {109};
    erl::detail::append_be32(bin, 64u << 20);
    bin.resize(bin.size() + (64u << 20), 1);
    bytes flat = {108};
    erl::detail::append_be32(flat, 4'000'000);
    flat.reserve(flat.size() + 8'000'001);
    for (std::uint32_t i = 0; i < 4'000'000; ++i)
        flat.insert(flat.end(), {97, static_cast<std::uint8_t>(i)});
    flat.push_back(106);
    bytes deep;
    deep.reserve(6'000'001);
    for (int i = 0; i < 1'000'000; ++i)
        deep.insert(deep.end(), {108, 0, 0, 0, 1});
    deep.push_back(106);
    deep.insert(deep.end(), 1'000'000, 106);

    std::atomic<int> sent{0};
    std::atomic<long> flooded{0};
    auto attack = [&](std::atomic<bool>& stop) {
        auto a = authenticated(*demo, port, cookie);
        auto f = authenticated(*demo, port, cookie);
        if (!a || !f) return;
        // To a name nobody has: the node decodes and drops each (freed off the I/O thread too).
        const std::vector<bytes> frames = {message_frame(a->flags, reg_send(*a, "nobody"), bin),
                                           message_frame(a->flags, reg_send(*a, "nobody"), flat),
                                           message_frame(a->flags, reg_send(*a, "nobody"), deep)};
        const bytes one = message_frame(f->flags, reg_send(*f, "nobody"),
                                        body_of(erl::tuple(erl::atom("flood"), 1)));
        bytes batch;
        for (int i = 0; i < 2000; ++i)
            batch.insert(batch.end(), one.begin(), one.end());
        std::thread flood([&] {
            while (!stop && f->send_all(batch))
                flooded += 2000;
        });
        for (int i = 0; !stop || i < 3; ++i, ++sent)
            if (!a->send_all(frames[i % 3])) break;
        flood.join();
    };
    auto run = [&](const char* label) {
        sent = 0;
        flooded = 0;
        max_us = 0;
        during(attack, [&] { return sent >= 1; });
        const long us = max_us;
        std::printf(
            "[ figures  ] %s: %d huge terms and %ld flood messages sent during the "
            "witness; slowest witness round %ld us\n",
            label, sent.load(), flooded.load(), us);
        EXPECT_GE(sent.load(), 3);
        EXPECT_EQ(demo->log().find("limit exceeded"), std::string::npos) << demo->log();
        return us;
    };
    const long offloaded_us = run("decoded by the decode workers");
    RecordProperty("witness_max_us_offloaded", static_cast<int>(offloaded_us));
    witness(*beam, "after");
    expect_rss_back(96 * 1024);

    start_demo({"--decode-offload-threshold", std::to_string(SIZE_MAX)});
    const long inline_us = run("decoded on the I/O thread");
    RecordProperty("witness_max_us_on_io_thread", static_cast<int>(inline_us));
    witness(*beam, "after");
}
