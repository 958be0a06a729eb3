// Distribution handshake state machine. Message layouts follow erl_dist_protocol
// "The Handshake in Detail"; acceptance rules follow lib/kernel/src/dist_util.erl (OTP 25.3+).
#include "proto/handshake.hpp"

#include "common/byte_order.hpp"
#include "common/enum_names.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <random>

namespace erl::proto {

namespace {

using namespace erl::detail::byte_order;

std::string_view as_text(std::span<const std::uint8_t> s) noexcept {
    return {reinterpret_cast<const char*>(s.data()), s.size()};
}

// dist_util:is_name_ok/2 for static names: exactly one '@', both parts non-empty.
bool valid_node_name(std::string_view n) noexcept {
    auto at = n.find('@');
    return at != std::string_view::npos && at > 0 && at + 1 < n.size() &&
           n.find('@', at + 1) == std::string_view::npos;
}

constexpr std::size_t max_name_bytes = 1024;  // node names are atoms (<= 255 chars)

constexpr const char* status_names[] = {"ok", "ok_simultaneous", "nok", "not_allowed", "alive"};
static_assert(erl::detail::names_each(status_names, handshake_status::ok, handshake_status::alive));

}  // namespace

namespace detail {

std::array<std::uint8_t, 16> handshake_digest(std::uint32_t challenge, std::string_view cookie) {
    // dist_util:gen_digest/2: erlang:md5([atom_to_list(Cookie) | integer_to_list(Challenge)]),
    // the challenge being the unsigned 32-bit value in decimal.
    char num[16];
    auto r = std::to_chars(num, num + sizeof num, challenge);
    std::array<std::uint8_t, 16> md{};
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1 &&
        EVP_DigestUpdate(ctx, cookie.data(), cookie.size()) == 1 &&
        EVP_DigestUpdate(ctx, num, static_cast<std::size_t>(r.ptr - num)) == 1) {
        EVP_DigestFinal_ex(ctx, md.data(), &len);
    }
    EVP_MD_CTX_free(ctx);
    return md;
}

}  // namespace detail

const char* to_string(handshake_status s) noexcept {
    return erl::detail::enum_name(s, status_names, "ok");
}

bool we_win_simultaneous(std::string_view our_name, std::string_view peer_name) noexcept {
    // Atoms compare by their UTF-8 bytes as unsigned values, a proper prefix first
    // (erts_cmp_atoms); string_view comparison is exactly that.
    return our_name > peer_name;
}

handshake::handshake(handshake_config cfg) : cfg_(std::move(cfg)) {
    // NAME_ME would request a dynamic name, which we never do.
    our_flags_ = cfg_.our_flags & ~dflag::name_me;
}

std::uint32_t handshake::new_challenge() {
    if (cfg_.challenge_source) return cfg_.challenge_source();
    std::uint8_t b[4];
    if (RAND_bytes(b, sizeof b) != 1) {
        // RAND_bytes only fails when the CSPRNG cannot be seeded; fall back to the OS source.
        std::random_device rd;
        return static_cast<std::uint32_t>(rd());
    }
    return load_be32(b);
}

std::uint64_t handshake::missing_flags(std::uint64_t peer_flags, bool low_32_only) const noexcept {
    std::uint64_t req = cfg_.required_flags;
    // An old 'n' send_name only carries the low 32 bits; dist_util checks those first and the
    // rest after the complement.
    if (low_32_only) req &= 0xffffffffu;
    return req & ~dflag::expand_mandatory_25(peer_flags);
}

void handshake::send_message(std::span<const std::uint8_t> body) {
    if (cfg_.four_byte_lengths)
        append_be32(out_, static_cast<std::uint32_t>(body.size()));
    else
        append_be16(out_, static_cast<std::uint16_t>(body.size()));
    out_.insert(out_.end(), body.begin(), body.end());
}

void handshake::send_status_text(std::string_view text) {
    std::vector<std::uint8_t> m;
    m.push_back('s');
    m.insert(m.end(), text.begin(), text.end());
    send_message(m);
}

error_code handshake::fail(errc e, std::string reason) {
    state_ = state::failed;
    error_ = make_error_code(e);
    reason_ = std::move(reason);
    return error_;
}

