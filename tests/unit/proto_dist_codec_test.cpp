// Distribution frames: reader and writer, hand-built byte vectors (erl_ext_dist "Distribution
// Header", including the fragment example of that document), round trips, limits, truncation
// and garbage.
#include "proto/dist_codec.hpp"

#include <gtest/gtest.h>

#include "wire_bytes.hpp"

#include <atomic>

#include <random>
#include <string>
#include <vector>

namespace {

using namespace erl::proto;
using erl::atom;
using erl::term;
using namespace erl::test;

bytes frame(const bytes& data) {
    bytes v;
    append_be32(v, data.size());
    append(v, data);
    return v;
}

std::vector<dist_message> read_all(dist_reader& r, const bytes& in, erl::error_code* ec = nullptr) {
    std::vector<dist_message> out;
    auto e = r.feed(in, out);
    if (ec)
        *ec = e;
    else
        EXPECT_FALSE(e) << e.message();
    return out;
}

term A(std::string_view s) {
    return term(atom(s));
}

constexpr std::uint64_t hdr_flags = dflag::dist_hdr_atom_cache | dflag::fragments;

TEST(ProtoDistReader, TickProducesNoMessage) {
    dist_reader r;
    auto msgs = read_all(r, bytes{0, 0, 0, 0, 0, 0, 0, 0});
    EXPECT_TRUE(msgs.empty());
    EXPECT_EQ(r.ticks_received(), 2u);
    EXPECT_EQ(r.frames_received(), 2u);
}

TEST(ProtoDistReader, PassThrough) {
    // 112, 131 {2,'',foo}, 131 42
    bytes d{112, 131, 104, 3, 97, 2, 119, 0, 119, 3, 'f', 'o', 'o', 131, 97, 42};
    dist_reader r;
    auto msgs = read_all(r, frame(d));
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].control_tuple(), erl::tuple(2, atom(""), atom("foo")));
    ASSERT_TRUE(msgs[0].payload);
    EXPECT_EQ(*msgs[0].payload, term(42));
}

TEST(ProtoDistReader, CompressedPayloadMayNotInflateBeyondMaxMessageSize) {
    // 112, 131 {2,'',foo}, then a compressed payload: 1 MiB of zeros in a ~1 KiB frame.
    bytes d{112, 131, 104, 3, 97, 2, 119, 0, 119, 3, 'f', 'o', 'o'};
    const auto z =
        erl::etf::encode(erl::binary(std::string(1 << 20, '\0')), {.compression_level = 9});
    ASSERT_EQ(z[1], 80);
    append(d, z);
    reader_limits lim;
    lim.max_message_size = 1 << 19;  // the frame is far smaller than that; the term is not
    dist_reader small(0, lim);
    erl::error_code ec;
    read_all(small, frame(d), &ec);
    EXPECT_EQ(ec, erl::make_error_code(erl::errc::too_large));
    dist_reader big;
    auto msgs = read_all(big, frame(d));
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].payload->size(), std::size_t{1} << 20);
}

TEST(ProtoDistReader, PassThroughWithoutPayloadForLink) {
    bytes d{112, 131, 104, 2, 97, 1, 119, 1, 'x'};
    dist_reader r;
    auto msgs = read_all(r, frame(d));
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_FALSE(msgs[0].payload);
}

TEST(ProtoDistReader, PassThroughErrors) {
    for (auto& d : std::vector<bytes>{{112},                                // nothing
                                      {112, 130, 104, 2, 97, 1, 106},       // bad version
                                      {112, 131, 104, 3, 97, 2, 106, 106},  // SEND without payload
                                      {112, 131, 97, 1},                    // control not a tuple
                                      {112, 131, 104, 2, 97, 1, 106, 131, 97, 1,
                                       7}})  // trailing byte after payload
    {
        dist_reader r;
        erl::error_code ec;
        read_all(r, frame(d), &ec);
        EXPECT_TRUE(ec) << d.size();
    }
}

