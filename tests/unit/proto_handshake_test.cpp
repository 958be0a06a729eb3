// Distribution handshake: initiator and acceptor against each other in memory, and against
// byte vectors built from erl_dist_protocol "The Handshake in Detail".
#include "proto/handshake.hpp"

#include <erl/term.hpp>

#include <gtest/gtest.h>

#include "wire_bytes.hpp"

#include <random>
#include <string>
#include <vector>

namespace {

using namespace erl::proto;
using namespace erl::test;

constexpr std::uint32_t challenge_a = 0x12345678;  // decimal 305419896
constexpr std::uint32_t challenge_b = 0x9abcdef0;  // decimal 2596069104
// erlang:md5(["secret"|integer_to_list(C)]) computed by OTP 25 on this machine.
const bytes digest_a = {31, 77, 155, 78, 83, 202, 220, 57, 153, 188, 219, 56, 106, 35, 194, 64};
const bytes digest_b = {132, 145, 115, 83, 198, 61, 65, 94, 60, 85, 75, 169, 196, 166, 154, 254};

bytes framed(const bytes& body, bool four = false) {
    bytes v;
    if (four)
        append_be32(v, body.size());
    else
        append_be16(v, body.size());
    append(v, body);
    return v;
}
bytes text_msg(std::string_view s) {
    bytes v;
    append(v, s);
    return framed(v);
}

handshake_config initiator_cfg() {
    handshake_config c;
    c.role = handshake_role::initiator;
    c.our_name = "a@host";
    c.our_creation = 0x01020304;
    c.cookie = "secret";
    c.peer_name = "b@host";
    c.challenge_source = [] { return challenge_b; };
    return c;
}

handshake_config acceptor_cfg() {
    handshake_config c;
    c.role = handshake_role::acceptor;
    c.our_name = "b@host";
    c.our_creation = 0x0a0b0c0d;
    c.cookie = "secret";
    c.challenge_source = [] { return challenge_a; };
    c.on_peer_name = [](std::string_view, std::uint64_t, std::uint32_t) {
        return handshake_status::ok;
    };
    return c;
}

// Moves bytes between the two until neither produces output. Optionally one byte at a time.
void pump(handshake& a, handshake& b, bool byte_by_byte = false) {
    for (int round = 0; round < 20; ++round) {
        bool moved = false;
        for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
            auto out = from->take_output();
            if (out.empty()) continue;
            moved = true;
            if (byte_by_byte) {
                for (auto byte : out) {
                    std::size_t used = 0;
                    to->feed(std::span(&byte, 1), used);
                }
            } else {
                std::size_t used = 0;
                to->feed(out, used);
            }
        }
        if (!moved) return;
    }
}

// Starts both sides, then pumps.
void start_and_pump(handshake& a, handshake& b, bool byte_by_byte = false) {
    a.start();
    b.start();
    pump(a, b, byte_by_byte);
}

TEST(ProtoHandshake, InitiatorAndAcceptorComplete) {
    handshake a(initiator_cfg()), b(acceptor_cfg());
    start_and_pump(a, b);
    ASSERT_TRUE(a.done()) << a.reason();
    ASSERT_TRUE(b.done()) << b.reason();
    EXPECT_EQ(a.peer_name(), "b@host");
    EXPECT_EQ(b.peer_name(), "a@host");
    EXPECT_EQ(a.peer_creation(), 0x0a0b0c0dU);
    EXPECT_EQ(b.peer_creation(), 0x01020304U);
    EXPECT_EQ(a.negotiated_flags(), b.negotiated_flags());
    EXPECT_EQ(a.negotiated_flags(), dflag::default_advertised(false));
    EXPECT_EQ(a.status(), handshake_status::ok);
}

TEST(ProtoHandshake, OneByteAtATime) {
    handshake a(initiator_cfg()), b(acceptor_cfg());
    start_and_pump(a, b, true);
    EXPECT_TRUE(a.done()) << a.reason();
    EXPECT_TRUE(b.done()) << b.reason();
}

