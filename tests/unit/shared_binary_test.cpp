// Binaries that refer to someone else's bytes: erl::shared_binary, etf::decode with sharing, the
// distribution reader handing large received binaries over without copying them, and the writer
// leaving large binaries out of its output for gathered writes.
#include <erl/etf.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/term.hpp>

#include "common/buffer_pool.hpp"
#include "common/byte_order.hpp"
#include "node/test_access.hpp"
#include "node_test_support.hpp"
#include "proto/dist_codec.hpp"
#include "term/term_internal.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

namespace {

using erl::term;
using bytes = std::vector<std::uint8_t>;

using erl::test::is_shared_binary;

bool points_into(const term& t, const bytes& buf) {
    const std::uint8_t* p = t.as_bytes().data();
    return p >= buf.data() && p < buf.data() + buf.size();
}

bytes pattern(std::size_t n, std::uint8_t seed) {
    bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(seed + i * 7);
    return b;
}

TEST(SharedBinary, RefersToTheBytesAndHoldsTheOwner) {
    auto buf = std::make_shared<bytes>(pattern(100000, 1));
    std::weak_ptr<bytes> watch = buf;
    term t = erl::shared_binary(buf, std::span<const std::uint8_t>(*buf).subspan(10, 5000));
    EXPECT_TRUE(is_shared_binary(t));
    EXPECT_EQ(t.as_bytes().data(), buf->data() + 10);
    EXPECT_EQ(t.as_bytes().size(), 5000u);
    const bytes& raw = *buf;
    buf.reset();
    ASSERT_FALSE(watch.expired());  // the term keeps the buffer
    // Equal to, ordered and encoded like the copied binary of the same bytes.
    term copy = erl::binary(std::span<const std::uint8_t>(raw).subspan(10, 5000));
    EXPECT_FALSE(is_shared_binary(copy));
    EXPECT_EQ(t, copy);
    EXPECT_EQ(erl::etf::encode(t), erl::etf::encode(copy));
    term u = t;  // copies share the block
    t = term();
    EXPECT_FALSE(watch.expired());
    u = term();
    EXPECT_TRUE(watch.expired());
}

TEST(SharedBinary, InsideContainersIsFreedWithThem) {
    auto buf = std::make_shared<bytes>(pattern(4096, 3));
    std::weak_ptr<bytes> watch = buf;
    {
        term inner = erl::shared_binary(buf, *buf);
        buf.reset();
        term list = erl::make_list({erl::tuple(inner, 1), inner});
        EXPECT_EQ(erl::etf::decode(erl::etf::encode(list)).value(), list);
    }
    EXPECT_TRUE(watch.expired());
}

TEST(SharedBinary, DecodeSharesLargeBinariesOnly) {
    const bytes big = pattern(400000, 5);
    const bytes small = pattern(1000, 9);
    const bytes mid = pattern(70000, 11);  // above min_binary, below a quarter of the input
    term src =
        erl::make_list({erl::binary(big), erl::binary(small), erl::binary(mid), erl::binary(big)});
    auto wire = std::make_shared<bytes>(erl::etf::encode(src));
    erl::etf::sharing share{wire, 64 * 1024};
    auto r = erl::etf::decode(*wire, share);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(*r, src);
    auto l = r->as_list();
    EXPECT_TRUE(is_shared_binary(l.elements[0]));
    EXPECT_TRUE(points_into(l.elements[0], *wire));
    EXPECT_FALSE(is_shared_binary(l.elements[1]));
    EXPECT_FALSE(is_shared_binary(l.elements[2]));  // 70,000 < 871,000 / 4
    EXPECT_TRUE(is_shared_binary(l.elements[3]));
    // Without an owner, and through the plain form, everything is copied.
    auto plain = erl::etf::decode(*wire);
    ASSERT_TRUE(plain);
    EXPECT_FALSE(is_shared_binary(plain->as_list().elements[0]));
    auto no_owner = erl::etf::decode(*wire, erl::etf::sharing{});
    ASSERT_TRUE(no_owner);
    EXPECT_FALSE(is_shared_binary(no_owner->as_list().elements[0]));
    // The decoded term keeps the input alive.
    std::weak_ptr<bytes> watch = wire;
    share.owner.reset();
    wire.reset();
    EXPECT_FALSE(watch.expired());
    EXPECT_EQ(r->as_list().elements[0].as_bytes()[399999], big[399999]);
    *r = term();
    EXPECT_TRUE(watch.expired());
}

TEST(SharedBinary, BitstringsAreCopied) {
    const bytes b = pattern(200000, 2);
    term bits = erl::bitstring(b, b.size() * 8 - 3);
    auto wire = std::make_shared<bytes>(erl::etf::encode(bits));
    auto r = erl::etf::decode(*wire, erl::etf::sharing{wire, 1024});
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, bits);
    EXPECT_FALSE(points_into(*r, *wire));
}

