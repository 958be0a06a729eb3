// The process table of a node: pid -> process, registered names, aliases, and pid allocation.
//
// Lock order (the only place it is written down): the table lock is taken before a process's
// lock (process::mu), never the other way round. The table's methods are the only code that
// holds both, and they call nothing outside this class while holding them; callers never hold
// a process lock when they call into the table. A process's `name` and `aliases` are written
// only here (under both locks), so the table and the process always agree.
//
// Pid numbering. NEW_PID_EXT carries a 32-bit ID and a 32-bit Serial (erl_dist_protocol,
// "NEW_PID_EXT"). Peers that negotiated DFLAG_V4_NC (OTP 24 and later; mandatory from OTP 26)
// take all 64 bits: an OTP 25 node decodes <0.4294967294.4294967293> from another node as it
// is. Peers without V4_NC (OTP 23 and older) refuse an ID above 15 bits or a Serial above 13
// bits. So allocation counts through the 64-bit space such that the first 2^28 pids stay
// within 15+13 bits (every OTP version accepts them) and the numbers after that use the full
// width; the counter wraps only after 2^64 pids, and a number whose pid is still in the table
// is skipped, so a live pid is never handed out twice.
//
// Reads. find() and find_name() run for every message delivered, on every thread that sends or
// reads from a connection, while other threads spawn and register. They take no lock on their
// common path: beside the maps (changed and read under the table lock), each has a
// direct-mapped array of the entries, read without it (`read_cache`). A slot holds an entry
// that is in the map (it is cleared, under the exclusive lock, before the entry leaves it), so a
// hit is what the locked map would have answered at that moment; a miss, or a slot holding
// another entry (two keys on one slot), falls back to the map under the shared lock. Names are
// put in their array when registered, processes when made; a lookup that missed a process that
// is in the map puts it there (under the shared lock, which keeps removals out: after the array
// grew, or when two pids share a slot). Pids index their array by allocation
// number (consecutive processes take consecutive slots); the array doubles as the table grows,
// up to a bound, and an array left behind is emptied and kept until the table goes, because a
// reader may still be looking at it.
#pragma once

#include <erl/error.hpp>
#include <erl/term.hpp>

#include "common/block_pool.hpp"
#include "common/function_ref.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace erl::detail {

struct process;

struct ref_key_hash {
    std::size_t operator()(const reference& r) const noexcept {
        std::size_t h = r.node.hash() ^ r.creation;
        for (auto w : r.words())
            h = h * 1000003u ^ w;
        return h;
    }
};

// A direct-mapped array of shared entries, read without the owner's lock (see "Reads" above).
// store() runs under the owner's lock (shared is enough); clear_if() and fit() need it
// exclusively. A slot is a shared_ptr with a spin lock beside it (on the same cache line),
// held only to copy or swap the pointer, so a reader's copy of an entry never meets a half-done
// store. (libstdc++ 12's std::atomic<std::shared_ptr> releases its internal lock with a relaxed
// store after a load, so a reader's copy is not ordered before the next writer's change.)
template <class Entry>
class read_cache {
  public:
    explicit read_cache(std::size_t slots, std::size_t max_slots) : max_slots_(max_slots) {
        arrays_.push_back(make_array(slots));
        cur_.store(arrays_.back().get(), std::memory_order_release);
    }

    std::shared_ptr<Entry> load(std::size_t h) const noexcept {
        const array* a = cur_.load(std::memory_order_acquire);
        slot& s = a->slots[h & a->mask];
        const guard g(s.held);
        return s.entry;
    }
    void store(std::size_t h, std::shared_ptr<Entry> e) noexcept {
        store_in(*arrays_.back(), h, std::move(e));
    }
    // Empties slot h if it holds e. Compared by address: the caller's pointer to the entry may
    // be an alias with another owner (a mailbox handle, a name lookup's result), and a slot left
    // holding an exited process would keep it and its node alive.
    void clear_if(std::size_t h, const Entry* e) noexcept {
        array& a = *arrays_.back();
        slot& s = a.slots[h & a.mask];
        std::shared_ptr<Entry> gone;  // released after the slot's lock
        const guard g(s.held);
        if (s.entry.get() == e) gone = std::move(s.entry);
    }
    // With `entries` entries in the map: doubles the array while it has fewer slots than
    // entries (up to max_slots) and refills it with each(fill), fill(h, entry) per entry.
    template <class Each>
    void fit(std::size_t entries, Each&& each) {
        const array* old = arrays_.back().get();
        if (entries <= old->mask + 1 || old->mask + 1 >= max_slots_) return;
        arrays_.push_back(make_array(std::min(max_slots_, 2 * (old->mask + 1))));
        each([this](std::size_t h, std::shared_ptr<Entry> e) { store(h, std::move(e)); });
        cur_.store(arrays_.back().get(), std::memory_order_release);
        array& prev = *arrays_[arrays_.size() - 2];
        for (std::size_t i = 0; i <= prev.mask; ++i)
            store_in(prev, i, nullptr);
    }

