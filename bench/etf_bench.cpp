// ETF codec benchmark: erlcpp vs erl_interface (ei) vs BEAM, on the same deterministic corpus.
//
//   erlcpp-bench-etf [--seconds S] [--reps R] [--no-beam] [--no-ei] [--only WORKLOAD]
//
// Every repetition (default 5) measures every side on every workload: ours and ei in turn (which
// goes first alternates), then BEAM in a fresh `erl`. Cells are the median of the repetitions
// with the lowest and highest; ins/t is the user-space instructions per term from the kernel's
// counter where it exposes one ("-" where it does not, e.g. in a VM without a PMU).
//
// Workloads (deterministic, see make_corpus):
//   control   small distribution control tuples: {2,'',Pid}, {6,Pid,'',Name}, {'$gen_call',..}
//   mixed_1k  ~1 KB mixed terms: atoms, small/large ints, floats, binaries, strings, maps, pids
//   bin_1m    {data, <<1 MB>>}
//   list_100k lists of 100,000 integers
//   map_1k    maps of 1,000 entries (atom/binary keys)
//
// What each side does per term (timed loop, after one warm-up pass):
//   ours encode: erl::etf::encode(term) -> fresh std::vector (exact pre-sizing pass + write).
//   ours decode: erl::etf::decode(bytes) -> erl::term (allocates the term blocks, interns atoms).
//   ours shared: erl::etf::decode(bytes, sharing{owner}) as the distribution reader decodes:
//                binaries of 64 KiB and more (and at least a quarter of the input) refer to the
//                input buffer, held by reference count, instead of being copied. The same as
//                `decode` for terms without such binaries.
//   ei encode:   ei_x_new_with_version + ei_x_encode_* walking a pre-built C++ tree (the tree
//                is built before timing; ei_x_free after each term).
//   ei decode:   ei_get_type/ei_decode_* building an equivalent owning C++ tree (std::vector
//                children, std::string atoms/binaries), freed after each term.
//   BEAM:        term_to_binary(T) / binary_to_term(B) inside `erl -noshell` on the same terms
//                (read from a temporary file), timed with erlang:monotonic_time.
// MB/s always counts the size of our encoding of the term, so the columns are comparable.
#include <erl/etf.hpp>

#include "bench_util.hpp"

#ifdef ERLCPP_HAVE_EI
#include <ei.h>
#endif

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using erl::atom;
using erl::term;
using clk = std::chrono::steady_clock;

struct workload {
    std::string name;
    std::vector<term> terms;
    std::vector<std::vector<std::uint8_t>> encoded;
    std::size_t bytes = 0;
};

term make_pid(std::uint32_t i) {
    return term(erl::pid{atom("node1@host.example"), i, 0, 3});
}

