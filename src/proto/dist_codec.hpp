// Sans-io distribution framing after the handshake (erl_dist_protocol "Protocol between
// Connected Nodes", erl_ext_dist "Distribution Header").
//
// Frame = Len:32 + data; Len 0 is a tick. Data is one of
//   112 'p', 131 Control, [131 Payload]                          pass-through (no header)
//   131 68 AtomCacheHeader Control [Payload]                       normal distribution header
//   131 69 SeqId:64 FragId:64 AtomCacheHeader Control [Payload...] first fragment
//   131 70 SeqId:64 FragId:64 PayloadBytes...                      later fragments (FragId
//                                                                  counts down to 1)
// After a 68/69 header, terms carry no 131 byte and may use ATOM_CACHE_REF (82).
//
// dist_reader turns received bytes into {control, payload} messages; dist_writer turns them into
// frames. Neither touches a socket. Both are per connection and not thread-safe: the runtime
// serializes calls (one strand per connection).
#pragma once

#include <erl/error.hpp>
#include <erl/etf.hpp>
#include <erl/term.hpp>

#include "common/buffer_pool.hpp"
#include "etf/etf_internal.hpp"
#include "proto/dist_flags.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace erl::proto {

// Control message opcodes (erts dist.h enum dop; erl_dist_protocol "control_message").
namespace dop {
inline constexpr int link = 1;
inline constexpr int send = 2;
inline constexpr int exit = 3;
inline constexpr int unlink = 4;
inline constexpr int reg_send = 6;
inline constexpr int group_leader = 7;
inline constexpr int exit2 = 8;
inline constexpr int send_tt = 12;
inline constexpr int exit_tt = 13;
inline constexpr int reg_send_tt = 16;
inline constexpr int exit2_tt = 18;
inline constexpr int monitor_p = 19;
inline constexpr int demonitor_p = 20;
inline constexpr int monitor_p_exit = 21;
inline constexpr int send_sender = 22;
inline constexpr int send_sender_tt = 23;
inline constexpr int payload_exit = 24;
inline constexpr int payload_exit_tt = 25;
inline constexpr int payload_exit2 = 26;
inline constexpr int payload_exit2_tt = 27;
inline constexpr int payload_monitor_p_exit = 28;
inline constexpr int spawn_request = 29;
inline constexpr int spawn_request_tt = 30;
inline constexpr int spawn_reply = 31;
inline constexpr int spawn_reply_tt = 32;
inline constexpr int alias_send = 33;
inline constexpr int alias_send_tt = 34;
inline constexpr int unlink_id = 35;
inline constexpr int unlink_id_ack = 36;
// True for the control messages that are followed by a payload term (message, exit reason,
// spawn argument list).
bool carries_payload(int op) noexcept;
}  // namespace dop

// The bytes that open a frame's data (see the top of this file) and the atom cache's size.
namespace frame_byte {
inline constexpr std::uint8_t pass_through = 112;
inline constexpr std::uint8_t version_magic = etf::tag::version;
// Normal header, first fragment, later fragments.
inline constexpr std::uint8_t dist_header = 68, dist_frag_header = 69, dist_frag_cont = 70;
}  // namespace frame_byte
inline constexpr std::size_t atom_cache_size = 2048;  // 8 segments x 256 entries

// Where a plain message goes, read off its control tuple without building the tuple: SEND
// {2, '', To}, SEND_SENDER {22, From, To} and REG_SEND {6, From, '', ToName} whose pids are
// NEW_PID_EXT and whose atoms are atom cache references (how OTP and erlcpp send them with
// the atom cache on). op is -1 for every other message.
struct dist_route {
    int op = -1;
    pid from;      // SEND_SENDER, REG_SEND
    pid to;        // SEND, SEND_SENDER
    atom to_name;  // REG_SEND
};

// One received distribution message. The payload is decoded eagerly. Either `control` holds
// the control tuple, or (route.op >= 0) `route` holds what it said and `control` is empty.
struct dist_message {
    term control;
    std::optional<term> payload;
    dist_route route;

    // The control tuple, built from `route` if the reader did not build it.
    term control_tuple() const;
};

