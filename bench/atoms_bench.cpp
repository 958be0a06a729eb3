// Instruction-count driver for the cost of atoms on the receive path (deterministic: fixed
// work, no timing loop), meant to run under callgrind:
//
//   valgrind --tool=callgrind --instr-atstart=no build/bin/erlcpp-bench-atoms WORKLOAD
//
// Only the measured part runs with instrumentation on (CALLGRIND_START/STOP_INSTRUMENTATION);
// outside valgrind the same work runs and its wall time is printed. Workloads:
//   permanent  decode + drop of 2,000 distribution-like terms whose atoms are all in the table
//              ({'$gen_call', {Pid, Ref}, {get, Key, [ok, error, undefined]}} and similar),
//              5 passes
//   novel      decode + drop of 400 lists of 50 atoms never seen before (20,000 atoms; each
//              pass of the decoder makes them, and with network atoms frees them)
//   reg_send   dist_writer::append_reg_send of 20,000 {'$gen_cast', {put, Key, <<"value">>}}
//              to a registered name with the atom cache header, then dist_reader::feed of the
//              frames and drop of the messages (the encode + decode half of a message path)
#include <erl/etf.hpp>
#include <erl/term.hpp>

#include "proto/dist_codec.hpp"
#include "proto/dist_flags.hpp"

#include <valgrind/callgrind.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using erl::atom;
using erl::term;

term make_pid(std::uint32_t i) {
    return term(erl::pid{atom("bench@host.example"), i, 0, 3});
}

std::vector<std::vector<std::uint8_t>> permanent_corpus() {
    std::vector<std::vector<std::uint8_t>> out;
    const atom keys[] = {atom("alpha"), atom("beta"), atom("gamma"), atom("delta")};
    for (std::uint32_t i = 0; i < 2000; ++i) {
        term ref(erl::reference{atom("bench@host.example"), 3, 3, {i, 7, 9}});
        term t;
        switch (i % 3) {
            case 0:
                t = erl::tuple(atom("$gen_call"), erl::tuple(make_pid(i), ref),
                               erl::tuple(atom("get"), keys[i % 4],
                                          erl::list(atom("ok"), atom("error"), atom("undefined"))));
                break;
            case 1:
                t = erl::tuple(atom("$gen_cast"),
                               erl::tuple(atom("put"), keys[i % 4], erl::binary("value")));
                break;
            default:
                t = erl::tuple(term(6), make_pid(i), atom(""), atom("registered_server"));
                break;
        }
        out.push_back(erl::etf::encode(t));
    }
    return out;
}

// Lists of SMALL_ATOM_UTF8_EXT written by hand, so the driver never interns them itself.
std::vector<std::vector<std::uint8_t>> novel_corpus() {
    std::vector<std::vector<std::uint8_t>> out;
    for (int i = 0; i < 400; ++i) {
        std::vector<std::uint8_t> b{131, 108, 0, 0, 0, 50};
        for (int k = 0; k < 50; ++k) {
            const std::string name =
                "atom_cost_novel_" + std::to_string(i) + "_" + std::to_string(k);
            b.push_back(119);
            b.push_back(static_cast<std::uint8_t>(name.size()));
            b.insert(b.end(), name.begin(), name.end());
        }
        b.push_back(106);
        out.push_back(std::move(b));
    }
    return out;
}

template <class F>
void measured(const char* what, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    CALLGRIND_START_INSTRUMENTATION;
    f();
    CALLGRIND_STOP_INSTRUMENTATION;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // atom_table_size() only: the driver also builds against runtimes without network atoms.
    std::printf("%s: %.3f ms (atoms in the table after: %zu)\n", what, s * 1e3,
                erl::atom_table_size());
}

int decode_all(const std::vector<std::vector<std::uint8_t>>& corpus, int passes) {
    int failed = 0;
    for (int p = 0; p < passes; ++p)
        for (const auto& b : corpus)
            if (!erl::etf::decode(b)) ++failed;
    return failed;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string w = argc > 1 ? argv[1] : "";
    int failed = 0;
    if (w == "permanent") {
        auto corpus = permanent_corpus();
        failed += decode_all(corpus, 1);  // warm: atom cache of the decoder, allocator
        measured("permanent", [&] { failed += decode_all(corpus, 5); });
    } else if (w == "novel") {
        auto corpus = novel_corpus();
        measured("novel", [&] { failed += decode_all(corpus, 1); });
    } else if (w == "reg_send") {
        namespace dflag = erl::proto::dflag;
        const std::uint64_t flags = dflag::erlcpp_default_capabilities;
        erl::proto::dist_writer writer(flags);
        erl::proto::dist_reader reader(flags);
        const term from = make_pid(1);
        const atom to("registered_server");
        const atom keys[] = {atom("alpha"), atom("beta"), atom("gamma"), atom("delta")};
        const atom gen_cast("$gen_cast"), put("put");
        std::vector<std::uint8_t> wire;
        std::vector<erl::proto::dist_message> msgs;
        auto round = [&](int n) {
            for (int i = 0; i < n; ++i) {
                wire.clear();
                writer.append_reg_send(
                    wire, from, to,
                    erl::tuple(gen_cast, erl::tuple(put, keys[i % 4], erl::binary("value"))));
                if (reader.feed(wire, msgs)) ++failed;
                msgs.clear();
            }
        };
        round(100);
        measured("reg_send", [&] { round(20000); });
    } else {
        std::fprintf(stderr, "usage: %s permanent|novel|reg_send\n", argv[0]);
        return 2;
    }
    if (failed) std::fprintf(stderr, "%d decodes failed\n", failed);
    return failed ? 1 : 0;
}
