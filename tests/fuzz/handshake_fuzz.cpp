// Fuzz target: arbitrary bytes into the distribution handshake, as acceptor or as initiator at
// several points of the exchange, in chunks of varying size. The first input byte selects:
//   bit 0      role (0 acceptor, 1 initiator)
//   bits 1-2   initiator: how far the exchange is driven with valid messages first
//              (0 just started, 1 after 's' ok, 2 after a valid challenge);
//              acceptor: the status its callback returns (ok, ok_simultaneous, alive, nok)
//   bit 3      4-byte lengths (TLS) instead of 2-byte
//   bits 4-7   chunk size - 1
// Seeds: tests/fuzz/corpus/handshake (complete valid exchanges).
#include "proto/handshake.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

using namespace erl::proto;

namespace {

std::vector<std::uint8_t> framed(std::vector<std::uint8_t> body, bool four) {
    std::vector<std::uint8_t> v;
    if (four) {
        v.push_back(0);
        v.push_back(0);
    }
    v.push_back(static_cast<std::uint8_t>(body.size() >> 8));
    v.push_back(static_cast<std::uint8_t>(body.size()));
    v.insert(v.end(), body.begin(), body.end());
    return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    ++data;
    --size;
    const bool initiator = mode & 1;
    const unsigned stage = (mode >> 1) & 3;
    const bool four = mode & 8;
    const std::size_t chunk = 1 + (mode >> 4);

    handshake_config c;
    c.role = initiator ? handshake_role::initiator : handshake_role::acceptor;
    c.our_name = initiator ? "a@host" : "b@host";
    c.peer_name = "b@host";
    c.our_creation = 5;
    c.cookie = "cookie";
    c.four_byte_lengths = four;
    c.max_message_size = 1024;
    c.challenge_source = [] { return 0x01020304u; };
    c.on_alive = [](std::string_view) { return true; };
    static constexpr handshake_status statuses[] = {handshake_status::ok,
                                                    handshake_status::ok_simultaneous,
                                                    handshake_status::alive, handshake_status::nok};
    const handshake_status st = statuses[stage];
    c.on_peer_name = [st](std::string_view, std::uint64_t, std::uint32_t) { return st; };
    handshake hs(c);
    hs.start();
    (void)hs.take_output();

    if (initiator && stage >= 1) {
        std::size_t used = 0;
        hs.feed(framed({'s', 'o', 'k'}, four), used);
        if (stage >= 2) {
            std::vector<std::uint8_t> ch{'N'};
            for (int i = 0; i < 8; ++i)
                ch.push_back(static_cast<std::uint8_t>(dflag::mandatory_26 >> (56 - 8 * i)));
            for (std::uint8_t b : {0, 0, 0, 9, 0, 0, 0, 1, 0, 6})
                ch.push_back(b);
            for (char ch2 : std::string_view("b@host"))
                ch.push_back(static_cast<std::uint8_t>(ch2));
            hs.feed(framed(ch, four), used);
        }
        (void)hs.take_output();
    }

    std::size_t pos = 0;
    while (pos < size && !hs.failed() && !hs.done()) {
        const std::size_t n = std::min(chunk, size - pos);
        std::size_t used = 0;
        hs.feed(std::span(data + pos, n), used);
        if (used > n) __builtin_trap();
        (void)hs.take_output();
        pos += n;
    }
    // Results must be readable in any state.
    (void)hs.peer_name().size();
    (void)hs.negotiated_flags();
    (void)hs.reason().size();
    return 0;
}
