// EPMD sans-io codecs, byte for byte. The request vectors were captured from OTP 25's erl_epmd
// (a fake epmd written in Erlang printed what `erl -name capn@127.0.0.1` sent).
#include <gtest/gtest.h>

#include "epmd/codec.hpp"

#include <string>
#include <vector>

namespace erl::epmd::detail {
namespace {

bytes b(std::initializer_list<int> v) {
    bytes out;
    for (int x : v)
        out.push_back(static_cast<std::uint8_t>(x));
    return out;
}

bytes s(std::string_view text) {
    return bytes(text.begin(), text.end());
}

bytes cat(bytes a, const bytes& c) {
    a.insert(a.end(), c.begin(), c.end());
    return a;
}

std::span<const std::uint8_t> sp(const bytes& v, std::size_t off = 0, std::size_t n = SIZE_MAX) {
    return std::span<const std::uint8_t>(v).subspan(off, std::min(n, v.size() - off));
}

// What OTP 25 sends for `erl -name capn@127.0.0.1` listening on port 34345.
const bytes otp_alive2 =
    b({0, 17, 120, 134, 41, 77, 0, 0, 6, 0, 5, 0, 4, 'c', 'a', 'p', 'n', 0, 0});
// net_adm:ping('zzz@127.0.0.1') -> PORT_PLEASE2_REQ
const bytes otp_port_please = b({0, 4, 122, 'z', 'z', 'z'});

TEST(EpmdCodec, alive2_request_matches_otp_bytes) {
    node_info info{.name = "capn", .port = 34345, .highest = 6, .lowest = 5};
    EXPECT_EQ(encode_alive2_request(info), otp_alive2);
}

TEST(EpmdCodec, alive2_request_with_extra_and_hidden_type) {
    node_info info{.name = "a",
                   .port = 0x1234,
                   .type = node_type::hidden,
                   .highest = 6,
                   .lowest = 6,
                   .extra = "xy"};
    EXPECT_EQ(encode_alive2_request(info),
              b({0, 16, 'x', 0x12, 0x34, 72, 0, 0, 6, 0, 6, 0, 1, 'a', 0, 2, 'x', 'y'}));
}

TEST(EpmdCodec, simple_requests_are_byte_exact) {
    EXPECT_EQ(encode_port_please2_request("zzz"), otp_port_please);
    EXPECT_EQ(encode_names_request(), b({0, 1, 110}));
    EXPECT_EQ(encode_dump_request(), b({0, 1, 100}));
    EXPECT_EQ(encode_kill_request(), b({0, 1, 107}));
    EXPECT_EQ(encode_stop_request("foo"), b({0, 4, 115, 'f', 'o', 'o'}));
}

TEST(EpmdCodec, parses_otp_alive2_request) {
    auto r = parse_request(sp(otp_alive2, 2));
    ASSERT_TRUE(r.has_value());
    auto& a = std::get<alive2_request>(*r);
    EXPECT_EQ(a.info.name, "capn");
    EXPECT_EQ(a.info.port, 34345);
    EXPECT_EQ(a.info.type, node_type::normal);
    EXPECT_EQ(a.info.protocol, 0);
    EXPECT_EQ(a.info.highest, 6);
    EXPECT_EQ(a.info.lowest, 5);
    EXPECT_EQ(a.info.extra, "");
}

TEST(EpmdCodec, request_round_trips) {
    node_info info{.name = "n\xc3\xa4me", .port = 1, .highest = 5, .lowest = 5, .extra = "e"};
    auto r = parse_request(sp(encode_alive2_request(info), 2));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(std::get<alive2_request>(*r).info, info);
    auto p = parse_request(sp(encode_port_please2_request("zzz"), 2));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(std::get<port_please2_request>(*p).name, "zzz");
    auto st = parse_request(sp(encode_stop_request("foo"), 2));
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(std::get<stop_request>(*st).name, "foo");
    EXPECT_TRUE(std::holds_alternative<names_request>(*parse_request(b({'n'}))));
    EXPECT_TRUE(std::holds_alternative<dump_request>(*parse_request(b({'d'}))));
    EXPECT_TRUE(std::holds_alternative<kill_request>(*parse_request(b({'k'}))));
}

TEST(EpmdCodec, port_please_tolerates_nul_terminator) {
    auto p = parse_request(b({'z', 'a', 'b', 0}));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(std::get<port_please2_request>(*p).name, "ab");
}

TEST(EpmdCodec, rejects_malformed_requests) {
    auto bad = [](const bytes& body) { return !parse_request(body).has_value(); };
    EXPECT_TRUE(bad({}));
    EXPECT_TRUE(bad(b({'?'})));
    EXPECT_TRUE(bad(b({'z'})));                        // no name
    EXPECT_TRUE(bad(b({'z', 'a', 0, 'b'})));           // NUL inside name
    EXPECT_TRUE(bad(b({'z', 0xff, 0xfe})));            // not UTF-8
    EXPECT_TRUE(bad(b({'z', 0xc0, 0x80})));            // overlong
    EXPECT_TRUE(bad(b({'x', 0, 1, 77, 0, 0, 6, 0})));  // too short (<= 13 bytes)
    // Nlen beyond the packet
    EXPECT_TRUE(bad(b({'x', 0, 1, 77, 0, 0, 6, 0, 6, 0, 9, 'a', 0, 0})));
    // Elen beyond the packet
    EXPECT_TRUE(bad(b({'x', 0, 1, 77, 0, 0, 6, 0, 6, 0, 1, 'a', 0, 5})));
    // NUL in the ALIVE2 name
    EXPECT_TRUE(bad(b({'x', 0, 1, 77, 0, 0, 6, 0, 6, 0, 2, 'a', 0, 0, 0})));
    EXPECT_TRUE(bad(b({'s'})));  // STOP without a name
}

TEST(EpmdCodec, well_formed_alive2_with_unacceptable_name_parses_for_an_error_reply) {
    auto info = [](const bytes& body) {
        auto r = parse_request(body);
        EXPECT_TRUE(r.has_value());
        return r ? std::get<alive2_request>(*r).info : node_info{};
    };
    // Not UTF-8; empty (1 byte of extra keeps the packet long enough; OTP would register '',
    // which is no node name).
    EXPECT_FALSE(
        alive2_acceptable(info(b({'x', 0, 1, 77, 0, 0, 6, 0, 6, 0, 2, 0xff, 0xfe, 0, 0}))));
    EXPECT_FALSE(alive2_acceptable(info(b({'x', 0, 1, 77, 0, 0, 6, 0, 6, 0, 0, 0, 1, 'e'}))));
    EXPECT_TRUE(alive2_acceptable(info(b({'x', 0, 1, 77, 0, 0, 6, 0, 6, 0, 1, 'a', 0, 0}))));
}

TEST(EpmdCodec, name_length_limits_are_in_characters) {
    std::string ascii255(255, 'a'), ascii256(256, 'a');
    std::string utf8_255;
    for (int i = 0; i < 255; ++i)
        utf8_255 += "\xe2\x82\xac";  // 255 x U+20AC, 765 bytes
    EXPECT_TRUE(valid_node_name(ascii255));
    EXPECT_FALSE(valid_node_name(ascii256));
    EXPECT_TRUE(valid_node_name(utf8_255));
    EXPECT_FALSE(valid_node_name(""));
    EXPECT_FALSE(valid_node_name("\xed\xa0\x80"));  // surrogate
}

TEST(EpmdCodec, request_reader_accepts_byte_by_byte) {
    request_reader r;
    for (std::size_t i = 0; i < otp_alive2.size(); ++i) {
        EXPECT_EQ(r.state(), read_state::need_more);
        EXPECT_EQ(r.feed(sp(otp_alive2, i, 1)), 1u);
    }
    ASSERT_EQ(r.state(), read_state::done);
    EXPECT_EQ(std::get<alive2_request>(r.value()).info.name, "capn");
}

TEST(EpmdCodec, request_reader_leaves_bytes_after_the_request) {
    request_reader r;
    auto two = cat(encode_names_request(), encode_kill_request());
    EXPECT_EQ(r.feed(two), 3u);
    EXPECT_EQ(r.state(), read_state::done);
    EXPECT_TRUE(std::holds_alternative<names_request>(r.value()));
}

TEST(EpmdCodec, request_reader_refuses_oversized_and_empty_packets) {
    request_reader big;
    // Len + 2 >= 3060 (epmd_int.h INBUF_SIZE) is refused before any body arrives.
    big.feed(b({(3058 >> 8) & 0xff, 3058 & 0xff}));
    EXPECT_EQ(big.state(), read_state::failed);
    request_reader ok_size;
    ok_size.feed(b({(3057 >> 8) & 0xff, 3057 & 0xff}));
    EXPECT_EQ(ok_size.state(), read_state::need_more);
    request_reader empty;
    empty.feed(b({0, 0}));
    EXPECT_EQ(empty.state(), read_state::failed);
    request_reader garbage;
    garbage.feed(b({0, 3, 'q', 'q', 'q'}));
    EXPECT_EQ(garbage.state(), read_state::failed);
    EXPECT_EQ(garbage.error(), erl::errc::epmd_bad_request);
}

TEST(EpmdCodec, alive2_replies_by_requested_version) {
    // epmd_srv.c: 'v' with 32-bit creation when HighestVersion >= 6, else 'y' with 16 bits.
    EXPECT_EQ(encode_alive2_reply(true, 0x11223344, 6), b({'v', 0, 0x11, 0x22, 0x33, 0x44}));
    EXPECT_EQ(encode_alive2_reply(true, 3, 5), b({'y', 0, 0, 3}));
    EXPECT_EQ(encode_alive2_reply(false, 99, 6), b({'v', 1, 0, 0, 0, 99}));
    EXPECT_EQ(encode_alive2_reply(false, 99, 5), b({'y', 1, 0, 99}));
}

TEST(EpmdCodec, alive2_reply_reader_handles_both_forms_in_pieces) {
    for (auto wire : {b({'v', 0, 0x11, 0x22, 0x33, 0x44}), b({'y', 0, 0x12, 0x34})}) {
        alive2_reply_reader r;
        for (std::size_t i = 0; i < wire.size(); ++i) {
            EXPECT_EQ(r.state(), read_state::need_more);
            r.feed(sp(wire, i, 1));
        }
        ASSERT_EQ(r.state(), read_state::done);
        EXPECT_EQ(r.value().result, 0);
        EXPECT_EQ(r.value().creation, wire[0] == 'v' ? 0x11223344u : 0x1234u);
        EXPECT_EQ(r.value().extended, wire[0] == 'v');
    }
    alive2_reply_reader refused;
    refused.feed(b({'v', 1, 0, 0, 0, 99}));
    ASSERT_EQ(refused.state(), read_state::done);
    EXPECT_EQ(refused.value().result, 1);
    alive2_reply_reader junk;
    junk.feed(b({'Y'}));
    EXPECT_EQ(junk.state(), read_state::failed);
    alive2_reply_reader extra;
    extra.feed(b({'y', 0, 0, 1, 7}));
    EXPECT_EQ(extra.state(), read_state::failed);
}

TEST(EpmdCodec, port2_reply_round_trip_in_pieces) {
    node_info info{.name = "capn", .port = 34345, .highest = 6, .lowest = 5, .extra = "x"};
    auto wire = encode_port2_reply(info);
    EXPECT_EQ(wire,
              b({'w', 0, 0x86, 0x29, 77, 0, 0, 6, 0, 5, 0, 4, 'c', 'a', 'p', 'n', 0, 1, 'x'}));
    for (std::size_t split = 0; split <= wire.size(); ++split) {
        port2_reply_reader r;
        r.feed(sp(wire, 0, split));
        if (split < wire.size()) {
            EXPECT_EQ(r.state(), read_state::need_more) << split;
            r.feed(sp(wire, split));
        }
        ASSERT_EQ(r.state(), read_state::done);
        EXPECT_EQ(r.value(), info);
    }
}

TEST(EpmdCodec, port2_not_found_is_a_distinct_error) {
    EXPECT_EQ(encode_port2_not_found(), b({'w', 1}));
    port2_reply_reader r;
    r.feed(b({'w'}));
    EXPECT_EQ(r.state(), read_state::need_more);
    r.feed(b({1}));
    EXPECT_EQ(r.state(), read_state::failed);
    EXPECT_EQ(r.error(), erl::errc::epmd_not_found);
    port2_reply_reader bad;
    bad.feed(b({'x', 0}));
    EXPECT_EQ(bad.error(), erl::errc::epmd_bad_reply);
}

TEST(EpmdCodec, names_reply_matches_otp_format) {
    EXPECT_EQ(format_names_line("foo", 1234), "name foo at port 1234\n");
    auto wire =
        cat(encode_names_header(34580), s("name foo at port 1234\nname b\xc3\xa4r at port 5\n"));
    EXPECT_EQ(wire[0], 0);
    EXPECT_EQ(wire[3], 34580 & 0xff);
    names_reply_reader r;
    for (std::size_t i = 0; i < wire.size(); ++i)
        r.feed(sp(wire, i, 1));
    ASSERT_EQ(r.finish(), read_state::done);
    EXPECT_EQ(r.epmd_port(), 34580u);
    ASSERT_EQ(r.value().size(), 2u);
    EXPECT_EQ(r.value()[0], (std::pair<std::string, std::uint16_t>{"foo", 1234}));
    EXPECT_EQ(r.value()[1], (std::pair<std::string, std::uint16_t>{"b\xc3\xa4r", 5}));
}

TEST(EpmdCodec, names_reply_errors) {
    names_reply_reader short_header;
    short_header.feed(b({0, 0}));
    EXPECT_EQ(short_header.finish(), read_state::failed);
    names_reply_reader empty;
    empty.feed(b({0, 0, 0x11, 0x11}));
    ASSERT_EQ(empty.finish(), read_state::done);
    EXPECT_TRUE(empty.value().empty());
    EXPECT_FALSE(parse_names_text("garbage\n").has_value());
    EXPECT_FALSE(parse_names_text("name x at port 70000\n").has_value());
    EXPECT_FALSE(parse_names_text("name x at port 12a\n").has_value());
}

}  // namespace
}  // namespace erl::epmd::detail
