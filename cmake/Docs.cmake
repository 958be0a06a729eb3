# `docs`: the API reference from the public headers with Doxygen, into <build>/docs/api/html.
# The headers' ordinary // comments are the documentation: cmake/doxygen-filter.pl turns them
# into Doxygen comments as Doxygen reads each file, so nothing is written twice. Any Doxygen
# warning fails the target (WARN_AS_ERROR = FAIL_ON_WARNINGS).
find_package(Doxygen QUIET)
find_package(Perl QUIET)
if(DOXYGEN_FOUND AND PERL_FOUND)
  set(ERLCPP_DOXYGEN_OUTPUT ${PROJECT_BINARY_DIR}/docs/api)
  set(ERLCPP_DOXYGEN_FILTER "${PERL_EXECUTABLE} ${PROJECT_SOURCE_DIR}/cmake/doxygen-filter.pl")
  configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${PROJECT_BINARY_DIR}/Doxyfile @ONLY)
  file(GLOB _erlcpp_public_headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/erl/*.hpp)
  add_custom_command(OUTPUT ${ERLCPP_DOXYGEN_OUTPUT}/html/index.html
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${ERLCPP_DOXYGEN_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${ERLCPP_DOXYGEN_OUTPUT}
    COMMAND ${DOXYGEN_EXECUTABLE} ${PROJECT_BINARY_DIR}/Doxyfile
    DEPENDS ${_erlcpp_public_headers} ${ERLCPP_GENERATED_INCLUDE_DIR}/erl/version.hpp
            ${PROJECT_BINARY_DIR}/Doxyfile ${PROJECT_SOURCE_DIR}/cmake/doxygen-filter.pl
    WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
    COMMENT "Doxygen: API reference in ${ERLCPP_DOXYGEN_OUTPUT}/html")
  add_custom_target(docs DEPENDS ${ERLCPP_DOXYGEN_OUTPUT}/html/index.html)
elseif(PROJECT_IS_TOP_LEVEL)
  message(STATUS "doxygen or perl not found: no `docs` target")
endif()