// Header: 2 new refs (seg 0 iix 5 'foo', seg 3 iix 7 'bar'), then a message using them as
// old refs, then a long-atoms header.
TEST(ProtoDistReader, HeaderNewAndCachedEntries) {
    bytes m1{131, 68, 2, 0xB8, 0x00, 5, 3, 'f', 'o', 'o', 7, 3, 'b', 'a', 'r'};
    append(m1, bytes{104, 3, 97, 2, 82, 0, 82, 1, 82, 1});  // {2,foo,bar} + bar
    bytes m2{131, 68, 2, 0x03, 0x00, 7, 5};                 // old: seg3/7, seg0/5
    append(m2, bytes{104, 3, 97, 2, 82, 0, 82, 1, 82, 0});  // {2,bar,foo} + bar
    bytes m3{131, 68, 1, 0x19, 2, 0, 3, 'b', 'a', 'z'};     // new seg1/2, LongAtoms
    append(m3, bytes{104, 2, 97, 1, 82, 0});                // {1,baz}
    bytes m4{131, 68, 0, 104, 2, 97, 1, 106};               // no refs: {1,[]}
    bytes in = frame(m1);
    append(in, frame(m2));
    append(in, frame(m3));
    append(in, frame(m4));
    dist_reader r(hdr_flags);
    auto msgs = read_all(r, in);
    ASSERT_EQ(msgs.size(), 4u);
    EXPECT_EQ(msgs[0].control_tuple(), erl::tuple(2, atom("foo"), atom("bar")));
    EXPECT_EQ(*msgs[0].payload, A("bar"));
    EXPECT_EQ(msgs[1].control_tuple(), erl::tuple(2, atom("bar"), atom("foo")));
    EXPECT_EQ(*msgs[1].payload, A("bar"));
    EXPECT_EQ(msgs[2].control_tuple(), erl::tuple(1, atom("baz")));
    EXPECT_EQ(msgs[3].control_tuple(), erl::tuple(1, term()));
}

TEST(ProtoDistReader, ReferenceToEmptyCacheSlotIsAnError) {
    bytes m{131, 68, 1, 0x02, 9, 104, 2, 97, 1, 82, 0};
    dist_reader r(hdr_flags);
    erl::error_code ec;
    read_all(r, frame(m), &ec);
    EXPECT_EQ(ec, erl::errc::bad_atom_cache_ref);
}

TEST(ProtoDistReader, AtomCacheRefBeyondHeaderIsAnError) {
    bytes m{131, 68, 1, 0x08, 9, 1, 'x', 104, 2, 97, 1, 82, 1};
    dist_reader r(hdr_flags);
    erl::error_code ec;
    read_all(r, frame(m), &ec);
    EXPECT_TRUE(ec);
}

TEST(ProtoDistReader, MalformedHeaders) {
    for (auto& d :
         std::vector<bytes>{
             {131},                                    // no header tag
             {131, 71, 0},                             // unknown header tag
             {131, 68},                                // missing count
             {131, 68, 3, 0x88},                       // flags cut short
             {131, 68, 1, 0x08, 1, 5, 'a'},            // atom text cut short
             {131, 68, 1, 0x18, 1, 0},                 // long length cut short
             {131, 69, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},  // fragment header cut short
             {131, 68, 1, 0x08, 1, 2, 0xff, 0xfe, 104, 2, 97, 1, 82, 0},  // invalid UTF-8
             {130, 68, 0, 104, 2, 97, 1, 106}})                           // bad magic
    {
        dist_reader r(hdr_flags);
        erl::error_code ec;
        read_all(r, frame(d), &ec);
        EXPECT_TRUE(ec) << int(d.size());
    }
}

// The example of erl_ext_dist "Distribution Header for fragmented messages": sending
// {call, <0.245.2>, {set_get_state, <<0:1024>>}} to 'reg' with fragment size 128.
TEST(ProtoDistReader, SpecFragmentExample) {
    dist_reader r(hdr_flags);
    // First put the two atoms the example treats as already cached (seg 4 iix 10 and seg 0
    // iix 5) into the receive cache.
    bytes setup{131, 68, 2, 0x8C, 0x00, 10, 6, 'a', '@', 'h', 'o', 's', 't', 5, 0};
    append(setup, bytes{104, 3, 97, 1, 82, 0, 82, 1});  // {1,'a@host',''}
    bytes f1{131, 69,  0,   0,   2,   168, 0,   0,   5,   83,  0,   0,   0,   0,   0,   0,
             0,   2,   5,   4,   137, 9,   10,  5,   236, 3,   114, 101, 103, 9,   4,   99,
             97,  108, 108, 238, 13,  115, 101, 116, 95,  103, 101, 116, 95,  115, 116, 97,
             116, 101, 104, 4,   97,  6,   103, 82,  0,   0,   0,   0,   85,  0,   0,   0,
             0,   2,   82,  1,   82,  2,   104, 3,   82,  3,   103, 82,  0,   0,   0,   0,
             245, 0,   0,   0,   2,   2,   104, 2,   82,  4,   109, 0,   0,   0,   128};
    f1.resize(f1.size() + 103, 0);
    bytes f2{131, 70, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 1};
    f2.resize(f2.size() + 25, 0);
    auto msgs = read_all(r, frame(setup));
    ASSERT_EQ(msgs.size(), 1u);
    msgs = read_all(r, frame(f1));
    EXPECT_TRUE(msgs.empty());
    EXPECT_EQ(r.sequences_in_flight(), 1u);
    msgs = read_all(r, frame(f2));
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(r.sequences_in_flight(), 0u);
    EXPECT_EQ(r.fragmented_bytes(), 0u);
    erl::pid from{atom("a@host"), 85, 0, 2};
    EXPECT_EQ(msgs[0].control_tuple(), erl::tuple(6, from, atom(""), atom("reg")));
    erl::pid p{atom("a@host"), 245, 2, 2};
    bytes zeros(128, 0);
    EXPECT_EQ(*msgs[0].payload,
              erl::tuple(atom("call"), p,
                         erl::tuple(atom("set_get_state"), erl::binary(std::span(zeros)))));
}

