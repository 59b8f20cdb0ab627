# install.cmake - what `cmake --install` (and `make install PREFIX=...`)
# puts where, and how other projects find it afterwards.
#
#   bin/pgfault                         the binary
#   lib/libpgf_<module>.a               the static libraries, one per module
#   include/pgfault/*.h                 the public headers (+ generated version.h)
#   lib/pkgconfig/pgfault.pc            pkg-config: cflags and libs, in link order
#   lib/cmake/pgfault/                  find_package(pgfault): pgfault::pgfault, pgfault::<module>
#   share/pgfault/scenarios/            the built-in scenarios as files
#   share/doc/pgfault/                  README.md and docs/
#   share/man/man1/pgfault.1            the man page (from the same table as --help)
#
# Static only, on purpose: pgfault is linked into test programs, where a
# static archive needs no LD_LIBRARY_PATH in CI, and the public structs
# (pgf_server_config, pgf_session_opts, ...) still change between 0.x
# versions, so a shared library's SONAME would promise an ABI we do not keep.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Modules in link order (a library before those it uses), for pgfault.pc.
set(PGF_INSTALL_MODULES driver reports checker session proxy server fault proto base)

set(_pgf_targets pgf_options pgf_sanitize pgf_all)
foreach(m ${PGF_INSTALL_MODULES})
  list(APPEND _pgf_targets pgf_${m})
  set_target_properties(pgf_${m} PROPERTIES EXPORT_NAME ${m})
endforeach()
set_target_properties(pgf_all PROPERTIES EXPORT_NAME pgfault)
set_target_properties(pgf_options PROPERTIES EXPORT_NAME options)
set_target_properties(pgf_sanitize PROPERTIES EXPORT_NAME sanitize)

install(TARGETS pgfault RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${_pgf_targets} EXPORT pgfaultTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/pgfault ${PROJECT_BINARY_DIR}/include/pgfault
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

# find_package(pgfault): the targets, plus the imported targets they name
# (PkgConfig::LIBEVENT, ...), recreated by pgfaultConfig.cmake.
set(_pgf_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/pgfault)
install(EXPORT pgfaultTargets NAMESPACE pgfault:: DESTINATION ${_pgf_cmakedir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pgfaultConfig.cmake.in
  ${PROJECT_BINARY_DIR}/pgfaultConfig.cmake INSTALL_DESTINATION ${_pgf_cmakedir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pgfaultConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pgfaultConfig.cmake
  ${PROJECT_BINARY_DIR}/pgfaultConfigVersion.cmake DESTINATION ${_pgf_cmakedir})

# pkg-config: relocatable (prefix from the .pc file's own place), so
# `cmake --install build --prefix DIR` gives a working file for any DIR.
file(RELATIVE_PATH PGF_PC_UP ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" PGF_PC_UP "${PGF_PC_UP}")
set(PGF_PC_LIBS "")
foreach(m ${PGF_INSTALL_MODULES})
  string(APPEND PGF_PC_LIBS " -lpgf_${m}")
endforeach()
# A sanitized build's libraries need the sanitizer runtime in the program too.
set(PGF_PC_SANITIZE "")
if(PGF_SANITIZE)
  set(PGF_PC_SANITIZE " -fsanitize=${PGF_SANITIZE}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/pgfault.pc.in ${PROJECT_BINARY_DIR}/pgfault.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pgfault.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

file(GLOB _pgf_scenarios ${PROJECT_SOURCE_DIR}/scenarios/*.yaml)
install(FILES ${_pgf_scenarios} ${PROJECT_SOURCE_DIR}/scenarios/README.md
  DESTINATION ${CMAKE_INSTALL_DATADIR}/pgfault/scenarios)
file(GLOB _pgf_docs ${PROJECT_SOURCE_DIR}/docs/*.md ${PROJECT_SOURCE_DIR}/docs/*.svg)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${_pgf_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_BINARY_DIR}/harness/cli/pgfault.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