void handshake::start() {
    if (state_ != state::idle) return;
    if (cfg_.role == handshake_role::acceptor) {
        state_ = state::await_name;
        return;
    }
    // send_name (version 6): 'N' Flags:64 Creation:32 Nlen:16 Name.
    if (cfg_.our_name.size() > 0xffff) {
        fail(errc::handshake_failed, "our node name is too long");
        return;
    }
    std::vector<std::uint8_t> m;
    m.push_back('N');
    append_be64(m, our_flags_);
    append_be32(m, cfg_.our_creation);
    append_be16(m, static_cast<std::uint16_t>(cfg_.our_name.size()));
    m.insert(m.end(), cfg_.our_name.begin(), cfg_.our_name.end());
    send_message(m);
    state_ = state::await_status;
}

std::vector<std::uint8_t> handshake::take_output() {
    std::vector<std::uint8_t> r;
    r.swap(out_);
    return r;
}

error_code handshake::feed(std::span<const std::uint8_t> in, std::size_t& consumed) {
    consumed = 0;
    const std::size_t hl = cfg_.four_byte_lengths ? 4 : 2;
    while (true) {
        switch (state_) {
            case state::done:
            case state::need_status:
            case state::need_alive_answer:
            case state::idle:
                return {};
            case state::failed:
                return error_;
            default:
                break;
        }
        while (in_.size() < hl && consumed < in.size())
            in_.push_back(in[consumed++]);
        if (in_.size() < hl) return {};
        std::size_t len = hl == 4 ? load_be32(in_.data()) : load_be16(in_.data());
        if (len == 0) return fail(errc::bad_handshake_message, "empty handshake message");
        if (len > cfg_.max_message_size)
            return fail(errc::bad_handshake_message, "handshake message too large");
        std::size_t need = hl + len - in_.size();
        std::size_t take = std::min(need, in.size() - consumed);
        in_.insert(in_.end(), in.begin() + static_cast<std::ptrdiff_t>(consumed),
                   in.begin() + static_cast<std::ptrdiff_t>(consumed + take));
        consumed += take;
        if (in_.size() < hl + len) return {};
        std::vector<std::uint8_t> msg(in_.begin() + static_cast<std::ptrdiff_t>(hl), in_.end());
        in_.clear();
        if (auto ec = on_message(msg)) return ec;
    }
}

error_code handshake::on_message(std::span<const std::uint8_t> msg) {
    switch (state_) {
        case state::await_status:
            return on_status(msg);
        case state::await_challenge:
            return on_challenge(msg);
        case state::await_ack:
            return on_ack(msg);
        case state::await_name:
            return on_name(msg);
        case state::await_alive_reply:
            return on_alive_reply(msg);
        case state::await_complement:
            return on_complement(msg);
        case state::await_reply:
            return on_reply(msg);
        default:
            return fail(errc::bad_handshake_message, "unexpected handshake message");
    }
}

// ---------------------------------------------------------------------------------------------
// Initiator

error_code handshake::on_status(std::span<const std::uint8_t> msg) {
    if (msg[0] != 's') return fail(errc::bad_handshake_message, "expected status message 's'");
    auto text = as_text(msg.subspan(1));
    if (text.starts_with("named:"))
        return fail(errc::handshake_failed,
                    "peer assigned a dynamic name, which we did not request");
    if (text == "ok") {
        status_ = handshake_status::ok;
    } else if (text == "ok_simultaneous") {
        status_ = handshake_status::ok_simultaneous;
    } else if (text == "nok") {
        status_ = handshake_status::nok;
        return fail(errc::nok, "peer answered nok: its own simultaneous connection attempt wins");
    } else if (text == "not_allowed") {
        status_ = handshake_status::not_allowed;
        return fail(errc::not_allowed, "peer answered not_allowed");
    } else if (text == "alive") {
        status_ = handshake_status::alive;
        if (!cfg_.on_alive) {
            state_ = state::need_alive_answer;
            return {};
        }
        answer_alive(cfg_.on_alive(cfg_.peer_name));
        return failed() ? error_ : error_code{};
    } else {
        return fail(errc::bad_handshake_message, "unknown status '" + std::string(text) + "'");
    }
    state_ = state::await_challenge;
    return {};
}

