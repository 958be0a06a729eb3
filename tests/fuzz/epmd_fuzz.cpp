// Fuzz target for the epmd daemon's request parser (and the client's reply readers): arbitrary
// bytes, delivered in arbitrary pieces, must never crash, hang or read out of bounds, and a
// request that parses must survive an encode/parse round trip.
#include <cstddef>
#include <cstdint>
#include <span>

#include "epmd/codec.hpp"
#include "epmd/registry.hpp"

using namespace erl::epmd::detail;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// Feeds `data` in pieces whose sizes come from `step` (1..16).
template <class Reader>
void feed_in_pieces(Reader& r, std::span<const std::uint8_t> data, std::uint8_t step) {
    std::size_t piece = (step % 16) + 1;
    for (std::size_t off = 0; off < data.size(); off += piece)
        r.feed(data.subspan(off, std::min(piece, data.size() - off)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t step = data[0];
    std::span<const std::uint8_t> in(data + 1, size - 1);

    // Server side: one framed request, in pieces, as the daemon reads it.
    request_reader reader;
    std::size_t used = 0, piece = (step % 16) + 1;
    while (used < in.size() && reader.state() == read_state::need_more) {
        std::size_t n = std::min(piece, in.size() - used);
        std::size_t took = reader.feed(in.subspan(used, n));
        check(took <= n);
        used += took;
        if (took < n) break;
    }
    check(reader.buffered() < max_request_size);
    if (reader.state() == read_state::done) {
        registry reg(5, [] { return 1234u; });
        const request& req = reader.value();
        if (auto* a = std::get_if<alive2_request>(&req)) {
            if (!alive2_acceptable(a->info)) {
                // Well formed but refused (the daemon sends an error reply). An empty name is
                // only well formed with bytes after Elen, so it does not round-trip.
                check(!reg.add(a->info, 1).has_value());
            } else {
                // Round trip: what we parsed encodes to a request that parses to the same node.
                auto again = parse_request(
                    std::span<const std::uint8_t>(encode_alive2_request(a->info)).subspan(2));
                check(again.has_value() && std::get<alive2_request>(*again).info == a->info);
                auto c = reg.add(a->info, 1);
                check(c.has_value());
                check(!reg.add(a->info, 2).has_value());  // the name is now taken
                auto reply = encode_alive2_reply(true, *c, a->info.highest);
                alive2_reply_reader rr;
                rr.feed(reply);
                check(rr.state() == read_state::done && rr.value().result == 0);
                auto port = encode_port2_reply(a->info);
                port2_reply_reader pr;
                feed_in_pieces(pr, port, step);
                check(pr.state() == read_state::done && pr.value() == a->info);
                check(reg.remove_by_conn(1).has_value());
            }
        } else if (auto* p = std::get_if<port_please2_request>(&req)) {
            check(valid_node_name(p->name));
            check(reg.find(p->name) == nullptr);
        }
    }

    // Client side: the same bytes as replies must be handled without harm.
    alive2_reply_reader ar;
    feed_in_pieces(ar, in, step);
    port2_reply_reader pr;
    feed_in_pieces(pr, in, step);
    names_reply_reader nr;
    feed_in_pieces(nr, in, step);
    nr.finish();
    return 0;
}
