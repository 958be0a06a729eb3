# erlcpp's own C++ modules: the two versions of the demo plugin (build/plugins/v1 and v2) and the
# test modules of the code server's unit and interop tests; the executables that load modules
# export their symbols (cmake/ErlcppModule.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/ErlcppModule.cmake)

# The code server checks a module's erlcpp version against <erl/version.hpp>; only its own
# command line names the generated directory, so the other objects stay shared through ccache.
set_property(SOURCE ${PROJECT_SOURCE_DIR}/src/code/code_server.cpp APPEND PROPERTY
             INCLUDE_DIRECTORIES ${ERLCPP_GENERATED_INCLUDE_DIR})

if(ERLCPP_EXAMPLES OR ERLCPP_INTEROP)
  foreach(v 1 2)
    erlcpp_add_module(demo_plugin_v${v} ${PROJECT_SOURCE_DIR}/examples/plugins/demo_plugin/demo_plugin.cpp
                      NAME demo_plugin OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/plugins/v${v})
    target_compile_definitions(demo_plugin_v${v} PRIVATE DEMO_PLUGIN_VERSION=${v})
    if(TARGET erlcpp-demo)
      add_dependencies(erlcpp-demo demo_plugin_v${v})
    endif()
  endforeach()
  if(TARGET erlcpp-demo)
    erlcpp_enable_modules(erlcpp-demo)
  endif()
endif()

if(ERLCPP_TESTS OR ERLCPP_INTEROP)
  set(ERLCPP_TEST_MODULE_DIR ${PROJECT_BINARY_DIR}/test-modules)
  set(_mod_src ${PROJECT_SOURCE_DIR}/tests/unit/modules)
  # Two versions of each: code_test_mod (functions) and code_test_srv (a gen_server, for module
  # servers and sys:change_code); <NAME>_VERSION tells the source which one it is.
  foreach(m code_test_mod code_test_srv)
    string(TOUPPER ${m} _upper)
    foreach(v 1 2)
      erlcpp_add_module(${m}_v${v} ${_mod_src}/${m}.cpp
                        NAME ${m} OUTPUT_DIRECTORY ${ERLCPP_TEST_MODULE_DIR}/v${v})
      target_compile_definitions(${m}_v${v} PRIVATE ${_upper}_VERSION=${v})
      list(APPEND _test_modules ${m}_v${v})
    endforeach()
  endforeach()
  # A module built for another ABI, and one whose declared name differs from its file name.
  erlcpp_add_module(code_test_bad_abi ${_mod_src}/code_test_bad_abi.cpp
                    OUTPUT_DIRECTORY ${ERLCPP_TEST_MODULE_DIR}/bad)
  erlcpp_add_module(code_test_misnamed ${_mod_src}/code_test_mod.cpp
                    OUTPUT_DIRECTORY ${ERLCPP_TEST_MODULE_DIR}/bad)
  target_compile_definitions(code_test_misnamed PRIVATE CODE_TEST_MOD_VERSION=3)
  list(APPEND _test_modules code_test_bad_abi code_test_misnamed)
  foreach(t erlcpp_unit_tests erlcpp_interop_tests)
    if(TARGET ${t})
      erlcpp_enable_modules(${t})
      add_dependencies(${t} ${_test_modules})
      target_compile_definitions(${t} PRIVATE ERLCPP_TEST_MODULE_DIR="${ERLCPP_TEST_MODULE_DIR}"
                                 ERLCPP_PLUGIN_DIR="${PROJECT_BINARY_DIR}/plugins")
    endif()
  endforeach()
  if(TARGET erlcpp_interop_tests AND TARGET demo_plugin_v1)
    add_dependencies(erlcpp_interop_tests demo_plugin_v1 demo_plugin_v2)
  endif()
endif()