TEST(ProtoHandshake, FourByteLengthsInsideTls) {
    auto ca = initiator_cfg();
    auto cb = acceptor_cfg();
    ca.four_byte_lengths = cb.four_byte_lengths = true;
    handshake a(ca), b(cb);
    a.start();
    b.start();
    auto first = a.take_output();
    ASSERT_GE(first.size(), 5u);
    EXPECT_EQ(first[0], 0);
    EXPECT_EQ(first[1], 0);
    EXPECT_EQ((first[2] << 8) | first[3], static_cast<int>(first.size() - 4));
    EXPECT_EQ(first[4], 'N');
    std::size_t used = 0;
    b.feed(first, used);
    EXPECT_EQ(used, first.size());
    pump(a, b);
    EXPECT_TRUE(a.done()) << a.reason();
    EXPECT_TRUE(b.done()) << b.reason();
}

// send_name as OTP 25 builds it: 'N' Flags:64 Creation:32 Nlen:16 Name.
bytes send_name(std::uint64_t flags, std::uint32_t creation, std::string_view name) {
    bytes m{'N'};
    append_be64(m, flags);
    append_be32(m, creation);
    append_be16(m, name.size());
    append(m, name);
    return m;
}

bytes challenge_msg(std::uint64_t flags, std::uint32_t challenge, std::uint32_t creation,
                    std::string_view name) {
    bytes m{'N'};
    append_be64(m, flags);
    append_be32(m, challenge);
    append_be32(m, creation);
    append_be16(m, name.size());
    append(m, name);
    return m;
}

TEST(ProtoHandshake, InitiatorBytesMatchSpec) {
    handshake a(initiator_cfg());
    a.start();
    EXPECT_EQ(a.take_output(),
              framed(send_name(dflag::default_advertised(false), 0x01020304, "a@host")));

    std::size_t used = 0;
    auto st = text_msg("sok");
    EXPECT_FALSE(a.feed(st, used));
    EXPECT_EQ(used, st.size());
    EXPECT_TRUE(a.take_output().empty());

    const std::uint64_t otp_flags = 0x3f7fffd7fULL;  // a broad peer flag set
    auto ch = framed(challenge_msg(otp_flags, challenge_a, 77, "b@host"));
    EXPECT_FALSE(a.feed(ch, used));
    bytes reply{'r'};
    append_be32(reply, challenge_b);
    append(reply, digest_a);  // digest of B's challenge
    EXPECT_EQ(a.take_output(), framed(reply));

    bytes ack{'a'};
    append(ack, digest_b);  // digest of our challenge
    auto ackf = framed(ack);
    // Distribution data right behind the ack must not be consumed.
    bytes with_tail = ackf;
    append(with_tail, bytes{0, 0, 0, 0});
    EXPECT_FALSE(a.feed(with_tail, used));
    EXPECT_EQ(used, ackf.size());
    EXPECT_TRUE(a.done());
    EXPECT_EQ(a.peer_creation(), 77u);
    EXPECT_EQ(a.negotiated_flags(),
              dflag::expand_mandatory_25(otp_flags) & dflag::default_advertised(false));
}

TEST(ProtoHandshake, AcceptorBytesMatchSpec) {
    std::string seen_name;
    std::uint32_t seen_creation = 0;
    auto cfg = acceptor_cfg();
    cfg.on_peer_name = [&](std::string_view n, std::uint64_t, std::uint32_t cr) {
        seen_name = n;
        seen_creation = cr;
        return handshake_status::ok;
    };
    handshake b(cfg);
    b.start();
    std::size_t used = 0;
    // Extra bytes after the name must be accepted and ignored.
    auto name = send_name(dflag::mandatory_26 | dflag::published, 0x01020304, "a@host");
    append(name, "extra");
    EXPECT_FALSE(b.feed(framed(name), used));
    EXPECT_EQ(seen_name, "a@host");
    EXPECT_EQ(seen_creation, 0x01020304u);
    bytes expect = text_msg("sok");
    append(expect, framed(challenge_msg(dflag::default_advertised(false), challenge_a, 0x0a0b0c0d,
                                        "b@host")));
    EXPECT_EQ(b.take_output(), expect);

    bytes reply{'r'};
    append_be32(reply, challenge_b);
    append(reply, digest_a);
    EXPECT_FALSE(b.feed(framed(reply), used));
    bytes ack{'a'};
    append(ack, digest_b);
    EXPECT_EQ(b.take_output(), framed(ack));
    EXPECT_TRUE(b.done());
    EXPECT_EQ(b.negotiated_flags(),
              (dflag::mandatory_26 | dflag::published) & dflag::default_advertised(false));
}