void handshake::answer_alive(bool proceed) {
    if (state_ != state::need_alive_answer && state_ != state::await_status) return;
    send_status_text(proceed ? "true" : "false");
    if (!proceed) {
        fail(errc::peer_alive, "peer already has a connection to us and we gave up");
        return;
    }
    state_ = state::await_challenge;
}

error_code handshake::on_challenge(std::span<const std::uint8_t> msg) {
    // 'N' Flags:64 Challenge:32 Creation:32 Nlen:16 Name [extra, ignored]
    if (msg[0] != 'N' || msg.size() < 19)
        return fail(errc::bad_handshake_message, "malformed challenge message");
    std::uint64_t flags = load_be64(msg.data() + 1);
    std::uint32_t challenge = load_be32(msg.data() + 9);
    std::uint32_t creation = load_be32(msg.data() + 13);
    std::size_t nlen = load_be16(msg.data() + 17);
    if (nlen > msg.size() - 19)
        return fail(errc::bad_handshake_message, "challenge name length exceeds message");
    std::string name(as_text(msg.subspan(19, nlen)));
    if (name != cfg_.peer_name)
        return fail(errc::name_mismatch,
                    "challenge from '" + name + "', expected '" + cfg_.peer_name + "'");
    peer_name_ = std::move(name);
    peer_flags_ = dflag::expand_mandatory_25(flags);
    peer_creation_ = creation;
    if (auto miss = missing_flags(flags, false))
        return fail(errc::missing_flags, "peer lacks mandatory flags " + dflag::to_string(miss));
    // 'r' Challenge:32 Digest:16
    our_challenge_ = new_challenge();
    auto d = detail::handshake_digest(challenge, cfg_.cookie);
    std::vector<std::uint8_t> m;
    m.push_back('r');
    append_be32(m, our_challenge_);
    m.insert(m.end(), d.begin(), d.end());
    send_message(m);
    state_ = state::await_ack;
    return {};
}

error_code handshake::on_ack(std::span<const std::uint8_t> msg) {
    // 'a' Digest:16, exactly 17 bytes (dist_util recv_challenge_ack).
    if (msg[0] != 'a' || msg.size() != 17)
        return fail(errc::bad_handshake_message, "malformed challenge ack");
    auto expect = detail::handshake_digest(our_challenge_, cfg_.cookie);
    if (CRYPTO_memcmp(expect.data(), msg.data() + 1, 16) != 0)
        return fail(errc::bad_cookie,
                    "invalid challenge ack from " + peer_name_ + " (cookie mismatch)");
    state_ = state::done;
    return {};
}

// ---------------------------------------------------------------------------------------------
// Acceptor

error_code handshake::on_name(std::span<const std::uint8_t> msg) {
    std::string name;
    std::uint64_t flags = 0;
    std::uint32_t creation = 0;
    if (msg[0] == 'N') {
        // 'N' Flags:64 Creation:32 Nlen:16 Name [extra, ignored]
        if (msg.size() < 15) return fail(errc::bad_handshake_message, "malformed send_name");
        flags = load_be64(msg.data() + 1);
        creation = load_be32(msg.data() + 9);
        std::size_t nlen = load_be16(msg.data() + 13);
        if (nlen > msg.size() - 15)
            return fail(errc::bad_handshake_message, "send_name length exceeds message");
        name.assign(as_text(msg.subspan(15, nlen)));
    } else if (msg[0] == 'n') {
        // Old send_name (OTP 23/24 without epmd): 'n' Version:16 Flags:32 Name. Accepted as
        // OTP 25.3 does; the creation and upper flag bits arrive in the 'c' complement.
        if (msg.size() < 7) return fail(errc::bad_handshake_message, "malformed send_name");
        flags = load_be32(msg.data() + 3);
        name.assign(as_text(msg.subspan(7)));
        v5_peer_ = true;
    } else {
        return fail(errc::bad_handshake_message, "expected send_name");
    }
    if (name.size() > max_name_bytes || !valid_node_name(name))
        return fail(errc::bad_handshake_message, "invalid peer node name '" + name + "'");
    if (flags & dflag::name_me)
        return fail(errc::handshake_failed, "peer requested a dynamic name (unsupported)");
    peer_name_ = std::move(name);
    peer_flags_ = dflag::expand_mandatory_25(flags);
    peer_creation_ = creation;
    // dist_util check_dflags/2 runs before mark_pending and answers not_allowed.
    if (auto miss = missing_flags(flags, v5_peer_)) {
        send_status_text("not_allowed");
        status_ = handshake_status::not_allowed;
        return fail(errc::missing_flags,
                    "peer " + peer_name_ + " lacks mandatory flags " + dflag::to_string(miss));
    }
    if (!cfg_.on_peer_name) {
        state_ = state::need_status;
        return {};
    }
    return apply_status(cfg_.on_peer_name(peer_name_, peer_flags_, peer_creation_));
}

