# Locates erl_interface (libei) by asking the installed Erlang where it is
# (code:lib_dir(erl_interface)), so any OTP installation works, not only Debian's erlang-dev.
# It is used only as a differential oracle in tests and as a baseline in benchmarks; the
# library itself never links it. Override with -DERLCPP_EI_DIR=<erl_interface-x.y>.
set(ERLCPP_HAVE_EI OFF)
if(NOT ERLCPP_EI_DIR)
  find_program(ERLCPP_ERL erl)
  if(ERLCPP_ERL)
    execute_process(
      COMMAND ${ERLCPP_ERL} -noshell -noinput -eval
              "io:format(\"~s\", [code:lib_dir(erl_interface)]), halt()."
      OUTPUT_VARIABLE _ei_dir ERROR_QUIET RESULT_VARIABLE _ei_rc TIMEOUT 60)
    if(_ei_rc EQUAL 0 AND IS_DIRECTORY "${_ei_dir}")
      set(ERLCPP_EI_DIR ${_ei_dir} CACHE PATH "erl_interface directory (from code:lib_dir)")
    endif()
  endif()
endif()
if(ERLCPP_EI_DIR AND EXISTS ${ERLCPP_EI_DIR}/include/ei.h AND EXISTS ${ERLCPP_EI_DIR}/lib/libei.a)
  add_library(erlcpp_ei STATIC IMPORTED)
  set_target_properties(erlcpp_ei PROPERTIES
    IMPORTED_LOCATION ${ERLCPP_EI_DIR}/lib/libei.a
    INTERFACE_INCLUDE_DIRECTORIES ${ERLCPP_EI_DIR}/include
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  set(ERLCPP_HAVE_EI ON)
  message(STATUS "erl_interface: ${ERLCPP_EI_DIR}")
else()
  message(STATUS "erl_interface not found: ei differential tests and baselines are skipped")
endif()