TEST(ProtoHandshake, DigestIsMd5OfCookieAndDecimalChallenge) {
    auto d = detail::handshake_digest(challenge_a, "secret");
    EXPECT_EQ(bytes(d.begin(), d.end()), digest_a);
}

TEST(ProtoHandshake, WrongCookieFailsAtAcceptor) {
    auto ca = initiator_cfg();
    ca.cookie = "other";
    handshake a(ca), b(acceptor_cfg());
    start_and_pump(a, b);
    EXPECT_TRUE(b.failed());
    EXPECT_EQ(b.error(), erl::errc::bad_cookie);
    EXPECT_FALSE(a.done());
}

TEST(ProtoHandshake, WrongCookieFailsAtInitiator) {
    handshake a(initiator_cfg());
    a.start();
    a.take_output();
    std::size_t used = 0;
    a.feed(text_msg("sok"), used);
    a.feed(framed(challenge_msg(dflag::mandatory_26, challenge_a, 1, "b@host")), used);
    bytes ack{'a'};
    append(ack, digest_a);  // digest of the wrong challenge
    EXPECT_EQ(a.feed(framed(ack), used), erl::errc::bad_cookie);
    EXPECT_TRUE(a.failed());
}

TEST(ProtoHandshake, AcceptorRefusesMissingMandatoryFlags) {
    auto ca = initiator_cfg();
    ca.our_flags = dflag::mandatory_26 & ~dflag::bit_binaries;
    bool asked = false;
    auto cb = acceptor_cfg();
    cb.on_peer_name = [&](std::string_view, std::uint64_t, std::uint32_t) {
        asked = true;
        return handshake_status::ok;
    };
    handshake a(ca), b(cb);
    start_and_pump(a, b);
    EXPECT_FALSE(asked);
    EXPECT_EQ(b.error(), erl::errc::missing_flags);
    EXPECT_NE(b.reason().find("BIT_BINARIES"), std::string::npos);
    EXPECT_EQ(a.error(), erl::errc::not_allowed);
}

TEST(ProtoHandshake, Mandatory25DigestStandsForTheOtp25Set) {
    auto ca = initiator_cfg();
    ca.our_flags = dflag::mandatory_25_digest | dflag::published;
    handshake a(ca), b(acceptor_cfg());
    start_and_pump(a, b);
    EXPECT_TRUE(b.done()) << b.reason();
    EXPECT_TRUE(b.peer_flags() & dflag::bit_binaries);
}

TEST(ProtoHandshake, Otp25PeerWithoutOtp26FlagsAcceptedByDefault) {
    // OTP 25 requires only DFLAG_DIST_MANDATORY_25; V4_NC/UNLINK_ID became mandatory in 26.
    auto ca = initiator_cfg();
    ca.our_flags = dflag::mandatory_25 | dflag::published;
    handshake a(ca), b(acceptor_cfg());
    start_and_pump(a, b);
    EXPECT_TRUE(b.done()) << b.reason();

    auto cb = acceptor_cfg();
    cb.required_flags = dflag::mandatory_26;
    handshake a2(ca), b2(cb);
    a2.start();
    b2.start();
    pump(a2, b2);
    EXPECT_EQ(b2.error(), erl::errc::missing_flags);
    EXPECT_EQ(a2.error(), erl::errc::not_allowed);
}

TEST(ProtoHandshake, InitiatorRejectsAcceptorMissingFlags) {
    auto cb = acceptor_cfg();
    cb.our_flags = dflag::mandatory_25 & ~dflag::map_tag;
    handshake a(initiator_cfg()), b(cb);
    start_and_pump(a, b);
    EXPECT_EQ(a.error(), erl::errc::missing_flags);
}

TEST(ProtoHandshake, InitiatorChecksChallengeName) {
    auto ca = initiator_cfg();
    ca.peer_name = "c@host";
    handshake a(ca), b(acceptor_cfg());
    start_and_pump(a, b);
    EXPECT_EQ(a.error(), erl::errc::name_mismatch);
}

