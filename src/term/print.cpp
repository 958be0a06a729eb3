// Printing terms in Erlang syntax (like io_lib ~w, or ~p-style strings with
// print_options::strings). Iterative, so 10,000-deep terms print without deep recursion.
#include "term_internal.hpp"

#include <charconv>
#include <cstring>
#include <ostream>

namespace erl::detail {

namespace {

// Reserved words that io_lib quotes (erl_scan:reserved_word/1).
constexpr std::string_view kReserved[] = {
    "after", "and",   "andalso", "band",    "begin", "bnot", "bor",  "bsl", "bsr",  "bxor",
    "case",  "catch", "cond",    "div",     "else",  "end",  "fun",  "if",  "let",  "not",
    "of",    "or",    "orelse",  "receive", "rem",   "try",  "when", "xor", "maybe"};

bool is_lower_start(std::uint32_t c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7);
}
bool is_name_char(std::uint32_t c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '@' || (c >= 0xC0 && c <= 0xFF && c != 0xD7 && c != 0xF7);
}

void append_escaped_char(std::string& out, std::uint32_t c, char quote) {
    switch (c) {
        case '\n':
            out += "\\n";
            return;
        case '\r':
            out += "\\r";
            return;
        case '\t':
            out += "\\t";
            return;
        case '\v':
            out += "\\v";
            return;
        case '\b':
            out += "\\b";
            return;
        case '\f':
            out += "\\f";
            return;
        case 27:
            out += "\\e";
            return;
        case 127:
            out += "\\d";
            return;
        case '\\':
            out += "\\\\";
            return;
        default:
            break;
    }
    if (c == static_cast<unsigned char>(quote)) {
        out.push_back('\\');
        out.push_back(quote);
        return;
    }
    if (c < 32 || (c >= 0x80 && c < 0xA0)) {
        char buf[16];
        auto r = std::to_chars(buf, buf + sizeof buf, c, 16);
        out += "\\x{";
        out.append(buf, r.ptr);
        out.push_back('}');
        return;
    }
    utf8_append(out, c);
}

void append_u64(std::string& out, std::uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}
// The separator and one number of a pid, port, reference or fun: ".N".
void append_dot_u64(std::string& out, std::uint64_t v) {
    out.push_back('.');
    append_u64(out, v);
}
void append_i64(std::string& out, std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

bool printable_cp(std::int64_t c) noexcept {
    if (c >= 32 && c < 127) return true;
    if (c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\b' || c == '\f' || c == 27)
        return true;
    return c >= 0xA0 && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
}

// A proper, non-empty list of printable code points?
bool printable_list(const term& t) noexcept {
    if (t.type() != kind::list) return false;
    list_cursor c(t);
    while (const term* e = c.next())
        if (!e->is_small() || !printable_cp(e->as_int64())) return false;
    return c.final_tail().is_nil();
}

// 0: not printable; 1: printable ASCII (<<"..">>); 2: printable UTF-8 (<<".."/utf8>>).
int printable_binary(std::span<const std::uint8_t> b) noexcept {
    if (b.empty()) return 0;
    bool ascii = true;
    std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
    std::size_t i = 0;
    while (i < s.size()) {
        std::uint32_t cp;
        if (!utf8_decode(s, i, cp)) return 0;
        if (!printable_cp(cp)) return 0;
        if (cp >= 0x80) ascii = false;
    }
    return ascii ? 1 : 2;
}

void append_string_literal(std::string& out, std::string_view utf8) {
    out.push_back('"');
    std::size_t i = 0;
    while (i < utf8.size()) {
        std::uint32_t cp;
        if (!utf8_decode(utf8, i, cp)) {  // not reached for printable input
            cp = static_cast<unsigned char>(utf8[i++]);
        }
        append_escaped_char(out, cp, '"');
    }
    out.push_back('"');
}

void append_bytes(std::string& out, std::span<const std::uint8_t> b, unsigned trailing) {
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i) out.push_back(',');
        if (i + 1 == b.size() && trailing != 8) {
            append_u64(out, b[i] >> (8 - trailing));
            out.push_back(':');
            append_u64(out, trailing);
        } else {
            append_u64(out, b[i]);
        }
    }
}

void append_node(std::string& out, atom node) {
    // Always quoted: node names contain '.' and '-' often, and it keeps the form regular.
    out.push_back('\'');
    std::string_view s = node.str();
    std::size_t i = 0;
    while (i < s.size()) {
        std::uint32_t cp;
        if (!utf8_decode(s, i, cp)) cp = static_cast<unsigned char>(s[i++]);
        append_escaped_char(out, cp, '\'');
    }
    out.push_back('\'');
}

struct pframe {
    enum type_t : std::uint8_t { seq, map, list, text } type;
    std::size_t depth = 0;
    const term* a = nullptr;                   // seq
    const std::pair<term, term>* p = nullptr;  // map
    std::size_t i = 0, n = 0;
    list_cursor c{};  // list
    const char* close = "";
    bool value_next = false;  // map: next item is the value of pair i
};

}  // namespace