std::vector<workload> make_corpus() {
    std::mt19937_64 rng(12345);
    std::vector<workload> w;
    {
        workload c{"control"};
        for (std::uint32_t i = 0; i < 2000; ++i) {
            switch (i % 3) {
                case 0:
                    c.terms.push_back(erl::tuple(2, atom(""), make_pid(i)));
                    break;
                case 1:
                    c.terms.push_back(erl::tuple(6, make_pid(i), atom(""), atom("net_kernel")));
                    break;
                default:
                    c.terms.push_back(erl::tuple(
                        atom("$gen_call"),
                        erl::tuple(make_pid(i), erl::term(erl::reference{
                                                    atom("node1@host.example"), 3, 3, {i, 7, 9}})),
                        erl::tuple(atom("is_auth"), atom("node2@host"))));
            }
        }
        w.push_back(std::move(c));
    }
    {
        workload m{"mixed_1k"};
        static const char* names[] = {"ok",      "error",   "undefined", "user",
                                      "session", "timeout", "value",     "config"};
        for (int i = 0; i < 400; ++i) {
            std::vector<term> items;
            std::size_t size = 6;  // LIST_EXT header and tail
            while (true) {
                int k = static_cast<int>(rng() % 8);
                term t;
                switch (k) {
                    case 0:
                        t = term(static_cast<int>(rng() % 200));
                        break;
                    case 1:
                        t = term(static_cast<long long>(rng() >> 8));
                        break;
                    case 2:
                        t = term(static_cast<double>(rng() % 100000) / 7.0);
                        break;
                    case 3:
                        t = term(atom(names[rng() % 8]));
                        break;
                    case 4: {
                        std::string s(8 + rng() % 40, 'x');
                        for (auto& ch : s)
                            ch = static_cast<char>('a' + rng() % 26);
                        t = erl::binary(std::string_view(s));
                        break;
                    }
                    case 5:
                        t = erl::charlist("hello world " + std::to_string(rng() % 1000));
                        break;
                    case 6:
                        t = erl::map(
                            {{term(atom("id")), term(static_cast<int>(rng() % 100000))},
                             {term(atom("name")), erl::binary(std::string_view("some name"))},
                             {term(atom("active")), term(true)}});
                        break;
                    default:
                        t = erl::tuple(atom(names[rng() % 8]),
                                       make_pid(static_cast<std::uint32_t>(rng() % 1000)),
                                       static_cast<int>(rng() % 5000));
                        break;
                }
                items.push_back(t);
                size += erl::etf::encoded_size(t) - 1;
                if (size >= 1024) break;
            }
            m.terms.push_back(erl::tuple(atom("batch"), i, erl::make_list(items)));
        }
        w.push_back(std::move(m));
    }
    {
        workload b{"bin_1m"};
        for (int i = 0; i < 4; ++i) {
            std::vector<std::uint8_t> data(1 << 20);
            for (auto& x : data)
                x = static_cast<std::uint8_t>(rng());
            b.terms.push_back(erl::tuple(atom("data"), i, erl::binary(data)));
        }
        w.push_back(std::move(b));
    }
    {
        workload l{"list_100k"};
        for (int i = 0; i < 4; ++i) {
            std::vector<term> el;
            el.reserve(100000);
            for (int j = 0; j < 100000; ++j)
                el.push_back(term(static_cast<long long>(rng() % 1000000)));
            l.terms.push_back(erl::make_list(std::move(el)));
        }
        w.push_back(std::move(l));
    }
    {
        workload m{"map_1k"};
        for (int i = 0; i < 20; ++i) {
            std::vector<std::pair<term, term>> kv;
            for (int j = 0; j < 1000; ++j) {
                term key = j % 2 ? term(atom("key_" + std::to_string(j)))
                                 : erl::binary(std::string_view("k" + std::to_string(j)));
                kv.emplace_back(key, erl::tuple(static_cast<int>(rng() % 1000),
                                                erl::binary(std::string_view("v"))));
            }
            m.terms.push_back(erl::make_map(std::move(kv)));
        }
        w.push_back(std::move(m));
    }
    for (auto& x : w) {
        for (auto& t : x.terms) {
            x.encoded.push_back(erl::etf::encode(t));
            x.bytes += x.encoded.back().size();
        }
    }
    return w;
}

// Runs `pass` (one pass over the workload) until `seconds` elapsed, after one warm-up pass.
// Returns seconds per pass.
// Seconds per pass of `pass` (run for at least `seconds` after one warm-up pass), and the
// user-space instructions per pass this thread retired meanwhile (0 when the kernel does not
// let a process count its own instructions).
struct timing {
    double seconds = 0;
    double instructions = 0;
};

timing time_passes(double seconds, const std::function<void()>& pass) {
    pass();
    erl_bench::instruction_counter ins;
    std::size_t passes = 0;
    ins.start();
    auto t0 = clk::now();
    double el = 0;
    do {
        pass();
        ++passes;
        el = std::chrono::duration<double>(clk::now() - t0).count();
    } while (el < seconds);
    const double n = static_cast<double>(passes);
    return {el / n, static_cast<double>(ins.stop()) / n};
}

std::size_t sink_ = 0;  // defeats dead-code elimination

