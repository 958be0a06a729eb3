// erl::log_event — what a node reports about itself: connection events, refused handshakes,
// limit hits, crashed processes and handlers, failed module loads, service warnings.
//
// A node hands each event to node_options::logger when one is set; otherwise it formats the
// event as one line (erl::format_log_line) and passes it to node_options::log, or prints it to
// stderr. Events below node_options::log_level are not reported at all (they are not even
// built), so a quiet node pays nothing for them.
//
// Levels are the upper half of OTP's logger levels (kernel's logger.erl); an event's kind
// says what happened, its reason (an erl::error_code) why, and `detail` gives the rest in
// words. Handlers run on the thread where the event happened — often one of the node's I/O
// threads — so they must be quick and must not block.
#pragma once

#include <erl/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace erl {

enum class log_level : std::uint8_t { debug, info, notice, warning, error };

enum class log_kind : std::uint8_t {
    node_started,       // info: the node listens and is registered with EPMD
    node_stopped,       // info: the node began to stop (its connections close)
    start_failed,       // error: start() refused (reason and detail say why)
    connection_up,      // info: a connection passed its handshake (peer = node name)
    connection_down,    // notice: an established connection ended (reason: why)
    handshake_refused,  // warning: a connection ended before or during its handshake
    limit_exceeded,     // warning: a resource limit closed a connection or refused one
    process_crashed,    // error: a C++ process body ended with an uncaught exception
    code_load_failed,   // error: a C++ module could not be loaded
    service,            // a node service (global, pg, code server...) reports something
};

struct log_event {
    log_level level = log_level::info;
    log_kind kind = log_kind::service;
    std::string_view node;  // the local node's name
    std::string_view peer;  // peer node name, or "address:port" before the name is known
    error_code reason;      // structured cause; empty when the kind says it all
    std::string detail;     // the rest, in words
};

std::string_view to_string(log_level l) noexcept;
std::string_view to_string(log_kind k) noexcept;

// One readable line without a trailing newline, e.g.
// "erlcpp[a@host] warning handshake_refused peer=b@host: bad cookie (digest did not match)".
std::string format_log_line(const log_event& e);

}  // namespace erl
