// A C++ module with a gen_server, for the code server's tests of module servers, built as
// versions 1 and 2 (CODE_TEST_SRV_VERSION). The server `code_test_srv` counts: its state is N
// in version 1 and {v2, N} in version 2, whose code_change converts from "1" (Extra `fail`
// refuses, `throw` throws); version 1 converts back from {down, Vsn}. Calls: get, inc,
// version, label (a heap string of this version, so that an object outliving its code shows
// under ASan).
#include <erl/module.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#define CODE_TEST_SRV_STR2(x) #x
#define CODE_TEST_SRV_STR(x) CODE_TEST_SRV_STR2(x)

namespace {

struct test_server : erl::gen_server::server {
    std::int64_t n = 0;
    std::string label = "code_test_srv version " CODE_TEST_SRV_STR(CODE_TEST_SRV_VERSION);
    std::optional<erl::term> handle_call(const erl::term& req, const from&) override {
        if (req.is_atom(erl::atom("inc"))) ++n;
        if (req.is_atom(erl::atom("version"))) return erl::term(CODE_TEST_SRV_VERSION);
        if (req.is_atom(erl::atom("label"))) return erl::binary(label);
        return erl::term(n);
    }
#if CODE_TEST_SRV_VERSION == 2
    std::optional<erl::term> state() const override {
        return erl::tuple(erl::atom("v2"), erl::term(n));
    }
    std::optional<erl::term> code_change(const erl::term& vsn, const erl::term& state,
                                         const erl::term& extra) override {
        if (extra.is_atom(erl::atom("throw"))) throw std::runtime_error("code_change threw");
        if (extra.is_atom(erl::atom("fail"))) return erl::tuple(erl::atom("refused"), vsn);
        if (vsn == erl::charlist("1") && state.is_small()) {
            n = state.as_int64();
            return std::nullopt;
        }
        if (state.is_tuple(2)) {  // in place
            n = state[1].as_int64();
            return std::nullopt;
        }
        return erl::tuple(erl::atom("unsupported_vsn"), vsn);
    }
#else
    std::optional<erl::term> state() const override {
        return erl::term(n);
    }
    std::optional<erl::term> code_change(const erl::term& vsn, const erl::term& state,
                                         const erl::term&) override {
        if (vsn.is_tuple(2) && state.is_tuple(2)) {  // {down, Vsn} from {v2, N}
            n = state[1].as_int64();
            return std::nullopt;
        }
        if (state.is_small()) return std::nullopt;  // in place
        return erl::tuple(erl::atom("unsupported_vsn"), vsn);
    }
#endif
};

}  // namespace

ERLCPP_MODULE(code_test_srv, CODE_TEST_SRV_STR(CODE_TEST_SRV_VERSION)) {
    r.add("version", [] { return CODE_TEST_SRV_VERSION; });
    r.add_server("code_test_srv", [] { return std::make_shared<test_server>(); });
}