bytes frag_first(std::uint64_t seq, std::uint64_t id, const bytes& rest) {
    bytes d{131, 69};
    append_be64(d, seq);
    append_be64(d, id);
    d.push_back(0);  // no atom cache refs
    append(d, rest);
    return frame(d);
}
bytes frag_cont(std::uint64_t seq, std::uint64_t id, const bytes& rest) {
    bytes d{131, 70};
    append_be64(d, seq);
    append_be64(d, id);
    append(d, rest);
    return frame(d);
}
// {2,'',x} + binary of n bytes 'z', split as: control+head | ... as the caller wants.
const bytes send_ctl{104, 3, 97, 2, 119, 0, 119, 1, 'x'};

TEST(ProtoDistReader, FragmentsInterleavedWithOtherMessages) {
    dist_reader r(hdr_flags);
    bytes in = frag_first(1, 3, bytes{104, 3, 97, 2, 119, 0, 119, 1, 'a', 109, 0, 0, 0, 4});
    append(in, frag_first(2, 2, bytes{104, 3, 97, 2, 119, 0, 119, 1, 'b', 108, 0, 0, 0, 2}));
    append(in, frame(bytes{131, 68, 0, 104, 3, 97, 2, 106, 106, 97, 7}));  // whole message
    append(in, frag_cont(1, 2, bytes{'p', 'q'}));
    append(in, frag_cont(2, 1, bytes{97, 1, 97, 2, 106}));
    append(in, frag_cont(1, 1, bytes{'r', 's'}));
    append(in, frag_first(3, 1, bytes{104, 3, 97, 2, 106, 106, 97, 9}));  // single fragment
    auto msgs = read_all(r, in);
    ASSERT_EQ(msgs.size(), 4u);
    EXPECT_EQ(*msgs[0].payload, term(7));
    EXPECT_EQ(msgs[1].control_tuple(), erl::tuple(2, atom(""), atom("b")));
    EXPECT_EQ(*msgs[1].payload, erl::list(1, 2));
    EXPECT_EQ(msgs[2].control_tuple(), erl::tuple(2, atom(""), atom("a")));
    EXPECT_EQ(*msgs[2].payload, erl::binary(std::string_view("pqrs")));
    EXPECT_EQ(*msgs[3].payload, term(9));
    EXPECT_EQ(r.sequences_in_flight(), 0u);
}

TEST(ProtoDistReader, FragmentErrors) {
    bytes ctl_part{104, 3, 97, 2, 119, 0, 119, 1, 'a', 109, 0, 0, 0, 2};
    struct tc {
        bytes in;
        erl::errc expect;
    };
    std::vector<tc> cases;
    {
        bytes in = frag_first(1, 3, ctl_part);
        append(in, frag_cont(1, 1, bytes{'x'}));  // skipped id 2
        cases.push_back({in, erl::errc::bad_frame});
    }
    cases.push_back({frag_cont(9, 1, bytes{'x'}), erl::errc::bad_frame});  // unknown seq
    {
        bytes in = frag_first(1, 3, ctl_part);
        append(in, frag_first(1, 3, ctl_part));  // sequence id reused while in flight
        cases.push_back({in, erl::errc::bad_frame});
    }
    cases.push_back({frag_first(1, 0, ctl_part), erl::errc::bad_dist_header});  // id 0
    {
        bytes in = frag_first(1, 2, ctl_part);
        append(in, frag_cont(1, 1, bytes{'x', 'y', 'z'}));  // binary longer than promised
        cases.push_back({in, erl::errc::trailing_bytes});
    }
    for (auto& [in, expect] : cases) {
        dist_reader r(hdr_flags);
        erl::error_code ec;
        read_all(r, in, &ec);
        EXPECT_EQ(ec, expect) << ec.message();
    }
}

