// Distribution frame reader: framing, pass-through, distribution header with the receive atom
// cache, fragment reassembly. Layouts: erl_ext_dist "Distribution Header" and "Distribution
// Header for fragmented messages"; erl_dist_protocol "Protocol between Connected Nodes".
#include "proto/dist_codec.hpp"

#include "common/buffer_pool.hpp"
#include "common/byte_order.hpp"
#include "term/term_internal.hpp"

#include <algorithm>
#include <utility>

namespace erl::proto {

namespace {

using erl::detail::load_be32;
using erl::detail::load_be64;

using namespace frame_byte;

// Opcode of a control tuple, or -1.
int control_op(const term& ctl) noexcept {
    if (!ctl.is_tuple() || ctl.size() == 0) return -1;
    const term& first = ctl.as_tuple()[0];
    if (!first.is_small()) return -1;
    auto v = first.as_int64();
    return v >= 0 && v < 256 ? static_cast<int>(v) : -1;
}

// The control term at the start of `in` (a body, or with pass_through its 131 version byte
// first); `rest` gets what follows it.
error_code decode_control(std::span<const std::uint8_t> in, std::span<const atom> refs,
                          bool pass_through, const etf::limits& lim, term& ctl,
                          std::span<const std::uint8_t>& rest) {
    std::size_t skip = 0;
    if (pass_through) {
        if (in.empty() || in[0] != version_magic) return make_error_code(errc::bad_version);
        skip = 1;
    }
    std::size_t used = 0;
    auto c = etf::decode_body(in.subspan(skip), used, lim, refs);
    if (!c) return c.error();
    if (control_op(*c) < 0) return make_error_code(errc::bad_control_message);
    ctl = std::move(*c);
    rest = in.subspan(skip + used);
    return {};
}

// A SEND, SEND_SENDER or REG_SEND control at the start of `in` in the encodings dist_route
// names; `used` gets its length. False for anything else (the general decoder then reads it,
// and reports what is wrong with it).
bool read_route(std::span<const std::uint8_t> in, std::span<const atom> refs, dist_route& r,
                std::size_t& used) noexcept {
    const std::uint8_t* p = in.data();
    const std::uint8_t* const end = p + in.size();
    auto atom_ref = [&](atom* out) {
        if (end - p < 2 || p[0] != etf::tag::atom_cache_ref || p[1] >= refs.size()) return false;
        if (out) *out = refs[p[1]];
        p += 2;
        return true;
    };
    auto new_pid = [&](pid& out) {
        if (end - p < 1 || p[0] != etf::tag::new_pid) return false;
        ++p;
        if (!atom_ref(&out.node) || end - p < 12) return false;
        out.id = load_be32(p);
        out.serial = load_be32(p + 4);
        out.creation = load_be32(p + 8);
        p += 12;
        return true;
    };
    if (in.size() < 4 || p[0] != etf::tag::small_tuple || p[2] != etf::tag::small_integer)
        return false;
    const int arity = p[1];
    const int op = p[3];
    p += 4;
    bool ok = false;
    if (op == dop::send && arity == 3) {
        ok = atom_ref(nullptr) && new_pid(r.to);
    } else if (op == dop::send_sender && arity == 3) {
        ok = new_pid(r.from) && new_pid(r.to);
    } else if (op == dop::reg_send && arity == 4) {
        ok = new_pid(r.from) && atom_ref(nullptr) && atom_ref(&r.to_name);
    }
    if (!ok) return false;
    r.op = op;
    used = static_cast<std::size_t>(p - in.data());
    return true;
}

// The payload after the control term (none for control messages that carry none); `op` is
// the control's opcode.
error_code decode_payload(term ctl, int op, std::span<const std::uint8_t> rest,
                          std::span<const atom> refs, bool pass_through, const etf::limits& lim,
                          dist_message& out, const etf::sharing& share = {}) {
    out.control = std::move(ctl);
    out.payload.reset();
    if (rest.empty()) {
        if (dop::carries_payload(op)) return make_error_code(errc::bad_control_message);
        return {};
    }
    if (pass_through) {
        // etf::decode handles the 131 byte, a compressed (80) payload and trailing bytes.
        auto p = etf::decode(rest, share, lim);
        if (!p) return p.error();
        out.payload = std::move(*p);
        return {};
    }
    std::size_t used = 0;
    auto p = etf::decode_body(rest, used, share, lim, refs);
    if (!p) return p.error();
    if (used != rest.size()) return make_error_code(errc::trailing_bytes);
    out.payload = std::move(*p);
    return {};
}

// A term body that starts with COMPRESSED (80), with or without its 131 version byte: its
// decoding cost is what it inflates to, not its size in the frame.
bool compressed_at(std::span<const std::uint8_t> in, bool with_version) noexcept {
    if (with_version)
        return in.size() > 1 && in[0] == version_magic && in[1] == etf::tag::compressed;
    return !in.empty() && in[0] == etf::tag::compressed;
}

// Large binaries may refer to a frame buffer of at least `min_shared` bytes: the buffer moves
// (its bytes stay where they are) into the returned sharing; else it stays in place and the
// sharing has no owner (everything is copied).
etf::sharing share_buffer(std::vector<std::uint8_t>* buf, std::size_t min_shared) {
    if (!buf || buf->size() < min_shared) return {};
    return {erl::detail::adopt_buffer(std::move(*buf)), min_shared};
}

}  // namespace

error_code decode_deferred(deferred_message& m, const etf::limits& limits, dist_message& out) {
    auto in = std::span<const std::uint8_t>(m.storage).subspan(m.offset);
    term ctl;
    std::span<const std::uint8_t> rest = in;
    if (m.control) {
        ctl = *m.control;
    } else if (auto ec = decode_control(in, m.refs, m.pass_through, limits, ctl, rest)) {
        return ec;
    }
    const int op = control_op(ctl);
    auto ec = decode_payload(std::move(ctl), op, rest, m.refs, m.pass_through, limits, out,
                             share_buffer(&m.storage, m.min_shared_binary));
    erl::detail::buffer_pool::give(std::move(m.storage));  // unless binaries took it
    return ec;
}

term dist_message::control_tuple() const {
    switch (route.op) {
        case dop::send:
            return tuple(dop::send, atom(), route.to);
        case dop::send_sender:
            return tuple(dop::send_sender, route.from, route.to);
        case dop::reg_send:
            return tuple(dop::reg_send, route.from, atom(), route.to_name);
        default:
            return control;
    }
}

bool dop::carries_payload(int op) noexcept {
    switch (op) {
        case send:
        case reg_send:
        case send_tt:
        case reg_send_tt:
        case send_sender:
        case send_sender_tt:
        case payload_exit:
        case payload_exit_tt:
        case payload_exit2:
        case payload_exit2_tt:
        case payload_monitor_p_exit:
        case spawn_request:
        case spawn_request_tt:
        case alias_send:
        case alias_send_tt:
            return true;
        default:
            return false;
    }
}

dist_reader::dist_reader(std::uint64_t negotiated_flags, reader_limits limits)
    : flags_(negotiated_flags), limits_(limits) {
    // max_message_size bounds a message whether or not the peer compressed it: a compressed
    // term (tag 80) may not inflate to more.
    limits_.term_limits.max_uncompressed =
        std::min(limits_.term_limits.max_uncompressed, limits_.max_message_size);
}

dist_reader::~dist_reader() {
    give_fragment_bytes(frag_bytes_);
}

error_code dist_reader::fail(error_code ec) {
    error_ = ec;
    return ec;
}

error_code dist_reader::take_fragment_bytes(std::size_t n) {
    if (n > limits_.max_fragmented_bytes - frag_bytes_) {
        exceeded_ = "max_fragmented_bytes";
        return fail(make_error_code(errc::limit_exceeded));
    }
    if (limits_.fragmented_total) {
        // Reserve first, then check: concurrent readers cannot both slip under the bound.
        const std::size_t before = limits_.fragmented_total->fetch_add(n);
        if (before > limits_.max_fragmented_total || n > limits_.max_fragmented_total - before) {
            limits_.fragmented_total->fetch_sub(n);
            exceeded_ = "max_fragmented_total";
            return fail(make_error_code(errc::limit_exceeded));
        }
    }
    frag_bytes_ += n;
    return {};
}

void dist_reader::give_fragment_bytes(std::size_t n) noexcept {
    frag_bytes_ -= n;
    if (limits_.fragmented_total) limits_.fragmented_total->fetch_sub(n);
}

void dist_reader::reset() {
    erl::detail::buffer_pool::give(std::move(partial_));  // leaves it empty, without a buffer
    for (auto& [seq, s] : seqs_)
        erl::detail::buffer_pool::give(std::move(s.data));
    seqs_.clear();
    frag_reserved_ = 0;
    give_fragment_bytes(frag_bytes_);
}

error_code dist_reader::feed(std::span<const std::uint8_t> in, std::vector<dist_message>& out) {
    // Deferred messages are decoded here, in order: this form decodes everything itself.
    std::size_t pos = 0;
    for (;;) {
        std::size_t used = 0;
        if (auto ec = feed(in.subspan(pos), out, used)) return ec;
        pos += used;
        if (!deferred_) return {};
        if (auto ec = decode_deferred_here(out)) return ec;
    }
}

error_code dist_reader::decode_deferred_here(std::vector<dist_message>& out) {
    dist_message m;
    auto ec = decode_deferred(*deferred_, limits_.term_limits, m);
    deferred_.reset();
    if (ec) return fail(ec);
    out.push_back(std::move(m));
    return {};
}

deferred_message dist_reader::take_deferred() {
    deferred_message m = std::move(*deferred_);
    deferred_.reset();
    return m;
}

void dist_reader::defer(std::span<const std::uint8_t> bytes, std::vector<std::uint8_t>* owner,
                        std::span<const atom> refs, bool pass_through,
                        std::optional<term> control) {
    deferred_message m;
    if (owner) {
        m.offset = static_cast<std::size_t>(bytes.data() - owner->data());
        m.storage = std::move(*owner);  // the buffer moves with it: `bytes` stays valid
        m.storage.resize(m.offset + bytes.size());
    } else {
        m.storage.assign(bytes.begin(), bytes.end());
    }
    m.refs.assign(refs.begin(), refs.end());
    m.min_shared_binary = limits_.min_shared_binary;
    m.pass_through = pass_through;
    m.control = std::move(control);
    deferred_ = std::move(m);
}

error_code dist_reader::feed(std::span<const std::uint8_t> in, std::vector<dist_message>& out,
                             std::size_t& consumed) {
    consumed = 0;
    if (error_) return error_;
    std::size_t pos = 0;
    if (!partial_.empty()) {
        // Finish the frame started by an earlier chunk (the only copy the reader makes).
        while (partial_.size() < 4 && pos < in.size())
            partial_.push_back(in[pos++]);
        consumed = pos;
        if (partial_.size() < 4) return {};
        std::size_t len = load_be32(partial_.data());
        if (len > limits_.max_frame_size) return fail(make_error_code(errc::frame_too_large));
        // The whole frame at once (as OTP's inet driver allocates a {packet, 4} packet when it
        // has read the length): a large frame is not copied again each time it outgrows its
        // buffer. Pages are touched only as the bytes arrive, or were touched by an earlier
        // large message whose buffer was kept for reuse.
        if (partial_.capacity() < 4 + len) {
            auto room = erl::detail::buffer_pool::take(4 + len);
            room.assign(partial_.begin(), partial_.end());
            partial_.swap(room);
        }
        std::size_t take = std::min(4 + len - partial_.size(), in.size() - pos);
        partial_.insert(partial_.end(), in.begin() + static_cast<std::ptrdiff_t>(pos),
                        in.begin() + static_cast<std::ptrdiff_t>(pos + take));
        pos += take;
        consumed = pos;
        if (partial_.size() < 4 + len) return {};
        std::vector<std::uint8_t> frame;
        frame.swap(partial_);
        auto ec = parse_frame_owned(std::span(frame).subspan(4), out, &frame);
        erl::detail::buffer_pool::give(std::move(frame));  // unless binaries or a deferral took it
        if (ec) return ec;
        if (deferred_) return {};
    }
    // Complete frames are parsed in place.
    while (in.size() - pos >= 4) {
        std::size_t len = load_be32(in.data() + pos);
        if (len > limits_.max_frame_size) return fail(make_error_code(errc::frame_too_large));
        if (in.size() - pos - 4 < len) break;
        if (auto ec = parse_frame_owned(in.subspan(pos + 4, len), out, nullptr)) return ec;
        pos += 4 + len;
        consumed = pos;
        if (deferred_) return {};
    }
    partial_.assign(in.begin() + static_cast<std::ptrdiff_t>(pos), in.end());
    consumed = in.size();
    if (partial_.size() >= 4 && load_be32(partial_.data()) > limits_.max_frame_size)
        return fail(make_error_code(errc::frame_too_large));
    return {};
}

error_code dist_reader::parse_frame(std::span<const std::uint8_t> data,
                                    std::vector<dist_message>& out) {
    if (auto ec = parse_frame_owned(data, out, nullptr)) return ec;
    return deferred_ ? decode_deferred_here(out) : error_code{};
}

error_code dist_reader::parse_frame_owned(std::span<const std::uint8_t> data,
                                          std::vector<dist_message>& out,
                                          std::vector<std::uint8_t>* owner) {
    if (error_) return error_;
    ++frames_;
    if (data.empty()) {
        ++ticks_;
        return {};
    }
    if (data[0] == pass_through) return parse_pass_through(data.subspan(1), out, owner);
    if (data[0] != version_magic || data.size() < 2) return fail(make_error_code(errc::bad_frame));
    switch (data[1]) {
        case dist_header: {
            auto in = data.subspan(2);
            if (auto ec = parse_header(in, refs_scratch_)) return ec;
            return decode_message(in, refs_scratch_, out, owner);
        }
        case dist_frag_header: {
            if (data.size() < 18) return fail(make_error_code(errc::bad_dist_header));
            std::uint64_t seq = load_be64(data.data() + 2);
            std::uint64_t id = load_be64(data.data() + 10);
            if (id == 0) return fail(make_error_code(errc::bad_dist_header));
            auto in = data.subspan(18);
            // The atom cache updates of a fragmented message take effect when its first
            // fragment arrives, in stream order (as erts does when it prepares the first
            // fragment), so later messages may already refer to them.
            if (auto ec = parse_header(in, refs_scratch_)) return ec;
            if (id == 1) return decode_message(in, refs_scratch_, out, owner);
            if (seqs_.count(seq)) return fail(make_error_code(errc::bad_frame));
            if (seqs_.size() >= limits_.max_fragment_sequences) {
                exceeded_ = "max_fragment_sequences";
                return fail(make_error_code(errc::limit_exceeded));
            }
            if (auto ec = take_fragment_bytes(in.size())) return ec;
            sequence s;
            s.refs = refs_scratch_;
            // Room for the whole message at once: `id` fragments the size of this one (a
            // sender's fragments have one size, its last is shorter), so the fragments are
            // copied once instead of once more per doubling. The fragment bounds count the bytes
            // that arrive, so what is reserved ahead is bounded on its own: by max_message_size,
            // and per connection by max_fragmented_bytes over all its sequences together.
            const std::size_t room = limits_.max_fragmented_bytes -
                                     std::min(limits_.max_fragmented_bytes, frag_reserved_);
            const std::size_t cap = std::min(limits_.max_message_size, room);
            const std::size_t claimed = in.empty() ? 0
                                        : id > cap / in.size()
                                            ? cap
                                            : static_cast<std::size_t>(id) * in.size();
            if (claimed > in.size()) {
                // Plain pages: they are backed only as the bytes arrive, so resident memory
                // stays within the fragment bounds (a huge page would be backed 2 MiB at once).
                // A buffer kept for reuse is backed already; it is at most twice `claimed`.
                s.data = erl::detail::buffer_pool::take(claimed);
                s.reserved = claimed;
                frag_reserved_ += s.reserved;
            }
            s.data.assign(in.begin(), in.end());
            s.next_id = id - 1;
            seqs_.emplace(seq, std::move(s));
            return {};
        }
        case dist_frag_cont: {
            if (data.size() < 18) return fail(make_error_code(errc::bad_dist_header));
            std::uint64_t seq = load_be64(data.data() + 2);
            std::uint64_t id = load_be64(data.data() + 10);
            auto it = seqs_.find(seq);
            if (it == seqs_.end() || id != it->second.next_id)
                return fail(make_error_code(errc::bad_frame));
            auto in = data.subspan(18);
            if (auto ec = take_fragment_bytes(in.size())) return ec;
            auto& s = it->second;
            if (in.size() >
                limits_.max_message_size - std::min(limits_.max_message_size, s.data.size()))
                return fail(make_error_code(errc::frame_too_large));
            s.data.insert(s.data.end(), in.begin(), in.end());
            if (id > 1) {
                s.next_id = id - 1;
                return {};
            }
            sequence done = std::move(s);
            seqs_.erase(it);
            give_fragment_bytes(done.data.size());
            frag_reserved_ -= done.reserved;
            auto ec = decode_message(done.data, done.refs, out, &done.data);
            erl::detail::buffer_pool::give(std::move(done.data));  // unless binaries took it
            return ec;
        }
        default:
            return fail(make_error_code(errc::bad_dist_header));
    }
}

// NumberOfAtomCacheRefs:8, Flags (NumberOfAtomCacheRefs/2+1 bytes of half-byte flags,
// NewCacheEntryFlag:1 SegmentIndex:3 per ref, then the LongAtoms half-byte), then per ref
// InternalSegmentIndex:8 [+ Length:8|16 + AtomText for new entries].
error_code dist_reader::parse_header(std::span<const std::uint8_t>& in, std::vector<atom>& refs) {
    auto bad = [&] { return fail(make_error_code(errc::bad_dist_header)); };
    refs.clear();
    if (in.empty()) return bad();
    const std::size_t n = in[0];
    std::size_t pos = 1;
    if (n == 0) {
        in = in.subspan(pos);
        return {};
    }
    const std::size_t flag_bytes = n / 2 + 1;
    if (in.size() - pos < flag_bytes) return bad();
    const std::uint8_t* flags = in.data() + pos;
    pos += flag_bytes;
    auto nibble = [&](std::size_t i) { return (flags[i / 2] >> ((i % 2) * 4)) & 0xf; };
    const bool long_atoms = nibble(n) & 1;
    refs.resize(n);  // assigned in place below: cheaper than a push_back per atom
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned f = nibble(i);
        if (pos >= in.size()) return bad();
        const std::size_t cix = (f & 7) * 256 + in[pos++];
        if (f & 8) {
            std::size_t len;
            if (long_atoms) {
                if (in.size() - pos < 2) return bad();
                len = (std::size_t{in[pos]} << 8) | in[pos + 1];
                pos += 2;
            } else {
                if (in.size() - pos < 1) return bad();
                len = in[pos++];
            }
            if (in.size() - pos < len) return bad();
            // UTF8_ATOMS is mandatory, so the text is UTF-8 (erl_ext_dist).
            auto a = atom::make_network(
                std::string_view(reinterpret_cast<const char*>(in.data() + pos), len));
            if (!a) return fail(a.error());
            pos += len;
            auto& seg = cache_[cix / 256];
            if (!seg) {
                seg = std::make_unique<atom[]>(256);
                for (std::size_t j = 0; j < 256; ++j)
                    seg[j] = atom::from_entry(nullptr);
            }
            seg[cix % 256] = *a;
            refs[i] = std::move(*a);
        } else {
            const auto& seg = cache_[cix / 256];
            if (!seg || seg[cix % 256].entry() == nullptr)
                return fail(make_error_code(errc::bad_atom_cache_ref));
            refs[i] = seg[cix % 256];
        }
    }
    in = in.subspan(pos);
    return {};
}