#ifdef ERLCPP_HAVE_EI
// ---------------------------------------------------------------------------------------------
// ei side: an owning tree equivalent to what an ei user builds.
struct enode {
    enum k : std::uint8_t { integer, flt, atm, tuple, list, map, bin, str, pid, ref, nil } kind;
    long long i = 0;
    double d = 0;
    std::string s;  // atom text, binary bytes, string bytes, pid/ref node
    std::uint32_t a = 0, b = 0, c = 0, len = 0;
    std::array<std::uint32_t, 5> ids{};
    std::vector<enode> kids;  // tuple/list elements; map: k0, v0, k1, v1...
};

enode to_enode(const term& t) {
    enode n{};
    switch (t.type()) {
        case erl::kind::integer:
            n.kind = enode::integer;
            n.i = t.as_int64();
            break;
        case erl::kind::float_:
            n.kind = enode::flt;
            n.d = t.as_double();
            break;
        case erl::kind::atom:
            n.kind = enode::atm;
            n.s = std::string(t.as_atom().str());
            break;
        case erl::kind::binary:
            n.kind = enode::bin;
            n.s = std::string(t.as_string_view());
            break;
        case erl::kind::pid:
            n.kind = enode::pid;
            n.s = std::string(t.as_pid().node.str());
            n.a = t.as_pid().id;
            n.b = t.as_pid().serial;
            n.c = t.as_pid().creation;
            break;
        case erl::kind::reference:
            n.kind = enode::ref;
            n.s = std::string(t.as_reference().node.str());
            n.c = t.as_reference().creation;
            n.len = t.as_reference().len;
            n.ids = t.as_reference().ids;
            break;
        case erl::kind::tuple:
            n.kind = enode::tuple;
            for (auto& e : t.as_tuple())
                n.kids.push_back(to_enode(e));
            break;
        case erl::kind::nil:
            n.kind = enode::nil;
            break;
        case erl::kind::list: {
            auto lv = t.as_list();
            bool bytes = lv.elements.size() < 65536;
            for (auto& e : lv.elements)
                bytes = bytes && e.is_small() && e.as_int64() >= 0 && e.as_int64() < 256;
            if (bytes) {
                n.kind = enode::str;
                for (auto& e : lv.elements)
                    n.s += static_cast<char>(e.as_int64());
            } else {
                n.kind = enode::list;
                for (auto& e : lv.elements)
                    n.kids.push_back(to_enode(e));
            }
            break;
        }
        case erl::kind::map:
            n.kind = enode::map;
            for (auto& [k, v] : t.as_map()) {
                n.kids.push_back(to_enode(k));
                n.kids.push_back(to_enode(v));
            }
            break;
        default:
            std::fprintf(stderr, "unsupported kind in bench corpus\n");
            std::abort();
    }
    return n;
}

void ei_enc(ei_x_buff* x, const enode& n) {
    switch (n.kind) {
        case enode::integer:
            ei_x_encode_longlong(x, n.i);
            break;
        case enode::flt:
            ei_x_encode_double(x, n.d);
            break;
        case enode::atm:
            ei_x_encode_atom_len_as(x, n.s.data(), static_cast<int>(n.s.size()), ERLANG_UTF8,
                                    ERLANG_UTF8);
            break;
        case enode::bin:
            ei_x_encode_binary(x, n.s.data(), static_cast<int>(n.s.size()));
            break;
        case enode::str:
            ei_x_encode_string_len(x, n.s.data(), static_cast<int>(n.s.size()));
            break;
        case enode::nil:
            ei_x_encode_empty_list(x);
            break;
        case enode::pid: {
            erlang_pid p;
            std::memcpy(p.node, n.s.c_str(), n.s.size() + 1);
            p.num = n.a;
            p.serial = n.b;
            p.creation = n.c;
            ei_x_encode_pid(x, &p);
            break;
        }
        case enode::ref: {
            erlang_ref r;
            std::memcpy(r.node, n.s.c_str(), n.s.size() + 1);
            r.len = static_cast<int>(n.len);
            r.creation = n.c;
            for (int i = 0; i < r.len; ++i)
                r.n[i] = n.ids[i];
            ei_x_encode_ref(x, &r);
            break;
        }
        case enode::tuple:
            ei_x_encode_tuple_header(x, static_cast<long>(n.kids.size()));
            for (auto& k : n.kids)
                ei_enc(x, k);
            break;
        case enode::list:
            ei_x_encode_list_header(x, static_cast<long>(n.kids.size()));
            for (auto& k : n.kids)
                ei_enc(x, k);
            ei_x_encode_empty_list(x);
            break;
        case enode::map:
            ei_x_encode_map_header(x, static_cast<long>(n.kids.size() / 2));
            for (auto& k : n.kids)
                ei_enc(x, k);
            break;
    }
}