TEST(ProtoDistReader, FragmentLimits) {
    bytes ctl_part{104, 3, 97, 2, 119, 0, 119, 1, 'a', 109, 0, 0, 1, 0};
    {
        reader_limits lim;
        lim.max_fragment_sequences = 1;
        dist_reader r(hdr_flags, lim);
        bytes in = frag_first(1, 3, ctl_part);
        append(in, frag_first(2, 3, ctl_part));
        erl::error_code ec;
        read_all(r, in, &ec);
        EXPECT_EQ(ec, erl::errc::limit_exceeded);
    }
    {
        reader_limits lim;
        lim.max_fragmented_bytes = 100;
        dist_reader r(hdr_flags, lim);
        bytes in = frag_first(1, 30, ctl_part);
        for (int id = 29; id > 0; --id)
            append(in, frag_cont(1, id, bytes(10, 'z')));
        erl::error_code ec;
        read_all(r, in, &ec);
        EXPECT_EQ(ec, erl::errc::limit_exceeded);
    }
    {
        dist_reader r(hdr_flags);
        read_all(r, frag_first(1, 3, ctl_part));
        EXPECT_EQ(r.sequences_in_flight(), 1u);
        r.reset();
        EXPECT_EQ(r.sequences_in_flight(), 0u);
        EXPECT_EQ(r.fragmented_bytes(), 0u);
    }
}

// Readers sharing a node-wide counter: the fragment that would take their sum past
// max_fragmented_total is refused before it is buffered, and a reader gives its bytes back when
// it goes.
TEST(ProtoDistReader, NodeWideFragmentBound) {
    bytes ctl_part{104, 3, 97, 2, 119, 0, 119, 1, 'a', 109, 0, 0, 1, 0};
    std::atomic<std::size_t> total{0};
    reader_limits lim;
    lim.fragmented_total = &total;
    lim.max_fragmented_total = 3 * ctl_part.size();
    {
        dist_reader a(hdr_flags, lim);
        read_all(a, frag_first(1, 3, ctl_part));
        read_all(a, frag_first(2, 3, ctl_part));
        EXPECT_EQ(a.fragmented_bytes(), 2 * ctl_part.size());
        EXPECT_EQ(total.load(), 2 * ctl_part.size());
        dist_reader b(hdr_flags, lim);
        read_all(b, frag_first(1, 3, ctl_part));  // exactly at the bound: taken
        EXPECT_EQ(total.load(), 3 * ctl_part.size());
        erl::error_code ec;
        read_all(b, frag_first(2, 3, ctl_part), &ec);
        EXPECT_EQ(ec, erl::errc::limit_exceeded);
        EXPECT_EQ(b.exceeded_limit(), "max_fragmented_total");
        EXPECT_EQ(total.load(), 3 * ctl_part.size());  // the refused fragment took nothing
    }
    EXPECT_EQ(total.load(), 0u);
}

TEST(ProtoDistReader, FrameTooLargeIsDetectedFromTheLength) {
    reader_limits lim;
    lim.max_frame_size = 10;
    dist_reader r(hdr_flags, lim);
    std::vector<dist_message> out;
    EXPECT_EQ(r.feed(bytes{0, 0, 0, 11, 131}, out), erl::errc::frame_too_large);
    dist_reader r2(hdr_flags, lim);
    EXPECT_FALSE(r2.feed(bytes{0, 0}, out));
    EXPECT_EQ(r2.feed(bytes{0, 11}, out), erl::errc::frame_too_large);
    // The reader stays failed.
    EXPECT_EQ(r2.feed(bytes{0, 0, 0, 0}, out), erl::errc::frame_too_large);
}

// ------------------------------------------------------------------------------------------
// Writer and round trips

term sample_control(int i) {
    erl::pid from{atom("cpp@host"), static_cast<std::uint32_t>(i), 0, 3};
    return erl::tuple(6, from, atom(""), atom("net_kernel"));
}
term sample_payload(int i) {
    return erl::tuple(atom("$gen_call"), erl::tuple(atom("from"), i),
                      erl::tuple(atom("is_auth"), atom("cpp@host")));
}

std::vector<dist_message> round_trip(std::uint64_t flags, const std::vector<term>& controls,
                                     const std::vector<std::optional<term>>& payloads,
                                     writer_options wo = {}) {
    dist_writer w(flags, wo);
    bytes wire;
    for (std::size_t i = 0; i < controls.size(); ++i)
        w.append_message(wire, controls[i], payloads[i] ? &*payloads[i] : nullptr);
    dist_writer::append_tick(wire);
    dist_reader r(flags);
    auto msgs = read_all(r, wire);
    EXPECT_EQ(r.ticks_received(), 1u);
    return msgs;
}

void check_round_trip(std::uint64_t flags, writer_options wo = {}) {
    std::vector<term> ctl;
    std::vector<std::optional<term>> pl;
    for (int i = 0; i < 20; ++i) {
        ctl.push_back(sample_control(i));
        pl.push_back(sample_payload(i));
    }
    ctl.push_back(erl::tuple(1, erl::pid{atom("x@y"), 1, 2, 3}, erl::pid{atom("z@y"), 4, 5, 6}));
    pl.push_back(std::nullopt);
    auto msgs = round_trip(flags, ctl, pl, wo);
    ASSERT_EQ(msgs.size(), ctl.size());
    for (std::size_t i = 0; i < ctl.size(); ++i) {
        EXPECT_EQ(msgs[i].control_tuple(), ctl[i]) << i;
        EXPECT_EQ(msgs[i].payload.has_value(), pl[i].has_value()) << i;
        if (pl[i]) {
            EXPECT_EQ(*msgs[i].payload, *pl[i]) << i;
        }
    }
}

