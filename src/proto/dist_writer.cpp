// Distribution frame writer: pass-through or distribution header with the outgoing atom cache,
// and fragmentation of large messages. Layouts: erl_ext_dist "Distribution Header"; the cache
// policy mirrors erts external.c (one slot per atom chosen by hash, at most 255 cache refs per
// message, atoms beyond that or colliding within a message are written inline).
#include "proto/dist_codec.hpp"

#include "common/byte_order.hpp"
#include "common/large_buffer.hpp"

#include <algorithm>

namespace erl::proto {

namespace {

using erl::detail::append_be32;
using erl::detail::append_be64;
using erl::detail::store_be32;

using namespace frame_byte;
constexpr std::size_t cache_size = atom_cache_size;
constexpr std::size_t used_cache_size = 2039;  // prime, as erts ERTS_USE_ATOM_CACHE_SIZE
constexpr std::size_t max_refs_per_message = 255;

}  // namespace

// Outgoing atom cache: what we believe the peer's receive cache holds, plus the refs of the
// message being encoded.
class dist_writer::cache final : public etf::atom_cache_writer {
  public:
    struct ref {
        std::uint16_t cix;
        bool is_new;
        atom a;
    };

    cache() {
        slots_.fill(atom::from_entry(nullptr));
        msg_index_.fill(-1);
    }

    void begin_message() {
        for (auto& r : refs_)
            msg_index_[r.cix] = -1;
        refs_.clear();
    }

    int index_of(atom a) override {
        const auto cix = static_cast<std::uint16_t>(a.hash() % used_cache_size);
        const int existing = msg_index_[cix];
        if (existing >= 0) return refs_[static_cast<std::size_t>(existing)].a == a ? existing : -1;
        if (refs_.size() >= max_refs_per_message) return -1;
        const bool is_new = slots_[cix].entry() != a.entry();
        if (is_new) slots_[cix] = a;
        refs_.push_back({cix, is_new, std::move(a)});
        msg_index_[cix] = static_cast<std::int16_t>(refs_.size() - 1);
        return static_cast<int>(refs_.size() - 1);
    }

    const std::vector<ref>& refs() const noexcept { return refs_; }