bool atom_needs_quotes(std::string_view s) noexcept {
    if (s.empty()) return true;
    std::size_t i = 0;
    std::uint32_t cp;
    if (!utf8_decode(s, i, cp) || !is_lower_start(cp)) return true;
    while (i < s.size()) {
        if (!utf8_decode(s, i, cp) || !is_name_char(cp)) return true;
    }
    for (auto r : kReserved)
        if (r == s) return true;
    return false;
}

void append_atom(std::string& out, std::string_view s) {
    if (!atom_needs_quotes(s)) {
        out += s;
        return;
    }
    out.push_back('\'');
    std::size_t i = 0;
    while (i < s.size()) {
        std::uint32_t cp;
        if (!utf8_decode(s, i, cp)) cp = static_cast<unsigned char>(s[i++]);
        append_escaped_char(out, cp, '\'');
    }
    out.push_back('\'');
}

// Shortest round-trip digits, laid out as io_lib_format:fwrite_g/1 does: fixed notation
// when it is not longer than the exponent form, else D.DDDeN; always with a ".".
std::string format_double(double d) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));  // [-]D[.DDD]e[+-]XX
    std::string out;
    if (!sci.empty() && sci[0] == '-') {
        out.push_back('-');
        sci.remove_prefix(1);
    }
    std::size_t epos = sci.find('e');
    std::string digits;
    for (char c : sci.substr(0, epos))
        if (c != '.') digits.push_back(c);
    int exp10 = 0;
    std::from_chars(sci.data() + epos + 1 + (sci[epos + 1] == '+'), sci.data() + sci.size(), exp10);
    while (digits.size() > 1 && digits.back() == '0')
        digits.pop_back();
    if (digits == "0") {
        out += "0.0";
        return out;
    }
    // value = 0.DIGITS * 10^place
    int place = exp10 + 1;
    int len = static_cast<int>(digits.size());
    auto exp_form = [&] {
        out.push_back(digits[0]);
        out.push_back('.');
        if (len == 1)
            out.push_back('0');
        else
            out.append(digits, 1);
        out.push_back('e');
        out += std::to_string(place - 1);
    };
    if (place == 0) {
        out += "0.";
        out += digits;
    } else if (place < 0 || place >= len) {
        std::string expl = std::to_string(place - 1);
        int exp_cost = static_cast<int>(expl.size()) + 1 + (len == 1 ? 2 : 1);
        if (place < 0) {
            if (2 - place <= exp_cost) {
                out += "0.";
                out.append(static_cast<std::size_t>(-place), '0');
                out += digits;
            } else {
                exp_form();
            }
        } else {
            // OTP also switches to the exponent form from 1.0e15 up even when the fixed
            // form is as short (9007199254740992.0 prints as 9.007199254740992e15).
            if (place - len + 2 <= exp_cost && place <= 15) {
                out += digits;
                out.append(static_cast<std::size_t>(place - len), '0');
                out += ".0";
            } else {
                exp_form();
            }
        }
    } else {
        out.append(digits, 0, static_cast<std::size_t>(place));
        out.push_back('.');
        out.append(digits, static_cast<std::size_t>(place));
    }
    return out;
}

namespace {

class printer {
  public:
    printer(std::string& out, const print_options& o) : out_(out), o_(o) {}

    void run(const term& root) {
        emit(root, 1);
        while (!st_.empty()) {
            pframe& f = st_.back();
            switch (f.type) {
                case pframe::seq:
                    if (f.i == f.n) {
                        out_ += f.close;
                        st_.pop_back();
                        continue;
                    }
                    if (f.i) out_.push_back(',');
                    {
                        const term* t = &f.a[f.i++];
                        emit(*t, f.depth);  // may invalidate f
                    }
                    continue;
                case pframe::map:
                    if (f.i == f.n) {
                        out_ += f.close;
                        st_.pop_back();
                        continue;
                    }
                    if (!f.value_next) {
                        if (f.i) out_.push_back(',');
                        f.value_next = true;
                        const term* k = &f.p[f.i].first;
                        emit(*k, f.depth);
                    } else {
                        out_ += " => ";
                        f.value_next = false;
                        const term* v = &f.p[f.i++].second;
                        emit(*v, f.depth);
                    }
                    continue;
                case pframe::list: {
                    const term* e = f.c.next();
                    if (e) {
                        if (f.i++) out_.push_back(',');
                        emit(*e, f.depth);
                        continue;
                    }
                    const term& tail = f.c.final_tail();
                    if (!tail.is_nil()) {
                        out_.push_back('|');
                        std::size_t d = f.depth;
                        f.type = pframe::text;
                        f.close = "]";
                        emit(tail, d);
                    } else {
                        out_.push_back(']');
                        st_.pop_back();
                    }
                    continue;
                }
                case pframe::text:
                    out_ += f.close;
                    st_.pop_back();
                    continue;
            }
        }
    }

  private:
    bool too_deep(std::size_t depth) {
        if (o_.max_depth && depth > o_.max_depth) {
            out_ += "...";
            return true;
        }
        return false;
    }