struct reader_limits {
    // Largest frame (Len field) accepted; larger -> errc::frame_too_large.
    std::size_t max_frame_size = std::size_t{128} << 20;
    // Fragmented messages being reassembled at once, and their total buffered bytes; above
    // either -> errc::limit_exceeded.
    std::size_t max_fragment_sequences = 64;
    std::size_t max_fragmented_bytes = std::size_t{128} << 20;
    // The buffered bytes of every reader sharing `fragmented_total` (a node's connections)
    // together; a fragment that would take them above max_fragmented_total is refused before
    // it is copied (errc::limit_exceeded). Null: no shared bound.
    std::atomic<std::size_t>* fragmented_total = nullptr;
    std::size_t max_fragmented_total = SIZE_MAX;
    // Largest reassembled fragmented message; larger -> errc::frame_too_large (so a message
    // size limit holds whether or not the peer fragments). Also caps what a compressed term
    // may inflate to (term_limits.max_uncompressed).
    std::size_t max_message_size = SIZE_MAX;
    etf::limits term_limits{};
    // Messages whose frame data exceeds this many bytes, or that hold a compressed term, are
    // not decoded by feed(std::span, out, consumed): it stops after their frame and leaves them
    // as a deferred_message for the caller to decode elsewhere (the runtime's decode workers),
    // so that one huge term does not hold up the thread that reads every other connection.
    // SIZE_MAX: everything is decoded in feed().
    std::size_t offload_above = SIZE_MAX;
    // Binaries of at least this many bytes (and at least a quarter of their frame) in a frame
    // the reader had to buffer (one longer than a chunk fed to it, or reassembled from
    // fragments) are not copied: they refer to the frame's buffer, which lives as long as they
    // do (etf::sharing). SIZE_MAX: always copied.
    std::size_t min_shared_binary = 64 * 1024;
};

// A message whose decoding the reader left to its caller (reader_limits::offload_above). Its
// header (and so the atom cache) has been applied in stream order; what is left is pure term
// decoding, which decode_deferred() does on any thread.
struct deferred_message {
    std::vector<std::uint8_t> storage;  // owns the bytes below
    std::size_t offset = 0;             // where the terms start in storage
    std::vector<atom> refs;             // the header's atom cache references, resolved
    bool pass_through = false;          // 112 framing: each term has its 131 version byte
    // Decoded already when only the payload was left (a compressed payload after a small
    // control): then storage[offset..] is the payload alone.
    std::optional<term> control;
    // reader_limits::min_shared_binary of the reader that deferred it.
    std::size_t min_shared_binary = SIZE_MAX;
    std::size_t size() const noexcept { return storage.size() - offset; }
};

// Decodes a deferred message with the same checks the reader applies (control opcode,
// payload present when the opcode carries one, no trailing bytes). Thread-safe: it uses only
// its arguments (and the atom table, and `limits.inflating`). Large binaries of the payload may
// take over m.storage (then left empty) instead of copying it.
error_code decode_deferred(deferred_message& m, const etf::limits& limits, dist_message& out);

class dist_reader {
  public:
    // Flags are informational: the reader accepts pass-through, header and fragment frames
    // whatever was negotiated (OTP only sends what was negotiated).
    explicit dist_reader(std::uint64_t negotiated_flags = 0, reader_limits limits = {});
    ~dist_reader();  // gives its buffered fragment bytes back to limits.fragmented_total
    dist_reader(const dist_reader&) = delete;
    dist_reader& operator=(const dist_reader&) = delete;

    // Consumes all of `in`: every complete frame is parsed and its message (if any — ticks and
    // non-final fragments produce none) appended to `out`, in order; a trailing partial frame
    // is buffered internally. Any violation returns an error and the reader stays failed (the
    // runtime must close the connection); messages decoded before the bad frame stay in `out`.
    error_code feed(std::span<const std::uint8_t> in, std::vector<dist_message>& out);
    // The same, except that it stops after a frame whose message it deferred
    // (reader_limits::offload_above): `consumed` says how much of `in` it used (all of it when
    // nothing was deferred), take_deferred() gives the message, and the caller feeds the rest
    // of `in` once it has handled it, so messages stay in stream order.
    error_code feed(std::span<const std::uint8_t> in, std::vector<dist_message>& out,
                    std::size_t& consumed);
    bool has_deferred() const noexcept { return deferred_.has_value(); }
    deferred_message take_deferred();

    // Parses the data of one frame (without its Len:32 prefix; empty = tick).
    error_code parse_frame(std::span<const std::uint8_t> data, std::vector<dist_message>& out);