  private:
    struct slot {
        std::atomic<bool> held{false};
        std::shared_ptr<Entry> entry;
    };
    struct array {
        std::size_t mask;
        std::unique_ptr<slot[]> slots;
    };
    static std::unique_ptr<array> make_array(std::size_t n) {
        return std::make_unique<array>(array{n - 1, std::make_unique<slot[]>(n)});
    }

    class guard {
      public:
        explicit guard(std::atomic<bool>& held) noexcept : held_(held) {
            for (unsigned spins = 0; held_.exchange(true, std::memory_order_acquire);) {
                while (held_.load(std::memory_order_relaxed)) {
                    if (++spins % 64 == 0)
                        std::this_thread::yield();
                    else
                        relax();
                }
            }
        }
        ~guard() { held_.store(false, std::memory_order_release); }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;

      private:
        static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        std::atomic<bool>& held_;
    };

    static void store_in(array& a, std::size_t h, std::shared_ptr<Entry> e) noexcept {
        slot& s = a.slots[h & a.mask];
        {
            const guard g(s.held);
            s.entry.swap(e);
        }
        // e now holds what the slot held; it is released here, outside the lock.
    }

    std::size_t max_slots_;
    std::atomic<const array*> cur_{nullptr};
    std::vector<std::unique_ptr<array>> arrays_;  // the current one last
};

class process_table {
  public:
    // The table key of a local pid: ID and Serial, the two numbers that tell local pids apart.
    static std::uint64_t key_of(const pid& p) noexcept {
        return (std::uint64_t(p.id) << 32) | p.serial;
    }
    // ID and Serial of allocation number n (see the numbering above): n's bits 0-14 are ID
    // bits 0-14, bits 15-27 Serial bits 0-12, bits 28-44 ID bits 15-31, bits 45-63 Serial
    // bits 13-31. A bijection, so distinct numbers give distinct pids.
    static std::pair<std::uint32_t, std::uint32_t> numbers_of(std::uint64_t n) noexcept {
        const auto id = static_cast<std::uint32_t>((n & 0x7fff) | (((n >> 28) & 0x1ffff) << 15));
        const auto serial = static_cast<std::uint32_t>(((n >> 15) & 0x1fff) | ((n >> 45) << 13));
        return {id, serial};
    }

    // A new process with a pid no process in the table has: `make(pid)` builds it (called
    // with the table locked: it must only construct). With a name, the name is registered in
    // the same step (errc::name_taken if it is in use; nothing is inserted then).
    result<std::shared_ptr<process>> create(atom node_name, std::uint32_t creation,
                                            function_ref<std::shared_ptr<process>(const pid&)> make,
                                            std::optional<atom> name = std::nullopt);

    // Removes an exited process: its pid, its name (if still its own) and its aliases.
    void remove(const std::shared_ptr<process>& p);

    std::shared_ptr<process> find(const pid& p) const;
    std::shared_ptr<process> find_name(atom n) const;
    std::shared_ptr<process> find_alias(const reference& r) const;
    bool name_in_use(atom n) const;

    // register/2: errc::name_taken if the name is used or the process has a name already,
    // errc::noproc if it has exited.
    error_code register_name(atom n, const std::shared_ptr<process>& p);
    bool unregister_name(atom n);
    std::vector<atom> registered() const;

    // erlang:alias/0 and unalias/1. Adding to an exited process does nothing.
    void add_alias(const reference& r, const std::shared_ptr<process>& p);
    void remove_alias(const reference& r, const std::shared_ptr<process>& p);

    // Every process in the table, for node-wide walks (node down, stop).
    std::vector<std::shared_ptr<process>> snapshot() const;
    std::size_t size() const;

    // Tests only: the next allocation number (to test the wrap of the counter).
    void set_next_number(std::uint64_t n);

  private:
    // The slot of a pid: its allocation number's low 28 bits (see numbers_of).
    static std::size_t slot_of(const pid& p) noexcept {
        return (p.id & 0x7fff) | ((std::size_t(p.serial) & 0x1fff) << 15);
    }
    struct name_entry {
        atom name;
        std::shared_ptr<process> proc;
    };
    void cache_name(atom n, const std::shared_ptr<process>& p);
    void uncache_name(atom n);

    mutable std::shared_mutex mu_;
    // key_of(pid); nodes from the block pool, as a process's other parts
    std::unordered_map<
        std::uint64_t, std::shared_ptr<process>, std::hash<std::uint64_t>,
        std::equal_to<std::uint64_t>,
        block_pool::allocator<std::pair<const std::uint64_t, std::shared_ptr<process>>>>
        procs_;
    std::unordered_map<atom, std::shared_ptr<process>> names_;
    std::unordered_map<reference, std::weak_ptr<process>, ref_key_hash> aliases_;
    std::uint64_t next_ = 1;  // guarded by mu_
    mutable read_cache<process> pid_cache_{1024, std::size_t{1} << 22};
    read_cache<const name_entry> name_cache_{64, std::size_t{1} << 16};
};

}  // namespace erl::detail
