# Debian packages with `cpack -G DEB` (scripts/package builds and checks them):
#   liberlcpp<soversion>  the shared library (Runtime component)
#   liberlcpp-dev         headers, liberlcpp.a, CMake package, erlcpp.pc (Development)
#   erlcpp-tools          erlcpp-epmd, erlcpp-call and their manual pages (Tools)
set(CPACK_PACKAGE_NAME erlcpp)
set(CPACK_PACKAGE_VENDOR "erlcpp")
set(CPACK_PACKAGE_CONTACT "erlcpp maintainers <erlcpp@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Runtime Development)
if(ERLCPP_TOOLS)
  list(APPEND CPACK_COMPONENTS_ALL Tools)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# Run-time dependencies from the ELF files themselves (dpkg-shlibdeps).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")

set(_erlcpp_deb_version "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")
set(_erlcpp_runtime_package liberlcpp${ERLCPP_SOVERSION})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ${_erlcpp_runtime_package})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
    "erlcpp shared library\n C++20 library that lets C++ processes join Erlang/Elixir (BEAM) clusters as\n distribution nodes: terms, ETF, EPMD, handshake, links, monitors, rpc, gen_server, TLS.")

set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME liberlcpp-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS
    "${_erlcpp_runtime_package} (= ${_erlcpp_deb_version}), libboost-dev (>= 1.81) | libboost1.81-dev, libssl-dev (>= 3), zlib1g-dev")
set(CPACK_COMPONENT_DEVELOPMENT_DESCRIPTION
    "erlcpp development files\n Headers, the static library, the CMake package (find_package(erlcpp)) and\n erlcpp.pc for pkg-config.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME erlcpp-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION net)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "erlcpp command-line tools\n erlcpp-epmd, an epmd-compatible port mapper daemon, and erlcpp-call, which calls\n functions on Erlang, Elixir and erlcpp nodes (erl_call's job).")
include(CPack)