handshake_config acceptor_with(handshake_status s) {
    auto c = acceptor_cfg();
    c.on_peer_name = [s](std::string_view, std::uint64_t, std::uint32_t) { return s; };
    return c;
}

TEST(ProtoHandshake, StatusNokEndsBothSides) {
    handshake a(initiator_cfg()), b(acceptor_with(handshake_status::nok));
    start_and_pump(a, b);
    EXPECT_EQ(b.error(), erl::errc::nok);
    EXPECT_EQ(a.error(), erl::errc::nok);
}

TEST(ProtoHandshake, StatusNotAllowed) {
    handshake a(initiator_cfg()), b(acceptor_with(handshake_status::not_allowed));
    start_and_pump(a, b);
    EXPECT_EQ(b.error(), erl::errc::not_allowed);
    EXPECT_EQ(a.error(), erl::errc::not_allowed);
}

TEST(ProtoHandshake, StatusOkSimultaneousContinues) {
    handshake a(initiator_cfg()), b(acceptor_with(handshake_status::ok_simultaneous));
    start_and_pump(a, b);
    EXPECT_TRUE(a.done());
    EXPECT_TRUE(b.done());
    EXPECT_EQ(a.status(), handshake_status::ok_simultaneous);
}

TEST(ProtoHandshake, StatusAliveAnsweredTrueContinues) {
    auto ca = initiator_cfg();
    std::string asked;
    ca.on_alive = [&](std::string_view peer) {
        asked = peer;
        return true;
    };
    handshake a(ca), b(acceptor_with(handshake_status::alive));
    start_and_pump(a, b);
    EXPECT_EQ(asked, "b@host");
    EXPECT_TRUE(a.done()) << a.reason();
    EXPECT_TRUE(b.done()) << b.reason();
    EXPECT_EQ(b.status(), handshake_status::alive);
}

TEST(ProtoHandshake, StatusAliveAnsweredFalseEndsBothSides) {
    auto ca = initiator_cfg();
    ca.on_alive = [](std::string_view) { return false; };
    handshake a(ca), b(acceptor_with(handshake_status::alive));
    start_and_pump(a, b);
    EXPECT_EQ(a.error(), erl::errc::peer_alive);
    EXPECT_EQ(b.error(), erl::errc::peer_alive);
}

TEST(ProtoHandshake, AsynchronousDecisions) {
    auto ca = initiator_cfg();  // no on_alive: pauses
    auto cb = acceptor_cfg();
    cb.on_peer_name = nullptr;  // pauses
    handshake a(ca), b(cb);
    start_and_pump(a, b);
    ASSERT_TRUE(b.awaiting_status());
    b.provide_status(handshake_status::alive);
    pump(a, b);
    ASSERT_TRUE(a.awaiting_alive_answer());
    a.answer_alive(true);
    pump(a, b);
    EXPECT_TRUE(a.done()) << a.reason();
    EXPECT_TRUE(b.done()) << b.reason();
}

TEST(ProtoHandshake, PausedAcceptorDoesNotConsumeFurtherInput) {
    auto cb = acceptor_cfg();
    cb.on_peer_name = nullptr;
    handshake b(cb);
    b.start();
    auto in = framed(send_name(dflag::mandatory_26, 1, "a@host"));
    std::size_t first = in.size();
    append(in, text_msg("junk"));
    std::size_t used = 0;
    EXPECT_FALSE(b.feed(in, used));
    EXPECT_EQ(used, first);
    EXPECT_TRUE(b.awaiting_status());
}

TEST(ProtoHandshake, NamedStatusIsAnError) {
    handshake a(initiator_cfg());
    a.start();
    std::size_t used = 0;
    bytes m;
    append(m, "snamed:");
    append_be16(m, 6);
    append(m, "x@host");
    append_be32(m, 1);
    EXPECT_EQ(a.feed(framed(m), used), erl::errc::handshake_failed);
}

TEST(ProtoHandshake, UnknownStatusIsAnError) {
    handshake a(initiator_cfg());
    a.start();
    std::size_t used = 0;
    EXPECT_EQ(a.feed(text_msg("swhatever"), used), erl::errc::bad_handshake_message);
}