void handshake::provide_status(handshake_status s) {
    if (state_ != state::need_status) return;
    apply_status(s);
}

error_code handshake::apply_status(handshake_status s) {
    status_ = s;
    send_status_text(to_string(s));
    switch (s) {
        case handshake_status::ok:
        case handshake_status::ok_simultaneous:
            return send_challenge();
        case handshake_status::nok:
            return fail(errc::nok,
                        "simultaneous connect with " + peer_name_ + ": our own attempt wins");
        case handshake_status::not_allowed:
            return fail(errc::not_allowed, "connection from " + peer_name_ + " not allowed");
        case handshake_status::alive:
            state_ = state::await_alive_reply;
            return {};
    }
    return {};
}

error_code handshake::on_alive_reply(std::span<const std::uint8_t> msg) {
    auto text = as_text(msg);
    if (text == "strue") return send_challenge();
    if (text == "sfalse")
        return fail(errc::peer_alive, peer_name_ + " gave up: it still has a connection to us");
    return fail(errc::bad_handshake_message, "expected 's' true|false after alive");
}

error_code handshake::send_challenge() {
    // 'N' Flags:64 Challenge:32 Creation:32 Nlen:16 Name — our full flags, as dist_util
    // send_challenge/2 sends this_flags (the AND is computed by each side).
    our_challenge_ = new_challenge();
    std::vector<std::uint8_t> m;
    m.push_back('N');
    append_be64(m, our_flags_);
    append_be32(m, our_challenge_);
    append_be32(m, cfg_.our_creation);
    append_be16(m, static_cast<std::uint16_t>(std::min<std::size_t>(cfg_.our_name.size(), 0xffff)));
    m.insert(m.end(), cfg_.our_name.begin(),
             cfg_.our_name.begin() +
                 static_cast<std::ptrdiff_t>(std::min<std::size_t>(cfg_.our_name.size(), 0xffff)));
    send_message(m);
    state_ = v5_peer_ ? state::await_complement : state::await_reply;
    return {};
}

error_code handshake::on_complement(std::span<const std::uint8_t> msg) {
    // 'c' FlagsHigh:32 Creation:32, exactly 9 bytes (dist_util recv_complement).
    if (msg[0] != 'c' || msg.size() != 9)
        return fail(errc::bad_handshake_message, "malformed complement message");
    std::uint64_t flags =
        (peer_flags_ & 0xffffffffu) | (std::uint64_t{load_be32(msg.data() + 1)} << 32);
    peer_flags_ = dflag::expand_mandatory_25(flags);
    peer_creation_ = load_be32(msg.data() + 5);
    if (auto miss = missing_flags(peer_flags_, false))
        return fail(errc::missing_flags,
                    "peer " + peer_name_ + " lacks mandatory flags " + dflag::to_string(miss));
    state_ = state::await_reply;
    return {};
}

error_code handshake::on_reply(std::span<const std::uint8_t> msg) {
    // 'r' Challenge:32 Digest:16, exactly 21 bytes (dist_util recv_challenge_reply).
    if (msg[0] != 'r' || msg.size() != 21)
        return fail(errc::bad_handshake_message, "malformed challenge reply");
    std::uint32_t their_challenge = load_be32(msg.data() + 1);
    auto expect = detail::handshake_digest(our_challenge_, cfg_.cookie);
    if (CRYPTO_memcmp(expect.data(), msg.data() + 5, 16) != 0)
        return fail(errc::bad_cookie,
                    "invalid challenge reply from " + peer_name_ + " (cookie mismatch)");
    auto d = detail::handshake_digest(their_challenge, cfg_.cookie);
    std::vector<std::uint8_t> m;
    m.push_back('a');
    m.insert(m.end(), d.begin(), d.end());
    send_message(m);
    state_ = state::done;
    return {};
}

}  // namespace erl::proto