bool ei_dec(const char* buf, int* idx, enode& n) {
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0) return false;
    switch (type) {
        case ERL_SMALL_INTEGER_EXT:
        case ERL_INTEGER_EXT:
        case ERL_SMALL_BIG_EXT:
        case ERL_LARGE_BIG_EXT:
            n.kind = enode::integer;
            return ei_decode_longlong(buf, idx, &n.i) == 0;
        case NEW_FLOAT_EXT:
        case ERL_FLOAT_EXT:
            n.kind = enode::flt;
            return ei_decode_double(buf, idx, &n.d) == 0;
        case ERL_ATOM_EXT:
        case ERL_SMALL_ATOM_EXT:
        case ERL_ATOM_UTF8_EXT:
        case ERL_SMALL_ATOM_UTF8_EXT: {
            char a[MAXATOMLEN_UTF8];
            n.kind = enode::atm;
            if (ei_decode_atom_as(buf, idx, a, sizeof a, ERLANG_UTF8, nullptr, nullptr) < 0)
                return false;
            n.s = a;
            return true;
        }
        case ERL_BINARY_EXT: {
            n.kind = enode::bin;
            n.s.resize(static_cast<std::size_t>(size));
            long len;
            return ei_decode_binary(buf, idx, n.s.data(), &len) == 0;
        }
        case ERL_STRING_EXT:
            n.kind = enode::str;
            n.s.resize(static_cast<std::size_t>(size) + 1);
            if (ei_decode_string(buf, idx, n.s.data()) < 0) return false;
            n.s.resize(static_cast<std::size_t>(size));
            return true;
        case ERL_NEW_PID_EXT:
        case ERL_PID_EXT: {
            erlang_pid p;
            if (ei_decode_pid(buf, idx, &p) < 0) return false;
            n.kind = enode::pid;
            n.s = p.node;
            n.a = p.num;
            n.b = p.serial;
            n.c = p.creation;
            return true;
        }
        case ERL_NEWER_REFERENCE_EXT:
        case ERL_NEW_REFERENCE_EXT: {
            erlang_ref r;
            if (ei_decode_ref(buf, idx, &r) < 0) return false;
            n.kind = enode::ref;
            n.s = r.node;
            n.c = r.creation;
            n.len = static_cast<std::uint32_t>(r.len);
            for (int i = 0; i < r.len; ++i)
                n.ids[i] = r.n[i];
            return true;
        }
        case ERL_SMALL_TUPLE_EXT:
        case ERL_LARGE_TUPLE_EXT: {
            int a;
            if (ei_decode_tuple_header(buf, idx, &a) < 0) return false;
            n.kind = enode::tuple;
            n.kids.resize(static_cast<std::size_t>(a));
            for (auto& k : n.kids)
                if (!ei_dec(buf, idx, k)) return false;
            return true;
        }
        case ERL_NIL_EXT:
            n.kind = enode::nil;
            return ei_skip_term(buf, idx) == 0;
        case ERL_LIST_EXT: {
            int a;
            if (ei_decode_list_header(buf, idx, &a) < 0) return false;
            n.kind = enode::list;
            n.kids.resize(static_cast<std::size_t>(a));
            for (auto& k : n.kids)
                if (!ei_dec(buf, idx, k)) return false;
            return ei_skip_term(buf, idx) == 0;  // the [] tail
        }
        case ERL_MAP_EXT: {
            int a;
            if (ei_decode_map_header(buf, idx, &a) < 0) return false;
            n.kind = enode::map;
            n.kids.resize(2 * static_cast<std::size_t>(a));
            for (auto& k : n.kids)
                if (!ei_dec(buf, idx, k)) return false;
            return true;
        }
        default:
            return false;
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// BEAM side: terms go to a file (length-prefixed ETF); an Erlang snippet times them.
const char* k_beam = R"ERL(
[File, SecsS] = init:get_plain_arguments(),
Secs = list_to_float(SecsS),
{ok, Bin} = file:read_file(File),
Split = fun S(<<>>, Acc) -> lists:reverse(Acc);
            S(<<NL:32, Name:NL/binary, N:32, Rest/binary>>, Acc) ->
                {Terms, Rest2} = lists:foldl(fun(_, {Ts, <<L:32, B:L/binary, R/binary>>}) -> {[binary_to_term(B) | Ts], R} end, {[], Rest}, lists:seq(1, N)),
                S(Rest2, [{Name, lists:reverse(Terms)} | Acc]) end,
Loads = Split(Bin, []),
Time = fun(F) ->
    F(),
    T0 = erlang:monotonic_time(nanosecond),
    Loop = fun L(P) -> F(), El = erlang:monotonic_time(nanosecond) - T0,
                       case El >= Secs * 1.0e9 of true -> El / P; false -> L(P + 1) end end,
    Loop(1) end,
lists:foreach(fun({Name, Terms}) ->
    Bins = [term_to_binary(T) || T <- Terms],
    Enc = Time(fun() -> lists:foreach(fun(T) -> term_to_binary(T) end, Terms) end),
    Dec = Time(fun() -> lists:foreach(fun(B) -> binary_to_term(B) end, Bins) end),
    io:format("BEAM ~s ~.3f ~.3f~n", [Name, Enc, Dec])
end, Loads),
halt().
)ERL";

