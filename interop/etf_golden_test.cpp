// Proves OTP accepts our encoding: every golden vector (made by a real erl with
// tests/golden/generate.escript) is decoded and re-encoded by us (plain and compressed), plus a
// few thousand random terms; a real `erl -noshell` then checks
//   binary_to_term(Ours) =:= binary_to_term(Theirs)
// for each vector and prints a summary that this test parses. No distribution is involved.
#include <erl/etf.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string to_hex(std::span<const std::uint8_t> b) {
    static const char* d = "0123456789ABCDEF";
    std::string s;
    s.reserve(b.size() * 2);
    for (auto c : b) {
        s += d[c >> 4];
        s += d[c & 15];
    }
    return s;
}

std::vector<std::uint8_t> from_hex(const std::string& h) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
    return out;
}

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return out;
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        out.append(buf.data(), n);
    ::pclose(p);
    return out;
}

// Erlang side: each line is  Name \t TheirsHex \t OursHex \t OursCompressedHex ; Theirs is
// "-" for random terms that only we produced: then OTP's own encoding of the decoded term must
// equal ours byte for byte.
const char* k_checker = R"ERL(
[F] = init:get_plain_arguments(),
{ok, Bin} = file:read_file(F),
Lines = binary:split(Bin, <<"\n">>, [global, trim_all]),
HasBigMap = fun G(M) when is_map(M) -> map_size(M) > 32 orelse lists:any(G, maps:keys(M) ++ maps:values(M));
                G(T) when is_tuple(T) -> lists:any(G, tuple_to_list(T));
                G([H | T]) -> G(H) orelse G(T);
                G(_) -> false end,
Check = fun(L) ->
    [N, Th, Ou, Oz] = binary:split(L, <<"\t">>, [global]),
    try
        OB = binary:decode_hex(Ou),
        O = binary_to_term(OB),
        Z = binary_to_term(binary:decode_hex(Oz)),
        case Th of
            <<"-">> ->
                %% Only we produced it: OTP's own minor_version 2 encoding must be byte-identical
                %% (except for maps above 32 keys, which OTP orders by hash).
                Same = HasBigMap(O) orelse term_to_binary(O, [{minor_version, 2}]) =:= OB,
                case Same andalso Z =:= O of
                    true -> [];
                    false -> [{N, O, OB, term_to_binary(O, [{minor_version, 2}])}]
                end;
            _ ->
                T = binary_to_term(binary:decode_hex(Th)),
                case O =:= T andalso Z =:= T of true -> []; false -> [N] end
        end
    catch C:E -> [{N, C, E}] end
end,
Bad = lists:append([Check(L) || L <- Lines]),
[io:format("MISMATCH ~w~n", [B]) || B <- Bad],
io:format("ETF_CHECKED ~p ETF_BAD ~p~n", [length(Lines), length(Bad)]),
halt().
)ERL";

