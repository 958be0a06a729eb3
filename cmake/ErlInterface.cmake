# Locates erl_interface (libei) from Debian's erlang-dev. It is used only as a differential
# oracle in tests and as a baseline in benchmarks; the library itself never links it.
file(GLOB _ei_dirs LIST_DIRECTORIES true /usr/lib/erlang/lib/erl_interface-*)
set(ERLCPP_HAVE_EI OFF)
if(_ei_dirs)
  list(SORT _ei_dirs)
  list(GET _ei_dirs -1 _ei_dir)
  if(EXISTS ${_ei_dir}/include/ei.h AND EXISTS ${_ei_dir}/lib/libei.a)
    add_library(erlcpp_ei STATIC IMPORTED GLOBAL)
    set_target_properties(erlcpp_ei PROPERTIES
      IMPORTED_LOCATION ${_ei_dir}/lib/libei.a
      INTERFACE_INCLUDE_DIRECTORIES ${_ei_dir}/include
      INTERFACE_LINK_LIBRARIES Threads::Threads)
    set(ERLCPP_HAVE_EI ON)
    message(STATUS "erl_interface: ${_ei_dir}")
  endif()
endif()
if(NOT ERLCPP_HAVE_EI)
  message(STATUS "erl_interface not found: ei differential tests and baselines are skipped")
endif()
