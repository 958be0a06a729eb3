// Sans-io EPMD codecs: request/reply encoders and incremental readers. No I/O, no exceptions;
// every reader accepts its input in arbitrary pieces.
//
// Wire format (erl_dist_protocol, "EPMD Protocol"; OTP erts/epmd/src/epmd_srv.c): every request
// is Len:16 + body; replies carry no length. All integers big-endian.
#pragma once

#include <erl/epmd.hpp>
#include <erl/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace erl::epmd::detail {

inline constexpr std::uint8_t alive2_req = 'x';     // 120
inline constexpr std::uint8_t alive2_resp = 'y';    // 121, Creation:16
inline constexpr std::uint8_t alive2_x_resp = 'v';  // 118, Creation:32 (highest >= 6)
inline constexpr std::uint8_t port2_req = 'z';      // 122
inline constexpr std::uint8_t port2_resp = 'w';     // 119
inline constexpr std::uint8_t names_req = 'n';      // 110
inline constexpr std::uint8_t dump_req = 'd';       // 100
inline constexpr std::uint8_t kill_req = 'k';       // 107
inline constexpr std::uint8_t stop_req = 's';       // 115

// epmd_int.h: MAXSYMLEN = 255*4 (a UTF-8 atom), INBUF_SIZE = 3*MAXSYMLEN. A request with
// Len+2 >= INBUF_SIZE is refused, as OTP's do_read does.
inline constexpr std::size_t max_sym_len = 255 * 4;
inline constexpr std::size_t max_request_size = 3 * max_sym_len;  // including the 2-byte length

using bytes = std::vector<std::uint8_t>;

// ---- request encoders (client side); each returns Len:16 + body
bytes encode_alive2_request(const node_info& info);
bytes encode_port_please2_request(std::string_view name);
bytes encode_names_request();
bytes encode_dump_request();
bytes encode_kill_request();
bytes encode_stop_request(std::string_view name);
bytes frame_request(std::string_view body);  // Len:16 + body

// ---- requests as the server sees them
struct alive2_request {
    node_info info;
};
struct port_please2_request {
    std::string name;
};
struct names_request {};
struct dump_request {};
struct kill_request {};
struct stop_request {
    std::string name;
};
using request = std::variant<alive2_request, port_please2_request, names_request, dump_request,
                             kill_request, stop_request>;

// Parses one request body (without Len). Checks as epmd_srv.c do_request: ALIVE2 needs more than
// 13 bytes, consistent Nlen/Elen and a name without NUL (its length and encoding are checked by
// alive2_acceptable, as node_reg2 does, because they get an error reply); PORT_PLEASE2 names
// without NUL, valid UTF-8 of 1..255 characters, tolerating one trailing NUL.
erl::result<request> parse_request(std::span<const std::uint8_t> body);

bool valid_node_name(std::string_view name);  // UTF-8, no NUL, 1..255 characters
// epmd_srv.c node_reg2: an ALIVE2_REQ whose name is 1..255 UTF-8 characters of at most
// max_sym_len bytes and whose extra data is at most max_sym_len bytes. Otherwise the request
// gets an error ALIVE2 reply (parse_request only refuses malformed packets).
bool alive2_acceptable(const node_info& info);

enum class read_state { need_more, done, failed };

// What every incremental reader keeps: the input so far, where it stands and, once it failed,
// why.
template <class Buffer = bytes>
class reader_base {
  public:
    read_state state() const noexcept { return state_; }
    erl::error_code error() const noexcept { return error_; }

  protected:
    read_state fail(erl::error_code why) {
        state_ = read_state::failed;
        error_ = why;
        return state_;
    }
    read_state complete() {
        state_ = read_state::done;
        return state_;
    }

    Buffer buf_;
    read_state state_ = read_state::need_more;
    erl::error_code error_;
};

// Incremental reader of one framed request (server side).
class request_reader : public reader_base<> {
  public:
    // Consumes bytes up to the end of the request and returns how many it used; bytes after a
    // complete request are left to the caller (epmd treats them as an error).
    std::size_t feed(std::span<const std::uint8_t> data);
    const request& value() const noexcept { return *value_; }
    std::size_t buffered() const noexcept { return buf_.size(); }

  private:
    std::size_t want_ = 0;  // total bytes incl. length once known
    std::optional<request> value_;
};

// ---- replies (server side encoders)
// highest >= 6 -> 'v' Result:8 Creation:32, else 'y' Result:8 Creation:16 (epmd_srv.c).
bytes encode_alive2_reply(bool ok, std::uint32_t creation, std::uint16_t requested_highest);
bytes encode_port2_reply(const node_info& info);
bytes encode_port2_not_found();
bytes encode_names_header(std::uint32_t epmd_port);                        // EpmdPort:32
std::string format_names_line(std::string_view name, std::uint16_t port);  // "name N at port P\n"

// ---- replies (client side readers)
struct alive2_reply {
    std::uint8_t result = 0;
    std::uint32_t creation = 0;
    bool extended = false;  // 'v'
};

class alive2_reply_reader : public reader_base<> {
  public:
    // Consumes bytes; bytes after a complete reply make the reply invalid (epmd sends nothing
    // more on a registration connection).
    read_state feed(std::span<const std::uint8_t> data);
    const alive2_reply& value() const noexcept { return value_; }

  private:
    alive2_reply value_;
};

// error(): epmd_not_found for 'w' 1 (unknown name); epmd_bad_reply when malformed.
class port2_reply_reader : public reader_base<> {
  public:
    read_state feed(std::span<const std::uint8_t> data);
    const node_info& value() const noexcept { return value_; }

  private:
    node_info value_;
};

// NAMES reply: EpmdPort:32 then text until the server closes. feed() any pieces, then finish()
// at EOF.
class names_reply_reader : public reader_base<std::string> {
  public:
    static constexpr std::size_t max_size = 16 * 1024 * 1024;
    read_state feed(std::span<const std::uint8_t> data);
    read_state finish();  // call at EOF
    std::uint32_t epmd_port() const noexcept { return epmd_port_; }
    const std::vector<std::pair<std::string, std::uint16_t>>& value() const noexcept {
        return names_;
    }

  private:
    std::uint32_t epmd_port_ = 0;
    std::vector<std::pair<std::string, std::uint16_t>> names_;
};

// Parses the text part of a NAMES reply: lines "name <Name> at port <Port>\n".
erl::result<std::vector<std::pair<std::string, std::uint16_t>>> parse_names_text(
    std::string_view text);

}  // namespace erl::epmd::detail
