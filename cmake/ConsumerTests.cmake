# ctest tests that build tests/consumer/ the four ways a project uses erlcpp and let each
# program ping a real erl node (tests/consumer/run.sh). consumer_install installs this build
# into <build>/consumer/prefix first; find_package and pkg-config use that prefix.
find_program(ERLCPP_ERL_FOR_CONSUMERS erl)
if(NOT ERLCPP_ERL_FOR_CONSUMERS OR NOT ERLCPP_TOOLS OR NOT ERLCPP_INSTALL)
  message(STATUS "consumer tests need erl, ERLCPP_TOOLS and ERLCPP_INSTALL: skipped")
  return()
endif()
set(_consumer_work ${PROJECT_BINARY_DIR}/consumer)
set(_consumer_run ${PROJECT_SOURCE_DIR}/tests/consumer/run.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}
    ${_consumer_work} ${CMAKE_CXX_COMPILER} ${CMAKE_BUILD_TYPE})
add_test(NAME consumer_install COMMAND ${_consumer_run} install)
set_tests_properties(consumer_install PROPERTIES FIXTURES_SETUP erlcpp_prefix LABELS consumer TIMEOUT 300)
foreach(mode find_package pkg-config subdirectory fetchcontent)
  add_test(NAME consumer_${mode} COMMAND ${_consumer_run} ${mode})
  set_tests_properties(consumer_${mode} PROPERTIES LABELS consumer TIMEOUT 900)
endforeach()
set_tests_properties(consumer_find_package consumer_pkg-config PROPERTIES FIXTURES_REQUIRED erlcpp_prefix)
# subdirectory and fetchcontent compile the library again, from copies at the same place
# relative to their build directories: one after the other, so the second gets ccache hits.
set_tests_properties(consumer_subdirectory consumer_fetchcontent PROPERTIES RESOURCE_LOCK erlcpp_consumer_compile)
set_tests_properties(consumer_fetchcontent PROPERTIES DEPENDS consumer_subdirectory)