TEST(ProtoDistWriter, RoundTripPassThrough) {
    check_round_trip(0);
}
TEST(ProtoDistWriter, RoundTripAtomCache) {
    check_round_trip(dflag::dist_hdr_atom_cache);
}
TEST(ProtoDistWriter, RoundTripFragmentsOnly) {
    check_round_trip(dflag::fragments, writer_options{16});
}
TEST(ProtoDistWriter, RoundTripAtomCacheAndFragments) {
    check_round_trip(hdr_flags, writer_options{7});
    check_round_trip(hdr_flags);
}

TEST(ProtoDistWriter, PassThroughLayout) {
    dist_writer w(0);
    bytes out;
    term ctl = erl::tuple(2, atom(""), atom("foo"));
    term msg(42);
    w.append_message(out, ctl, &msg);
    EXPECT_EQ(out,
              frame(bytes{112, 131, 104, 3, 97, 2, 119, 0, 119, 3, 'f', 'o', 'o', 131, 97, 42}));
}

TEST(ProtoDistWriter, HeaderWithoutAtomCacheHasNoRefs) {
    dist_writer w(dflag::fragments);
    bytes out;
    term ctl = erl::tuple(1, 5);
    w.append_message(out, ctl);
    EXPECT_EQ(out, frame(bytes{131, 68, 0, 104, 2, 97, 1, 97, 5}));
}

TEST(ProtoDistWriter, AtomCacheHeaderLayout) {
    dist_writer w(dflag::dist_hdr_atom_cache);
    term ctl = erl::tuple(2, atom(""), atom("foo"));
    term msg = A("foo");
    bytes first, second;
    w.append_message(first, ctl, &msg);
    w.append_message(second, ctl, &msg);
    // 131 68, two refs ('' and foo), both new the first time, both cached the second time.
    ASSERT_GT(first.size(), 10u);
    EXPECT_EQ(first[4], 131);
    EXPECT_EQ(first[5], 68);
    EXPECT_EQ(first[6], 2);
    EXPECT_EQ(first[7] & 0x88, 0x88);
    EXPECT_EQ(first[8] & 0x0f, 0);  // LongAtoms clear
    EXPECT_EQ(second[6], 2);
    EXPECT_EQ(second[7] & 0x88, 0);
    // Second message: header (3 + 2 flag bytes + 2 iix) + {2,R0,R1} + R1.
    const bytes tail{104, 3, 97, 2, 82, 0, 82, 1, 82, 1};
    ASSERT_EQ(second.size(), 4u + 2 + 1 + 2 + 2 + tail.size());
    EXPECT_TRUE(std::equal(tail.begin(), tail.end(), second.end() - tail.size()));
    // Same segment/index for each atom in both messages.
    EXPECT_EQ(first[7] & 0x77, second[7] & 0x77);
}

TEST(ProtoDistWriter, LongAtomsAndManyAtoms) {
    std::string long_name;
    for (int i = 0; i < 150; ++i)
        long_name += "\xc3\xa9";  // 150 chars, 300 bytes
    std::vector<term> many;
    for (int i = 0; i < 700; ++i)
        many.push_back(A("atom_" + std::to_string(i)));
    term ctl = erl::tuple(2, atom(long_name), atom("dest"));
    term msg = erl::make_list(many);
    for (auto flags : {std::uint64_t{dflag::dist_hdr_atom_cache}, hdr_flags}) {
        auto msgs = round_trip(flags, {ctl, ctl}, {msg, msg}, writer_options{1000});
        ASSERT_EQ(msgs.size(), 2u);
        for (auto& m : msgs) {
            EXPECT_EQ(m.control_tuple(), ctl);
            EXPECT_EQ(*m.payload, msg);
        }
    }
}

