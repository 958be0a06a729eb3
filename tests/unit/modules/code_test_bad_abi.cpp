// A module that claims an ABI version no erlcpp has: the code server must refuse it without
// calling its init function.
#include <erl/module.hpp>

#include <cstdlib>

namespace {
void init(erl::module::registrar&) {
    std::abort();
}
}  // namespace

extern "C" __attribute__((visibility("default")))
const erl::module::descriptor erlcpp_module_descriptor{
    erl::module::abi_version + 1000, ERLCPP_VERSION, "code_test_bad_abi", "0", &init};
