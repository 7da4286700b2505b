# `chai calibrate` end to end through the binary (server/calibrate_command.cc).
find_package(nlohmann_json REQUIRED)
chai_test(chai_cli_calibrate_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/cli_calibrate_test.cc
  LIBS chai_config nlohmann_json::nlohmann_json absl::strings
  LABELS cli)
target_compile_definitions(chai_cli_calibrate_test PRIVATE CHAI_BINARY="$<TARGET_FILE:chai>")
add_dependencies(chai_cli_calibrate_test chai)
