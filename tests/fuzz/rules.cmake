# Fault-rule parser fuzzing (included from tests/CMakeLists.txt).
# Always: replay the corpus as an ordinary ctest (fuzz_rules_corpus).
# With -DPGF_FUZZ=ON and clang: the libFuzzer binary fuzz_rules, e.g.
#   CC=clang cmake -S . -B build-fuzz -DPGF_FUZZ=ON \
#     -DPGF_SANITIZE=address,undefined,fuzzer-no-link   (instruments the libraries too)
#   build-fuzz/tests/fuzz_rules -max_total_time=60 tests/fuzz/corpus/rules
set(_fuzz_dir ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
add_executable(fuzz_rules_replay ${_fuzz_dir}/replay_rules.c ${_fuzz_dir}/fuzz_rules.c)
target_link_libraries(fuzz_rules_replay PRIVATE pgf_all pgf_fault_internal)
add_test(NAME fuzz_rules_corpus COMMAND fuzz_rules_replay ${_fuzz_dir}/corpus/rules
  ${PROJECT_SOURCE_DIR}/scenarios/faults-examples.yaml)
set_tests_properties(fuzz_rules_corpus PROPERTIES TIMEOUT 120 LABELS unit)

if(PGF_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PGF_FUZZ needs clang (CC=clang)")
  endif()
  add_executable(fuzz_rules ${_fuzz_dir}/fuzz_rules.c)
  target_compile_options(fuzz_rules PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_rules PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_rules PRIVATE pgf_all pgf_fault_internal)
endif()