TEST(ProtoDistWriter, FragmentsCountDownAndKeepControlInFirst) {
    dist_writer w(hdr_flags, writer_options{100});
    bytes out;
    std::string big(1000, 'q');
    term ctl = erl::tuple(2, atom(""), atom("p"));
    term msg = erl::binary(std::string_view(big));
    w.append_message(out, ctl, &msg);
    // Walk the frames.
    std::size_t pos = 0, frames = 0;
    std::uint64_t last_id = 0, seq = 0;
    while (pos < out.size()) {
        std::size_t len =
            (out[pos] << 24) | (out[pos + 1] << 16) | (out[pos + 2] << 8) | out[pos + 3];
        const std::uint8_t* d = out.data() + pos + 4;
        EXPECT_EQ(d[0], 131);
        EXPECT_EQ(d[1], frames == 0 ? 69 : 70);
        std::uint64_t s = 0, id = 0;
        for (int i = 0; i < 8; ++i)
            s = (s << 8) | d[2 + i];
        for (int i = 0; i < 8; ++i)
            id = (id << 8) | d[10 + i];
        if (frames == 0) {
            seq = s;
            EXPECT_EQ(id, 11u);  // ceil(~1013 / 100)
        } else {
            EXPECT_EQ(s, seq);
            EXPECT_EQ(id, last_id - 1);
        }
        EXPECT_LE(len - 18, 100u + (frames == 0 ? 8u : 0u));  // + cache header
        last_id = id;
        pos += 4 + len;
        ++frames;
    }
    EXPECT_EQ(last_id, 1u);
    EXPECT_EQ(frames, 11u);
    EXPECT_EQ(w.fragmented_messages(), 1u);
}

TEST(ProtoDistWriter, TickIsFourZeroBytes) {
    bytes out;
    dist_writer::append_tick(out);
    EXPECT_EQ(out, (bytes{0, 0, 0, 0}));
}

// ------------------------------------------------------------------------------------------
// Robustness

bytes sample_stream(std::uint64_t flags, std::size_t fragment_size) {
    dist_writer w(flags, writer_options{fragment_size});
    bytes wire;
    for (int i = 0; i < 6; ++i) {
        term p = sample_payload(i);
        w.append_message(wire, sample_control(i), &p);
        if (i % 2) dist_writer::append_tick(wire);
    }
    return wire;
}

TEST(ProtoDistReader, EverySplitPointGivesTheSameMessages) {
    for (auto flags : {std::uint64_t{0}, hdr_flags}) {
        bytes wire = sample_stream(flags, 40);
        dist_reader ref(flags);
        auto expect = read_all(ref, wire);
        ASSERT_EQ(expect.size(), 6u);
        for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
            dist_reader r(flags);
            std::vector<dist_message> out;
            ASSERT_FALSE(r.feed(std::span(wire).first(cut), out));
            ASSERT_FALSE(r.feed(std::span(wire).subspan(cut), out));
            ASSERT_EQ(out.size(), expect.size()) << cut;
            for (std::size_t i = 0; i < out.size(); ++i)
                EXPECT_EQ(out[i].control_tuple(), expect[i].control_tuple());
        }
        // One byte at a time.
        dist_reader r(flags);
        std::vector<dist_message> out;
        for (auto b : wire)
            ASSERT_FALSE(r.feed(std::span(&b, 1), out));
        EXPECT_EQ(out.size(), expect.size());
    }
}

TEST(ProtoDistReader, TruncatedFrameContentIsAnErrorNotACrash) {
    for (auto flags : {std::uint64_t{0}, hdr_flags}) {
        dist_writer w(flags);
        bytes wire;
        term p = sample_payload(1);
        w.append_message(wire, sample_control(1), &p);
        bytes data(wire.begin() + 4, wire.end());
        for (std::size_t k = 0; k < data.size(); ++k) {
            dist_reader r(flags);
            std::vector<dist_message> out;
            auto ec = r.parse_frame(std::span(data).first(k), out);
            if (k == 0)
                EXPECT_FALSE(ec);  // a tick
            else
                EXPECT_TRUE(ec) << k;
        }
    }
}

TEST(ProtoDistReader, GarbageNeverCrashes) {
    std::mt19937 rng(4242);
    bytes valid = sample_stream(hdr_flags, 40);
    for (int i = 0; i < 3000; ++i) {
        bytes in;
        if (i % 3 == 0) {
            in.resize(rng() % 200);
            for (auto& b : in)
                b = rng() & 0xff;
        } else {
            in = valid;
            for (int k = 0; k < 1 + i % 5; ++k)
                in[rng() % in.size()] = rng() & 0xff;
        }
        dist_reader r(hdr_flags);
        std::vector<dist_message> out;
        r.feed(in, out);
    }
    SUCCEED();
}

}  // namespace

