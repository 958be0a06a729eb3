// etop's backend on a C++ node (observer application, etop.erl and etop_tr.erl of OTP 25):
//
//   * observer_backend:vsn/0 — etop:start checks it with rpc:call: {ok, Vsn} of runtime_tools.
//   * observer_backend:etop_collect/1 — etop:update/1 spawn_links it on the node each
//     interval; it sends {self(), #etop_info{}} to the collector (runtime_tools
//     observer_backend.erl etop_collect/1 and include/observer_backend.hrl), with one
//     #etop_proc_info{} per process from process_info(P, [registered_name, initial_call,
//     memory, reductions, current_function, message_queue_len]).
//   * dbg:do_relay/2 — with tracing on (etop's default) etop_tr:setup_tracer/1 calls
//     dbg:tracer(Node, port, dbg:trace_port(ip, {Port, QSize})), which spawn_links
//     dbg:do_relay(Parent, {port, Fun}) on the node and waits, without a timeout, for
//     {started, Tracer}; etop_tr:reader/1 then connects to Port on net_adm:localhost().
//     A C++ node runs no Erlang fun and has no scheduling trace: the relay opens that TCP
//     port as the ip trace driver would, sends no trace messages (etop's runtime column stays
//     0) and lives, trapping exits, until an exit signal reaches it, as dbg.erl do_relay/2.
#include "observe/introspection.hpp"

#include "node/access.hpp"
#include "node/node_core.hpp"
#include "node/process.hpp"
#include "node/runtime.hpp"

#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <set>

namespace erl::detail::introspection {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using rpc::call_context;
using args_t = std::span<const term>;

term kv(const char* k, term v) {
    return make_tuple({term(atom(k)), std::move(v)});
}

// erlang:timestamp/0: {MegaSecs, Secs, MicroSecs}.
term timestamp() {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    return make_tuple({term(static_cast<long long>(us / 1000000000000LL)),
                       term(static_cast<long long>(us / 1000000 % 1000000)),
                       term(static_cast<long long>(us % 1000000))});
}

term etop_collect(call_context& ctx, args_t a) {
    auto& core = access::core(ctx.node());
    if (!a[0].is_pid()) rpc::detail::raise_badarg(ctx);  // Collector ! Info
    auto self = core.find_process(ctx.self());
    if (!self) return term(atom("ok"));
    static const std::vector<atom> items{atom("registered_name"),  atom("initial_call"),
                                         atom("memory"),           atom("reductions"),
                                         atom("current_function"), atom("message_queue_len")};
    std::vector<term> procs;
    for (const auto& p : living(core)) {
        if (p == self) continue;  // etop_collect([P|Ps], Acc) when P =:= self()
        auto r = process_info(core, *p, items, &ctx.self());
        const term& reg = r[0][1];
        // #etop_proc_info{pid, mem, reds, name, runtime = 0, cf, mq}; the name is the
        // registered name, else the initial call.
        procs.push_back(make_tuple({term(atom("etop_proc_info")), p->self_term, r[2][1], r[3][1],
                                    reg.is_nil() ? r[1][1] : reg, term(0), r[4][1], r[5][1]}));
    }
    std::vector<term> memi;
    const auto mem = memory(core);
    for (const char* k : {"total", "processes", "ets", "atom", "code", "binary"})
        for (const auto& [key, v] : mem)
            if (key == atom(k)) memi.push_back(kv(k, term(static_cast<long long>(v))));
    // #etop_info{now, n_procs, wall_clock, runtime, run_queue, alloc_areas, memi, procinfo}:
    // runtime is statistics(scheduler_wall_time): the I/O threads' CPU and wall time (BEAM's
    // flag_holder_proc turns that flag on after the first collection; here it is always on),
    // from which etop computes its cpu figure.
    const auto n = static_cast<long long>(procs.size());
    term info = make_tuple({term(atom("etop_info")), timestamp(), term(n), term(atom("undefined")),
                            scheduler_wall_time(core), term(static_cast<long long>(runnable(core))),
                            term(), make_list(std::move(memi)), make_list(std::move(procs))});
    runtime::send(*self, a[0].as_pid(), make_tuple({self->self_term, std::move(info)}));
    return term(atom("ok"));
}

// The TCP port of an ip trace port (trace_ip_drv): accepts etop_tr's reader and keeps its
// connection open until close(). Runs on a strand of the node's io_context.
class trace_listener : public std::enable_shared_from_this<trace_listener> {
  public:
    trace_listener(asio::io_context& ioc) : strand_(asio::make_strand(ioc)), acceptor_(strand_) {}