TEST(ProtoHandshake, AcceptsVersion5NameWithComplement) {
    std::uint64_t seen_flags = 0;
    auto cb = acceptor_cfg();
    cb.on_peer_name = [&](std::string_view, std::uint64_t f, std::uint32_t) {
        seen_flags = f;
        return handshake_status::ok;
    };
    handshake b(cb);
    b.start();
    const std::uint64_t flags = dflag::mandatory_26 | dflag::published | dflag::spawn;
    bytes n{'n'};
    append_be16(n, 5);
    append_be32(n, flags & 0xffffffff);
    append(n, "a@host");
    std::size_t used = 0;
    EXPECT_FALSE(b.feed(framed(n), used));
    EXPECT_EQ(seen_flags, dflag::expand_mandatory_25(flags & 0xffffffff));
    auto out = b.take_output();
    bytes expect = text_msg("sok");
    append(expect, framed(challenge_msg(dflag::default_advertised(false), challenge_a, 0x0a0b0c0d,
                                        "b@host")));
    EXPECT_EQ(out, expect);
    bytes c{'c'};
    append_be32(c, flags >> 32);
    append_be32(c, 0x55667788);
    EXPECT_FALSE(b.feed(framed(c), used));
    bytes reply{'r'};
    append_be32(reply, challenge_b);
    append(reply, digest_a);
    EXPECT_FALSE(b.feed(framed(reply), used));
    EXPECT_TRUE(b.done()) << b.reason();
    EXPECT_TRUE(b.peer_used_v5_name());
    EXPECT_EQ(b.peer_creation(), 0x55667788u);
    EXPECT_TRUE(b.negotiated_flags() & dflag::spawn);
}

TEST(ProtoHandshake, Version5PeerMissingHighFlagsRefusedAfterComplement) {
    auto cb = acceptor_cfg();
    cb.required_flags = dflag::mandatory_26;
    handshake b(cb);
    b.start();
    bytes n{'n'};
    append_be16(n, 5);
    append_be32(n, dflag::mandatory_26 & 0xffffffff);
    append(n, "a@host");
    std::size_t used = 0;
    EXPECT_FALSE(b.feed(framed(n), used));
    bytes c{'c'};
    append_be32(c, 0);  // no V4_NC
    append_be32(c, 1);
    EXPECT_EQ(b.feed(framed(c), used), erl::errc::missing_flags);
}

TEST(ProtoHandshake, MalformedMessagesAreErrors) {
    struct tc {
        bytes msg;
        const char* what;
    };
    auto reply_short = bytes{'r', 0, 0, 0, 1};
    for (auto& [m, what] :
         std::vector<tc>{{bytes{'X'}, "unknown tag"},
                         {bytes{'N', 0, 0}, "short name"},
                         {send_name(dflag::mandatory_26, 1, "nohost"), "name without @"},
                         {send_name(dflag::mandatory_26, 1, "a@b@c"), "two @"},
                         {send_name(dflag::mandatory_26, 1, "@host"), "empty name part"},
                         {send_name(dflag::mandatory_26 | dflag::name_me, 1, "a@host"),
                          "dynamic name request"}}) {
        handshake b(acceptor_cfg());
        b.start();
        std::size_t used = 0;
        EXPECT_TRUE(b.feed(framed(m), used)) << what;
        EXPECT_TRUE(b.failed()) << what;
    }
    // Name length pointing past the message.
    {
        handshake b(acceptor_cfg());
        b.start();
        auto m = send_name(dflag::mandatory_26, 1, "a@host");
        m[14] = 200;
        std::size_t used = 0;
        EXPECT_EQ(b.feed(framed(m), used), erl::errc::bad_handshake_message);
    }
    // Challenge reply of the wrong size.
    {
        handshake b(acceptor_cfg());
        b.start();
        std::size_t used = 0;
        b.feed(framed(send_name(dflag::mandatory_26, 1, "a@host")), used);
        EXPECT_EQ(b.feed(framed(reply_short), used), erl::errc::bad_handshake_message);
    }
    // Zero-length message.
    {
        handshake b(acceptor_cfg());
        b.start();
        std::size_t used = 0;
        EXPECT_EQ(b.feed(bytes{0, 0}, used), erl::errc::bad_handshake_message);
    }
    // Truncated challenge at the initiator.
    {
        handshake a(initiator_cfg());
        a.start();
        std::size_t used = 0;
        a.feed(text_msg("sok"), used);
        auto ch = challenge_msg(dflag::mandatory_26, 1, 1, "b@host");
        ch.resize(12);
        EXPECT_EQ(a.feed(framed(ch), used), erl::errc::bad_handshake_message);
    }
}

