// The cluster services (erl::cluster::start) among three erlcpp nodes in one process, no BEAM:
// the adapter's threads, timers, calls and node events under load of a real protocol run
// (the same cores BEAM nodes talk to in interop/global_test.cpp and interop/pg_test.cpp).
#include <erl/cluster.hpp>
#include <erl/global.hpp>
#include <erl/log.hpp>
#include <erl/mailbox.hpp>
#include <erl/node.hpp>
#include <erl/pg.hpp>
#include <erl/process.hpp>
#include <erl/rpc.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include "node_test_support.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct member {
    std::unique_ptr<erl::node> node;
    std::unique_ptr<erl::rpc::server> rpc;
    erl::cluster::running services;

    member(std::uint16_t epmd_port, bool embedded) {
        auto o = erl::test::local_node_options("clus", epmd_port, "cluster_cookie");
        if (!embedded) o.epmd = erl::epmd_mode::require_running;
        node = std::make_unique<erl::node>(o);
        if (node->start()) throw std::runtime_error("node start failed");
        rpc = std::make_unique<erl::rpc::server>(*node);
        auto r = erl::cluster::start(*node, {.rpc = rpc.get()});
        if (!r) throw std::runtime_error("cluster start failed");
        services = std::move(*r);
    }
    ~member() {
        services.stop();
        rpc.reset();
        node->stop();
        erl::join_processes(*node, 5s);
    }
};

erl::term A(const char* s) {
    return erl::term(erl::atom(s));
}

}  // namespace

TEST(ClusterService, names_locks_and_groups_across_three_nodes) {
    const auto port = erl::test::free_port();
    member a(port, true), b(port, false), c(port, false);
    ASSERT_FALSE(a.node->connect(b.node->name()));
    ASSERT_FALSE(b.node->connect(c.node->name()));
    // global connects everyone it learns of (connect_all), and sync returns on every node.
    for (auto* m : {&a, &b, &c})
        EXPECT_FALSE(erl::global::sync(*m->node, 20s));
    EXPECT_TRUE(erl::test::wait_until([&] { return a.node->is_connected(c.node->name()); }));
    EXPECT_EQ(erl::global::known_nodes(*a.node).size(), 2u);

    // Names.
    auto mb = a.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    auto reg = erl::global::register_name(*a.node, A("svc"), mb->self());
    ASSERT_TRUE(reg && *reg);
    EXPECT_EQ(erl::global::whereis_name(*c.node, A("svc")), mb->self());
    auto dup = erl::global::register_name(*c.node, A("svc"), mb->self());
    ASSERT_TRUE(dup);
    EXPECT_FALSE(*dup);
    ASSERT_FALSE(erl::global::send(*c.node, A("svc"), A("hello")));
    auto got = mb->receive(5s);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, A("hello"));

    // Locks: a holder on a excludes c until it exits.
    const erl::term id = erl::tuple(A("res"), A("a"));
    auto holder = a.node->spawn_mailbox();
    auto other = c.node->spawn_mailbox();
    ASSERT_TRUE(holder && other);
    auto locked = erl::global::set_lock(*a.node, id, holder->self());
    ASSERT_TRUE(locked && *locked);
    const erl::term id_c = erl::tuple(A("res"), A("c"));
    auto blocked = erl::global::set_lock(*c.node, id_c, other->self(), {}, 0);
    ASSERT_TRUE(blocked);
    EXPECT_FALSE(*blocked);
    holder->exit(A("done"));
    EXPECT_TRUE(erl::test::wait_until([&] {
        auto r = erl::global::set_lock(*c.node, id_c, other->self(), {}, 0);
        return r && *r;
    }));

    // The name goes with its process.
    mb->exit(A("done"));
    for (auto* m : {&a, &b, &c})
        EXPECT_TRUE(erl::test::wait_until(
            [&] { return !erl::global::whereis_name(*m->node, A("svc")).has_value(); }));

    // Groups, with a subscriber on c.
    std::mutex mu;
    std::vector<erl::pg::event> seen;
    ASSERT_NE(erl::pg::subscribe(*c.node, erl::pg::default_scope(),
                                 [&](const erl::pg::event& e) {
                                     std::lock_guard lk(mu);
                                     seen.push_back(e);
                                 }),
              0u);
    auto w = a.node->spawn_mailbox();
    ASSERT_TRUE(w);
    ASSERT_FALSE(erl::pg::join(*a.node, A("g"), w->self()));
    EXPECT_TRUE(
        erl::test::wait_until([&] { return erl::pg::get_members(*c.node, A("g")).size() == 1; }));
    EXPECT_TRUE(erl::pg::get_local_members(*c.node, A("g")).empty());
    w->exit(A("done"));
    EXPECT_TRUE(
        erl::test::wait_until([&] { return erl::pg::get_members(*c.node, A("g")).empty(); }));
    // The subscriber hears of a change just after get_members shows it.
    EXPECT_TRUE(erl::test::wait_until([&] {
        std::lock_guard lk(mu);
        return seen.size() >= 2;
    }));
    std::lock_guard lk(mu);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].joined, std::vector<erl::pid>{w->self()});
    EXPECT_EQ(seen[1].left, std::vector<erl::pid>{w->self()});
}

TEST(ClusterService, start_twice_and_on_a_stopped_node) {
    const auto port = erl::test::free_port();
    member a(port, true);
    auto again = erl::cluster::start(*a.node, {.rpc = a.rpc.get()});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), make_error_code(erl::errc::name_taken));
    erl::node_options o;
    o.name = erl::test::unique_node_name("clus");
    erl::node idle(o);
    auto none = erl::cluster::start(idle);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error(), make_error_code(erl::errc::not_alive));
    EXPECT_EQ(erl::global::sync(idle), make_error_code(erl::errc::noproc));
    EXPECT_EQ(erl::pg::join(idle, A("g"), erl::pid{}), make_error_code(erl::errc::noproc));
}

