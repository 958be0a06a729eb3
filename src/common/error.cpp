#include <erl/error.hpp>

#include "common/enum_names.hpp"

namespace erl {
namespace {

// External Term Format codec (0..99)
constexpr const char* codec_names[] = {"ok",
                                       "truncated",
                                       "bad_version",
                                       "bad_tag",
                                       "too_deep",
                                       "too_large",
                                       "atom_too_long",
                                       "invalid_utf8",
                                       "non_finite_float",
                                       "trailing_bytes",
                                       "bad_compressed",
                                       "bignum_too_large",
                                       "atom_table_full",
                                       "duplicate_map_key",
                                       "bad_atom_cache_ref",
                                       "invalid_term",
                                       "bad_dist_header"};
static_assert(detail::names_each(codec_names, errc::ok, errc::bad_dist_header));

// EPMD (100..199)
constexpr const char* epmd_names[] = {"epmd_unreachable", "epmd_name_taken", "epmd_bad_reply",
                                      "epmd_not_found",   "epmd_refused",    "epmd_bad_request"};
static_assert(detail::names_each(epmd_names, errc::epmd_unreachable, errc::epmd_bad_request));

// handshake (200..299)
constexpr const char* handshake_names[] = {
    "handshake_failed", "bad_cookie",        "not_allowed",           "peer_alive",   "nok",
    "missing_flags",    "handshake_timeout", "bad_handshake_message", "name_mismatch"};
static_assert(detail::names_each(handshake_names, errc::handshake_failed, errc::name_mismatch));

// connection and runtime (300..399)
constexpr const char* runtime_names[] = {"connection_closed",
                                         "tick_timeout",
                                         "frame_too_large",
                                         "bad_frame",
                                         "bad_control_message",
                                         "noproc",
                                         "noconnection",
                                         "timeout",
                                         "type_mismatch",
                                         "bad_node_name",
                                         "not_alive",
                                         "limit_exceeded",
                                         "shutting_down",
                                         "name_taken",
                                         "badarg",
                                         "notsup",
                                         "overloaded",
                                         "no_target",
                                         "would_block",
                                         "exited",
                                         "cookie_file_error",
                                         "child_running",
                                         "not_found",
                                         "no_start_function",
                                         "pang"};
static_assert(detail::names_each(runtime_names, errc::connection_closed, errc::pang));

// TLS and access control (400..)
constexpr const char* tls_names[] = {"tls_failed", "node_not_allowed"};
static_assert(detail::names_each(tls_names, errc::tls_failed, errc::node_not_allowed));

struct name_block {
    errc first;
    std::span<const char* const> names;
};
constexpr name_block name_blocks[] = {{errc::ok, codec_names},
                                      {errc::epmd_unreachable, epmd_names},
                                      {errc::handshake_failed, handshake_names},
                                      {errc::connection_closed, runtime_names},
                                      {errc::tls_failed, tls_names}};

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
    for (const auto& b : name_blocks)
        if (const char* n = detail::enum_name(e, b.names, nullptr, b.first)) return n;
    return "unknown";
}

}  // namespace erl
