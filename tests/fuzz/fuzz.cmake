# fuzz.cmake - ehr_add_fuzzer(NAME SOURCE LIBS lib...)
#
# SOURCE defines LLVMFuzzerTestOneInput (and optionally LLVMFuzzerInitialize).
# Always builds fuzzreplay_NAME: SOURCE linked with driver/replay_main.c, a
# CUnit test (registered with ctest, so tests/run.sh runs it under gcc and
# under ASan/UBSan) that feeds every file of tests/fuzz/NAME/corpus/, and every
# prefix of each, to the target from an exact-size heap copy.
# With -DEHR_FUZZ=ON (clang) it also builds fuzz_NAME, a libFuzzer binary:
#   build-fuzz/tests/fuzz/NAME/fuzz_NAME -max_total_time=60 tests/fuzz/NAME/corpus
set(EHR_FUZZ_DRIVER ${CMAKE_CURRENT_LIST_DIR}/driver/replay_main.c)

function(ehr_add_fuzzer name source)
  cmake_parse_arguments(F "" "" "LIBS" ${ARGN})
  set(corpus ${CMAKE_CURRENT_SOURCE_DIR}/corpus)
  add_executable(fuzzreplay_${name} ${source} ${EHR_FUZZ_DRIVER})
  target_compile_definitions(fuzzreplay_${name} PRIVATE EHR_FUZZ_NAME="${name}" EHR_FUZZ_CORPUS="${corpus}")
  target_link_libraries(fuzzreplay_${name} PRIVATE testharness ${F_LIBS})
  add_test(NAME fuzzreplay_${name} COMMAND fuzzreplay_${name})
  if(EHR_FUZZ)
    add_executable(fuzz_${name} ${source})
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${name} PRIVATE ${F_LIBS})
  endif()
endfunction()