    // Counters: frames (including ticks) and ticks received.
    std::uint64_t frames_received() const noexcept { return frames_; }
    std::uint64_t ticks_received() const noexcept { return ticks_; }
    // Reassembly state (for tests and metrics).
    std::size_t sequences_in_flight() const noexcept { return seqs_.size(); }
    std::size_t fragmented_bytes() const noexcept { return frag_bytes_; }
    // After errc::limit_exceeded: the reader_limits field that was exceeded
    // ("max_fragment_sequences", "max_fragmented_bytes" or "max_fragmented_total").
    std::string_view exceeded_limit() const noexcept { return exceeded_; }
    // Drops all reassembly state and the partial frame (on disconnect). The atom cache is kept:
    // create a new reader for a new connection.
    void reset();

  private:
    struct sequence {
        std::vector<atom> refs;
        std::vector<std::uint8_t> data;
        std::uint64_t next_id = 0;  // fragment id expected next
        std::size_t reserved = 0;   // data's capacity reserved ahead (counted in frag_reserved_)
    };
    error_code fail(error_code ec);
    // Reserves n more buffered fragment bytes against both bounds (limit_exceeded if not).
    error_code take_fragment_bytes(std::size_t n);
    void give_fragment_bytes(std::size_t n) noexcept;
    error_code parse_header(std::span<const std::uint8_t>& in, std::vector<atom>& refs);
    // `owner`, when not null, is the vector `body` lies in (it may be moved into a deferred
    // message instead of copying).
    error_code decode_message(std::span<const std::uint8_t> body, std::span<const atom> refs,
                              std::vector<dist_message>& out, std::vector<std::uint8_t>* owner);
    error_code parse_pass_through(std::span<const std::uint8_t> in, std::vector<dist_message>& out,
                                  std::vector<std::uint8_t>* owner);
    error_code parse_frame_owned(std::span<const std::uint8_t> data, std::vector<dist_message>& out,
                                 std::vector<std::uint8_t>* owner);
    // Decodes the deferred message itself and appends it (the forms that do not defer).
    error_code decode_deferred_here(std::vector<dist_message>& out);
    bool offloading() const noexcept { return limits_.offload_above != SIZE_MAX; }
    // Leaves `bytes` (from `owner` if given, else copied) for decode_deferred.
    void defer(std::span<const std::uint8_t> bytes, std::vector<std::uint8_t>* owner,
               std::span<const atom> refs, bool pass_through, std::optional<term> control);

    // First member, so it ends last: what the destructor gives back reaches the pool while
    // this reader still counts as one of its users.
    erl::detail::buffer_pool::user pool_user_;
    std::uint64_t flags_;
    reader_limits limits_;
    // The receive atom cache: 8 segments of 256 entries, each made when the peer first puts an
    // atom in it (a connection that never uses a segment does not hold its 2 KiB).
    std::array<std::unique_ptr<atom[]>, atom_cache_size / 256> cache_;
    std::vector<std::uint8_t> partial_;  // incomplete frame, including its Len bytes
    std::unordered_map<std::uint64_t, sequence> seqs_;
    std::size_t frag_bytes_ = 0;
    std::size_t frag_reserved_ = 0;  // capacity reserved ahead by the sequences in seqs_
    std::string_view exceeded_;
    std::vector<atom> refs_scratch_;
    std::uint64_t frames_ = 0;
    std::uint64_t ticks_ = 0;
    error_code error_;
    std::optional<deferred_message> deferred_;
};

struct writer_options {
    // Messages whose header + control + payload exceed this are split into fragments when
    // FRAGMENTS was negotiated (ERTS_DIST_FRAGMENT_SIZE in dist.h is 64 KiB). The control term
    // always stays in the first fragment.
    std::size_t fragment_size = 64 * 1024;
};

// Output with the bytes of large binaries left where they are (gathered writes): `bytes`, and
// the binaries' bytes that go between them. Each ref belongs before bytes[at] (refs in output
// order, several may share an `at`) and holds the term its bytes are in.
struct gathered_output {
    struct ref {
        std::size_t at;
        const std::uint8_t* data;
        std::size_t size;
        term owner;
    };
    std::vector<ref> refs;
    std::size_t ref_bytes = 0;  // sum of refs' sizes

