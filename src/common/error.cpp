#include <erl/error.hpp>

namespace erl {
namespace {

class category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "erl"; }
    std::string message(int ev) const override { return to_string(static_cast<errc>(ev)); }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
    static const category_impl instance;
    return instance;
}

const char* to_string(errc e) noexcept {
    switch (e) {
        case errc::ok: return "ok";
        case errc::truncated: return "truncated";
        case errc::bad_version: return "bad_version";
        case errc::bad_tag: return "bad_tag";
        case errc::too_deep: return "too_deep";
        case errc::too_large: return "too_large";
        case errc::atom_too_long: return "atom_too_long";
        case errc::invalid_utf8: return "invalid_utf8";
        case errc::non_finite_float: return "non_finite_float";
        case errc::trailing_bytes: return "trailing_bytes";
        case errc::bad_compressed: return "bad_compressed";
        case errc::bignum_too_large: return "bignum_too_large";
        case errc::atom_table_full: return "atom_table_full";
        case errc::duplicate_map_key: return "duplicate_map_key";
        case errc::bad_atom_cache_ref: return "bad_atom_cache_ref";
        case errc::invalid_term: return "invalid_term";
        case errc::bad_dist_header: return "bad_dist_header";
        case errc::epmd_unreachable: return "epmd_unreachable";
        case errc::epmd_name_taken: return "epmd_name_taken";
        case errc::epmd_bad_reply: return "epmd_bad_reply";
        case errc::epmd_not_found: return "epmd_not_found";
        case errc::epmd_refused: return "epmd_refused";
        case errc::epmd_bad_request: return "epmd_bad_request";
        case errc::handshake_failed: return "handshake_failed";
        case errc::bad_cookie: return "bad_cookie";
        case errc::not_allowed: return "not_allowed";
        case errc::peer_alive: return "peer_alive";
        case errc::nok: return "nok";
        case errc::missing_flags: return "missing_flags";
        case errc::handshake_timeout: return "handshake_timeout";
        case errc::bad_handshake_message: return "bad_handshake_message";
        case errc::name_mismatch: return "name_mismatch";
        case errc::connection_closed: return "connection_closed";
        case errc::tick_timeout: return "tick_timeout";
        case errc::frame_too_large: return "frame_too_large";
        case errc::bad_frame: return "bad_frame";
        case errc::bad_control_message: return "bad_control_message";
        case errc::noproc: return "noproc";
        case errc::noconnection: return "noconnection";
        case errc::timeout: return "timeout";
        case errc::type_mismatch: return "type_mismatch";
        case errc::bad_node_name: return "bad_node_name";
        case errc::not_alive: return "not_alive";
        case errc::limit_exceeded: return "limit_exceeded";
        case errc::shutting_down: return "shutting_down";
        case errc::name_taken: return "name_taken";
        case errc::badarg: return "badarg";
        case errc::notsup: return "notsup";
        case errc::overloaded: return "overloaded";
        case errc::no_target: return "no_target";
        case errc::tls_failed: return "tls_failed";
        case errc::node_not_allowed: return "node_not_allowed";
    }
    return "unknown";
}

}  // namespace erl