erl::term random_term(std::mt19937_64& rng, int depth) {
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    static const char* names[] = {"",   "a", "ok", "\xc3\xa9t\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                                  "n@h"};
    switch (pick(depth > 0 ? 12 : 8)) {
        case 0:
            return erl::term(static_cast<long long>(rng()));
        case 1: {
            std::vector<std::uint32_t> limbs(1 + pick(6));
            for (auto& l : limbs)
                l = static_cast<std::uint32_t>(rng());
            limbs.back() |= 1;
            return erl::make_integer(pick(2) == 1, limbs);
        }
        case 2:
            return erl::term(static_cast<double>(static_cast<std::int64_t>(rng() % 100000)) / 16);
        case 3:
            return erl::term(erl::atom(names[pick(6)]));
        case 4: {
            std::vector<std::uint8_t> b(pick(20));
            for (auto& c : b)
                c = static_cast<std::uint8_t>(rng());
            std::size_t bits = b.size() * 8;
            if (!b.empty() && pick(2)) {
                bits -= 1 + pick(7);
                b.back() &= static_cast<std::uint8_t>(0xFF00u >> (bits % 8 ? bits % 8 : 8));
            }
            return erl::bitstring(b, bits);
        }
        case 5:
            return erl::term(erl::pid{erl::atom("x@y"), static_cast<std::uint32_t>(rng()), 0, 1});
        case 6: {
            // OTP 25 writes V4_PORT_EXT above 28 bits, we only above 32 bits (both decode
            // everywhere); ids in between would differ in bytes, not in value.
            std::uint64_t id = rng() >> pick(64);
            if (id > 0xFFFFFFFull && id <= 0xFFFFFFFFull) id >>= 4;
            return erl::term(erl::port{erl::atom("x@y"), id, 2});
        }
        case 7:
            return erl::term(
                erl::reference{erl::atom("x@y"), 3, 3, {1, 2, static_cast<std::uint32_t>(rng())}});
        case 8: {
            std::vector<erl::term> el(pick(5));
            for (auto& e : el)
                e = random_term(rng, depth - 1);
            return erl::make_tuple(el);
        }
        case 9: {
            std::vector<erl::term> el(pick(5));
            for (auto& e : el)
                e = random_term(rng, depth - 1);
            return erl::make_list(el, pick(4) == 0 ? erl::term(erl::atom("t")) : erl::term{});
        }
        case 10: {
            std::vector<std::pair<erl::term, erl::term>> kv;
            for (std::size_t i = 0, n = pick(3) == 0 ? 40 : pick(5); i < n; ++i)
                kv.emplace_back(random_term(rng, depth - 1), random_term(rng, depth - 1));
            return erl::make_map(kv);
        }
        default: {
            std::vector<erl::term> el(pick(10));
            for (auto& e : el)
                e = erl::term(static_cast<int>(pick(256)));
            return erl::make_list(el);
        }
    }
}

TEST(EtfInterop, OtpAcceptsOurEncoding) {
    if (std::system("command -v erl >/dev/null 2>&1") != 0) GTEST_SKIP() << "erl not installed";
    std::ifstream in(std::string(ERLCPP_SOURCE_DIR) + "/tests/golden/etf_vectors.txt");
    ASSERT_TRUE(in) << "golden vectors missing";
    auto dir = std::filesystem::temp_directory_path() /
               ("erlcpp-etf-golden-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream pairs(dir / "pairs.txt");
    std::size_t n = 0;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string name, opts, hex;
        if (!std::getline(ls, name, '\t') || !std::getline(ls, opts, '\t') ||
            !std::getline(ls, hex, '\t'))
            continue;
        auto theirs = from_hex(hex);
        auto t = erl::etf::decode(theirs);
        ASSERT_TRUE(t) << name << " " << opts << ": " << t.error().message();
        pairs << name << '/' << opts << '\t' << hex << '\t' << to_hex(erl::etf::encode(*t)) << '\t'
              << to_hex(erl::etf::encode(*t, {.compression_level = 6})) << '\n';
        ++n;
    }
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2000; ++i) {
        erl::term t = random_term(rng, 4);
        pairs << "random" << i << "\t-\t" << to_hex(erl::etf::encode(t)) << '\t'
              << to_hex(erl::etf::encode(t, {.compression_level = 1})) << '\n';
        ++n;
    }
    pairs.close();
    {
        std::ofstream script(dir / "check.erl.txt");
        script << k_checker;
    }
    // The checker is read from a file and evaluated, which avoids shell quoting of its text.
    std::string cmd =
        "cd " + dir.string() +
        " && erl -noshell -eval '{ok,B}=file:read_file(\"check.erl.txt\"),"
        "{ok,Ts,_}=erl_scan:string(binary_to_list(B)),{ok,Es}=erl_parse:parse_exprs(Ts),"
        "erl_eval:exprs(Es,[])' -extra " +
        (dir / "pairs.txt").string() + " 2>&1";
    std::string out = run(cmd);
    std::filesystem::remove_all(dir);
    std::string expect = "ETF_CHECKED " + std::to_string(n) + " ETF_BAD 0\n";
    EXPECT_NE(out.find(expect), std::string::npos) << "erl said: " << out;
}

}  // namespace
