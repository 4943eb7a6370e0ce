# Sanitizer and fuzzing builds (see docs/testing.md). Both apply to every target of the build, so
# the library code itself is instrumented, not only the test or fuzz drivers.
#   STOR_SANITIZE=address  ASan + UBSan; undefined behaviour aborts (-fno-sanitize-recover)
#   STOR_SANITIZE=thread   TSan
#   STOR_FUZZ=ON           libFuzzer targets in fuzz/ (clang only); implies ASan + UBSan and
#                          -fsanitize=fuzzer-no-link for everything, -fsanitize=fuzzer on the targets
set(STOR_SANITIZE "" CACHE STRING "Sanitizer build: empty, address (ASan+UBSan) or thread (TSan)")
set_property(CACHE STOR_SANITIZE PROPERTY STRINGS "" address thread)
option(STOR_FUZZ "Build the libFuzzer targets in fuzz/ (requires clang)" OFF)

set(stor_sanitize_flags "")
if(STOR_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang" OR NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "STOR_FUZZ=ON needs clang (configure with CC=clang CXX=clang++)")
  endif()
  if(STOR_SANITIZE AND NOT STOR_SANITIZE STREQUAL "address")
    message(FATAL_ERROR "STOR_FUZZ=ON builds with ASan+UBSan; it cannot be combined with STOR_SANITIZE=${STOR_SANITIZE}")
  endif()
  set(stor_sanitize_flags -fsanitize=fuzzer-no-link,address,undefined)
elseif(STOR_SANITIZE STREQUAL "address")
  set(stor_sanitize_flags -fsanitize=address,undefined)
elseif(STOR_SANITIZE STREQUAL "thread")
  set(stor_sanitize_flags -fsanitize=thread)
elseif(STOR_SANITIZE)
  message(FATAL_ERROR "STOR_SANITIZE must be empty, address or thread, not '${STOR_SANITIZE}'")
endif()

if(stor_sanitize_flags)
  add_compile_options(${stor_sanitize_flags} -fno-omit-frame-pointer)
  # The runtime is linked into executables and shared objects alike (libstor.so, plugins). C
  # programs (the MPI tests) load libstor.so too, so they need the C++ parts of the runtime.
  add_link_options(${stor_sanitize_flags})
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    add_link_options($<$<LINK_LANGUAGE:C>:-fsanitize-link-c++-runtime>)
    string(APPEND CMAKE_C_STANDARD_LIBRARIES " -lstdc++")  # what that runtime is written against
  endif()
  if(NOT STOR_SANITIZE STREQUAL "thread")
    # UB is a test failure, not a log line.
    add_compile_options(-fno-sanitize-recover=undefined)
    add_link_options(-fno-sanitize-recover=undefined)
  endif()
  message(STATUS "stor: sanitizers: ${stor_sanitize_flags}")
endif()
