# C++ modules for erl::code::server (include/erl/module.hpp).
#
#   erlcpp_add_module(<target> <sources>... [NAME <module>] [OUTPUT_DIRECTORY <dir>])
#     Builds <dir>/<module>.so (no `lib` prefix; <module> defaults to <target>, <dir> to the
#     current binary directory). The module is compiled with erlcpp's headers and flags but not
#     linked with the library: its erlcpp symbols bind to the loading node's copy at dlopen, so
#     the node and all its modules share one runtime (one atom table).
#
#   erlcpp_enable_modules(<executable>)
#     Exports the executable's symbols (ENABLE_EXPORTS, -rdynamic), which modules need when the
#     executable links the static library. Not needed with liberlcpp.so.
function(erlcpp_add_module target)
  cmake_parse_arguments(ARG "" "NAME;OUTPUT_DIRECTORY" "" ${ARGN})
  if(NOT ARG_NAME)
    set(ARG_NAME ${target})
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  foreach(candidate erlcpp_shared erlcpp_static erlcpp::erlcpp_shared erlcpp::erlcpp_static)
    if(TARGET ${candidate})
      set(_ref ${candidate})
      break()
    endif()
  endforeach()
  if(NOT _ref)
    message(FATAL_ERROR "erlcpp_add_module: no erlcpp library target is defined")
  endif()
  add_library(${target} MODULE ${ARG_UNPARSED_ARGUMENTS})
  target_include_directories(${target} PRIVATE
    $<TARGET_PROPERTY:${_ref},INTERFACE_INCLUDE_DIRECTORIES>)
  target_compile_definitions(${target} PRIVATE
    $<TARGET_PROPERTY:${_ref},INTERFACE_COMPILE_DEFINITIONS>)
  target_compile_features(${target} PRIVATE cxx_std_20)
  # GCC marks objects with STB_GNU_UNIQUE symbols (static locals of inline functions, template
  # statics) as never to be unloaded, which would make dlclose a no-op for the module.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  target_link_libraries(${target} PRIVATE Boost::headers)
  set_target_properties(${target} PROPERTIES
    PREFIX "" SUFFIX ".so" OUTPUT_NAME ${ARG_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY}
    POSITION_INDEPENDENT_CODE ON)
endfunction()

function(erlcpp_enable_modules target)
  set_target_properties(${target} PROPERTIES ENABLE_EXPORTS ON)
endfunction()
