find_package(nlohmann_json REQUIRED)
chai_test(chai_model_golden_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/model_golden_test.cc
  LIBS chai_runtime chai_model chai_kernels_cpu nlohmann_json::nlohmann_json
  LABELS golden)

# GGUF vs safetensors of the same tiny LLaMA, against a float64 numpy reference
# (tests/golden/make_tiny_model.py, outputs in tests/golden/tiny_llama/).
chai_test(chai_dual_format_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/dual_format_test.cc
  LIBS chai_engine chai_kernels_cpu nlohmann_json::nlohmann_json absl::strings
  LABELS golden)

chai_test(chai_cli_generate_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/cli_generate_test.cc
  LIBS chai_engine nlohmann_json::nlohmann_json
  LABELS cli)
target_compile_definitions(chai_cli_generate_test PRIVATE CHAI_BINARY="$<TARGET_FILE:chai>")
add_dependencies(chai_cli_generate_test chai)

# CHAI in the engine on the real model (docs/CHAI.md).
chai_test(chai_engine_chai_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/chai_engine_test.cc
  LIBS chai_engine chai_kernels_cpu
  LABELS golden)

# ModelRunner's recorded steps (op graphs) through a recording CPU backend.
chai_test(chai_op_graph_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/op_graph_test.cc
  LIBS chai_engine chai_kernels_cpu absl::strings
  LABELS unit)
