# chai_engine_bench runs each of its measurements on the tiny test model and
# reports them all (tests/bench/engine_bench_smoke.py); speed is not asserted.
if(TARGET chai_engine_bench)
  find_program(CHAI_BENCH_PYTHON3 python3)
  if(CHAI_BENCH_PYTHON3)
    add_test(NAME chai_engine_bench_smoke_test
      COMMAND ${CHAI_BENCH_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/bench/engine_bench_smoke.py
              --bench $<TARGET_FILE:chai_engine_bench>
              --model ${CMAKE_CURRENT_SOURCE_DIR}/golden/tiny_llama/tiny_llama.gguf)
    set_tests_properties(chai_engine_bench_smoke_test PROPERTIES LABELS bench TIMEOUT 300)
  endif()
endif()