  private:
    // What the peer's cache holds; values, so a network atom stays as long as the peer may
    // refer to it.
    std::array<atom, cache_size> slots_;
    std::array<std::int16_t, cache_size> msg_index_;
    std::vector<ref> refs_;
};

void dist_writer::cache_deleter::operator()(cache* c) const noexcept {
    delete c;
}

dist_writer::dist_writer(std::uint64_t negotiated_flags, writer_options opts)
    : flags_(negotiated_flags), opts_(opts) {
    if (opts_.fragment_size < 1) opts_.fragment_size = 1;
    if (flags_ & dflag::dist_hdr_atom_cache) cache_.reset(new cache());
}

void dist_writer::append_tick(std::vector<std::uint8_t>& out) {
    append_be32(out, 0);
}

// NumberOfAtomCacheRefs, half-byte flags (+ LongAtoms), refs — for the refs of the message just
// encoded.
void dist_writer::write_cache_header(std::vector<std::uint8_t>& out) {
    if (!cache_ || cache_->refs().empty()) {
        out.push_back(0);
        return;
    }
    const auto& refs = cache_->refs();
    const std::size_t n = refs.size();
    bool long_atoms = false;
    for (auto& r : refs)
        if (r.is_new && r.a.str().size() > 255) long_atoms = true;
    out.push_back(static_cast<std::uint8_t>(n));
    const std::size_t flags_at = out.size();
    out.resize(out.size() + n / 2 + 1, 0);
    auto set_nibble = [&](std::size_t i, unsigned v) {
        out[flags_at + i / 2] |= static_cast<std::uint8_t>((v & 0xf) << ((i % 2) * 4));
    };
    for (std::size_t i = 0; i < n; ++i)
        set_nibble(i, (refs[i].is_new ? 8u : 0u) | (refs[i].cix >> 8));
    set_nibble(n, long_atoms ? 1u : 0u);
    for (auto& r : refs) {
        out.push_back(static_cast<std::uint8_t>(r.cix & 0xff));
        if (!r.is_new) continue;
        auto text = r.a.str();
        if (long_atoms) out.push_back(static_cast<std::uint8_t>(text.size() >> 8));
        out.push_back(static_cast<std::uint8_t>(text.size()));
        out.insert(out.end(), text.begin(), text.end());
    }
}

// Starts a message. Pass-through (no header negotiated, returns false): the frame is written
// straight into `out` (length placeholder, 112, 131 of the control term). With a header
// (returns true): control and payload go to body_ first, because the header before them lists
// the atoms they reference.
bool dist_writer::begin_body(std::vector<std::uint8_t>& out) {
    pass_through_ = !(flags_ & (dflag::dist_hdr_atom_cache | dflag::fragments));
    if (pass_through_) {
        // 112, 131 Control, [131 Payload]
        append_be32(out, 0);
        out.push_back(pass_through);
        out.push_back(version_magic);
        return false;
    }
    if (cache_) cache_->begin_message();
    body_.clear();
    return true;
}

void dist_writer::put_atom(atom a) {
    etf::encode_body(body_, term(a), cache_.get());
}

void dist_writer::append_message(std::vector<std::uint8_t>& out, const term& control,
                                 const term* payload) {
    const std::size_t len_at = out.size();
    if (!begin_body(out)) {
        out.pop_back();  // encode_append writes its own 131
        etf::encode_append(out, control);
    } else {
        etf::encode_body(body_, control, cache_.get());
    }
    finish_message(out, len_at, payload);
}

void dist_writer::append_send(std::vector<std::uint8_t>& out, const term& from, const pid& to,
                              const term& payload, bool send_sender) {
    const std::size_t len_at = out.size();
    const bool hdr = begin_body(out);
    std::vector<std::uint8_t>& b = hdr ? body_ : out;
    etf::atom_cache_writer* c = hdr ? cache_.get() : nullptr;
    // SMALL_TUPLE_EXT 3, SMALL_INTEGER_EXT op, From (or ''), NEW_PID_EXT To.
    b.insert(b.end(),
             {104, 3, 97, static_cast<std::uint8_t>(send_sender ? dop::send_sender : dop::send)});
    etf::encode_body(b, send_sender ? from : term(atom()), c);
    b.push_back(88);
    etf::encode_body(b, term(to.node), c);
    append_be32(b, to.id);
    append_be32(b, to.serial);
    append_be32(b, to.creation);
    finish_message(out, len_at, &payload);
}

void dist_writer::append_reg_send(std::vector<std::uint8_t>& out, const term& from, atom to_name,
                                  const term& payload) {
    const std::size_t len_at = out.size();
    const bool hdr = begin_body(out);
    std::vector<std::uint8_t>& b = hdr ? body_ : out;
    etf::atom_cache_writer* c = hdr ? cache_.get() : nullptr;
    // SMALL_TUPLE_EXT 4, SMALL_INTEGER_EXT 6, From, '', ToName.
    b.insert(b.end(), {104, 4, 97, static_cast<std::uint8_t>(dop::reg_send)});
    etf::encode_body(b, from, c);
    etf::encode_body(b, term(atom()), c);
    etf::encode_body(b, term(to_name), c);
    finish_message(out, len_at, &payload);
}

namespace {
// Room for `more` bytes after out's end in one step (growing at least geometrically, so a run
// of small appends stays amortized): a large message is then copied into the queue once,
// instead of once more per doubling of the queue while its pieces are appended.
void reserve_for(std::vector<std::uint8_t>& out, std::size_t more) {
    const std::size_t need = out.size() + more;
    if (need > out.capacity()) erl::detail::reserve_large(out, std::max(need, 2 * out.capacity()));
}

// Copies the logical body (body bytes with the binaries left out of them put back, `refs` in
// order) to `out`, `n` bytes at a time from where the previous call stopped: body bytes are
// appended, a left-out binary's bytes become a ref of `into` at their place in `out`.
class body_cursor {
  public:
    body_cursor(const std::vector<std::uint8_t>& body,
                const std::vector<etf::detail::byte_ref>& refs, gathered_output* into,
                const term* owner)
        : body_(body), refs_(refs), into_(into), owner_(owner) {}