struct beam_times {
    double enc_ns = 0, dec_ns = 0;  // per pass
};

std::map<std::string, beam_times> run_beam(const std::vector<workload>& w, double seconds) {
    std::map<std::string, beam_times> out;
    if (std::system("command -v erl >/dev/null 2>&1") != 0) return out;
    auto dir =
        std::filesystem::temp_directory_path() / ("erlcpp-bench-etf-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream f(dir / "corpus.bin", std::ios::binary);
        auto be32 = [&](std::uint32_t v) {
            char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
            f.write(b, 4);
        };
        for (auto& x : w) {
            be32(static_cast<std::uint32_t>(x.name.size()));
            f.write(x.name.data(), static_cast<std::streamsize>(x.name.size()));
            be32(static_cast<std::uint32_t>(x.encoded.size()));
            for (auto& e : x.encoded) {
                be32(static_cast<std::uint32_t>(e.size()));
                f.write(reinterpret_cast<const char*>(e.data()),
                        static_cast<std::streamsize>(e.size()));
            }
        }
        std::ofstream s(dir / "bench.erl.txt");
        s << k_beam;
    }
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", seconds);
    std::string cmd =
        "cd " + dir.string() +
        " && erl -noshell -eval '{ok,B}=file:read_file(\"bench.erl.txt\"),"
        "{ok,Ts,_}=erl_scan:string(binary_to_list(B)),{ok,Es}=erl_parse:parse_exprs(Ts),"
        "erl_eval:exprs(Es,[])' -extra corpus.bin " +
        std::string(secs) + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p) {
        char line[512];
        while (std::fgets(line, sizeof line, p)) {
            char name[128];
            double e, d;
            if (std::sscanf(line, "BEAM %127s %lf %lf", name, &e, &d) == 3)
                out[name] = {e, d};
            else
                std::fprintf(stderr, "erl: %s", line);
        }
        ::pclose(p);
    }
    std::filesystem::remove_all(dir);
    return out;
}

