// Fuzz target: arbitrary bytes into the distribution frame reader with DIST_HDR_ATOM_CACHE and
// FRAGMENTS negotiated and small limits, fed in chunks. Every decoded message is re-encoded by
// the writer (with and without atom cache / fragments) and decoded again: the result must be
// equal (decoded terms are canonical, so this round trip is exact).
// First input byte: chunk size - 1 (bits 0-5), bit 6: writer fragment size 16 instead of 64 KiB.
// Seeds: tests/fuzz/corpus/dist_frame (valid streams made by the writer, the erl_ext_dist
// fragment example).
#include "proto/dist_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

using namespace erl::proto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    ++data;
    --size;
    const std::size_t chunk = 1 + (mode & 0x3f);
    const std::uint64_t flags = dflag::dist_hdr_atom_cache | dflag::fragments;

    reader_limits lim;
    lim.max_frame_size = 1 << 20;
    lim.max_fragment_sequences = 4;
    lim.max_fragmented_bytes = 1 << 16;
    lim.term_limits.max_depth = 64;
    lim.term_limits.max_size = 1 << 20;
    lim.term_limits.max_bignum_bytes = 1024;
    lim.term_limits.max_uncompressed = 1 << 20;
    dist_reader r(flags, lim);
    std::vector<dist_message> msgs;
    for (std::size_t pos = 0; pos < size; pos += chunk) {
        if (r.feed(std::span(data + pos, std::min(chunk, size - pos)), msgs)) break;
    }

    for (std::uint64_t wflags : {std::uint64_t{0}, flags}) {
        dist_writer w(wflags, writer_options{(mode & 0x40) ? 16u : 65536u});
        std::vector<std::uint8_t> wire;
        for (auto& m : msgs)
            w.append_message(wire, m.control_tuple(), m.payload ? &*m.payload : nullptr);
        dist_reader r2(wflags);
        std::vector<dist_message> again;
        if (r2.feed(wire, again)) __builtin_trap();
        if (again.size() != msgs.size()) __builtin_trap();
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            if (!(again[i].control_tuple() == msgs[i].control_tuple())) __builtin_trap();
            if (again[i].payload.has_value() != msgs[i].payload.has_value()) __builtin_trap();
            if (msgs[i].payload && !(*again[i].payload == *msgs[i].payload)) __builtin_trap();
        }
    }
    return 0;
}
