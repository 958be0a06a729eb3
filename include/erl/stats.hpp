// erl::node_stats — a snapshot of what a node is doing, for dashboards and alerts.
//
// A snapshot is a plain value: take it on any thread, keep it, compare two of them (counters only
// grow, so the difference of two snapshots is the activity in between; a connection's counters
// start at 0 again when the peer reconnects). to_prometheus_text()
// renders one in Prometheus' text exposition format (version 0.0.4): counters end in `_total`,
// durations are in seconds, sizes in bytes, and each connection is labelled with its peer, e.g.
//   erlcpp_dist_messages_received_total{peer="beam@host"} 1200
// serve_metrics() (<erl/metrics_endpoint.hpp>) exposes the text over HTTP for a scraper.
#pragma once

#include <erl/term.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace erl {

// Distribution of durations: counts[i] observations were <= upper_bounds[i] and above the
// previous bound (not cumulative); `overflow` were above the last bound.
struct duration_histogram {
    std::vector<std::chrono::duration<double>> upper_bounds;  // ascending
    std::vector<std::uint64_t> counts;                        // one per bound
    std::uint64_t overflow = 0;
    std::chrono::duration<double> sum{0};  // of every observation
    std::uint64_t count() const noexcept;
};

// One distribution connection (pending or up).
struct connection_stats {
    atom peer;
    bool up = false;  // the handshake has completed
    bool tls = false;
    std::uint64_t bytes_received = 0;  // everything read from the socket, framing included
    std::uint64_t bytes_sent = 0;
    std::uint64_t messages_received = 0;  // distribution messages (control + optional payload)
    std::uint64_t messages_sent = 0;
    std::uint64_t frames_received = 0;  // length-prefixed frames, ticks and fragments included
    std::uint64_t frames_sent = 0;
    std::uint64_t ticks_received = 0;
    std::uint64_t ticks_sent = 0;
    std::size_t send_queue_bytes = 0;                       // encoded and waiting for the socket
    std::chrono::system_clock::time_point last_activity{};  // last byte read or written
};

// A count per reason (handshake failures, refused connections, ...).
struct reason_count {
    std::string reason;  // a short stable name, e.g. "bad_cookie"
    std::uint64_t count = 0;
};

// Bytes held, by what holds them.
struct memory_use {
    std::string kind;  // e.g. "terms", "mailboxes", "connection_buffers", "atoms"
    std::size_t bytes = 0;
};

struct node_stats {
    atom node;
    std::chrono::system_clock::time_point taken{};
    std::size_t processes = 0;
    std::size_t process_limit = 0;  // 0: no limit
    std::size_t atoms = 0;          // live atoms: permanent plus network (the limit counts these)
    std::size_t network_atoms = 0;  // of those: made from peer data, freed with their last holder
    std::uint64_t network_atoms_freed = 0;  // network atoms that have left the table so far
    // Messages waiting in process queues: the longest queue (and whose), and all of them.
    // Per process: process_info(P, message_queue_len) and (bytes) memory, over rpc.
    std::size_t message_queue_len_max = 0;
    pid message_queue_len_max_pid;
    std::size_t message_queue_len_total = 0;
    // node_options::max_message_queue_len: messages refused by a full queue, and processes
    // killed for it (message_queue_limit_action::kill).
    std::uint64_t messages_dropped_queue_limit = 0;
    std::uint64_t processes_killed_queue_limit = 0;
    std::size_t atom_limit = 0;
    std::vector<memory_use> memory;
    std::uint64_t rpc_calls_served = 0;  // rpc/erpc calls answered by this node's functions
    std::uint64_t rpc_calls_failed = 0;  // of those: raised, undef, badarg, crashed
    duration_histogram rpc_call_duration;
    std::vector<reason_count> handshake_failures;
    std::vector<connection_stats> connections;
};

// Prometheus text exposition format 0.0.4 (`Content-Type: text/plain; version=0.0.4`).
std::string to_prometheus_text(const node_stats& s);

}  // namespace erl
