// Sans-io distribution handshake (erl_dist_protocol "Distribution Handshake", version 6), both
// roles. The object never touches a socket: the transport feeds it received bytes and writes
// out whatever take_output() returns. Timeouts (net_setuptime) are the transport's job.
//
//   initiator (A)                         acceptor (B)
//   send_name 'N' ------------------------>
//             <------------------------ 's' status       (status callback decides)
//   ['s' "true"/"false" if status was alive ->]
//             <------------------------ 'N' challenge
//                                        ['c' complement, only after an old 'n' send_name]
//   'r' challenge+digest ------------------>
//             <------------------------ 'a' digest
//
// Every message is framed with a 2-byte big-endian length (4-byte inside TLS, see
// handshake_config::four_byte_lengths). feed() consumes exactly the bytes of handshake messages:
// bytes after the final message already belong to the distribution stream and are left
// unconsumed for the frame reader.
//
// Thread safety: none; one object per connection, used from one strand.
#pragma once

#include <erl/error.hpp>

#include "proto/dist_flags.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace erl::proto {

enum class handshake_role : std::uint8_t { initiator, acceptor };

// Status the acceptor sends after send_name ('s' + text).
enum class handshake_status : std::uint8_t {
    ok,               // "ok": continue
    ok_simultaneous,  // "ok_simultaneous": continue; we abort our own pending attempt
    nok,              // "nok": simultaneous connect, our own attempt wins; handshake ends
    not_allowed,      // "not_allowed": refused (allow-list, missing flags)
    alive,            // "alive": we already have a connection to this node; ask A
};

const char* to_string(handshake_status s) noexcept;

// OTP's simultaneous-connect rule (net_kernel handle_info({accept_pending,...})): when a node
// accepting a connection from Peer already has its own pending outgoing attempt to Peer, it
// compares the two node names as atoms (byte-wise on the UTF-8 text, shorter prefix first):
//   our_name > peer_name  -> our outgoing attempt wins: answer "nok" to the incoming one;
//   otherwise             -> abort our outgoing attempt and answer "ok_simultaneous".
// The initiator whose attempt got "nok" just waits to be torn down (its peer's attempt is
// arriving as an incoming connection). Returns true when our outgoing attempt wins.
bool we_win_simultaneous(std::string_view our_name, std::string_view peer_name) noexcept;

// Name, flags and creation announced by the peer in send_name (acceptor side). After an old
// version-5 'n' send_name the flags are the low 32 bits only and the creation is 0 (both are
// completed by the 'c' message; the final values are in peer_flags()/peer_creation()).
using status_callback = std::function<handshake_status(
    std::string_view peer_name, std::uint64_t peer_flags, std::uint32_t peer_creation)>;

// Initiator: B answered "alive". Return true to continue ("the old connection is broken"),
// false to give up ("the attempt was a mistake"). dist_util answers net_kernel:is_pending/1.
using alive_callback = std::function<bool(std::string_view peer_name)>;

struct handshake_config {
    handshake_role role = handshake_role::initiator;
    std::string our_name;  // full node name, name@host
    std::uint32_t our_creation = 0;
    std::string cookie;
    // Flags we send; default: dflag::default_advertised(false). Set PUBLISHED off for hidden.
    std::uint64_t our_flags = dflag::default_advertised(false);
    // The peer must have all of these (after MANDATORY_25_DIGEST expansion) or the handshake
    // fails with errc::missing_flags (acceptor first sends 's' "not_allowed", as dist_util
    // check_dflags/2 does). OTP 25 itself requires exactly dflag::mandatory_25.
    std::uint64_t required_flags = dflag::mandatory_25;
    // Initiator: the node we dialed; the challenge must carry exactly this name.
    std::string peer_name;
    // 4-byte message lengths (handshake inside TLS, inet_tls_dist) instead of 2-byte ones.
    bool four_byte_lengths = false;
    // Acceptor: decides the status. If empty, the handshake pauses (awaiting_status()) until
    // provide_status() is called — for runtimes that decide asynchronously.
    status_callback on_peer_name;
    // Initiator: answers "alive". If empty, the handshake pauses (awaiting_alive_answer())
    // until answer_alive() is called.
    alive_callback on_alive;
    // Challenge source; default: OpenSSL RAND_bytes (CSPRNG). Tests inject fixed values.
    std::function<std::uint32_t()> challenge_source;
    // Largest accepted handshake message (a send_name with a 255-byte name is ~270 bytes).
    std::size_t max_message_size = 4096;
};

