// A C++ module built by the consumer project with the installed erlcpp_add_module(): the
// module macro and the helper work outside the erlcpp tree.
#include <erl/module.hpp>

#include <string>

ERLCPP_MODULE(consumer_module, "1") {
    r.add("hello", [](const std::string& who) { return "hello " + who; });
}