TEST(SharedBinary, CompressedTermsShareTheirInflatedBytes) {
    const bytes big(1 << 20, 'x');
    term src = erl::tuple(erl::binary(big), erl::binary(std::string_view("small")));
    erl::etf::encode_options eo;
    eo.compression_level = 6;
    const bytes wire = erl::etf::encode(src, eo);
    ASSERT_EQ(wire[1], erl::etf::tag::compressed);
    const std::size_t before = erl::detail::large_binary_bytes();
    auto r = erl::etf::decode(wire, erl::etf::sharing{nullptr, 64 * 1024});
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, src);
    EXPECT_TRUE(is_shared_binary(r->as_tuple()[0]));
    EXPECT_FALSE(is_shared_binary(r->as_tuple()[1]));
    // The inflated buffer counts as binary memory while the binary refers to it.
    EXPECT_GE(erl::detail::large_binary_bytes(), before + big.size());
    *r = term();
    EXPECT_LT(erl::detail::large_binary_bytes(), before + big.size());
}

// Frames of the distribution reader, pass-through form: 112, 131 Control, 131 Payload.
bytes pass_through_frame(const term& ctl, const term& payload) {
    bytes body{112};
    auto c = erl::etf::encode(ctl);
    auto p = erl::etf::encode(payload);
    body.insert(body.end(), c.begin(), c.end());
    body.insert(body.end(), p.begin(), p.end());
    bytes f(4);
    erl::detail::store_be32(f.data(), static_cast<std::uint32_t>(body.size()));
    f.insert(f.end(), body.begin(), body.end());
    return f;
}

void feed_in_chunks(erl::proto::dist_reader& r, const bytes& wire, std::size_t chunk,
                    std::vector<erl::proto::dist_message>& out) {
    for (std::size_t off = 0; off < wire.size(); off += chunk) {
        const std::size_t n = std::min(chunk, wire.size() - off);
        // Each chunk in its own short-lived buffer, as a socket read would leave it.
        bytes piece(wire.begin() + static_cast<std::ptrdiff_t>(off),
                    wire.begin() + static_cast<std::ptrdiff_t>(off + n));
        ASSERT_FALSE(r.feed(piece, out));
    }
}

