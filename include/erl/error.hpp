// erlcpp error model: boost::system::error_code with the erl::errc category.
// Parsers and protocol cores return these; they never throw on bad input.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <string>

namespace erl {

enum class errc {
    ok = 0,
    // --- External Term Format codec (1..99)
    truncated = 1,         // input ended inside a term
    bad_version,           // missing or wrong version byte (131)
    bad_tag,               // unknown or unsupported tag
    too_deep,              // nesting deeper than the configured limit
    too_large,             // a length exceeds the input or the configured size limit
    atom_too_long,         // atom longer than 255 characters
    invalid_utf8,          // atom text is not valid UTF-8
    non_finite_float,      // NaN or infinity
    trailing_bytes,        // bytes left after a complete term
    bad_compressed,        // zlib stream invalid or size mismatch
    bignum_too_large,      // bignum exceeds the configured limit
    atom_table_full,       // global atom table limit reached
    duplicate_map_key,     // map with the same key twice
    bad_atom_cache_ref,    // ATOM_CACHE_REF to an empty slot
    invalid_term,          // structurally invalid (e.g. reference with 0 or >5 words)
    bad_dist_header,       // distribution header malformed
    // --- EPMD (100..199)
    epmd_unreachable = 100,  // no epmd answered
    epmd_name_taken,         // ALIVE2 refused: name already registered
    epmd_bad_reply,          // reply malformed
    epmd_not_found,          // PORT_PLEASE2: name not registered
    epmd_refused,            // request refused (e.g. not from loopback)
    epmd_bad_request,        // request malformed
    // --- handshake (200..299)
    handshake_failed = 200,  // generic handshake failure
    bad_cookie,              // digest did not match
    not_allowed,             // peer said (or we decided) not_allowed
    peer_alive,              // peer already has a connection to us ("alive")
    nok,                     // simultaneous connect lost
    missing_flags,           // peer lacks mandatory distribution flags
    handshake_timeout,       // net_setuptime exceeded
    bad_handshake_message,   // malformed handshake message
    name_mismatch,           // challenge came from another node than the one dialed
    // --- connection and runtime (300..399)
    connection_closed = 300,  // peer closed the connection
    tick_timeout,             // nothing received for net_ticktime
    frame_too_large,          // frame above the configured maximum message size
    bad_frame,                // malformed distribution frame
    bad_control_message,      // control message of unknown shape
    noproc,                   // no such process
    noconnection,             // no connection to the node
    timeout,                  // operation timed out
    type_mismatch,            // term is not of the requested C++ type
    bad_node_name,            // node name not of the form name@host
    not_alive,                // node not started / not distributed
    limit_exceeded,           // a configured resource limit was hit
    shutting_down,            // node is stopping
    name_taken,               // registered name already in use
    badarg,                   // an argument is not of the type the operation needs
    notsup,                   // the peer cannot do this (e.g. spawn of an unknown C++ kind)
    overloaded,               // a per-target in-flight cap was reached (erl::dispatch)
    no_target,                // no live target to send to (erl::dispatch)
    // --- TLS and access control (400..)
    tls_failed = 400,         // TLS handshake or certificate failure
    node_not_allowed,         // peer node not in the allow-list
};

const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

// Short, stable name of an error ("truncated", "bad_cookie", ...).
const char* to_string(errc e) noexcept;

template <class T>
using result = boost::system::result<T, boost::system::error_code>;

using boost::system::error_code;

}  // namespace erl

namespace boost::system {
template <>
struct is_error_code_enum<erl::errc> : std::true_type {};
}  // namespace boost::system
