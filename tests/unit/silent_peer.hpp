// A "node" that accepts connections and never answers the handshake, for the unit tests that
// need a peer whose connection stays in set-up.
#pragma once

#include <erl/epmd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace erl::test {

// A "node" registered in EPMD that accepts TCP connections and never answers the handshake:
// connections to it stay in set-up until net_setuptime.
class silent_peer {
  public:
    silent_peer(std::uint16_t epmd_port, std::string name)
        : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        accept();
        thread_ = std::thread([this] { io_.run(); });
        erl::epmd::node_info info;
        info.name = std::move(name);
        info.port = acceptor_.local_endpoint().port();
        auto fut = boost::asio::co_spawn(
            io_, erl::epmd::async_register("127.0.0.1", epmd_port, info, std::chrono::seconds(5)),
            boost::asio::use_future);
        auto reg = fut.get();
        if (reg) reg_ = std::move(*reg);
        registered_ = static_cast<bool>(reg);
    }
    ~silent_peer() {
        boost::asio::post(io_, [this] {
            reg_.close();
            error_code ec;
            acceptor_.close(ec);
            socks_.clear();
        });
        work_.reset();
        io_.stop();
        thread_.join();
    }
    bool registered() const { return registered_; }

  private:
    using error_code = boost::system::error_code;
    void accept() {
        acceptor_.async_accept([this](error_code ec, boost::asio::ip::tcp::socket s) {
            if (ec) return;
            socks_.push_back(std::move(s));  // held open, never read
            accept();
        });
    }
    boost::asio::io_context io_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
        io_.get_executor()};
    boost::asio::ip::tcp::acceptor acceptor_;
    std::vector<boost::asio::ip::tcp::socket> socks_;
    erl::epmd::registration reg_;
    bool registered_ = false;
    std::thread thread_;
};

}  // namespace erl::test
