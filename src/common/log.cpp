#include <erl/log.hpp>

namespace erl {

std::string_view to_string(log_level l) noexcept {
    switch (l) {
        case log_level::debug:
            return "debug";
        case log_level::info:
            return "info";
        case log_level::notice:
            return "notice";
        case log_level::warning:
            return "warning";
        case log_level::error:
            return "error";
    }
    return "?";
}

std::string_view to_string(log_kind k) noexcept {
    switch (k) {
        case log_kind::node_started:
            return "node_started";
        case log_kind::node_stopped:
            return "node_stopped";
        case log_kind::start_failed:
            return "start_failed";
        case log_kind::connection_up:
            return "connection_up";
        case log_kind::connection_down:
            return "connection_down";
        case log_kind::handshake_refused:
            return "handshake_refused";
        case log_kind::limit_exceeded:
            return "limit_exceeded";
        case log_kind::process_crashed:
            return "process_crashed";
        case log_kind::code_load_failed:
            return "code_load_failed";
        case log_kind::service:
            return "service";
    }
    return "?";
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