TEST(SharedBinary, ReaderHandsBufferedFramesOver) {
    const bytes big = pattern(500000, 7);
    term ctl = erl::tuple(2, erl::atom(""), erl::pid{erl::atom("a@b"), 1, 0, 1});
    term payload = erl::tuple(erl::atom("data"), erl::binary(big), erl::binary(pattern(100, 1)));
    const bytes wire = pass_through_frame(ctl, payload);

    const std::size_t before = erl::detail::large_binary_bytes();
    erl::proto::dist_reader r;
    std::vector<erl::proto::dist_message> out;
    feed_in_chunks(r, wire, 64 * 1024, out);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_TRUE(out[0].payload);
    EXPECT_EQ(*out[0].payload, payload);
    EXPECT_TRUE(is_shared_binary(out[0].payload->as_tuple()[1]));
    EXPECT_FALSE(is_shared_binary(out[0].payload->as_tuple()[2]));
    // The frame buffer counts as binary memory until the binary is gone.
    EXPECT_GE(erl::detail::large_binary_bytes(), before + wire.size() - 4);
    out.clear();
    EXPECT_LT(erl::detail::large_binary_bytes(), before + big.size());

    // Off: every binary copied.
    erl::proto::reader_limits lim;
    lim.min_shared_binary = SIZE_MAX;
    erl::proto::dist_reader copying(0, lim);
    feed_in_chunks(copying, wire, 64 * 1024, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_FALSE(is_shared_binary(out[0].payload->as_tuple()[1]));
}

TEST(SharedBinary, ReaderSharesDeferredAndFragmentedMessages) {
    const bytes big = pattern(300000, 4);
    term ctl = erl::tuple(2, erl::atom(""), erl::pid{erl::atom("a@b"), 1, 0, 1});
    term payload = erl::binary(big);
    // Deferred (offloaded) message, decoded by decode_deferred as a worker would.
    {
        erl::proto::reader_limits lim;
        lim.offload_above = 100000;
        erl::proto::dist_reader r(0, lim);
        const bytes wire = pass_through_frame(ctl, payload);
        std::vector<erl::proto::dist_message> out;
        std::size_t used = 0;
        ASSERT_FALSE(r.feed(wire, out, used));  // one read holding the whole frame
        ASSERT_TRUE(r.has_deferred());
        auto m = r.take_deferred();
        erl::proto::dist_message msg;
        ASSERT_FALSE(erl::proto::decode_deferred(m, {}, msg));
        ASSERT_TRUE(msg.payload);
        EXPECT_EQ(*msg.payload, payload);
        EXPECT_TRUE(is_shared_binary(*msg.payload));
    }
    // Fragments reassembled by the reader (writer with FRAGMENTS, 64 KiB fragments).
    {
        const std::uint64_t flags = erl::proto::dflag::fragments;
        erl::proto::dist_writer w(flags);
        bytes wire;
        w.append_message(wire, ctl, &payload);
        ASSERT_GT(w.frames_written(), 1u);
        erl::proto::dist_reader r(flags);
        std::vector<erl::proto::dist_message> out;
        ASSERT_FALSE(r.feed(wire, out));
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(*out[0].payload, payload);
        EXPECT_TRUE(is_shared_binary(*out[0].payload));
    }
}

// Once the binaries that refer to a received buffer are gone, the next large message is
// assembled in the same memory (common/buffer_pool.hpp): a frame that arrives in pieces, and a
// fragmented message.
TEST(SharedBinary, ReaderReusesTheBuffersOfLargeMessagesOnceTheirBinariesAreGone) {
    namespace pool = erl::detail::buffer_pool;
    const bytes big = pattern(3 << 20, 5);
    term ctl = erl::tuple(2, erl::atom(""), erl::pid{erl::atom("a@b"), 1, 0, 1});
    term payload = erl::binary(big);
    const std::uint64_t flags = erl::proto::dflag::fragments;
    bytes fragmented;
    erl::proto::dist_writer w(flags);
    w.append_message(fragmented, ctl, &payload);
    ASSERT_GT(w.frames_written(), 1u);
    const bytes whole = pass_through_frame(ctl, payload);

    const bytes* wires[] = {&whole, &fragmented};
    for (const bytes* wire : wires) {
        SCOPED_TRACE(wire == &whole ? "one frame in pieces" : "fragments");
        pool::clear();
        erl::proto::dist_reader r(flags);
        std::vector<erl::proto::dist_message> out;
        std::uintptr_t first = 0;
        for (int round = 0; round < 3; ++round) {
            feed_in_chunks(r, *wire, 64 * 1024, out);
            ASSERT_EQ(out.size(), 1u);
            ASSERT_TRUE(out[0].payload);
            ASSERT_EQ(*out[0].payload, payload);
            ASSERT_TRUE(is_shared_binary(*out[0].payload));
            const auto at = reinterpret_cast<std::uintptr_t>(out[0].payload->as_bytes().data());
            if (round == 0)
                first = at;
            else
                EXPECT_EQ(at, first) << round;
            // While the binary lives its buffer is not in the pool.
            EXPECT_EQ(pool::held_buffers(), 0u);
            out.clear();
            EXPECT_EQ(pool::held_buffers(), 1u);
        }
    }
    pool::clear();
}

}  // namespace

