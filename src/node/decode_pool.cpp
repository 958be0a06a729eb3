#include "node/decode_pool.hpp"

namespace erl::detail {

decode_pool::~decode_pool() {
    join();
}

void decode_pool::push(std::unique_ptr<job_base> j) {
    std::unique_lock lk(mu_);
    queue_.push_back(std::move(j));
    if (idle_ == 0 && threads_.size() < max_threads_) {
        threads_.emplace_back([this] { work(); });
        return;
    }
    lk.unlock();
    cv_.notify_one();
}

void decode_pool::work() {
    std::unique_lock lk(mu_);
    for (;;) {
        if (queue_.empty()) {
            if (stopping_) return;
            ++idle_;
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            --idle_;
            continue;
        }
        auto j = std::move(queue_.front());
        queue_.pop_front();
        lk.unlock();
        j->run();
        j.reset();  // what it captured goes here, not under the lock
        lk.lock();
    }
}

void decode_pool::join() {
    std::vector<std::thread> threads;
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) {
        // A job's captures may hold the last reference to whatever owns the pool: then the
        // pool is destroyed on its own worker, which cannot join itself.
        if (t.get_id() == std::this_thread::get_id())
            t.detach();
        else
            t.join();
    }
    std::lock_guard lk(mu_);
    stopping_ = false;
}

}  // namespace erl::detail