error_code dist_reader::decode_message(std::span<const std::uint8_t> body,
                                       std::span<const atom> refs, std::vector<dist_message>& out,
                                       std::vector<std::uint8_t>* owner) {
    if (offloading() && (body.size() > limits_.offload_above || compressed_at(body, false))) {
        defer(body, owner, refs, false, std::nullopt);
        return {};
    }
    dist_message m;
    std::size_t used = 0;
    if (read_route(body, refs, m.route, used) &&
        !(offloading() && compressed_at(body.subspan(used), false))) {
        if (auto ec = decode_payload(term(), m.route.op, body.subspan(used), refs, false,
                                     limits_.term_limits, m,
                                     share_buffer(owner, limits_.min_shared_binary)))
            return fail(ec);
        out.push_back(std::move(m));
        return {};
    }
    m.route = {};
    term ctl;
    std::span<const std::uint8_t> rest;
    if (auto ec = decode_control(body, refs, false, limits_.term_limits, ctl, rest))
        return fail(ec);
    if (offloading() && compressed_at(rest, false)) {
        defer(rest, owner, refs, false, std::move(ctl));
        return {};
    }
    const int op = control_op(ctl);
    if (auto ec = decode_payload(std::move(ctl), op, rest, refs, false, limits_.term_limits, m,
                                 share_buffer(owner, limits_.min_shared_binary)))
        return fail(ec);
    out.push_back(std::move(m));
    return {};
}

// 112, 131 Control, [131 Payload] — terms with version bytes, no atom cache.
error_code dist_reader::parse_pass_through(std::span<const std::uint8_t> in,
                                           std::vector<dist_message>& out,
                                           std::vector<std::uint8_t>* owner) {
    if (in.empty() || in[0] != version_magic) return fail(make_error_code(errc::bad_version));
    if (offloading() && (in.size() > limits_.offload_above || compressed_at(in, true))) {
        defer(in, owner, {}, true, std::nullopt);
        return {};
    }
    term ctl;
    std::span<const std::uint8_t> rest;
    if (auto ec = decode_control(in, {}, true, limits_.term_limits, ctl, rest)) return fail(ec);
    if (offloading() && compressed_at(rest, true)) {
        defer(rest, owner, {}, true, std::move(ctl));
        return {};
    }
    dist_message m;
    const int op = control_op(ctl);
    if (auto ec = decode_payload(std::move(ctl), op, rest, {}, true, limits_.term_limits, m,
                                 share_buffer(owner, limits_.min_shared_binary)))
        return fail(ec);
    out.push_back(std::move(m));
    return {};
}

}  // namespace erl::proto