using erl_bench::spread;
using erl_bench::spread_of;

}  // namespace

int main(int argc, char** argv) {
    double seconds = 0.4;
    int reps = 5;
    bool beam = true, use_ei = true;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc)
            seconds = std::atof(argv[++i]);
        else if (a == "--reps" && i + 1 < argc)
            reps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--no-beam")
            beam = false;
        else if (a == "--no-ei")
            use_ei = false;
        else if (a == "--only" && i + 1 < argc)
            only = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: %s [--seconds S] [--reps R] [--no-beam] [--no-ei] "
                         "[--only WORKLOAD]\n",
                         argv[0]);
            return 2;
        }
    }
    auto w = make_corpus();
    if (!only.empty()) std::erase_if(w, [&](const workload& x) { return x.name != only; });
#ifndef ERLCPP_HAVE_EI
    use_ei = false;
#endif

    // Figures: 0 ours enc, 1 ours dec, 2 ours dec with sharing, 3 ei enc, 4 ei dec, 5 BEAM enc,
    // 6 BEAM dec; per workload, one sample per repetition (seconds per pass, instructions).
    enum {
        f_ours_enc,
        f_ours_dec,
        f_ours_dsh,
        f_ei_enc,
        f_ei_dec,
        f_beam_enc,
        f_beam_dec,
        figures
    };
    struct samples {
        std::array<std::vector<double>, figures> secs, ins;
    };
    std::vector<samples> got(w.size());

    // What each side works on, made once.
    std::vector<std::vector<erl::etf::sharing>> owners(w.size());
    for (std::size_t k = 0; k < w.size(); ++k)
        for (auto& e : w[k].encoded)
            owners[k].push_back({std::make_shared<const std::vector<std::uint8_t>>(e)});
#ifdef ERLCPP_HAVE_EI
    std::vector<std::vector<enode>> trees(w.size());
    if (use_ei)
        for (std::size_t k = 0; k < w.size(); ++k)
            for (auto& t : w[k].terms)
                trees[k].push_back(to_enode(t));
