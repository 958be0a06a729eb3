// Prometheus text exposition format 0.0.4 for node_stats
// (prometheus.io/docs/instrumenting/exposition_formats: `# HELP`, `# TYPE`, one sample a line,
// label values escaped with \\, \" and \n; histograms as cumulative `_bucket{le=...}` samples
// ending with le="+Inf", then `_sum` and `_count`).
#include <erl/stats.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace erl {

std::uint64_t duration_histogram::count() const noexcept {
    std::uint64_t n = overflow;
    for (auto c : counts)
        n += c;
    return n;
}

namespace {

class writer {
  public:
    explicit writer(std::string& out) : out_(out) {}

    // `# HELP` and `# TYPE` lines, once per metric family.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // name{label="value"} number — `label` empty for a sample without labels.
    void sample(std::string_view name, std::string_view label, std::string_view value,
                double number) {
        out_ += name;
        if (!label.empty()) {
            out_ += '{';
            out_ += label;
            out_ += "=\"";
            escape(value);
            out_ += "\"}";
        }
        out_ += ' ';
        put_number(number);
        out_ += '\n';
    }

    void sample(std::string_view name, double number) { sample(name, {}, {}, number); }

    // A family of one unlabelled sample.
    void single(std::string_view name, std::string_view type, std::string_view help,
                double number) {
        family(name, type, help);
        sample(name, number);
    }

    // One whole histogram family with its buckets, _sum and _count.
    void histogram(std::string_view name, std::string_view help, const duration_histogram& h) {
        family(name, "histogram", help);
        const std::string bucket = std::string(name) + "_bucket";
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
            cumulative += i < h.counts.size() ? h.counts[i] : 0;
            char le[32];
            format_number(le, sizeof le, h.upper_bounds[i].count());
            sample(bucket, "le", le, static_cast<double>(cumulative));
        }
        sample(bucket, "le", "+Inf", static_cast<double>(h.count()));
        sample(std::string(name) + "_sum", h.sum.count());
        sample(std::string(name) + "_count", static_cast<double>(h.count()));
    }

  private:
    void escape(std::string_view v) {
        for (char c : v) {
            switch (c) {
                case '\\':
                    out_ += "\\\\";
                    break;
                case '"':
                    out_ += "\\\"";
                    break;
                case '\n':
                    out_ += "\\n";
                    break;
                default:
                    out_ += c;
            }
        }
    }

    static void format_number(char* buf, std::size_t size, double v) {
        if (std::isnan(v)) {
            std::snprintf(buf, size, "NaN");
        } else if (std::isinf(v)) {
            std::snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        } else if (v == std::floor(v) && std::fabs(v) < 9.0e15) {
            std::snprintf(buf, size, "%.0f", v);  // counters print as integers
        } else {
            std::snprintf(buf, size, "%.9g", v);
        }
    }

    void put_number(double v) {
        char buf[32];
        format_number(buf, sizeof buf, v);
        out_ += buf;
    }

    std::string& out_;
};

double seconds_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// A connection's counter as a sample value.
template <auto field>
double count_of(const connection_stats& c) {
    return static_cast<double>(c.*field);
}

}  // namespace

