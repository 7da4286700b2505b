# Compiler flags shared by every target we own.
#   chai_target_options(<target>) adds warnings (as errors when CHAI_WERROR)
#   and the sanitizer flags when CHAI_SANITIZE is on.
if(CHAI_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

function(chai_target_options target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter
      -Wno-missing-field-initializers>)
  if(CHAI_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  # GCC 12 reports false -Wrestrict positives inside libstdc++'s string
  # operator+ at -O3 (GCC bug 105329); the warning is not about our code.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
  endif()
endfunction()

# chai_test(<name> SOURCES ... LIBS ... [LABELS ...])
function(chai_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  chai_target_options(${name})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE CHAI_SOURCE_DIR="${CHAI_SOURCE_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${T_LABELS}" ENVIRONMENT "CHAI_SOURCE_DIR=${CHAI_SOURCE_DIR}")
endfunction()

# Fuzzing (CHAI_BUILD_FUZZERS): libFuzzer needs clang. Everything is compiled
# with coverage instrumentation (fuzzer-no-link) and ASan+UBSan, not just the
# fuzzer's own file, so the fuzzer is guided by, and checks, the library code
# it calls. Configure with CC=clang CXX=clang++ and, usually,
# -DCHAI_BUILD_SERVER=OFF -DCHAI_BUILD_TESTS=OFF -DCHAI_BUILD_BENCHMARKS=OFF.
if(CHAI_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CHAI_BUILD_FUZZERS needs clang (CC=clang CXX=clang++), "
                        "not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # `cmake --build B --target chai_fuzzers` builds every fuzzer and nothing else.
  add_custom_target(chai_fuzzers)
endif()

# chai_fuzzer(<name> SOURCES ... LIBS ...)
#   A libFuzzer binary defining LLVMFuzzerTestOneInput; does nothing unless
#   CHAI_BUILD_FUZZERS is ON. Name it <thing>_fuzzer: tests/fuzz/run_fuzzers.sh
#   runs every *_fuzzer binary with tests/fuzz/<thing>/ as its seed corpus.
function(chai_fuzzer name)
  if(NOT CHAI_BUILD_FUZZERS)
    return()
  endif()
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${F_SOURCES})
  chai_target_options(${name})
  # Fuzzers may compile sources directly instead of linking their library.
  target_include_directories(${name} PRIVATE ${CHAI_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  add_dependencies(chai_fuzzers ${name})
endfunction()