// append_send / append_reg_send write exactly what append_message writes for the equivalent
// control tuples, in every header mode, including the atom cache state they leave behind and
// messages large enough to be fragmented.
TEST(ProtoDistWriter, DirectSendEncodingsMatchTheGeneralPath) {
    const erl::pid from_pid{atom("cpp@host"), 7, 1, 3};
    const term from(from_pid);
    const erl::pid to{atom("beam@host"), 40, 2, 1717};
    const atom name("sink");
    const term big = erl::binary(std::string(5000, 'x'));
    for (std::uint64_t flags : {std::uint64_t{0}, dflag::dist_hdr_atom_cache, dflag::fragments,
                                hdr_flags, hdr_flags | dflag::send_sender}) {
        for (std::size_t frag : {std::size_t{64 * 1024}, std::size_t{100}}) {
            dist_writer general(flags, writer_options{frag}), direct(flags, writer_options{frag});
            bytes a, b;
            for (int i = 0; i < 4; ++i) {
                const term payload = i == 3 ? big : sample_payload(i);
                for (bool sender : {true, false}) {
                    general.append_message(a,
                                           sender ? erl::tuple(dop::send_sender, from, to)
                                                  : erl::tuple(dop::send, atom(""), to),
                                           &payload);
                    direct.append_send(b, from, to, payload, sender);
                }
                general.append_message(a, erl::tuple(dop::reg_send, from, atom(""), name),
                                       &payload);
                direct.append_reg_send(b, from, name, payload);
            }
            EXPECT_EQ(a, b) << "flags " << flags << " fragment size " << frag;
            dist_reader r(flags);
            auto msgs = read_all(r, b);
            ASSERT_EQ(msgs.size(), 12u);
            EXPECT_EQ(msgs[0].control_tuple(), erl::tuple(dop::send_sender, from, to));
            EXPECT_EQ(msgs[2].control_tuple(), erl::tuple(dop::reg_send, from, atom(""), name));
            EXPECT_EQ(*msgs[11].payload, big);
        }
    }
}

// SEND, SEND_SENDER and REG_SEND with the atom cache on are read without building their
// control tuple: the route says where they go, and the tuple it stands for is the one sent.
// Without the atom cache (atoms written in full) the reader builds the tuple as before.
TEST(ProtoDistReader, PlainSendsAreRoutedWithoutAControlTuple) {
    const erl::pid from{atom("cpp@host"), 7, 1, 3};
    const erl::pid to{atom("beam@host"), 40, 2, 1717};
    const atom name("sink");
    const term payload = erl::tuple(atom("msg"), 12);
    for (std::uint64_t flags : {hdr_flags, std::uint64_t{0}}) {
        dist_writer w(flags);
        bytes b;
        w.append_send(b, term(from), to, payload, true);
        w.append_send(b, term(from), to, payload, false);
        w.append_reg_send(b, term(from), name, payload);
        // Not a route: a SEND whose target is not a pid, a monitor.
        w.append_message(b, erl::tuple(dop::send, atom(""), atom("not_a_pid")), &payload);
        erl::reference ref;
        ref.node = atom("cpp@host");
        ref.len = 3;
        ref.ids = {7, 8, 9, 0, 0};
        const term mon = erl::tuple(dop::monitor_p, term(from), term(to), term(ref));
        w.append_message(b, mon, nullptr);
        dist_reader r(flags);
        auto msgs = read_all(r, b);
        ASSERT_EQ(msgs.size(), 5u);
        const bool cache = flags != 0;
        EXPECT_EQ(msgs[0].route.op, cache ? dop::send_sender : -1);
        EXPECT_EQ(msgs[0].control_tuple(), erl::tuple(dop::send_sender, from, to));
        EXPECT_EQ(msgs[1].control_tuple(), erl::tuple(dop::send, atom(""), to));
        EXPECT_EQ(msgs[1].route.op, cache ? dop::send : -1);
        EXPECT_EQ(msgs[2].route.op, cache ? dop::reg_send : -1);
        EXPECT_EQ(msgs[2].control_tuple(), erl::tuple(dop::reg_send, from, atom(""), name));
        if (cache) {
            EXPECT_EQ(msgs[0].route.to, to);
            EXPECT_EQ(msgs[2].route.to_name, name);
            EXPECT_EQ(msgs[2].route.from, from);
            EXPECT_EQ(msgs[0].control, term());
        }
        for (int i = 0; i < 3; ++i)
            EXPECT_EQ(*msgs[i].payload, payload) << i;
        EXPECT_EQ(msgs[3].route.op, -1);
        EXPECT_EQ(msgs[3].control, erl::tuple(dop::send, atom(""), atom("not_a_pid")));
        EXPECT_EQ(msgs[4].route.op, -1);
        EXPECT_EQ(msgs[4].control, mon);
        EXPECT_FALSE(msgs[4].payload);
    }
}

