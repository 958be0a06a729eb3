#include "harness/cluster.hpp"

#include <erl/process.hpp>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace erl::interop {

cpp_node::cpp_node(options o) {
    erl::node_options no;
    no.name = unique_name(o.name_prefix) +
              (o.long_names ? std::string("@127.0.0.1") : "@" + short_host_name());
    no.long_names = o.long_names;
    no.cookie = o.cookie;
    no.epmd_port = o.epmd_port;
    no.epmd = erl::epmd_mode::require_running;
    no.threads = 2;
    no.log = [this](std::string_view m) {
        std::lock_guard lk(log_mu_);
        log_.emplace_back(m);
    };
    if (o.tweak) o.tweak(no);
    node = std::make_unique<erl::node>(std::move(no));
    start_error = node->start();
    // `node` is a member: if this throws, its destructor still stops it.
    if (start_error && o.must_start)
        throw std::runtime_error("erlcpp node start failed: " + start_error.message() + "\n" +
                                 log_text());
}

cpp_node::~cpp_node() {
    node->stop();
    erl::join_processes(*node, std::chrono::seconds(10));
    if (std::getenv("ERLCPP_TEST_VERBOSE")) std::fprintf(stderr, "%s", log_text().c_str());
}

bool cpp_node::log_contains(std::string_view needle) {
    std::lock_guard lk(log_mu_);
    for (auto& l : log_)
        if (l.find(needle) != std::string::npos) return true;
    return false;
}

bool cpp_node::wait_log(std::string_view needle, std::chrono::milliseconds timeout) {
    return wait_until([&] { return log_contains(needle); }, timeout);
}

std::string cpp_node::log_text() {
    std::lock_guard lk(log_mu_);
    std::string s;
    for (auto& l : log_)
        s += l + "\n";
    return s;
}

echo_service::echo_service(erl::node& n, const char* name) {
    auto r = n.spawn_mailbox(erl::atom(name));
    if (!r) throw std::runtime_error("echo_service: spawn_mailbox failed");
    mb = *r;
    thread_ = std::thread([mb = mb]() mutable {
        while (auto m = mb.receive())
            if (m->is_tuple(2) && (*m)[0].is_pid()) mb.send((*m)[0].as_pid(), (*m)[1]);
    });
}

echo_service::~echo_service() {
    mb.exit();
    if (thread_.joinable()) thread_.join();
}

void expect_counter_gen_server(beam_node& beam, const std::string& d) {
    EXPECT_EQ(beam.eval("gen_server:call(" + d + ", get)"), "0");
    EXPECT_EQ(beam.eval("gen_server:call(" + d + ", {add, 100000000000000000000})"),
              "100000000000000000000");
    EXPECT_EQ(beam.eval("gen_server:cast(" + d + ", reset), gen_server:call(" + d + ", get)"), "0");
    // OTP 25 tags calls with [alias|Ref]; the reply went to the alias.
    EXPECT_EQ(beam.eval("T = gen_server:call(" + d + ", tag), {hd(T), is_reference(tl(T))}"),
              "{alias,true}");
    // A plain reference tag (older callers, hand-written '$gen_call') works too.
    EXPECT_EQ(beam.eval("Ref = make_ref(), " + d +
                        " ! {'$gen_call', {self(), Ref}, get}, "
                        "receive {Ref, V} -> V after 5000 -> none end"),
              "0");
}

}  // namespace erl::interop