std::string to_prometheus_text(const node_stats& s) {
    std::string out;
    out.reserve(1024 + s.connections.size() * 1200);
    writer w(out);
    const std::string_view node = s.node.str();

    w.family("erlcpp_node_info", "gauge", "The node's name (always 1).");
    w.sample("erlcpp_node_info", "node", node, 1);
    w.single("erlcpp_processes", "gauge", "Processes in the process table.",
             static_cast<double>(s.processes));
    if (s.process_limit != 0) {
        w.single("erlcpp_process_limit", "gauge", "Most processes the node accepts at once.",
                 static_cast<double>(s.process_limit));
    }
    w.single("erlcpp_message_queue_len_max", "gauge",
             "Messages waiting in the longest process message queue.",
             static_cast<double>(s.message_queue_len_max));
    w.single("erlcpp_message_queue_len", "gauge", "Messages waiting in all process queues.",
             static_cast<double>(s.message_queue_len_total));
    w.single("erlcpp_messages_dropped_queue_limit_total", "counter",
             "Messages refused by a process queue at max_message_queue_len.",
             static_cast<double>(s.messages_dropped_queue_limit));
    w.single("erlcpp_processes_killed_queue_limit_total", "counter",
             "Processes killed for reaching max_message_queue_len.",
             static_cast<double>(s.processes_killed_queue_limit));
    w.single("erlcpp_atoms", "gauge", "Atoms in the atom table.", static_cast<double>(s.atoms));
    w.single("erlcpp_network_atoms", "gauge",
             "Atoms in the table made from peer data (freed with their last holder).",
             static_cast<double>(s.network_atoms));
    w.single("erlcpp_network_atoms_freed_total", "counter",
             "Network atoms that have left the atom table.",
             static_cast<double>(s.network_atoms_freed));
    w.single("erlcpp_atom_limit", "gauge", "Size limit of the atom table.",
             static_cast<double>(s.atom_limit));
    if (!s.memory.empty()) {
        w.family("erlcpp_memory_bytes", "gauge", "Bytes held, by kind.");
        for (const auto& m : s.memory)
            w.sample("erlcpp_memory_bytes", "kind", m.kind, static_cast<double>(m.bytes));
    }
    w.single("erlcpp_rpc_calls_served_total", "counter",
             "rpc/erpc calls answered by this node's functions.",
             static_cast<double>(s.rpc_calls_served));
    w.single("erlcpp_rpc_calls_failed_total", "counter",
             "Served rpc/erpc calls that raised, crashed or named no function.",
             static_cast<double>(s.rpc_calls_failed));
    w.histogram("erlcpp_rpc_call_duration_seconds", "Time from request to reply of served calls.",
                s.rpc_call_duration);
    w.family("erlcpp_handshake_failures_total", "counter",
             "Distribution handshakes that failed, by reason.");
    for (const auto& r : s.handshake_failures)
        w.sample("erlcpp_handshake_failures_total", "reason", r.reason,
                 static_cast<double>(r.count));

    w.single("erlcpp_dist_connections", "gauge", "Distribution connections (pending and up).",
             static_cast<double>(s.connections.size()));

    struct per_connection {
        const char* name;
        const char* type;
        const char* help;
        double (*get)(const connection_stats&);
    };
    static const per_connection families[] = {
        {"erlcpp_dist_up", "gauge", "1 once the connection's handshake has completed.",
         [](const connection_stats& c) { return c.up ? 1.0 : 0.0; }},
        {"erlcpp_dist_bytes_received_total", "counter", "Bytes read from the peer.",
         count_of<&connection_stats::bytes_received>},
        {"erlcpp_dist_bytes_sent_total", "counter", "Bytes written to the peer.",
         count_of<&connection_stats::bytes_sent>},
        {"erlcpp_dist_messages_received_total", "counter",
         "Distribution messages received from the peer.",
         count_of<&connection_stats::messages_received>},
        {"erlcpp_dist_messages_sent_total", "counter", "Distribution messages sent to the peer.",
         count_of<&connection_stats::messages_sent>},
        {"erlcpp_dist_frames_received_total", "counter",
         "Frames received (ticks and fragments included).",
         count_of<&connection_stats::frames_received>},
        {"erlcpp_dist_frames_sent_total", "counter", "Frames sent (ticks and fragments included).",
         count_of<&connection_stats::frames_sent>},
        {"erlcpp_dist_ticks_received_total", "counter", "Ticks received from the peer.",
         count_of<&connection_stats::ticks_received>},
        {"erlcpp_dist_ticks_sent_total", "counter", "Ticks sent to the peer.",
         count_of<&connection_stats::ticks_sent>},
        {"erlcpp_dist_send_queue_bytes", "gauge", "Encoded bytes waiting for the socket.",
         count_of<&connection_stats::send_queue_bytes>},
        {"erlcpp_dist_last_activity_timestamp_seconds", "gauge",
         "When a byte was last read from or written to the peer (Unix time).",
         [](const connection_stats& c) { return seconds_since_epoch(c.last_activity); }},
    };
    if (!s.connections.empty()) {
        for (const auto& f : families) {
            w.family(f.name, f.type, f.help);
            for (const auto& c : s.connections)
                w.sample(f.name, "peer", c.peer.str(), f.get(c));
        }
    }
    return out;
}

}  // namespace erl
