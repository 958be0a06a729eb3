// Erlang term syntax parser (see <erl/parse.hpp>). A hand-written scanner plus an explicit
// stack of open containers, so nesting depth costs heap, not C++ stack.
#include <erl/parse.hpp>

#include "term_internal.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>

namespace erl {

namespace {

using detail::utf8_append;
using detail::utf8_decode;

struct failure {
    errc code;
};

struct ctx {
    enum type_t : std::uint8_t { tuple, list, map, closure };
    ctx(type_t t, std::size_t s) : type(t), start(s) {}
    type_t type;
    bool have_key = false;
    bool in_tail = false;    // list: parsing the tail after '|'
    std::uint8_t stage = 0;  // closure: 0 expecting pid, 1 expecting free variable list
    std::size_t start;       // offset of the opening token (for messages)
    std::vector<term> items;
    std::vector<std::pair<term, term>> pairs;
    term key;
    term tail;
    // Out of line: one open container per nesting level, so its size is the parser's memory
    // per level of a deep term.
    std::unique_ptr<erl::closure> fun;
};

class parser {
  public:
    parser(std::string_view s, parse_error& err, const parse_options& o)
        : s_(s), err_(err), o_(o) {}

    result<term> run() {
        err_ = {};
        term v;
        for (;;) {
            // Parse one value (a scalar or the opening of a container).
            skip_ws();
            if (!parse_value(v)) return fail_result();
            if (opened_) {
                opened_ = false;
                if (stack_.size() > o_.max_depth) {
                    fail(errc::too_deep, stack_.back().start, "nesting too deep");
                    return fail_result();
                }
                continue;
            }
            // Deliver the finished value upwards, closing containers as they complete.
            for (;;) {
                if (stack_.empty()) {
                    skip_ws();
                    if (pos_ < s_.size() && s_[pos_] == '.') {
                        ++pos_;
                        skip_ws();
                    }
                    if (pos_ != s_.size()) {
                        fail(errc::invalid_term, pos_, "unexpected text after the term");
                        return fail_result();
                    }
                    return v;
                }
                int r = deliver(std::move(v));
                if (r < 0) return fail_result();
                if (r == 0) break;      // container wants another value
                v = std::move(built_);  // container closed: deliver it to its parent
            }
        }
    }

  private:
    // --- errors
    bool fail(errc c, std::size_t at, std::string msg) {
        if (!failed_) {
            failed_ = true;
            code_ = c;
            err_.offset = at;
            err_.message = std::move(msg);
        }
        return false;
    }
    result<term> fail_result() const { return make_error_code(code_); }

    // --- scanning helpers
    bool eof() const noexcept { return pos_ >= s_.size(); }
    char peek(std::size_t k = 0) const noexcept {
        return pos_ + k < s_.size() ? s_[pos_ + k] : '\0';
    }
    bool starts(std::string_view p) const noexcept { return s_.substr(pos_, p.size()) == p; }

    void skip_ws() noexcept {
        while (pos_ < s_.size()) {
            char c = s_[pos_];
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
                ++pos_;
            } else if (c == '%') {
                while (pos_ < s_.size() && s_[pos_] != '\n')
                    ++pos_;
            } else {
                break;
            }
        }
    }

    bool expect(char c, const char* what) {
        skip_ws();
        if (peek() != c) return fail(errc::invalid_term, pos_, std::string("expected ") + what);
        ++pos_;
        return true;
    }

    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
    static int digit_value(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'z') return c - 'a' + 10;
        if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
        return 99;
    }

    // Decodes the next UTF-8 code point at pos_.
    bool next_cp(std::uint32_t& cp) {
        if (eof()) return fail(errc::invalid_term, pos_, "unexpected end of input");
        std::size_t at = pos_;
        if (!utf8_decode(s_, pos_, cp)) return fail(errc::invalid_utf8, at, "invalid UTF-8");
        return true;
    }