class handshake {
  public:
    explicit handshake(handshake_config cfg);

    // Initiator: queues send_name. Acceptor: no-op (waits for send_name). Call once.
    void start();

    // Consumes handshake messages from `in`; `consumed` is set to the number of bytes used (a
    // partial message is buffered internally and counted as consumed; bytes after the final
    // message are not consumed). Returns the failure, if any (also available as error()).
    // After a failure take_output() may still hold a last status message worth sending.
    error_code feed(std::span<const std::uint8_t> in, std::size_t& consumed);

    // Bytes to write to the peer (moves them out).
    std::vector<std::uint8_t> take_output();
    bool has_output() const noexcept { return !out_.empty(); }

    // Asynchronous decisions (only when the corresponding callback is empty).
    bool awaiting_status() const noexcept { return state_ == state::need_status; }
    void provide_status(handshake_status s);
    bool awaiting_alive_answer() const noexcept { return state_ == state::need_alive_answer; }
    void answer_alive(bool proceed);
    // Replaces the cookie before any digest is computed, e.g. from the acceptor's status
    // callback once the peer's name is known (per-peer cookies, erlang:set_cookie/2).
    void set_cookie(std::string cookie) { cfg_.cookie = std::move(cookie); }

    bool done() const noexcept { return state_ == state::done; }
    bool failed() const noexcept { return state_ == state::failed; }

    // Results (valid once done()).
    const std::string& peer_name() const noexcept { return peer_name_; }
    std::uint64_t peer_flags() const noexcept { return peer_flags_; }  // as sent (expanded)
    std::uint64_t negotiated_flags() const noexcept { return our_flags_ & peer_flags_; }
    std::uint32_t peer_creation() const noexcept { return peer_creation_; }
    // The peer sent the old version-5 'n' send_name (+ 'c' complement).
    bool peer_used_v5_name() const noexcept { return v5_peer_; }
    // Status B sent / we sent (ok_simultaneous tells A that B aborted its own attempt).
    handshake_status status() const noexcept { return status_; }

    error_code error() const noexcept { return error_; }
    const std::string& reason() const noexcept { return reason_; }

  private:
    enum class state : std::uint8_t {
        idle,
        // initiator
        await_status,
        need_alive_answer,
        await_challenge,
        await_ack,
        // acceptor
        await_name,
        need_status,
        await_alive_reply,
        await_complement,
        await_reply,
        done,
        failed,
    };

    error_code on_message(std::span<const std::uint8_t> msg);
    error_code on_status(std::span<const std::uint8_t> msg);
    error_code on_challenge(std::span<const std::uint8_t> msg);
    error_code on_ack(std::span<const std::uint8_t> msg);
    error_code on_name(std::span<const std::uint8_t> msg);
    error_code on_alive_reply(std::span<const std::uint8_t> msg);
    error_code on_complement(std::span<const std::uint8_t> msg);
    error_code on_reply(std::span<const std::uint8_t> msg);
    error_code apply_status(handshake_status s);
    error_code send_challenge();
    error_code fail(errc e, std::string reason);
    void send_message(std::span<const std::uint8_t> body);
    void send_status_text(std::string_view text);
    std::uint32_t new_challenge();
    std::uint64_t missing_flags(std::uint64_t peer_flags, bool low_32_only) const noexcept;

    handshake_config cfg_;
    state state_ = state::idle;
    std::vector<std::uint8_t> in_;   // partial message
    std::vector<std::uint8_t> out_;  // pending output
    std::string peer_name_;
    std::uint64_t our_flags_ = 0;
    std::uint64_t peer_flags_ = 0;
    std::uint32_t peer_creation_ = 0;
    std::uint32_t our_challenge_ = 0;
    bool v5_peer_ = false;
    handshake_status status_ = handshake_status::ok;
    error_code error_;
    std::string reason_;
};

namespace detail {
// MD5(cookie ++ decimal(challenge)), as dist_util:gen_digest/2.
std::array<std::uint8_t, 16> handshake_digest(std::uint32_t challenge, std::string_view cookie);
}  // namespace detail

}  // namespace erl::proto