namespace {

// The bytes a gathered output stands for: `out` with each ref's bytes put in at its place.
bytes linearize(const bytes& out, const erl::proto::gathered_output& g) {
    bytes all;
    g.for_each_piece(out, 0, [&](const std::uint8_t* p, std::size_t n) {
        all.insert(all.end(), p, p + n);
        return true;
    });
    return all;
}

}  // namespace

// A writer that leaves large binaries out of its output writes, once they are put back, exactly
// the bytes of one that copies them: with and without fragments (binaries spanning several
// fragments, several in one message, small ones copied), with the atom cache, and messages
// after them; the reader takes those bytes back to the same terms.
TEST(SharedBinary, GatheredWriterOutputIsTheCopyingWritersBytes) {
    using namespace erl::proto;
    const bytes big = pattern(300000, 4), mid = pattern(70000, 6), small = pattern(100, 8);
    const term payload =
        erl::tuple(erl::atom("data"), erl::binary(big),
                   erl::make_list({erl::binary(mid), erl::binary(small)}), erl::binary(big));
    const term ctl = erl::tuple(erl::term(6), erl::pid{erl::atom("a@h"), 1, 2, 3}, erl::atom(""),
                                erl::atom("to"));
    for (std::uint64_t flags : {std::uint64_t{0} | dflag::dist_hdr_atom_cache,
                                dflag::dist_hdr_atom_cache | dflag::fragments}) {
        for (std::size_t fs : {std::size_t{64 * 1024}, std::size_t{1000}}) {
            SCOPED_TRACE(testing::Message() << "flags " << flags << " fragment_size " << fs);
            dist_writer copying(flags, writer_options{fs});
            dist_writer gathering(flags, writer_options{fs});
            gathered_output g;
            gathering.gather_into(&g, 64 * 1024);
            const term tiny = erl::binary(small);
            bytes a, b;
            for (int i = 0; i < 3; ++i) {
                copying.append_message(a, ctl, &payload);
                gathering.append_message(b, ctl, &payload);
                copying.append_message(a, ctl, &tiny);
                gathering.append_message(b, ctl, &tiny);
            }
            EXPECT_FALSE(g.refs.empty());
            std::size_t sum = 0;
            for (const auto& r : g.refs)
                sum += r.size;
            EXPECT_EQ(sum, g.ref_bytes);
            EXPECT_LT(b.size(), a.size() - 6 * 300000);  // the big binaries were left out
            const bytes all = linearize(b, g);
            ASSERT_EQ(all, a);
            dist_reader r(flags, {});
            std::vector<dist_message> msgs;
            std::size_t used = 0;
            ASSERT_FALSE(r.feed(all, msgs, used));
            ASSERT_EQ(msgs.size(), 6u);
            EXPECT_EQ(*msgs[0].payload, payload);
            EXPECT_EQ(*msgs[5].payload, tiny);
        }
    }
}

// Two erlcpp nodes: messages with large binaries between small ones, each binary the size of
// many kernel writes, arrive whole and in order (the direct and the strand writes of a
// gathered output, short writes in the middle of a binary).
TEST(SharedBinary, GatheredSendsBetweenNodesArriveWholeAndInOrder) {
    erl::test::node_pair nodes("gath_a", "gath_b");
    ASSERT_TRUE(nodes.start());
    auto tx = nodes.a.spawn_mailbox();
    auto rx = nodes.b.spawn_mailbox();
    ASSERT_TRUE(tx && rx);
    std::vector<term> sent;
    for (int i = 0; i < 12; ++i)
        sent.push_back(i % 3 == 0 ? erl::tuple(i, erl::binary(pattern(3 << 20, std::uint8_t(i))))
                                  : erl::tuple(i, erl::binary(pattern(10, std::uint8_t(i)))));
    for (const auto& m : sent)
        tx->send(rx->self(), m);
    for (const auto& m : sent) {
        auto got = rx->receive(std::chrono::seconds(30));
        ASSERT_TRUE(got);
        ASSERT_EQ(*got, m);
    }
    nodes.a.stop();
    nodes.b.stop();
}