    error_code open(const std::string& address, std::uint16_t port) {
        error_code ec;
        auto addr = asio::ip::make_address(address, ec);
        if (ec) return ec;
        tcp::endpoint ep(addr, port);
        acceptor_.open(ep.protocol(), ec);
        if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor_.bind(ep, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (!ec) asio::dispatch(strand_, [self = shared_from_this()] { self->accept(); });
        return ec;
    }
    void close() {
        asio::dispatch(strand_, [self = shared_from_this()] {
            error_code ignored;
            self->acceptor_.close(ignored);
            for (const auto& s : self->sockets_)
                s->close(ignored);
            self->sockets_.clear();
        });
    }

  private:
    void accept() {
        // The accepted socket (and so its completions) runs on strand_ too.
        acceptor_.async_accept([self = shared_from_this()](error_code ec, tcp::socket s) {
            if (ec) return;  // closed
            auto sock = std::make_shared<tcp::socket>(std::move(s));
            self->sockets_.insert(sock);
            self->watch(sock);
            self->accept();
        });
    }
    // The reader never writes: a completed read means it closed (or wrote garbage).
    void watch(const std::shared_ptr<tcp::socket>& s) {
        auto buf = std::make_shared<char>();
        s->async_read_some(asio::buffer(buf.get(), 1),
                           [self = shared_from_this(), s, buf](error_code ec, std::size_t) {
                               if (ec) {
                                   self->sockets_.erase(s);
                                   return;
                               }
                               self->watch(s);
                           });
    }

    asio::strand<asio::io_context::executor_type> strand_;
    tcp::acceptor acceptor_;
    std::set<std::shared_ptr<tcp::socket>> sockets_;  // on strand_
};

// The port number of dbg:trace_port(ip, {Port, QSize})'s fun: its free variables are
// [QSize, Port] as OTP 25's compiler lays out dbg.erl trace_port/2.
std::optional<std::uint16_t> ip_trace_port(const term& fun) {
    if (!fun.is_fun() || fun.type() != kind::fun) return std::nullopt;
    const closure& c = fun.as_closure();
    if (c.module != atom("dbg") || c.free_vars.size() != 2) return std::nullopt;
    const term& p = c.free_vars[1];
    if (p.type() != kind::integer || p.as_int64() < 0 || p.as_int64() > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(p.as_int64());
}

bool is_exit_message(const term& m) {
    return m.is_tuple(3) && m[0].is_atom(atom("EXIT"));
}

asio::awaitable<term> do_relay(call_context& ctx, std::vector<term> a) {
    auto& core = access::core(ctx.node());
    auto self = core.find_process(ctx.self());
    const term& parent = a[0];
    const term& relp = a[1];
    if (!self || !parent.is_pid()) co_return term(atom("ok"));
    {
        std::lock_guard lk(self->mu);
        self->trap_exit = true;  // process_flag(trap_exit, true)
    }
    std::shared_ptr<trace_listener> listener;
    term tracer;
    if (relp.is_pid()) {
        tracer = self->self_term;  // {started, self()}: a relay to a tracer process
    } else {
        // {ok, Tracer} = remote_tracer(Type, Data): a badmatch when it cannot start one.
        const auto port = relp.is_tuple(2) && relp[0].is_atom(atom("port")) ? ip_trace_port(relp[1])
                                                                            : std::nullopt;
        if (port) listener = std::make_shared<trace_listener>(core.ioc());
        if (!port || listener->open(core.opts.listen_address, *port)) {
            rpc::raise_error(make_tuple(
                {term(atom("badmatch")),
                 make_tuple({term(atom("error")), term(atom(port ? "eaddrinuse" : "notsup"))})}));
        }
        tracer = term(new_port(core));
    }
    runtime::send(*self, parent.as_pid(), make_tuple({term(atom("started")), std::move(tracer)}));

    // Wait, holding no thread, until an 'EXIT' message arrives or the process is killed;
    // anything else is dropped, as do_relay_1/1 drops what it cannot relay.
    using wake_channel = asio::experimental::concurrent_channel<void(boost::system::error_code)>;
    auto wake = std::make_shared<wake_channel>(ctx.executor(), 1);
    for (;;) {
        bool done = false;
        {
            std::lock_guard lk(self->mu);
            for (const term& m : self->queue)
                done = done || is_exit_message(m);
            self->queue.clear();
            done = done || self->exited;
            if (!done)
                self->more_locked().waiters.push_back([wake] { wake->try_send(error_code{}); });
        }
        if (done) break;
        co_await wake->async_receive(asio::use_awaitable);
    }
    if (listener) listener->close();
    co_return term(atom("ok"));
}

}  // namespace

void install_etop(rpc::server& s) {
    const atom ob("observer_backend");
    // The runtime_tools of OTP 25.2, the release this node's distribution emulates.
    s.add_raw(ob, atom("vsn"), 0, [](call_context&, args_t) {
        return make_tuple({term(atom("ok")), charlist("1.19")});
    });
    s.add_raw(ob, atom("etop_collect"), 1, etop_collect);
    s.add_raw_async(atom("dbg"), atom("do_relay"), 2, do_relay);
}

}  // namespace erl::detail::introspection
