// The process-local link information of the new link protocol (erl_dist_protocol "Link
// Protocol", mandatory since OTP 26). Pure data: the owner (detail::process) guards it with its
// mutex; the signal code in src/node/signals.cpp decides what to send.
//
// Each entry is a linked pid plus an "unlink id": 0 means the link is active; a non-zero id
// means we sent UNLINK_ID with that id and wait for its UNLINK_ID_ACK. An inactive link ignores
// exit signals issued because of the link: the processes count as not linked.
#pragma once

#include <erl/term.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace erl::detail {

class link_table {
  public:
    struct entry {
        term pid;
        std::uint64_t unlink_id = 0;  // 0: active
        bool active() const noexcept { return unlink_id == 0; }
    };

    // We call link/1. "A LINK signal is only sent if there does not currently exist an active
    // link"; the entry becomes active and a pending unlink's ack will be ignored.
    // Returns true if a LINK signal must be sent.
    bool link_sent(const term& other) {
        if (auto* e = find(other)) {
            if (e->active()) return false;
            e->unlink_id = 0;
            return true;
        }
        entries_.push_back({other, 0});
        return true;
    }

    // A LINK signal arrives. Created if absent; otherwise ignored "regardless of whether the
    // active flag is set" (an outstanding unlink of ours wins: the peer will see our UNLINK_ID
    // after its LINK, and both agree there is no link). Returns true if a link was created.
    bool link_received(const term& other) {
        if (find(other)) return false;
        entries_.push_back({other, 0});
        return true;
    }

    // We call unlink/1. Only an active link sends UNLINK_ID: the entry turns inactive and
    // remembers `id`. Returns true if UNLINK_ID{id} must be sent.
    bool unlink_sent(const term& other, std::uint64_t id) {
        auto* e = find(other);
        if (!e || !e->active()) return false;
        e->unlink_id = id;
        return true;
    }

    // Unlink without a handshake (the peer predates UNLINK_ID, or both ends are handled
    // atomically): the entry is removed. Returns true if an active link existed.
    bool remove(const term& other) {
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const entry& e) { return e.pid == other; });
        if (it == entries_.end()) return false;
        const bool was_active = it->active();
        entries_.erase(it);
        return was_active;
    }

    // UNLINK_ID arrives: an active link is removed; an inactive one (our own unlink is
    // outstanding) is left unchanged. The caller always answers UNLINK_ID_ACK.
    void unlink_id_received(const term& other) {
        auto* e = find(other);
        if (e && e->active()) remove(other);
    }

    // UNLINK_ID_ACK arrives: removes the entry only if it is inactive with the same id.
    bool unlink_ack_received(const term& other, std::uint64_t id) {
        auto* e = find(other);
        if (!e || e->active() || e->unlink_id != id) return false;
        remove(other);
        return true;
    }

    // An exit signal issued because of the link arrives: "react to the exit signal if the link
    // is active and then remove the process local information about the link".
    // Returns true if the signal must be acted on.
    bool exit_received(const term& other) { return remove(other); }

    bool is_linked(const term& other) const {
        auto* e = const_cast<link_table*>(this)->find(other);
        return e && e->active();
    }

    // Active linked pids (process_info(P, links)).
    std::vector<term> active() const {
        std::vector<term> out;
        for (auto& e : entries_)
            if (e.active()) out.push_back(e.pid);
        return out;
    }

    // Process exit: every entry goes; the active ones get an exit signal.
    std::vector<term> take_active() {
        auto out = active();
        entries_.clear();
        return out;
    }

    // Connection to `node` lost: inactive entries on it are dropped; the active ones are
    // returned (the caller delivers `noconnection` through exit_received, which removes them).
    std::vector<term> on_node_down(atom node) {
        std::vector<term> out;
        std::erase_if(entries_, [&](const entry& e) {
            if (!e.pid.is_pid() || e.pid.as_pid().node != node) return false;
            if (e.active()) {
                out.push_back(e.pid);
                return false;
            }
            return true;
        });
        return out;
    }

    std::size_t size() const noexcept { return entries_.size(); }
    const std::vector<entry>& entries() const noexcept { return entries_; }

  private:
    entry* find(const term& other) {
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const entry& e) { return e.pid == other; });
        return it == entries_.end() ? nullptr : &*it;
    }

    std::vector<entry> entries_;
};

}  // namespace erl::detail
