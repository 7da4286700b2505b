# `chai eval` as a user runs it (engine side: engine/eval/).
find_package(nlohmann_json REQUIRED)
chai_test(chai_cli_eval_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/cli_eval_test.cc
  LIBS chai_engine nlohmann_json::nlohmann_json
  LABELS cli)
target_compile_definitions(chai_cli_eval_test PRIVATE CHAI_BINARY="$<TARGET_FILE:chai>")
add_dependencies(chai_cli_eval_test chai)