    // Reads an escape sequence after the backslash (erl_scan rules).
    bool escape(std::uint32_t& cp) {
        std::size_t at = pos_ - 1;
        if (eof()) return fail(errc::invalid_term, at, "unterminated escape");
        char c = s_[pos_];
        if (c >= '0' && c <= '7') {
            cp = 0;
            for (int k = 0; k < 3 && peek() >= '0' && peek() <= '7'; ++k)
                cp = cp * 8 + static_cast<std::uint32_t>(s_[pos_++] - '0');
            return true;
        }
        ++pos_;
        switch (c) {
            case 'b':
                cp = 8;
                return true;
            case 'd':
                cp = 127;
                return true;
            case 'e':
                cp = 27;
                return true;
            case 'f':
                cp = 12;
                return true;
            case 'n':
                cp = 10;
                return true;
            case 'r':
                cp = 13;
                return true;
            case 's':
                cp = 32;
                return true;
            case 't':
                cp = 9;
                return true;
            case 'v':
                cp = 11;
                return true;
            case 'x': {
                cp = 0;
                if (peek() == '{') {
                    ++pos_;
                    std::size_t n = 0;
                    while (digit_value(peek()) < 16) {
                        cp = cp * 16 + static_cast<std::uint32_t>(digit_value(s_[pos_++]));
                        if (++n > 8) return fail(errc::invalid_term, at, "bad \\x{...} escape");
                    }
                    if (n == 0 || peek() != '}')
                        return fail(errc::invalid_term, at, "bad \\x{...} escape");
                    ++pos_;
                } else {
                    for (int k = 0; k < 2; ++k) {
                        if (digit_value(peek()) >= 16)
                            return fail(errc::invalid_term, at, "bad \\xHH escape");
                        cp = cp * 16 + static_cast<std::uint32_t>(digit_value(s_[pos_++]));
                    }
                }
                if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                    return fail(errc::invalid_term, at, "escape is not a Unicode code point");
                return true;
            }
            case '^': {
                if (eof()) return fail(errc::invalid_term, at, "unterminated escape");
                cp = static_cast<unsigned char>(s_[pos_++]) & 31u;
                return true;
            }
            default:
                --pos_;
                return next_cp(cp);  // \\ \' \" and any other character stand for themselves
        }
    }

    // Quoted text up to the closing quote, as code points appended to out (UTF-8).
    bool quoted(char q, std::string& out) {
        std::size_t start = pos_;
        ++pos_;  // opening quote
        for (;;) {
            if (eof()) return fail(errc::invalid_term, start, "unterminated quoted text");
            char c = s_[pos_];
            if (c == q) {
                ++pos_;
                return true;
            }
            std::uint32_t cp;
            if (c == '\\') {
                ++pos_;
                if (!escape(cp)) return false;
            } else if (!next_cp(cp)) {
                return false;
            }
            utf8_append(out, cp);
        }
    }

    bool make_atom(std::string_view text, std::size_t at, term& out) {
        auto a = atom::make(text);
        if (!a) {
            errc c = static_cast<errc>(a.error().value());
            return fail(c, at, std::string("bad atom: ") + to_string(c));
        }
        out = term(*a);
        return true;
    }