    void emit(const term& t, std::size_t depth) {
        switch (t.type()) {
            case kind::integer:
                append_i64(out_, t.as_int64());
                return;
            case kind::bignum:
                out_ += integer_to_string(t);
                return;
            case kind::float_:
                out_ += format_double(t.as_double());
                return;
            case kind::atom:
                append_atom(out_, t.as_atom().str());
                return;
            case kind::nil:
                out_ += "[]";
                return;
            case kind::binary:
            case kind::bitstring: {
                if (too_deep(depth)) return;
                auto b = t.as_bytes();
                unsigned tb = t.trailing_bits();
                out_ += "<<";
                int pb = (o_.strings && tb == 8) ? printable_binary(b) : 0;
                if (pb) {
                    append_string_literal(out_,
                                          {reinterpret_cast<const char*>(b.data()), b.size()});
                    if (pb == 2) out_ += "/utf8";
                } else {
                    append_bytes(out_, b, tb);
                }
                out_ += ">>";
                return;
            }
            case kind::pid: {
                const pid& p = t.as_pid();
                out_.push_back('<');
                append_node(out_, p.node);
                append_dot_u64(out_, p.id);
                append_dot_u64(out_, p.serial);
                append_dot_u64(out_, p.creation);
                out_.push_back('>');
                return;
            }
            case kind::port: {
                const port& p = t.as_port();
                out_ += "#Port<";
                append_node(out_, p.node);
                append_dot_u64(out_, p.id);
                append_dot_u64(out_, p.creation);
                out_.push_back('>');
                return;
            }
            case kind::reference: {
                const reference& r = t.as_reference();
                out_ += "#Ref<";
                append_node(out_, r.node);
                auto w = r.words();
                for (std::size_t i = w.size(); i-- > 0;)
                    append_dot_u64(out_, w[i]);
                append_dot_u64(out_, r.creation);
                out_.push_back('>');
                return;
            }
            case kind::fun: {
                if (t.is_export()) {
                    const export_fun& f = t.as_export();
                    out_ += "fun ";
                    append_atom(out_, f.module.str());
                    out_.push_back(':');
                    append_atom(out_, f.function.str());
                    out_.push_back('/');
                    append_u64(out_, f.arity);
                    return;
                }
                if (too_deep(depth)) return;
                const closure& c = t.as_closure();
                out_ += "#Fun<";
                append_atom(out_, c.module.str());
                out_.push_back('.');
                append_i64(out_, c.old_index);
                out_.push_back('.');
                append_i64(out_, c.old_uniq);
                append_dot_u64(out_, c.arity);
                append_dot_u64(out_, c.index);
                out_.push_back('.');
                static const char hex[] = "0123456789ABCDEF";
                for (auto b : c.uniq) {
                    out_.push_back(hex[b >> 4]);
                    out_.push_back(hex[b & 15]);
                }
                out_.push_back('.');
                // Creator pid and free variables, printed as terms.
                pframe f{pframe::seq, depth + 1};
                f.a = &c.pid;
                f.n = 1;
                f.close = "";
                pframe g{pframe::seq, depth + 1};
                g.a = c.free_vars.data();
                g.n = c.free_vars.size();
                g.close = "]>";
                st_.push_back(g);
                pframe sep{pframe::text, depth};
                sep.close = ".[";
                st_.push_back(sep);
                st_.push_back(f);
                return;
            }
            case kind::tuple: {
                if (too_deep(depth)) return;
                auto e = t.as_tuple();
                out_.push_back('{');
                pframe f{pframe::seq, depth + 1};
                f.a = e.data();
                f.n = e.size();
                f.close = "}";
                st_.push_back(f);
                return;
            }
            case kind::map: {
                if (too_deep(depth)) return;
                auto p = t.as_map();
                out_ += "#{";
                pframe f{pframe::map, depth + 1};
                f.p = p.data();
                f.n = p.size();
                f.close = "}";
                st_.push_back(f);
                return;
            }
            case kind::list: {
                if (too_deep(depth)) return;
                if (o_.strings && printable_list(t)) {
                    std::string s;
                    list_cursor c(t);
                    while (const term* e = c.next())
                        utf8_append(s, static_cast<std::uint32_t>(e->as_int64()));
                    append_string_literal(out_, s);
                    return;
                }
                out_.push_back('[');
                pframe f{pframe::list, depth + 1};
                f.c = list_cursor(t);
                st_.push_back(f);
                return;
            }
        }
    }

    std::string& out_;
    const print_options& o_;
    std::vector<pframe> st_;
};

}  // namespace

}  // namespace erl::detail

namespace erl {

std::string to_string(const term& t, const print_options& opts) {
    std::string out;
    detail::printer p(out, opts);
    p.run(t);
    return out;
}

std::ostream& operator<<(std::ostream& os, const term& t) {
    return os << to_string(t);
}

std::ostream& operator<<(std::ostream& os, const atom& a) {
    std::string s;
    detail::append_atom(s, a.str());
    return os << s;
}

}  // namespace erl