    // The output in order from bytes[from]: piece(data, size) for each run of `bytes` and each
    // ref between them, until piece returns false.
    template <class Piece>
    void for_each_piece(const std::vector<std::uint8_t>& bytes, std::size_t from,
                        Piece&& piece) const {
        for (const auto& r : refs) {
            if (r.at > from && !piece(bytes.data() + from, r.at - from)) return;
            from = r.at;
            if (!piece(r.data, r.size)) return;
        }
        if (from < bytes.size()) piece(bytes.data() + from, bytes.size() - from);
    }
    // The first n bytes of the output from bytes[head] were written: head moves past the
    // written bytes of `bytes`, refs written whole leave, a ref written in part keeps its rest.
    void consume(std::size_t& head, std::size_t bytes_size, std::size_t n) {
        std::size_t done = 0;
        while (n > 0) {
            if (done < refs.size() && head == refs[done].at) {
                auto& r = refs[done];
                const std::size_t m = std::min(n, r.size);
                r.data += m;
                r.size -= m;
                ref_bytes -= m;
                n -= m;
                if (r.size == 0) ++done;
                continue;
            }
            const std::size_t stop = done < refs.size() ? refs[done].at : bytes_size;
            const std::size_t m = std::min(n, stop - head);
            head += m;
            n -= m;
        }
        refs.erase(refs.begin(), refs.begin() + static_cast<std::ptrdiff_t>(done));
    }
    void clear() noexcept {
        refs.clear();
        ref_bytes = 0;
    }
};

class dist_writer {
  public:
    explicit dist_writer(std::uint64_t negotiated_flags, writer_options opts = {});

    // Appends one complete message (one frame, or several for fragments) to `out`.
    // With DIST_HDR_ATOM_CACHE or FRAGMENTS negotiated a 131 68 header is used (atom cache refs
    // only with DIST_HDR_ATOM_CACHE), else 112 pass-through. Never fails: terms are valid by
    // construction.
    void append_message(std::vector<std::uint8_t>& out, const term& control,
                        const term* payload = nullptr);
    // The same for the two commonest messages, without building their control tuples:
    // SEND_SENDER {22, From, To} (or SEND {2, '', To} when `send_sender` is false) and
    // REG_SEND {6, From, '', ToName}. Byte-identical to append_message with those tuples.
    void append_send(std::vector<std::uint8_t>& out, const term& from, const pid& to,
                     const term& payload, bool send_sender);
    void append_reg_send(std::vector<std::uint8_t>& out, const term& from, atom to_name,
                         const term& payload);
    // The 4-byte zero length (tick).
    static void append_tick(std::vector<std::uint8_t>& out);

    // From now on, binaries of at least min_bytes in payloads (with a distribution header, not
    // pass-through) are not copied into `out`: they are appended to `into` as refs at their
    // place in `out` (the output's owner writes both with one gathered write). nullptr: copied.
    void gather_into(gathered_output* into, std::size_t min_bytes) noexcept {
        gather_ = into;
        gather_min_ = min_bytes;
    }

    std::uint64_t fragmented_messages() const noexcept { return next_seq_ - 1; }
    // Counters: messages appended, and the frames they took (a fragmented message takes one
    // per fragment). Ticks are static (append_tick) and not counted here.
    std::uint64_t messages_written() const noexcept { return messages_; }
    std::uint64_t frames_written() const noexcept { return frames_; }

  private:
    class cache;
    struct cache_deleter {
        void operator()(cache*) const noexcept;
    };
    void write_cache_header(std::vector<std::uint8_t>& out);
    // append_message in two halves: the control term is written into body_ (after
    // begin_body) by the caller, then finish_message adds the payload and frames it all.
    bool begin_body(std::vector<std::uint8_t>& out);
    void finish_message(std::vector<std::uint8_t>& out, std::size_t len_at, const term* payload);
    void put_atom(atom a);

    std::uint64_t flags_;
    writer_options opts_;
    std::unique_ptr<cache, cache_deleter> cache_;  // only with DIST_HDR_ATOM_CACHE
    std::vector<std::uint8_t> body_;               // scratch: encoded control + payload
    std::vector<std::uint8_t> hdr_;                // scratch: cache header of one message
    bool pass_through_ = false;                    // the message being built has no header
    gathered_output* gather_ = nullptr;
    std::size_t gather_min_ = SIZE_MAX;
    std::vector<etf::detail::byte_ref> body_refs_;  // scratch: binaries left out of body_
    std::uint64_t next_seq_ = 1;
    std::uint64_t messages_ = 0;
    std::uint64_t frames_ = 0;
};

}  // namespace erl::proto