    static bool atom_start(std::uint32_t c) noexcept {
        return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7);
    }
    static bool atom_char(std::uint32_t c) noexcept {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '@' || (c >= 0xC0 && c <= 0xFF && c != 0xD7 && c != 0xF7);
    }

    // Bare or quoted atom at pos_.
    bool parse_atom(term& out) {
        std::size_t at = pos_;
        if (peek() == '\'') {
            std::string text;
            if (!quoted('\'', text)) return false;
            return make_atom(text, at, out);
        }
        std::size_t p = pos_;
        std::uint32_t cp;
        if (p >= s_.size() || !utf8_decode(s_, p, cp) || !atom_start(cp))
            return fail(errc::invalid_term, at, "expected an atom");
        pos_ = p;
        for (;;) {
            p = pos_;
            if (p >= s_.size() || !utf8_decode(s_, p, cp) || !atom_char(cp)) break;
            pos_ = p;
        }
        return make_atom(s_.substr(at, pos_ - at), at, out);
    }

    // Digits of `base` with optional '_' separators between digits, appended to `digits`.
    bool digit_run(int base, std::string& digits) {
        std::size_t at = pos_;
        bool last_digit = false;
        while (!eof()) {
            char c = s_[pos_];
            if (c == '_' && last_digit && digit_value(peek(1)) < base) {
                ++pos_;
                last_digit = false;
                continue;
            }
            if (digit_value(c) >= base) break;
            digits.push_back(c);
            ++pos_;
            last_digit = true;
            if (digits.size() > o_.max_integer_digits)
                return fail(errc::bignum_too_large, at, "integer literal too long");
        }
        if (!last_digit) return fail(errc::invalid_term, at, "expected digits");
        return true;
    }

    bool integer_in_base(std::string_view digits, int base, bool neg, std::size_t at, term& out) {
        if (base == 10) {
            std::string s;
            if (neg) s.push_back('-');
            s.append(digits);
            auto r = integer_from_string(s);
            if (!r) return fail(errc::invalid_term, at, "bad integer");
            out = std::move(*r);
            return true;
        }
        detail::bigint b;
        b.neg = neg;
        for (char c : digits)
            detail::mag_mul_add(b.mag, static_cast<std::uint32_t>(base),
                                static_cast<std::uint32_t>(digit_value(c)));
        while (!b.mag.empty() && b.mag.back() == 0)
            b.mag.pop_back();
        out = detail::from_bigint(b);
        return true;
    }

    // Number (integer, base#digits, float) or $char, with an optional sign already consumed.
    bool parse_number(bool neg, std::size_t at, term& out) {
        if (peek() == '$') {
            ++pos_;
            std::uint32_t cp;
            if (peek() == '\\') {
                ++pos_;
                if (!escape(cp)) return false;
            } else if (!next_cp(cp)) {
                return false;
            }
            out = term(neg ? -static_cast<long long>(cp) : static_cast<long long>(cp));
            return true;
        }
        std::string digits;
        if (!digit_run(10, digits)) return false;
        if (peek() == '#') {
            int base = 0;
            if (digits.size() > 2) return fail(errc::invalid_term, at, "bad base");
            for (char c : digits)
                base = base * 10 + (c - '0');
            if (base < 2 || base > 36) return fail(errc::invalid_term, at, "base must be 2..36");
            ++pos_;
            std::string bd;
            if (!digit_run(base, bd)) return false;
            return integer_in_base(bd, base, neg, at, out);
        }
        if (peek() == '.' && is_digit(peek(1))) {
            ++pos_;
            std::string text;
            if (neg) text.push_back('-');
            text += digits;
            text.push_back('.');
            if (!digit_run(10, text)) return false;
            if (peek() == 'e' || peek() == 'E') {
                std::size_t save = pos_;
                std::string e = "e";
                ++pos_;
                if (peek() == '+' || peek() == '-') e.push_back(s_[pos_++]);
                if (is_digit(peek())) {
                    if (!digit_run(10, e)) return false;
                    text += e;
                } else {
                    pos_ = save;  // not an exponent
                }
            }
            double d = 0;
            auto r = std::from_chars(text.data(), text.data() + text.size(), d);
            if (r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(d))
                return fail(errc::invalid_term, at, "float out of range");
            out = term(d);
            return true;
        }
        return integer_in_base(digits, 10, neg, at, out);
    }

    bool parse_uint(std::uint64_t max, std::uint64_t& v) {
        skip_ws();
        std::size_t at = pos_;
        if (!is_digit(peek())) return fail(errc::invalid_term, at, "expected a number");
        v = 0;
        while (is_digit(peek())) {
            std::uint64_t d = static_cast<std::uint64_t>(s_[pos_++] - '0');
            if (v > (max - d) / 10) return fail(errc::invalid_term, at, "number out of range");
            v = v * 10 + d;
        }
        return true;
    }
    bool parse_int64(std::int64_t& v) {
        skip_ws();
        bool neg = false;
        if (peek() == '-') {
            neg = true;
            ++pos_;
        }
        std::uint64_t u;
        if (!parse_uint(neg ? std::uint64_t(INT64_MAX) + 1 : std::uint64_t(INT64_MAX), u))
            return false;
        v = neg ? static_cast<std::int64_t>(0 - u) : static_cast<std::int64_t>(u);
        return true;
    }

    bool parse_node(atom& node) {
        skip_ws();
        term a;
        if (!parse_atom(a)) return false;
        node = a.as_atom();
        return true;
    }

    // <'node'.Id.Serial.Creation>
    bool parse_pid(term& out) {
        ++pos_;  // '<'
        pid p;
        std::uint64_t id, serial, creation;
        if (!parse_node(p.node) || !expect('.', "'.'") || !parse_uint(UINT32_MAX, id) ||
            !expect('.', "'.'") || !parse_uint(UINT32_MAX, serial) || !expect('.', "'.'") ||
            !parse_uint(UINT32_MAX, creation) || !expect('>', "'>'"))
            return false;
        p.id = static_cast<std::uint32_t>(id);
        p.serial = static_cast<std::uint32_t>(serial);
        p.creation = static_cast<std::uint32_t>(creation);
        out = term(p);
        return true;
    }

    // #Port<'node'.Id.Creation>
    bool parse_port(term& out) {
        pos_ += 6;
        port p;
        std::uint64_t creation;
        if (!parse_node(p.node) || !expect('.', "'.'") || !parse_uint(UINT64_MAX, p.id) ||
            !expect('.', "'.'") || !parse_uint(UINT32_MAX, creation) || !expect('>', "'>'"))
            return false;
        p.creation = static_cast<std::uint32_t>(creation);
        out = term(p);
        return true;
    }

    // #Ref<'node'.W(n-1)....W0.Creation>
    bool parse_ref(term& out) {
        std::size_t at = pos_;
        pos_ += 5;
        reference r;
        if (!parse_node(r.node)) return false;
        std::uint64_t nums[7];
        std::size_t n = 0;
        for (;;) {
            skip_ws();
            if (peek() == '>') {
                ++pos_;
                break;
            }
            if (!expect('.', "'.' or '>'")) return false;
            if (n == 7) return fail(errc::invalid_term, at, "reference has more than 5 words");
            if (!parse_uint(UINT32_MAX, nums[n])) return false;
            ++n;
        }
        if (n < 2) return fail(errc::invalid_term, at, "reference needs words and a creation");
        r.creation = static_cast<std::uint32_t>(nums[n - 1]);
        r.len = static_cast<std::uint8_t>(n - 1);
        if (r.len > 5) return fail(errc::invalid_term, at, "reference has more than 5 words");
        for (std::size_t i = 0; i < r.len; ++i)
            r.ids[i] = static_cast<std::uint32_t>(nums[r.len - 1 - i]);
        out = term(r);
        return true;
    }

    // fun M:F/A
    bool parse_export(term& out) {
        pos_ += 3;
        export_fun f;
        term m, fn;
        std::uint64_t arity;
        skip_ws();
        if (!parse_atom(m) || !expect(':', "':'")) return false;
        skip_ws();
        if (!parse_atom(fn) || !expect('/', "'/'") || !parse_uint(255, arity)) return false;
        f.module = m.as_atom();
        f.function = fn.as_atom();
        f.arity = static_cast<std::uint8_t>(arity);
        out = term(f);
        return true;
    }

    // #Fun<Module.OldIndex.OldUniq.Arity.Index.UNIQHEX. then Pid . [FreeVars] >
    bool open_closure() {
        std::size_t at = pos_;
        pos_ += 5;
        ctx c{ctx::closure, at};
        c.fun = std::make_unique<erl::closure>();
        term m;
        std::uint64_t arity, index;
        skip_ws();
        if (!parse_atom(m) || !expect('.', "'.'") || !parse_int64(c.fun->old_index) ||
            !expect('.', "'.'") || !parse_int64(c.fun->old_uniq) || !expect('.', "'.'") ||
            !parse_uint(255, arity) || !expect('.', "'.'") || !parse_uint(UINT32_MAX, index) ||
            !expect('.', "'.'"))
            return false;
        skip_ws();
        for (auto& b : c.fun->uniq) {
            int hi = digit_value(peek()), lo = digit_value(peek(1));
            if (hi >= 16 || lo >= 16)
                return fail(errc::invalid_term, pos_, "expected 32 hex digits");
            b = static_cast<std::uint8_t>(hi * 16 + lo);
            pos_ += 2;
        }
        if (!expect('.', "'.'")) return false;
        c.fun->module = m.as_atom();
        c.fun->arity = static_cast<std::uint8_t>(arity);
        c.fun->index = static_cast<std::uint32_t>(index);
        stack_.push_back(std::move(c));
        opened_ = true;
        return true;
    }

    // --- binaries
    struct bit_writer {
        std::vector<std::uint8_t> bytes;
        std::size_t bits = 0;
        void put_bit(bool b) {
            if (bits % 8 == 0) bytes.push_back(0);
            if (b) bytes.back() |= static_cast<std::uint8_t>(0x80 >> (bits % 8));
            ++bits;
        }
        // The low `n` bits of the two's complement value v (sign-extended past 64 bits).
        void put(std::int64_t v, std::size_t n) {
            if (bits % 8 == 0 && n == 8) {
                bytes.push_back(static_cast<std::uint8_t>(v));
                bits += 8;
                return;
            }
            for (std::size_t i = n; i-- > 0;) {
                bool bit = i >= 64 ? v < 0 : ((static_cast<std::uint64_t>(v) >> i) & 1) != 0;
                put_bit(bit);
            }
        }
        void put_bytes(std::string_view s) {
            for (char c : s)
                put(static_cast<unsigned char>(c), 8);
        }
    };

    bool parse_binary(term& out) {
        std::size_t at = pos_;
        pos_ += 2;
        bit_writer w;
        skip_ws();
        if (starts(">>")) {
            pos_ += 2;
            out = binary(std::string_view());
            return true;
        }
        for (;;) {
            skip_ws();
            std::size_t seg = pos_;
            // Value: string or integer.
            bool is_string = false;
            std::string str;  // UTF-8 of the string's code points
            std::int64_t value = 0;
            if (peek() == '"') {
                is_string = true;
                while (peek() == '"') {
                    if (!quoted('"', str)) return false;
                    skip_ws();
                }
            } else {
                bool neg = false;
                if (peek() == '-' || peek() == '+') {
                    neg = peek() == '-';
                    ++pos_;
                }
                if (!is_digit(peek()) && peek() != '$')
                    return fail(errc::invalid_term, seg, "expected a binary segment");
                term v;
                if (!parse_number(neg, seg, v)) return false;
                if (v.is_float())
                    return fail(errc::invalid_term, seg, "float segments are not supported");
                if (v.is_bignum()) {
                    // Keep the low 64 bits (two's complement), enough for sizes <= 64.
                    big_view b = v.as_big();
                    std::uint64_t lo = b.limbs.empty() ? 0 : b.limbs[0];
                    if (b.limbs.size() > 1) lo |= std::uint64_t(b.limbs[1]) << 32;
                    value = static_cast<std::int64_t>(b.negative ? 0 - lo : lo);
                } else {
                    value = v.as_int64();
                }
            }
            skip_ws();
            bool has_size = false;
            std::uint64_t size = 8;
            if (peek() == ':') {
                ++pos_;
                if (!parse_uint(o_.max_binary_bits, size)) return false;
                has_size = true;
                skip_ws();
            }
            bool utf8 = false;
            if (peek() == '/') {
                for (;;) {
                    ++pos_;
                    skip_ws();
                    std::size_t ts = pos_;
                    while ((peek() >= 'a' && peek() <= 'z') || is_digit(peek()))
                        ++pos_;
                    std::string_view spec = s_.substr(ts, pos_ - ts);
                    if (spec == "utf8")
                        utf8 = true;
                    else if (spec != "integer" && spec != "big" && spec != "unsigned" &&
                             spec != "signed")
                        return fail(errc::invalid_term, ts, "unsupported binary type specifier");
                    skip_ws();
                    if (peek() != '-') break;
                }
                if (utf8 && has_size)
                    return fail(errc::invalid_term, seg, "utf8 segments have no size");
            }
            if (is_string) {
                std::size_t i = 0;
                while (i < str.size()) {
                    std::uint32_t cp;
                    utf8_decode(str, i, cp);  // valid: we produced it
                    if (utf8) {
                        std::string enc;
                        utf8_append(enc, cp);
                        if (w.bits + enc.size() * 8 > o_.max_binary_bits)
                            return fail(errc::too_large, seg, "binary too large");
                        w.put_bytes(enc);
                    } else {
                        if (w.bits + size > o_.max_binary_bits)
                            return fail(errc::too_large, seg, "binary too large");
                        w.put(cp, size);
                    }
                }
            } else if (utf8) {
                if (value < 0 || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
                    return fail(errc::invalid_term, seg, "not a Unicode code point");
                std::string enc;
                utf8_append(enc, static_cast<std::uint32_t>(value));
                w.put_bytes(enc);
            } else {
                if (w.bits + size > o_.max_binary_bits)
                    return fail(errc::too_large, seg, "binary too large");
                w.put(value, size);
            }
            skip_ws();
            if (starts(">>")) {
                pos_ += 2;
                break;
            }
            if (peek() != ',') return fail(errc::invalid_term, pos_, "expected ',' or '>>'");
            ++pos_;
        }
        (void)at;
        out = bitstring(w.bytes, w.bits);
        return true;
    }

    // --- values
    // Parses one value at pos_: a scalar into `out`, or opens a container (opened_ = true).
    bool parse_value(term& out) {
        std::size_t at = pos_;
        if (eof()) return fail(errc::invalid_term, at, "unexpected end of input");
        char c = s_[pos_];
        switch (c) {
            case '{':
                ++pos_;
                skip_ws();
                if (peek() == '}') {
                    ++pos_;
                    out = make_tuple({});
                    return true;
                }
                stack_.push_back(ctx{ctx::tuple, at});
                opened_ = true;
                return true;
            case '[':
                ++pos_;
                skip_ws();
                if (peek() == ']') {
                    ++pos_;
                    out = term();
                    return true;
                }
                stack_.push_back(ctx{ctx::list, at});
                opened_ = true;
                return true;
            case '#':
                if (starts("#{")) {
                    pos_ += 2;
                    skip_ws();
                    if (peek() == '}') {
                        ++pos_;
                        out = make_map({});
                        return true;
                    }
                    stack_.push_back(ctx{ctx::map, at});
                    opened_ = true;
                    return true;
                }
                if (starts("#Port<")) return parse_port(out);
                if (starts("#Ref<")) return parse_ref(out);
                if (starts("#Fun<")) return open_closure();
                return fail(errc::invalid_term, at, "unexpected '#'");
            case '<':
                if (starts("<<")) return parse_binary(out);
                return parse_pid(out);
            case '"': {
                std::string text;
                while (peek() == '"') {
                    if (!quoted('"', text)) return false;
                    skip_ws();
                }
                std::vector<term> cps;
                std::size_t i = 0;
                while (i < text.size()) {
                    std::uint32_t cp;
                    utf8_decode(text, i, cp);
                    cps.emplace_back(static_cast<long long>(cp));
                }
                out = make_list(std::move(cps));
                return true;
            }
            case '\'':
                return parse_atom(out);
            case '-':
            case '+': {
                ++pos_;
                if (!is_digit(peek()) && peek() != '$')
                    return fail(errc::invalid_term, at, "expected a number after the sign");
                return parse_number(c == '-', at, out);
            }
            default:
                break;
        }
        if (is_digit(c) || c == '$') return parse_number(false, at, out);
        if (starts("fun") && !atom_char(static_cast<unsigned char>(peek(3)))) {
            return parse_export(out);
        }
        std::size_t p = pos_;
        std::uint32_t cp;
        if (utf8_decode(s_, p, cp) && atom_start(cp)) return parse_atom(out);
        if (c >= 'A' && c <= 'Z') return fail(errc::invalid_term, at, "variables are not terms");
        if (c == '_') return fail(errc::invalid_term, at, "variables are not terms");
        return fail(errc::invalid_term, at, "expected a term");
    }

    // Hands a finished value to the innermost open container.
    // Returns 1 if that container is now complete (result in built_), 0 if it wants another
    // value, -1 on error.
    int deliver(term v) {
        ctx& c = stack_.back();
        switch (c.type) {
            case ctx::tuple:
                c.items.push_back(std::move(v));
                skip_ws();
                if (peek() == ',') {
                    ++pos_;
                    return 0;
                }
                if (peek() == '}') {
                    ++pos_;
                    built_ = make_tuple(std::move(c.items));
                    stack_.pop_back();
                    return 1;
                }
                fail(errc::invalid_term, pos_, "expected ',' or '}'");
                return -1;
            case ctx::list:
                if (c.in_tail) {
                    c.tail = std::move(v);
                    if (!expect(']', "']'")) return -1;
                    built_ = make_list(std::move(c.items), std::move(c.tail));
                    stack_.pop_back();
                    return 1;
                }
                c.items.push_back(std::move(v));
                skip_ws();
                if (peek() == ',') {
                    ++pos_;
                    return 0;
                }
                if (peek() == '|') {
                    ++pos_;
                    c.in_tail = true;
                    return 0;
                }
                if (peek() == ']') {
                    ++pos_;
                    built_ = make_list(std::move(c.items));
                    stack_.pop_back();
                    return 1;
                }
                fail(errc::invalid_term, pos_, "expected ',', '|' or ']'");
                return -1;
            case ctx::map:
                if (!c.have_key) {
                    c.key = std::move(v);
                    c.have_key = true;
                    skip_ws();
                    if (!starts("=>")) {
                        fail(errc::invalid_term, pos_, "expected '=>'");
                        return -1;
                    }
                    pos_ += 2;
                    return 0;
                }
                c.pairs.emplace_back(std::move(c.key), std::move(v));
                c.have_key = false;
                skip_ws();
                if (peek() == ',') {
                    ++pos_;
                    return 0;
                }
                if (peek() == '}') {
                    ++pos_;
                    built_ = make_map(std::move(c.pairs));  // duplicate keys: last wins
                    stack_.pop_back();
                    return 1;
                }
                fail(errc::invalid_term, pos_, "expected ',' or '}'");
                return -1;
            case ctx::closure:
                if (c.stage == 0) {
                    c.fun->pid = std::move(v);
                    c.stage = 1;
                    if (!expect('.', "'.'")) return -1;
                    return 0;
                }
                if (!v.is_proper_list()) {
                    fail(errc::invalid_term, pos_, "closure free variables must be a list");
                    return -1;
                }
                {
                    detail::list_cursor lc(v);
                    while (const term* e = lc.next())
                        c.fun->free_vars.push_back(*e);
                }
                if (!expect('>', "'>'")) return -1;
                built_ = term(*c.fun);
                stack_.pop_back();
                return 1;
        }
        return -1;
    }

    std::string_view s_;
    parse_error& err_;
    const parse_options& o_;
    std::size_t pos_ = 0;
    std::vector<ctx> stack_;
    bool opened_ = false;
    bool failed_ = false;
    errc code_ = errc::invalid_term;
    term built_;
};

}  // namespace

result<term> parse(std::string_view text, parse_error& err, const parse_options& opts) {
    parser p(text, err, opts);
    return p.run();
}

result<term> parse(std::string_view text, parse_error& err) {
    return parse(text, err, parse_options{});
}

result<term> parse(std::string_view text) {
    parse_error err;
    return parse(text, err, parse_options{});
}

}  // namespace erl
