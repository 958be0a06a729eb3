#include <erl/log.hpp>

#include "common/enum_names.hpp"

namespace erl {

namespace {

constexpr const char* level_names[] = {"debug", "info", "notice", "warning", "error"};
static_assert(detail::names_each(level_names, log_level::debug, log_level::error));

constexpr const char* kind_names[] = {
    "node_started",      "node_stopped",   "start_failed",    "connection_up",    "connection_down",
    "handshake_refused", "limit_exceeded", "process_crashed", "code_load_failed", "service"};
static_assert(detail::names_each(kind_names, log_kind::node_started, log_kind::service));

}  // namespace

std::string_view to_string(log_level l) noexcept {
    return detail::enum_name(l, level_names, "?");
}

std::string_view to_string(log_kind k) noexcept {
    return detail::enum_name(k, kind_names, "?");
}

std::string format_log_line(const log_event& e) {
    std::string line = "erlcpp[";
    line += e.node;
    line += "] ";
    line += to_string(e.level);
    line += ' ';
    line += to_string(e.kind);
    if (!e.peer.empty()) {
        line += " peer=";
        line += e.peer;
    }
    if (!e.detail.empty() || e.reason) line += ':';
    if (!e.detail.empty()) {
        line += ' ';
        line += e.detail;
    }
    if (e.reason) {
        line += " (";
        line += e.reason.message();
        line += ')';
    }
    return line;
}

}  // namespace erl
