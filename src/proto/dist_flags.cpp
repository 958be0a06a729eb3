#include "proto/dist_flags.hpp"

#include <utility>

namespace erl::proto::dflag {

std::string to_string(std::uint64_t flags) {
    static constexpr std::pair<std::uint64_t, const char*> names[] = {
        {published, "PUBLISHED"},
        {atom_cache, "ATOM_CACHE"},
        {extended_references, "EXTENDED_REFERENCES"},
        {dist_monitor, "DIST_MONITOR"},
        {fun_tags, "FUN_TAGS"},
        {dist_monitor_name, "DIST_MONITOR_NAME"},
        {hidden_atom_cache, "HIDDEN_ATOM_CACHE"},
        {new_fun_tags, "NEW_FUN_TAGS"},
        {extended_pids_ports, "EXTENDED_PIDS_PORTS"},
        {export_ptr_tag, "EXPORT_PTR_TAG"},
        {bit_binaries, "BIT_BINARIES"},
        {new_floats, "NEW_FLOATS"},
        {unicode_io, "UNICODE_IO"},
        {dist_hdr_atom_cache, "DIST_HDR_ATOM_CACHE"},
        {small_atom_tags, "SMALL_ATOM_TAGS"},
        {ets_compressed, "ETS_COMPRESSED"},
        {utf8_atoms, "UTF8_ATOMS"},
        {map_tag, "MAP_TAG"},
        {big_creation, "BIG_CREATION"},
        {send_sender, "SEND_SENDER"},
        {big_seqtrace_labels, "BIG_SEQTRACE_LABELS"},
        {pending_connect, "PENDING_CONNECT"},
        {exit_payload, "EXIT_PAYLOAD"},
        {fragments, "FRAGMENTS"},
        {handshake_23, "HANDSHAKE_23"},
        {unlink_id, "UNLINK_ID"},
        {mandatory_25_digest, "MANDATORY_25_DIGEST"},
        {spawn, "SPAWN"},
        {name_me, "NAME_ME"},
        {v4_nc, "V4_NC"},
        {alias, "ALIAS"},
        {local_ext, "LOCAL_EXT"},
        {altact_sig, "ALTACT_SIG"},
    };
    std::string s;
    std::uint64_t known = 0;
    for (auto& [bit, name] : names) {
        known |= bit;
        if (flags & bit) {
            if (!s.empty()) s += '|';
            s += name;
        }
    }
    if (std::uint64_t rest = flags & ~known) {
        static constexpr char hex[] = "0123456789abcdef";
        std::string h;
        while (rest) {
            h.insert(h.begin(), hex[rest & 0xf]);
            rest >>= 4;
        }
        if (!s.empty()) s += '|';
        s += "0x" + h;
    }
    return s.empty() ? "0" : s;
}

}  // namespace erl::proto::dflag
