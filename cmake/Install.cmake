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
              ${PROJECT_SOURCE_DIR}/cmake/ErlcppModule.cmake
        DESTINATION ${ERLCPP_CMAKE_DIR} COMPONENT Development)

# erlcpp.pc is written at install time, so that it names the prefix the files are installed
# into (cmake --install --prefix, or /usr in the Debian package) and pkg-config can drop the
# system include and library directories. A staged copy is used with PKG_CONFIG_SYSROOT_DIR.
install(CODE "
  set(ERLCPP_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(PROJECT_DESCRIPTION \"${PROJECT_DESCRIPTION}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/erlcpp.pc.in\"
                 \"${PROJECT_BINARY_DIR}/pkgconfig/erlcpp.pc\" @ONLY)
" COMPONENT Development)
install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/erlcpp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
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