#endif

    auto record = [&](std::size_t k, int fig, timing t) {
        got[k].secs[fig].push_back(t.seconds);
        got[k].ins[fig].push_back(t.instructions);
    };
    auto ours = [&](std::size_t k) {
        auto& x = w[k];
        record(k, f_ours_enc, time_passes(seconds, [&] {
                   for (auto& t : x.terms)
                       sink_ += erl::etf::encode(t).size();
               }));
        record(k, f_ours_dec, time_passes(seconds, [&] {
                   for (auto& e : x.encoded) {
                       auto d = erl::etf::decode(e);
                       if (!d) std::abort();
                       sink_ += d->size();
                   }
               }));
        record(k, f_ours_dsh, time_passes(seconds, [&] {
                   for (auto& o : owners[k]) {
                       auto d = erl::etf::decode(
                           *static_cast<const std::vector<std::uint8_t>*>(o.owner.get()), o);
                       if (!d) std::abort();
                       sink_ += d->size();
                   }
               }));
    };
    auto theirs = [&](std::size_t k) {
#ifdef ERLCPP_HAVE_EI
        record(k, f_ei_enc, time_passes(seconds, [&] {
                   for (auto& n : trees[k]) {
                       ei_x_buff b;
                       ei_x_new_with_version(&b);
                       ei_enc(&b, n);
                       sink_ += static_cast<std::size_t>(b.index);
                       ei_x_free(&b);
                   }
               }));
        record(k, f_ei_dec, time_passes(seconds, [&] {
                   for (auto& e : w[k].encoded) {
                       int idx = 0, v;
                       enode n;
                       const char* buf = reinterpret_cast<const char*>(e.data());
                       if (ei_decode_version(buf, &idx, &v) < 0 || !ei_dec(buf, &idx, n))
                           std::abort();
                       sink_ += n.kids.size();
                   }
               }));
#else
        (void)k;
#endif
    };

    // Every repetition measures every side in turn (which C++ side goes first alternates), then
    // runs the BEAM side on the same corpus, so a change of load on the machine reaches all of
    // a ratio's figures instead of the one measured at that moment.
    for (int rep = 0; rep < reps; ++rep) {
        std::fprintf(stderr, "  repetition %d of %d...\n", rep + 1, reps);
        for (std::size_t k = 0; k < w.size(); ++k) {
            if (rep % 2 == 0 || !use_ei) {
                ours(k);
                if (use_ei) theirs(k);
            } else {
                theirs(k);
                ours(k);
            }
        }
        if (beam) {
            auto bt = run_beam(w, seconds);
            for (std::size_t k = 0; k < w.size(); ++k)
                if (auto it = bt.find(w[k].name); it != bt.end()) {
                    got[k].secs[f_beam_enc].push_back(it->second.enc_ns / 1e9);
                    got[k].secs[f_beam_dec].push_back(it->second.dec_ns / 1e9);
                }
        }
    }

    std::printf(
        "ETF codec benchmark: %zu workloads, %d repetitions (every side measured in each), >= "
        "%.2f s per measurement\n"
        "cells: terms/s, median of the repetitions [lowest-highest]; ins/t: user-space "
        "instructions per term (median); ratios of the medians\n",
        w.size(), reps, seconds);
    std::printf("%-10s %5s %8s | %-3s | %-30s %9s | %-30s %9s | %-30s | %7s %9s\n", "workload",
                "terms", "KB", "dir", "ours t/s", "ins/t", "ei t/s", "ins/t", "BEAM t/s", "ours/ei",
                "ours/BEAM");
    static const char* const dirs[] = {"enc", "dec", "dsh"};
    for (std::size_t k = 0; k < w.size(); ++k) {
        auto& x = w[k];
        const double n = static_cast<double>(x.terms.size());
        auto rate = [&](int fig) {
            std::vector<double> r;
            for (double sec : got[k].secs[fig])
                if (sec > 0) r.push_back(n / sec);
            return spread_of(r);
        };
        auto cell = [](spread r) {
            if (r.median == 0) return std::string("-");
            char b[64];
            std::snprintf(b, sizeof b, "%.0f [%.0f-%.0f]", r.median, r.lo, r.hi);
            return std::string(b);
        };
        auto ins = [&](int fig) {
            const double v = spread_of(got[k].ins[fig]).median / n;
            if (v <= 0) return std::string("-");
            char b[32];
            std::snprintf(b, sizeof b, "%.0f", v);
            return std::string(b);
        };
        auto ratio = [](spread a, spread b) {
            if (a.median == 0 || b.median == 0) return std::string("-");
            char c[32];
            std::snprintf(c, sizeof c, "%.2f", a.median / b.median);
            return std::string(c);
        };
        for (int dir = 0; dir < 3; ++dir) {
            const int o = dir == 0 ? f_ours_enc : dir == 1 ? f_ours_dec : f_ours_dsh;
            const int e = dir == 0 ? f_ei_enc : f_ei_dec;
            const int b = dir == 0 ? f_beam_enc : f_beam_dec;
            const spread ro = rate(o), re = rate(e), rb = rate(b);
            std::printf("%-10s %5zu %8.1f | %-3s | %-30s %9s | %-30s %9s | %-30s | %7s %9s\n",
                        x.name.c_str(), x.terms.size(), static_cast<double>(x.bytes) / 1024.0,
                        dirs[dir], cell(ro).c_str(), ins(o).c_str(), cell(re).c_str(),
                        ins(e).c_str(), cell(rb).c_str(), ratio(ro, re).c_str(),
                        ratio(ro, rb).c_str());
        }
    }
    std::printf(
        "dsh: decode with sharing (binaries from 64 KiB refer to the input buffer); its "
        "ei and BEAM columns are their plain decode\n");
    std::fprintf(stderr, "(sink %zu)\n", sink_ % 10);
    return 0;
}
