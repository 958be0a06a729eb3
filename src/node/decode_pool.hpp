// The node's decode workers: threads that decode the distribution messages a connection's
// reader leaves to them (node_options::decode_offload_threshold), so that one huge term does
// not hold the I/O thread that serves every other connection. Threads start on first use (a
// node that never receives a large message starts none), up to `threads`; a job that finds no
// idle thread waits in a FIFO queue. Each connection has at most one job queued or running
// (its reader waits for it), so the queue is bounded by the number of connections.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace erl::detail {

class decode_pool {
  public:
    explicit decode_pool(unsigned threads) : max_threads_(threads == 0 ? 1 : threads) {}
    ~decode_pool();
    decode_pool(const decode_pool&) = delete;
    decode_pool& operator=(const decode_pool&) = delete;

    // Runs `f` (move-only, called once) on a worker thread.
    template <class F>
    void post(F f) {
        struct job final : job_base {
            F f;
            explicit job(F g) : f(std::move(g)) {}
            void run() override { f(); }
        };
        push(std::make_unique<job>(std::move(f)));
    }

    // Runs what is queued, then ends the threads (stop() of a node, before its io_context is
    // shut down). Later posts start threads again.
    void join();

  private:
    struct job_base {
        virtual ~job_base() = default;
        virtual void run() = 0;
    };
    void push(std::unique_ptr<job_base> j);
    void work();

    const unsigned max_threads_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<job_base>> queue_;
    std::vector<std::thread> threads_;
    unsigned idle_ = 0;
    bool stopping_ = false;
};

}  // namespace erl::detail