// reader_limits::offload_above: a large or compressed message is left to the caller, the
// frames after it are not consumed until the caller has taken it, and decode_deferred gives
// the message the reader would have produced itself.
namespace {

// Feeds `in` as the runtime does: stops at each deferred message, decodes it "elsewhere",
// then feeds the rest. Returns the messages in order and how many were deferred.
std::vector<dist_message> read_deferring(dist_reader& r, const bytes& in, std::size_t chunk,
                                         int& deferred) {
    std::vector<dist_message> out;
    deferred = 0;
    for (std::size_t at = 0; at < in.size(); at += chunk) {
        std::span<const std::uint8_t> data(in.data() + at, std::min(chunk, in.size() - at));
        while (!data.empty()) {
            std::size_t used = 0;
            auto ec = r.feed(data, out, used);
            EXPECT_FALSE(ec) << ec.message();
            if (ec) return out;
            EXPECT_LE(used, data.size());
            data = data.subspan(used);
            if (!r.has_deferred()) {
                EXPECT_TRUE(data.empty());
                continue;
            }
            ++deferred;
            dist_message m;
            auto dm = r.take_deferred();
            EXPECT_FALSE(r.has_deferred());
            EXPECT_FALSE(decode_deferred(dm, {}, m));
            out.push_back(std::move(m));
        }
    }
    return out;
}

}  // namespace

TEST(ProtoDistReader, LargeAndCompressedMessagesAreDeferredInStreamOrder) {
    for (std::uint64_t flags :
         {std::uint64_t{0}, std::uint64_t{dflag::dist_hdr_atom_cache}, hdr_flags}) {
        dist_writer w(flags, writer_options{4096});
        bytes in;
        std::vector<term> sent;
        const term big = erl::binary(std::string(20'000, 'b'));
        for (int i = 0; i < 12; ++i) {
            const term ctl = erl::tuple(6, erl::pid{atom("x@y"), 1, 2, 3}, atom(""),
                                        atom("to_" + std::to_string(i % 3)));
            const term payload =
                i % 4 == 1 ? erl::tuple(atom("big"), big, i) : erl::tuple(atom("small"), i);
            w.append_message(in, ctl, &payload);
            sent.push_back(payload);
        }
        // A compressed payload after a small control (pass-through carries its 131), and a
        // link (no payload) last.
        bytes z{112, 131, 104, 3, 97, 2, 119, 0, 119, 3, 'f', 'o', 'o'};
        append(z,
               erl::etf::encode(erl::binary(std::string(100'000, '\0')), {.compression_level = 9}));
        append(in, frame(z));
        sent.push_back(erl::binary(std::string(100'000, '\0')));
        for (std::size_t chunk : {std::size_t{7}, std::size_t{1000}, in.size()}) {
            reader_limits lim;
            lim.offload_above = 8 * 1024;
            dist_reader r(flags, lim);
            int deferred = 0;
            auto msgs = read_deferring(r, in, chunk, deferred);
            ASSERT_EQ(msgs.size(), sent.size()) << flags << " " << chunk;
            EXPECT_EQ(deferred, 4) << flags << " " << chunk;  // three big, one compressed
            for (std::size_t i = 0; i < sent.size(); ++i)
                EXPECT_EQ(*msgs[i].payload, sent[i]) << i;
            // Without the caller's help (the two-argument feed) the same messages come out.
            dist_reader inline_reader(flags, lim);
            auto same = read_all(inline_reader, in);
            ASSERT_EQ(same.size(), sent.size());
            for (std::size_t i = 0; i < sent.size(); ++i)
                EXPECT_EQ(*same[i].payload, sent[i]) << i;
        }
    }
}

TEST(ProtoDistReader, DeferredMessageErrorsAreTheReadersErrors) {
    // {6, From, '', To} with no payload, and a payload with a trailing byte, both large.
    const term ctl = erl::tuple(6, erl::pid{atom("x@y"), 1, 2, 3}, atom(""), atom("to"));
    bytes body{131, 68, 0};
    erl::etf::encode_body(body, ctl);
    bytes no_payload = body;
    bytes trailing = body;
    erl::etf::encode_body(trailing, erl::binary(std::string(10'000, 'x')));
    trailing.push_back(106);
    reader_limits lim;
    lim.offload_above = 1000;
    for (const auto& [data, want] :
         {std::pair{trailing, erl::errc::trailing_bytes},
          std::pair{[&] {
                        bytes b = no_payload;
                        b.insert(b.end(), 2000, 0);  // large, but not a term after the control
                        return b;
                    }(),
                    erl::errc::bad_tag}}) {
        dist_reader r(hdr_flags, lim);
        std::vector<dist_message> out;
        std::size_t used = 0;
        const bytes f = frame(data);
        ASSERT_FALSE(r.feed(f, out, used));
        ASSERT_TRUE(r.has_deferred());
        EXPECT_EQ(used, f.size());
        dist_message m;
        auto dm = r.take_deferred();
        EXPECT_EQ(decode_deferred(dm, {}, m), erl::make_error_code(want));
        // The two-argument feed reports it and stays failed.
        dist_reader r2(hdr_flags, lim);
        erl::error_code ec;
        read_all(r2, f, &ec);
        EXPECT_EQ(ec, erl::make_error_code(want));
    }
}
