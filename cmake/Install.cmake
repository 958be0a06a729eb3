# Install rules, the exported CMake package (find_package(erlcpp)) and erlcpp.pc. Components
# map to the Debian packages (cmake/Packaging.cmake): Runtime = liberlcpp.so.*, Development =
# headers, liberlcpp.a, the liberlcpp.so link, CMake and pkg-config files, Tools = erlcpp-epmd,
# erlcpp-call and their manual pages.
include(CMakePackageConfigHelpers)
set(ERLCPP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/erlcpp)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/erl ${ERLCPP_GENERATED_INCLUDE_DIR}/erl
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT Development
        FILES_MATCHING PATTERN "*.hpp")

if(TARGET erlcpp_shared)
  install(TARGETS erlcpp_shared EXPORT erlcppTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
                  NAMELINK_COMPONENT Development)
endif()
if(TARGET erlcpp_static)
  install(TARGETS erlcpp_static EXPORT erlcppTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development)
endif()
install(EXPORT erlcppTargets NAMESPACE erlcpp:: DESTINATION ${ERLCPP_CMAKE_DIR}
        COMPONENT Development)

configure_package_config_file(cmake/erlcppConfig.cmake.in
  ${PROJECT_BINARY_DIR}/erlcppConfig.cmake INSTALL_DESTINATION ${ERLCPP_CMAKE_DIR})
# 0.x: a minor release may break the API, so only the same major.minor is compatible.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_erlcpp_compat SameMinorVersion)
else()
  set(_erlcpp_compat SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/erlcppConfigVersion.cmake
  COMPATIBILITY ${_erlcpp_compat})
install(FILES ${PROJECT_BINARY_DIR}/erlcppConfig.cmake ${PROJECT_BINARY_DIR}/erlcppConfigVersion.cmake
        DESTINATION ${ERLCPP_CMAKE_DIR} COMPONENT Development)

# erlcpp.pc finds its prefix from its own location (${pcfiledir}), so the same file works in
# /usr, /usr/local and any other prefix the files are copied to.
file(RELATIVE_PATH ERLCPP_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" ERLCPP_PC_TO_PREFIX "${ERLCPP_PC_TO_PREFIX}")
configure_file(cmake/erlcpp.pc.in ${PROJECT_BINARY_DIR}/erlcpp.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/erlcpp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT Development)

if(ERLCPP_TOOLS)
  install(TARGETS erlcpp-epmd erlcpp-call RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Tools)
  # Debian policy: manual pages compressed with gzip -9n (no name or time stamp inside).
  foreach(page erlcpp-epmd.1 erlcpp-call.1)
    configure_file(${PROJECT_SOURCE_DIR}/docs/man/${page}.in ${PROJECT_BINARY_DIR}/man/${page} @ONLY)
    add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/man/${page}.gz
      COMMAND gzip -9n -f -k ${PROJECT_BINARY_DIR}/man/${page}
      DEPENDS ${PROJECT_BINARY_DIR}/man/${page} VERBATIM)
    list(APPEND _erlcpp_man_pages ${PROJECT_BINARY_DIR}/man/${page}.gz)
  endforeach()
  add_custom_target(erlcpp_man_pages ALL DEPENDS ${_erlcpp_man_pages})
  install(FILES ${_erlcpp_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT Tools)
endif()

if(ERLCPP_TOOLS AND ERLCPP_TESTS)
  foreach(tool erlcpp-epmd erlcpp-call)
    add_test(NAME man_page_matches_help_${tool}
             COMMAND ${PROJECT_SOURCE_DIR}/cmake/check-help-man.sh $<TARGET_FILE:${tool}>
                     ${PROJECT_BINARY_DIR}/man/${tool}.1)
    set_tests_properties(man_page_matches_help_${tool} PROPERTIES LABELS package)
  endforeach()
endif()
