# The functions the generated CMakeLists.txt files call (one per Bazel rule
# kind; see tools/cmake/generate.py), and what they share: the runfiles tree
# tests find their programs in, the test launcher, install rules and the
# pkg-config files.

include(GNUInstallDirs)

set(MILLIO_RUNFILES_DIR "${PROJECT_BINARY_DIR}/runfiles/mill_io")
set(MILLIO_TEST_RESULTS_DIR "${PROJECT_BINARY_DIR}/test-results")
set(MILLIO_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/MillIO")
set(MILLIO_PKGCONFIG_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
# Test timeouts (Bazel's sizes) are multiplied by this when the tests run
# through CMAKE_CROSSCOMPILING_EMULATOR (Windows programs under Wine).
set(MILLIO_EMULATOR_TIMEOUT_SCALE 5 CACHE STRING
  "Factor for test timeouts under an emulator (Wine)")
# Bazel's copts (.bazelrc), for Mill-IO's own code only.
set(MILLIO_WARNINGS -Wall -Wextra -Wno-unused-parameter)
# Test code (tests, fixtures) compiles at -O0 whatever the build type: what
# the tests test (the libraries, the example programs) is built as
# configured; -O3 on test bodies costs build time and tests nothing more.
if(MILLIO_FAST_TEST_BUILD AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set(MILLIO_TEST_COPTS -O0)
else()
  set(MILLIO_TEST_COPTS "")
endif()

# One line per installed package, for its pkg-config file.
set(MILLIO_DESCRIPTION_base "shared helpers: errno as absl::Status, annotated mutexes, call scopes")
set(MILLIO_DESCRIPTION_poll "readiness polling (epoll, poll(2)) behind one API")
set(MILLIO_DESCRIPTION_registry "a thread-safe map from poller tokens to handler entries")
set(MILLIO_DESCRIPTION_threadpool "a fixed set of worker threads running prioritized tasks")
set(MILLIO_DESCRIPTION_objectpool "object pools and recycled I/O buffers")
set(MILLIO_DESCRIPTION_timer "a hierarchical timing wheel")
set(MILLIO_DESCRIPTION_ratelimit "lock-free token buckets and rate-limit groups")
set(MILLIO_DESCRIPTION_reactor "the EventLoop facade: poller, registry, timers and thread pool")
set(MILLIO_DESCRIPTION_net "TCP, Unix-domain and UDP sockets: Connection, TcpServer, TcpClient")
set(MILLIO_DESCRIPTION_connpool "a client connection pool on //net")
set(MILLIO_DESCRIPTION_tls "TLS (OpenSSL 3) as a layer over //net's transport")

# Bazel label "//a/b:c" -> package "a/b" in OUT.
function(_millio_label_package label out)
  string(REGEX REPLACE "^//([^:]*):.*$" "\\1" package "${label}")
  set(${out} "${package}" PARENT_SCOPE)
endfunction()

# A CMake dependency -> its pkg-config module (or a raw flag: "-pthread").
function(_millio_pkgconfig_name dep out)
  if(dep MATCHES "^MillIO::(.+)$")
    set(name "mill-io-${CMAKE_MATCH_1}")
  elseif(dep MATCHES "^absl::(.+)$")
    set(name "absl_${CMAKE_MATCH_1}")
  elseif(dep STREQUAL "OpenSSL::SSL")
    set(name "libssl")
  elseif(dep STREQUAL "OpenSSL::Crypto")
    set(name "libcrypto")
  elseif(dep STREQUAL "PkgConfig::MillIO_liburing")
    set(name "liburing")
  elseif(dep STREQUAL "Threads::Threads")
    set(name "-pthread")
  elseif(dep MATCHES "^[A-Za-z0-9_]+$")
    # A system library from a BUILD file's linkopts (Windows: ws2_32, ...).
    set(name "-l${dep}")
  else()
    message(FATAL_ERROR "No pkg-config module for ${dep}")
  endif()
  set(${out} "${name}" PARENT_SCOPE)
endfunction()

# Writes mill-io-NAME.pc. The prefix is computed from the file's own place
# (${pcfiledir}), so the installed tree can be moved anywhere.
function(_millio_write_pkgconfig name deps lib)
  set(requires "")
  set(flags "")
  foreach(dep IN LISTS deps)
    _millio_pkgconfig_name("${dep}" pc)
    if(pc MATCHES "^-")
      list(APPEND flags "${pc}")
    else()
      list(APPEND requires "${pc}")
    endif()
  endforeach()
  list(JOIN requires " " requires)
  list(JOIN flags " " flags)
  set(pc_dir "${CMAKE_INSTALL_PREFIX}/${MILLIO_PKGCONFIG_INSTALL_DIR}")
  file(RELATIVE_PATH to_prefix "${pc_dir}" "${CMAKE_INSTALL_PREFIX}")
  string(REGEX REPLACE "/$" "" to_prefix "${to_prefix}")
  set(file "${PROJECT_BINARY_DIR}/pkgconfig/mill-io-${name}.pc")
  file(WRITE "${file}"
"prefix=\${pcfiledir}/${to_prefix}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: mill-io-${name}
Description: Mill-IO ${name}: ${MILLIO_DESCRIPTION_${name}}
Version: ${PROJECT_VERSION}
Requires: ${requires}
Libs: -L\${libdir} ${lib} ${flags}
Cflags: -I\${includedir}
")
  install(FILES "${file}" DESTINATION "${MILLIO_PKGCONFIG_INSTALL_DIR}")
endfunction()

# An installed package: every library of the Bazel package NAME in one
# library, millio_NAME, exported as MillIO::NAME (its own export set, so a
# component pulls in only what it needs), with its headers and pkg-config
# file. MEMBERS lists the Bazel libraries it is made of.
function(millio_package)
  cmake_parse_arguments(P "" "NAME"
    "SRCS;HDRS;DEPS;DEFINES;LOCAL_DEFINES;MEMBERS" ${ARGN})
  set(target "millio_${P_NAME}")
  set(compiled "${P_SRCS}")
  list(FILTER compiled INCLUDE REGEX "\\.(cc|c|cpp)$")
  if(NOT compiled)
    # Header-only (//registry): an interface library, no archive.
    add_library(${target} INTERFACE ${P_SRCS} ${P_HDRS})
    set(scope INTERFACE)
  else()
    add_library(${target} ${P_SRCS} ${P_HDRS})
    set(scope PUBLIC)
    set_target_properties(${target} PROPERTIES
      OUTPUT_NAME "millio_${P_NAME}"
      VERSION "${PROJECT_VERSION}"
      SOVERSION "${MILLIO_SOVERSION}"
      POSITION_INDEPENDENT_CODE ON)
    target_compile_definitions(${target} PRIVATE ${P_LOCAL_DEFINES})
    target_compile_options(${target} PRIVATE ${MILLIO_WARNINGS})
    if(BUILD_SHARED_LIBS AND NOT WIN32)
      # Export mill:: and nothing else (cmake/millio.map): Abseil's and the
      # standard library's template instances stay private to each library.
      set(map "${PROJECT_SOURCE_DIR}/cmake/millio.map")
      target_link_options(${target} PRIVATE "LINKER:--version-script=${map}")
      set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${map}")
    endif()
  endif()
  add_library(MillIO::${P_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES
    EXPORT_NAME "${P_NAME}"
    MILLIO_BAZEL_LABELS "${P_MEMBERS}")
  target_include_directories(${target} ${scope}
    "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>"
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  target_link_libraries(${target} ${scope} ${P_DEPS})
  target_compile_definitions(${target} ${scope} ${P_DEFINES})
  install(TARGETS ${target} EXPORT MillIO_${P_NAME}
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  install(EXPORT MillIO_${P_NAME} NAMESPACE MillIO::
    FILE "MillIO_${P_NAME}Targets.cmake"
    DESTINATION "${MILLIO_CMAKE_INSTALL_DIR}")
  foreach(header IN LISTS P_HDRS)
    get_filename_component(dir "${header}" DIRECTORY)
    install(FILES "${header}"
      DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/${P_NAME}/${dir}")
  endforeach()
  if(compiled)
    set(lib "-lmillio_${P_NAME}")
  else()
    set(lib "")
  endif()
  _millio_write_pkgconfig("${P_NAME}" "${P_DEPS}" "${lib}")
endfunction()

# A library that is not installed: test fixtures, the examples' code, fuzz
# glue. ALWAYSLINK (Bazel's alwayslink) makes it an object library, so each
# of its objects is linked whether or not something refers to it.
function(millio_cc_library)
  cmake_parse_arguments(L "ALWAYSLINK;TESTONLY" "NAME;LABEL"
    "SRCS;HDRS;DEPS;DEFINES;LOCAL_DEFINES;COPTS" ${ARGN})
  set(compiled "${L_SRCS}")
  list(FILTER compiled INCLUDE REGEX "\\.(cc|c|cpp)$")
  if(NOT compiled)
    add_library(${L_NAME} INTERFACE ${L_SRCS} ${L_HDRS})
    target_include_directories(${L_NAME} INTERFACE "${PROJECT_SOURCE_DIR}")
    target_link_libraries(${L_NAME} INTERFACE ${L_DEPS})
    target_compile_definitions(${L_NAME} INTERFACE ${L_DEFINES})
  else()
    if(L_ALWAYSLINK)
      add_library(${L_NAME} OBJECT ${L_SRCS} ${L_HDRS})
    else()
      add_library(${L_NAME} STATIC ${L_SRCS} ${L_HDRS})
    endif()
    target_include_directories(${L_NAME} PUBLIC "${PROJECT_SOURCE_DIR}")
    target_link_libraries(${L_NAME} PUBLIC ${L_DEPS})
    target_compile_definitions(${L_NAME} PUBLIC ${L_DEFINES}
      PRIVATE ${L_LOCAL_DEFINES})
    target_compile_options(${L_NAME} PRIVATE ${MILLIO_WARNINGS} ${L_COPTS})
    if(L_TESTONLY)
      target_compile_options(${L_NAME} PRIVATE ${MILLIO_TEST_COPTS})
    endif()
  endif()
  set_target_properties(${L_NAME} PROPERTIES MILLIO_BAZEL_LABELS "${L_LABEL}")
endfunction()

# An executable, also linked into the runfiles tree at its Bazel path, where
# tests look for the programs they run (TEST_SRCDIR, as under Bazel).
function(_millio_executable name label output_name srcs deps local_defines
         copts)
  add_executable(${name} ${srcs})
  set_target_properties(${name} PROPERTIES
    OUTPUT_NAME "${output_name}"
    MILLIO_BAZEL_LABELS "${label}")
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}")
  target_link_libraries(${name} PRIVATE ${deps})
  target_compile_definitions(${name} PRIVATE ${local_defines})
  target_compile_options(${name} PRIVATE ${MILLIO_WARNINGS} ${copts})
  _millio_label_package("${label}" package)
  set(link "${MILLIO_RUNFILES_DIR}/${package}/${output_name}")
  if(CMAKE_CROSSCOMPILING_EMULATOR)
    # Cross-compiled (Windows under Wine): the runfiles entry is a script
    # that runs the program through the emulator, so scripts that start
    # programs by their runfiles path work unchanged; beside it <name>.exe
    # is the program itself, for Windows programs that start it.
    string(JOIN "\" \"" emulator ${CMAKE_CROSSCOMPILING_EMULATOR})
    file(GENERATE OUTPUT "${link}"
      CONTENT "#!/bin/sh\nexec \"${emulator}\" \"$<TARGET_FILE:${name}>\" \"$@\"\n"
      FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                       GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    set(link "${link}.exe")
  endif()
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND "${CMAKE_COMMAND}" -E make_directory
            "${MILLIO_RUNFILES_DIR}/${package}"
    COMMAND "${CMAKE_COMMAND}" -E create_symlink "$<TARGET_FILE:${name}>"
            "${link}"
    VERBATIM)
endfunction()

function(millio_cc_binary)
  cmake_parse_arguments(B "" "NAME;LABEL;OUTPUT_NAME"
    "SRCS;DEPS;LOCAL_DEFINES;COPTS" ${ARGN})
  _millio_executable(${B_NAME} "${B_LABEL}" "${B_OUTPUT_NAME}" "${B_SRCS}"
    "${B_DEPS}" "${B_LOCAL_DEFINES}" "${B_COPTS}")
endfunction()

# Source files a test reads through its runfiles, linked into the tree.
function(_millio_data_files files)
  foreach(file IN LISTS files)
    get_filename_component(dir "${MILLIO_RUNFILES_DIR}/${file}" DIRECTORY)
    file(MAKE_DIRECTORY "${dir}")
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/${file}"
      "${MILLIO_RUNFILES_DIR}/${file}" SYMBOLIC)
  endforeach()
endfunction()

# ctest tests named by their Bazel label ("net:connection_test"), run the
# way Bazel runs them (cmake/run_test.sh): in the runfiles tree, with a fresh
# TEST_TMPDIR, gtest's XML report in test-results/ (CI counts its cases) and
# Bazel's size as the timeout. A test with SHARDS N runs as N tests, each a
# gtest shard ("tls:tls_connection_test/shard_1_of_2").
function(_millio_add_test label timeout shards)
  string(REGEX REPLACE "^//" "" name "${label}")
  if(CMAKE_CROSSCOMPILING_EMULATOR)
    # Under Wine every socket, wait and process start is a round trip to the
    # wineserver process: the same work takes several times as long.
    math(EXPR timeout "${timeout} * ${MILLIO_EMULATOR_TIMEOUT_SCALE}")
  endif()
  if(NOT shards)
    set(shards 1)
  endif()
  math(EXPR last "${shards} - 1")
  foreach(index RANGE ${last})
    set(test_name "${name}")
    set(env "")
    if(shards GREATER 1)
      math(EXPR number "${index} + 1")
      set(test_name "${name}/shard_${number}_of_${shards}")
      list(APPEND env "GTEST_TOTAL_SHARDS=${shards}"
                      "GTEST_SHARD_INDEX=${index}")
    endif()
    string(REGEX REPLACE "[^A-Za-z0-9_.-]" "_" file_name "${test_name}")
    add_test(NAME "${test_name}"
      COMMAND "${PROJECT_SOURCE_DIR}/cmake/run_test.sh" ${ARGN}
      WORKING_DIRECTORY "${MILLIO_RUNFILES_DIR}")
    # A cc_test's Bazel `env` (millio_cc_test ENV), e.g. MILL_IO=uring.
    list(APPEND env ${_millio_test_env})
    list(APPEND env
      "TEST_SRCDIR=${PROJECT_BINARY_DIR}/runfiles"
      "TEST_WORKSPACE=mill_io"
      "TEST_TMPDIR=${PROJECT_BINARY_DIR}/test-tmp/${file_name}"
      "XML_OUTPUT_FILE=${MILLIO_TEST_RESULTS_DIR}/${file_name}.xml")
    set_tests_properties("${test_name}" PROPERTIES
      TIMEOUT "${timeout}"
      ENVIRONMENT "${env}")
  endforeach()
endfunction()

function(millio_cc_test)
  cmake_parse_arguments(T "RUN_SERIAL_ON_WINDOWS"
    "NAME;LABEL;OUTPUT_NAME;TIMEOUT;SHARDS"
    "SRCS;DEPS;LOCAL_DEFINES;COPTS;DATA_FILES;ENV;ARGS" ${ARGN})
  _millio_executable(${T_NAME} "${T_LABEL}" "${T_OUTPUT_NAME}" "${T_SRCS}"
    "${T_DEPS}" "${T_LOCAL_DEFINES}" "${T_COPTS}")
  target_compile_options(${T_NAME} PRIVATE ${MILLIO_TEST_COPTS})
  _millio_data_files("${T_DATA_FILES}")
  set(_millio_test_env ${T_ENV})
  _millio_add_test("${T_LABEL}" "${T_TIMEOUT}" "${T_SHARDS}"
    ${CMAKE_CROSSCOMPILING_EMULATOR} "$<TARGET_FILE:${T_NAME}>" ${T_ARGS})
  if(T_RUN_SERIAL_ON_WINDOWS AND WIN32)
    # Bazel tag run_serial_on_windows: ctest runs it with no other test.
    string(REGEX REPLACE "^//" "" test_name "${T_LABEL}")
    set_tests_properties("${test_name}" PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

function(millio_sh_test)
  cmake_parse_arguments(T "" "NAME;LABEL;SCRIPT;TIMEOUT" "DATA_FILES;ARGS"
    ${ARGN})
  _millio_data_files("${T_DATA_FILES}")
  _millio_add_test("${T_LABEL}" "${T_TIMEOUT}" "" "${T_SCRIPT}" ${T_ARGS})
endfunction()