    void emit(std::vector<std::uint8_t>& out, std::size_t n) {
        while (n > 0) {
            if (i_ < refs_.size() && b_ == refs_[i_].at) {
                const auto& r = refs_[i_];
                const std::size_t m = std::min(n, r.size - j_);
                into_->refs.push_back({out.size(), r.data + j_, m, *owner_});
                into_->ref_bytes += m;
                j_ += m;
                n -= m;
                if (j_ == r.size) {
                    ++i_;
                    j_ = 0;
                }
                continue;
            }
            const std::size_t stop = i_ < refs_.size() ? refs_[i_].at : body_.size();
            const std::size_t m = std::min(n, stop - b_);
            out.insert(out.end(), body_.begin() + static_cast<std::ptrdiff_t>(b_),
                       body_.begin() + static_cast<std::ptrdiff_t>(b_ + m));
            b_ += m;
            n -= m;
        }
    }

  private:
    const std::vector<std::uint8_t>& body_;
    const std::vector<etf::detail::byte_ref>& refs_;
    gathered_output* into_;
    const term* owner_;
    std::size_t i_ = 0;  // next ref
    std::size_t j_ = 0;  // bytes of refs_[i_] emitted
    std::size_t b_ = 0;  // body bytes emitted
};
}  // namespace

void dist_writer::finish_message(std::vector<std::uint8_t>& out, std::size_t len_at,
                                 const term* payload) {
    ++messages_;
    if (pass_through_) {
        ++frames_;
        if (payload) etf::encode_append(out, *payload);
        store_be32(out.data() + len_at, static_cast<std::uint32_t>(out.size() - len_at - 4));
        return;
    }
    const std::size_t control_size = body_.size();
    body_refs_.clear();
    if (payload && gather_)
        etf::detail::encode_body_gathered(body_, *payload, cache_.get(), gather_min_, body_refs_);
    else if (payload)
        etf::encode_body(body_, *payload, cache_.get());
    std::size_t left_out = 0;
    for (const auto& r : body_refs_)
        left_out += r.size;
    const std::size_t body_size = body_.size() + left_out;  // the body as the peer gets it
    body_cursor body(body_, body_refs_, gather_, payload);

    std::vector<std::uint8_t>& hdr = hdr_;
    hdr.clear();
    write_cache_header(hdr);

    const bool fragment =
        (flags_ & dflag::fragments) && 2 + hdr.size() + body_size > opts_.fragment_size;
    if (!fragment) {
        ++frames_;
        reserve_for(out, 6 + hdr.size() + body_.size());
        append_be32(out, static_cast<std::uint32_t>(2 + hdr.size() + body_size));
        out.push_back(version_magic);
        out.push_back(dist_header);
        out.insert(out.end(), hdr.begin(), hdr.end());
        body.emit(out, body_size);
        if (body_.capacity() > 4 * opts_.fragment_size) {
            body_.clear();
            body_.shrink_to_fit();
        }
        return;
    }

    // Fragments: the first carries the cache header, the whole control term and up to
    // fragment_size body bytes; the rest carry fragment_size bytes each. Ids count down to 1.
    const std::size_t fs = opts_.fragment_size;
    const std::size_t first = std::min(body_size, std::max(fs, control_size));
    const std::size_t rest = body_size - first;
    const std::uint64_t count = 1 + (rest + fs - 1) / fs;
    const std::uint64_t seq = next_seq_++;
    std::uint64_t id = count;
    frames_ += count;
    // All fragments at once: one allocation instead of one copy of the queue per doubling.
    reserve_for(out, count * 22 + hdr.size() + body_.size());

    append_be32(out, static_cast<std::uint32_t>(18 + hdr.size() + first));
    out.push_back(version_magic);
    out.push_back(dist_frag_header);
    append_be64(out, seq);
    append_be64(out, id--);
    out.insert(out.end(), hdr.begin(), hdr.end());
    body.emit(out, first);
    for (std::size_t off = first; off < body_size; off += fs) {
        const std::size_t n = std::min(fs, body_size - off);
        append_be32(out, static_cast<std::uint32_t>(18 + n));
        out.push_back(version_magic);
        out.push_back(dist_frag_cont);
        append_be64(out, seq);
        append_be64(out, id--);
        body.emit(out, n);
    }
    if (body_.capacity() > 4 * fs) {
        body_.clear();
        body_.shrink_to_fit();  // don't keep a huge scratch buffer after one big message
    }
}

}  // namespace erl::proto
