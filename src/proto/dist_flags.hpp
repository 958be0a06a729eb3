// Distribution capability flags (DFLAG_*), exchanged in the handshake.
//
// Values: erts/emulator/beam/dist.h and lib/kernel/include/dist.hrl (OTP 25..28); the
// erl_dist_protocol "Distribution Flags" section describes each one. Note that one revision of
// that document prints DFLAG_MANDATORY_25_DIGEST as (1 bsl 36); dist.h and dist.hrl define it
// as bit 26 (0x4000000), which is what every OTP node sends.
#pragma once

#include <cstdint>
#include <string>

namespace erl::proto::dflag {

inline constexpr std::uint64_t published = 0x1;
inline constexpr std::uint64_t atom_cache = 0x2;  // obsolete
inline constexpr std::uint64_t extended_references = 0x4;
inline constexpr std::uint64_t dist_monitor = 0x8;
inline constexpr std::uint64_t fun_tags = 0x10;
inline constexpr std::uint64_t dist_monitor_name = 0x20;
inline constexpr std::uint64_t hidden_atom_cache = 0x40;  // obsolete
inline constexpr std::uint64_t new_fun_tags = 0x80;
inline constexpr std::uint64_t extended_pids_ports = 0x100;
inline constexpr std::uint64_t export_ptr_tag = 0x200;
inline constexpr std::uint64_t bit_binaries = 0x400;
inline constexpr std::uint64_t new_floats = 0x800;
inline constexpr std::uint64_t unicode_io = 0x1000;
inline constexpr std::uint64_t dist_hdr_atom_cache = 0x2000;
inline constexpr std::uint64_t small_atom_tags = 0x4000;
inline constexpr std::uint64_t ets_compressed = 0x8000;  // internal to erts, never on the wire
inline constexpr std::uint64_t utf8_atoms = 0x10000;
inline constexpr std::uint64_t map_tag = 0x20000;
inline constexpr std::uint64_t big_creation = 0x40000;
inline constexpr std::uint64_t send_sender = 0x80000;
inline constexpr std::uint64_t big_seqtrace_labels = 0x100000;
inline constexpr std::uint64_t pending_connect = 0x200000;  // internal to erts
inline constexpr std::uint64_t exit_payload = 0x400000;
inline constexpr std::uint64_t fragments = 0x800000;
inline constexpr std::uint64_t handshake_23 = 0x1000000;
inline constexpr std::uint64_t unlink_id = 0x2000000;
inline constexpr std::uint64_t mandatory_25_digest = 0x4000000;
inline constexpr std::uint64_t reserved = 0xf8000000;
inline constexpr std::uint64_t spawn = std::uint64_t{1} << 32;
inline constexpr std::uint64_t name_me = std::uint64_t{1} << 33;
inline constexpr std::uint64_t v4_nc = std::uint64_t{1} << 34;
inline constexpr std::uint64_t alias = std::uint64_t{1} << 35;
inline constexpr std::uint64_t local_ext = std::uint64_t{1} << 36;   // internal to erts
inline constexpr std::uint64_t altact_sig = std::uint64_t{1} << 37;  // OTP 28

// dist.h DFLAG_DIST_MANDATORY_25: what an OTP 25 node requires of its peer (0x1070F94).
// OTP 25+ accepts DFLAG_MANDATORY_25_DIGEST as a shorthand for all of these
// (dist_util:expand_mandatory_25_flag/1).
inline constexpr std::uint64_t mandatory_25 =
    extended_references | fun_tags | extended_pids_ports | utf8_atoms | new_fun_tags |
    big_creation | new_floats | map_tag | export_ptr_tag | bit_binaries | handshake_23;
static_assert(mandatory_25 == 0x1070F94);

// dist.h DFLAG_DIST_MANDATORY_26 adds V4_NC and UNLINK_ID (0x403070F94 in total).
inline constexpr std::uint64_t mandatory_26 = mandatory_25 | v4_nc | unlink_id;
static_assert(mandatory_26 == 0x403070F94);

// What erlcpp advertises by default (see docs/protocol.md): the OTP 26/27 mandatory set, the
// 25 digest, and the optional capabilities the node runtime implements. NAME_ME is never set
// (we do not request dynamic names); PUBLISHED is added unless the node is hidden.
inline constexpr std::uint64_t erlcpp_default_capabilities =
    mandatory_26 | mandatory_25_digest | dist_monitor | dist_monitor_name | send_sender |
    big_seqtrace_labels | exit_payload | fragments | dist_hdr_atom_cache | spawn | alias;

constexpr std::uint64_t default_advertised(bool hidden) noexcept {
    return erlcpp_default_capabilities | (hidden ? 0 : published);
}

// Peer flags with the MANDATORY_25_DIGEST shorthand expanded (as dist_util does before checking
// and AND-ing flags).
constexpr std::uint64_t expand_mandatory_25(std::uint64_t flags) noexcept {
    return (flags & mandatory_25_digest) ? (flags | mandatory_25) : flags;
}

// "EXTENDED_REFERENCES|FUN_TAGS|..." for log lines and error reasons.
std::string to_string(std::uint64_t flags);

}  // namespace erl::proto::dflag
