// Sans-io EPMD codecs (see codec.hpp). Checks mirror OTP's epmd_srv.c do_request so that our
// daemon refuses exactly what OTP's refuses.
#include "epmd/codec.hpp"

#include "common/byte_order.hpp"

#include <algorithm>
#include <charconv>

namespace erl::epmd::detail {
namespace {

using erl::detail::append_be16;
using erl::detail::append_be32;
using erl::detail::load_be16;
using erl::detail::load_be32;

void append(bytes& out, std::string_view s) {
    out.insert(out.end(), s.begin(), s.end());
}

// PortNo:16 NodeType:8 Protocol:8 HighestVersion:16 LowestVersion:16 Nlen:16 NodeName Elen:16
// Extra, as ALIVE2_REQ and PORT2_RESP carry them.
void append_node_info(bytes& out, const node_info& info) {
    append_be16(out, info.port);
    out.push_back(static_cast<std::uint8_t>(info.type));
    out.push_back(info.protocol);
    append_be16(out, info.highest);
    append_be16(out, info.lowest);
    append_be16(out, static_cast<std::uint16_t>(info.name.size()));
    append(out, info.name);
    append_be16(out, static_cast<std::uint16_t>(info.extra.size()));
    append(out, info.extra);
}

// Number of UTF-8 characters, or -1 if invalid (overlong forms, surrogates and code points
// above U+10FFFF are invalid, as in epmd_srv.c verify_utf8).
long utf8_chars(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t n = s.size(), i = 0;
    long chars = 0;
    while (i < n) {
        unsigned char c = p[i];
        std::size_t len;
        std::uint32_t cp;
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (n - i < len) return -1;
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return -1;
        i += len;
        ++chars;
    }
    return chars;
}

erl::error_code bad_request() {
    return erl::make_error_code(erl::errc::epmd_bad_request);
}
erl::error_code bad_reply() {
    return erl::make_error_code(erl::errc::epmd_bad_reply);
}

}  // namespace

bool valid_node_name(std::string_view name) {
    if (name.empty() || name.size() > max_sym_len) return false;
    if (name.find('\0') != std::string_view::npos) return false;
    long chars = utf8_chars(name);
    return chars >= 1 && chars <= 255;
}

bool alive2_acceptable(const node_info& info) {
    return valid_node_name(info.name) && info.extra.size() <= max_sym_len;
}

// ---------------------------------------------------------------------------------------------
// request encoders

bytes frame_request(std::string_view body) {
    bytes out;
    out.reserve(body.size() + 2);
    append_be16(out, static_cast<std::uint16_t>(body.size()));
    append(out, body);
    return out;
}

bytes encode_alive2_request(const node_info& info) {
    // ALIVE2_REQ: 'x' PortNo:16 NodeType:8 Protocol:8 HighestVersion:16 LowestVersion:16
    //             Nlen:16 NodeName Elen:16 Extra
    bytes body;
    body.push_back(alive2_req);
    append_node_info(body, info);
    bytes out;
    append_be16(out, static_cast<std::uint16_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

bytes encode_port_please2_request(std::string_view name) {
    std::string body(1, static_cast<char>(port2_req));
    body += name;
    return frame_request(body);
}

bytes encode_names_request() {
    return frame_request(std::string(1, char(names_req)));
}
bytes encode_dump_request() {
    return frame_request(std::string(1, char(dump_req)));
}
bytes encode_kill_request() {
    return frame_request(std::string(1, char(kill_req)));
}

bytes encode_stop_request(std::string_view name) {
    std::string body(1, static_cast<char>(stop_req));
    body += name;
    return frame_request(body);
}

// ---------------------------------------------------------------------------------------------
// request parsing (server side)

erl::result<request> parse_request(std::span<const std::uint8_t> body) {
    if (body.empty()) return bad_request();
    const std::uint8_t* b = body.data();
    const std::size_t size = body.size();
    switch (b[0]) {
        case alive2_req: {
            if (size <= 13) return bad_request();  // epmd_srv.c: "packet to small"
            alive2_request r;
            r.info.port = load_be16(b + 1);
            r.info.type = static_cast<node_type>(b[3]);
            r.info.protocol = b[4];
            r.info.highest = load_be16(b + 5);
            r.info.lowest = load_be16(b + 7);
            std::size_t nlen = load_be16(b + 9);
            if (nlen + 13 > size) return bad_request();
            std::size_t elen = load_be16(b + 11 + nlen);
            if (elen + nlen + 13 > size) return bad_request();
            r.info.name.assign(reinterpret_cast<const char*>(b + 11), nlen);
            r.info.extra.assign(reinterpret_cast<const char*>(b + 13 + nlen), elen);
            // A NUL in the name is malformed (no reply); a name that is too long or not UTF-8,
            // or too much extra data, is a well-formed request that node_reg2 refuses with an
            // error reply (see alive2_acceptable).
            if (r.info.name.find('\0') != std::string::npos) return bad_request();
            return request{std::move(r)};
        }
        case port2_req: {
            std::size_t n = size;
            if (b[n - 1] == 0) --n;  // OTP tolerates a NUL terminator
            std::string name(reinterpret_cast<const char*>(b + 1), n - 1);
            if (!valid_node_name(name)) return bad_request();
            return request{port_please2_request{std::move(name)}};
        }
        case names_req:
            return request{names_request{}};
        case dump_req:
            return request{dump_request{}};
        case kill_req:
            return request{kill_request{}};
        case stop_req: {
            if (size <= 1) return bad_request();
            std::string name(reinterpret_cast<const char*>(b + 1), size - 1);
            if (!name.empty() && name.back() == '\0') name.pop_back();
            if (name.find('\0') != std::string::npos) return bad_request();
            return request{stop_request{std::move(name)}};
        }
        default:
            return bad_request();
    }
}

std::size_t request_reader::feed(std::span<const std::uint8_t> data) {
    if (state_ != read_state::need_more) return 0;
    std::size_t used = 0;
    while (used < data.size()) {
        std::size_t target = want_ ? want_ : 2;
        std::size_t take = std::min(target - buf_.size(), data.size() - used);
        buf_.insert(buf_.end(), data.begin() + used, data.begin() + used + take);
        used += take;
        if (buf_.size() < target) break;
        if (!want_) {
            // epmd_srv.c do_read: Len < 1 or Len+2 >= INBUF_SIZE closes the connection.
            want_ = static_cast<std::size_t>(load_be16(buf_.data())) + 2;
            if (want_ < 3 || want_ >= max_request_size) {
                fail(want_ < 3 ? bad_request() : erl::make_error_code(erl::errc::too_large));
                return used;
            }
            continue;
        }
        auto r = parse_request(std::span<const std::uint8_t>(buf_).subspan(2));
        if (!r) {
            fail(r.error());
        } else {
            value_ = std::move(*r);
            complete();
        }
        return used;
    }
    return used;
}

// ---------------------------------------------------------------------------------------------
// reply encoders (server side)

bytes encode_alive2_reply(bool ok, std::uint32_t creation, std::uint16_t requested_highest) {
    bytes out;
    if (requested_highest >= 6) {
        out.push_back(alive2_x_resp);
        out.push_back(ok ? 0 : 1);
        append_be32(out, creation);
    } else {
        out.push_back(alive2_resp);
        out.push_back(ok ? 0 : 1);
        append_be16(out, creation & 0xffff);
    }
    return out;
}

bytes encode_port2_reply(const node_info& info) {
    // PORT2_RESP: 'w' Result:8 PortNo:16 NodeType:8 Protocol:8 Highest:16 Lowest:16 Nlen:16
    //             NodeName Elen:16 Extra
    bytes out;
    out.push_back(port2_resp);
    out.push_back(0);
    append_node_info(out, info);
    return out;
}

bytes encode_port2_not_found() {
    return bytes{port2_resp, 1};
}

bytes encode_names_header(std::uint32_t epmd_port) {
    bytes out;
    append_be32(out, epmd_port);
    return out;
}

std::string format_names_line(std::string_view name, std::uint16_t port) {
    // epmd_srv.c: "name %s at port %d\n" — parsed by erl_epmd, keep byte-exact.
    std::string s = "name ";
    s += name;
    s += " at port ";
    s += std::to_string(port);
    s += '\n';
    return s;
}

// ---------------------------------------------------------------------------------------------
// reply readers (client side)

read_state alive2_reply_reader::feed(std::span<const std::uint8_t> data) {
    if (state_ != read_state::need_more) {
        if (!data.empty() && state_ == read_state::done) fail(bad_reply());
        return state_;
    }
    buf_.insert(buf_.end(), data.begin(), data.end());
    if (buf_.empty()) return state_;
    std::size_t need;
    if (buf_[0] == alive2_x_resp)
        need = 6;
    else if (buf_[0] == alive2_resp)
        need = 4;
    else
        return fail(bad_reply());
    if (buf_.size() < need) return state_;
    if (buf_.size() > need) return fail(bad_reply());
    value_.extended = buf_[0] == alive2_x_resp;
    value_.result = buf_[1];
    value_.creation = value_.extended ? load_be32(buf_.data() + 2) : load_be16(buf_.data() + 2);
    return complete();
}

read_state port2_reply_reader::feed(std::span<const std::uint8_t> data) {
    if (state_ != read_state::need_more) return state_;
    buf_.insert(buf_.end(), data.begin(), data.end());
    if (buf_.empty()) return state_;
    if (buf_[0] != port2_resp) return fail(bad_reply());
    if (buf_.size() < 2) return state_;
    if (buf_[1] != 0) {
        // 'w' Result>0: the name is not registered; epmd closes right after.
        if (buf_.size() > 2) return fail(bad_reply());
        return fail(erl::make_error_code(erl::errc::epmd_not_found));
    }
    if (buf_.size() < 12) return state_;
    std::size_t nlen = load_be16(buf_.data() + 10);
    if (buf_.size() < 12 + nlen + 2) return state_;
    std::size_t elen = load_be16(buf_.data() + 12 + nlen);
    std::size_t total = 14 + nlen + elen;
    if (buf_.size() < total) return state_;
    if (buf_.size() > total) return fail(bad_reply());
    const std::uint8_t* b = buf_.data();
    value_.port = load_be16(b + 2);
    value_.type = static_cast<node_type>(b[4]);
    value_.protocol = b[5];
    value_.highest = load_be16(b + 6);
    value_.lowest = load_be16(b + 8);
    value_.name.assign(reinterpret_cast<const char*>(b + 12), nlen);
    value_.extra.assign(reinterpret_cast<const char*>(b + 14 + nlen), elen);
    return complete();
}

read_state names_reply_reader::feed(std::span<const std::uint8_t> data) {
    if (state_ != read_state::need_more) return state_;
    if (buf_.size() + data.size() > max_size) return fail(bad_reply());
    buf_.append(reinterpret_cast<const char*>(data.data()), data.size());
    return state_;
}

read_state names_reply_reader::finish() {
    if (state_ != read_state::need_more) return state_;
    if (buf_.size() < 4) return fail(bad_reply());
    epmd_port_ = load_be32(reinterpret_cast<const std::uint8_t*>(buf_.data()));
    auto r = parse_names_text(std::string_view(buf_).substr(4));
    if (!r) return fail(r.error());
    names_ = std::move(*r);
    return complete();
}

erl::result<std::vector<std::pair<std::string, std::uint16_t>>> parse_names_text(
    std::string_view text) {
    std::vector<std::pair<std::string, std::uint16_t>> out;
    constexpr std::string_view prefix = "name ";
    constexpr std::string_view mid = " at port ";
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty()) continue;
        if (line.substr(0, prefix.size()) != prefix) return bad_reply();
        auto at = line.rfind(mid);
        if (at == std::string_view::npos || at < prefix.size()) return bad_reply();
        std::string_view port_text = line.substr(at + mid.size());
        unsigned port = 0;
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535 ||
            port_text.empty())
            return bad_reply();
        out.emplace_back(std::string(line.substr(prefix.size(), at - prefix.size())),
                         static_cast<std::uint16_t>(port));
    }
    return out;
}

}  // namespace erl::epmd::detail