TEST(ProtoHandshake, FailedHandshakeStaysFailed) {
    handshake b(acceptor_cfg());
    b.start();
    std::size_t used = 0;
    EXPECT_TRUE(b.feed(text_msg("X"), used));
    auto more = framed(send_name(dflag::mandatory_26, 1, "a@host"));
    EXPECT_TRUE(b.feed(more, used));
    EXPECT_EQ(used, 0u);
}

TEST(ProtoHandshake, GarbageNeverCrashes) {
    std::mt19937 rng(12345);
    for (int i = 0; i < 2000; ++i) {
        bytes junk(rng() % 64);
        for (auto& b : junk)
            b = rng() & 0xff;
        if (junk.size() >= 2 && (i % 2)) {  // plausible lengths
            junk[0] = 0;
            junk[1] = static_cast<std::uint8_t>(junk.size() - 2);
        }
        handshake b(acceptor_cfg());
        b.start();
        std::size_t used = 0;
        b.feed(junk, used);
        EXPECT_LE(used, junk.size());
        handshake a(initiator_cfg());
        a.start();
        a.feed(text_msg("sok"), used);
        a.feed(junk, used);
        EXPECT_LE(used, junk.size());
    }
}

TEST(ProtoHandshake, SimultaneousConnectRule) {
    // net_kernel: the acceptor answers nok (its own attempt wins) when MyNode > Node.
    EXPECT_TRUE(we_win_simultaneous("b@host", "a@host"));
    EXPECT_FALSE(we_win_simultaneous("a@host", "b@host"));
    EXPECT_TRUE(we_win_simultaneous("ab@host", "a@host"));  // 'b' > '@'
    EXPECT_FALSE(we_win_simultaneous("a@host", "a@host"));
    EXPECT_TRUE(we_win_simultaneous("\xc3\xa9@h", "z@h"));  // bytes compare unsigned
}

TEST(ProtoHandshake, FlagNames) {
    EXPECT_EQ(dflag::to_string(dflag::published | dflag::v4_nc), "PUBLISHED|V4_NC");
    EXPECT_EQ(dflag::to_string(0), "0");
    EXPECT_EQ(dflag::mandatory_25, 0x1070F94u);
    EXPECT_EQ(dflag::default_advertised(true) & dflag::published, 0u);
    EXPECT_EQ(dflag::default_advertised(false) & dflag::name_me, 0u);
}

}  // namespace

// The acceptor keeps the peer's name as text: thousands of unique names that never answer the
// challenge leave the atom table as it was (the runtime's status callback looks names up with
// atom::existing only; see tests/unit/handshake_abuse_test.cpp for the node).
TEST(ProtoHandshake, AcceptorNeverInternsUnprovenNames) {
    const std::size_t before = erl::atom_table_size();
    for (int i = 0; i < 5000; ++i) {
        const std::string name = "unproven_" + std::to_string(i) + "@host";
        auto cfg = acceptor_cfg();
        std::string seen;
        cfg.on_peer_name = [&](std::string_view n, std::uint64_t, std::uint32_t) {
            seen = n;
            return handshake_status::ok;
        };
        handshake b(cfg);
        b.start();
        std::size_t used = 0;
        b.feed(framed(send_name(dflag::default_advertised(false), 1, name)), used);
        ASSERT_EQ(seen, name);
        ASSERT_TRUE(b.has_output());  // status and challenge, never answered
        ASSERT_FALSE(b.done());
    }
    EXPECT_EQ(erl::atom_table_size(), before);
    EXPECT_FALSE(erl::atom::existing("unproven_0@host"));
}