// The completion forms: a future, and a callback started on one of the node's own I/O threads
// (where the blocking forms must not be used), the handler running on the node's executor.
TEST(ClusterService, completion_forms_run_on_the_nodes_threads) {
    const auto port = erl::test::free_port();
    member a(port, true), b(port, false);
    ASSERT_FALSE(a.node->connect(b.node->name()));
    // connect() returns once the handshake is done, possibly before the services have heard
    // of the nodeup: wait for the session, so that both nodes' operations include the other.
    ASSERT_TRUE(erl::test::wait_until([&] {
        return erl::global::known_nodes(*a.node).size() == 1 &&
               erl::global::known_nodes(*b.node).size() == 1;
    }));
    auto synced = erl::global::async_sync(*a.node, 20s, boost::asio::use_future);
    ASSERT_EQ(synced.wait_for(30s), std::future_status::ready);
    EXPECT_NO_THROW(synced.get());

    auto mb = a.node->spawn_mailbox();
    ASSERT_TRUE(mb);
    std::promise<std::pair<erl::error_code, bool>> registered;
    boost::asio::post(a.node->executor(), [&] {
        erl::global::async_register_name(*a.node, A("async_svc"), mb->self(), 20s,
                                         [&](erl::error_code ec, bool yes) {
                                             registered.set_value({ec, yes});
                                         });
    });
    auto f = registered.get_future();
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto [ec, yes] = f.get();
    EXPECT_FALSE(ec);
    EXPECT_TRUE(yes);
    EXPECT_EQ(erl::global::whereis_name(*b.node, A("async_svc")), mb->self());

    // A lock taken and released through the completion forms excludes the other node meanwhile.
    const erl::term id = erl::tuple(A("async_res"), A("a"));
    auto locked =
        erl::global::async_set_lock(*a.node, id, mb->self(), {}, -1, 20s, boost::asio::use_future);
    ASSERT_EQ(locked.wait_for(30s), std::future_status::ready);
    EXPECT_TRUE(locked.get());
    auto other = b.node->spawn_mailbox();
    ASSERT_TRUE(other);
    auto blocked =
        erl::global::set_lock(*b.node, erl::tuple(A("async_res"), A("b")), other->self(), {}, 0);
    ASSERT_TRUE(blocked);
    EXPECT_FALSE(*blocked);
    auto released =
        erl::global::async_del_lock(*a.node, id, mb->self(), {}, 20s, boost::asio::use_future);
    ASSERT_EQ(released.wait_for(30s), std::future_status::ready);
    EXPECT_NO_THROW(released.get());

    // Without the services: noproc, delivered to the handler.
    erl::node_options o;
    o.name = erl::test::unique_node_name("clus");
    erl::node idle(o);
    std::promise<erl::error_code> none;
    erl::global::async_sync(idle, 1s, [&](erl::error_code e) { none.set_value(e); });
    auto nf = none.get_future();
    ASSERT_EQ(nf.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(nf.get(), make_error_code(erl::errc::noproc));
}

// A service ended by someone else is an error the node's log reports; a node that stops ends
// every process with `shutdown`, its services' too, and that is no error.
TEST(ClusterService, a_killed_service_is_logged_and_a_stopping_node_logs_nothing) {
    struct log {
        std::mutex mu;
        std::condition_variable cv;
        std::vector<std::string> errors;  // details of service errors
    };
    const auto port = erl::test::free_port();
    auto start = [&](const std::shared_ptr<log>& l) {
        auto o = erl::test::local_node_options("clus", port, "cluster_cookie");
        o.logger = [l](const erl::log_event& e) {
            if (e.kind != erl::log_kind::service || e.level != erl::log_level::error) return;
            std::lock_guard lk(l->mu);
            l->errors.push_back(e.detail);
            l->cv.notify_all();
        };
        auto n = std::make_unique<erl::node>(o);
        EXPECT_FALSE(n->start());
        return n;
    };

    auto quiet = std::make_shared<log>();
    {
        auto n = start(quiet);
        erl::rpc::server rpc(*n);
        auto services = erl::cluster::start(*n, {.rpc = &rpc});
        ASSERT_TRUE(services);
        ASSERT_TRUE(n->whereis(erl::atom("pg")));
        n->stop();
        erl::join_processes(*n, 5s);
    }
    {
        std::lock_guard lk(quiet->mu);
        EXPECT_TRUE(quiet->errors.empty()) << quiet->errors.front();
    }

    auto killed = std::make_shared<log>();
    auto n = start(killed);
    erl::rpc::server rpc(*n);
    auto services = erl::cluster::start(*n, {.rpc = &rpc});
    ASSERT_TRUE(services);
    auto pg = n->whereis(erl::atom("pg"));
    ASSERT_TRUE(pg);
    auto mb = n->spawn_mailbox();
    ASSERT_TRUE(mb);
    mb->exit(*pg, A("kill"));
    {
        std::unique_lock lk(killed->mu);
        ASSERT_TRUE(killed->cv.wait_for(lk, 10s, [&] { return !killed->errors.empty(); }));
        EXPECT_EQ(killed->errors.front(), "cluster: service pg exited: killed");
    }
    services->stop();
    n->stop();
    erl::join_processes(*n, 5s);
}
