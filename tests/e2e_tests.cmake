# End-to-end tests of the serving daemon (tests/e2e/): `chai serve` as a
# child process on loopback with the real default model. Label e2e.
if(CHAI_BUILD_SERVER)
  find_package(nlohmann_json REQUIRED)
  chai_test(chai_serve_e2e_test
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/e2e/serve_e2e_test.cc
    LIBS chai_grpc_server nlohmann_json::nlohmann_json
    LABELS e2e)
  target_compile_definitions(chai_serve_e2e_test PRIVATE CHAI_BINARY="$<TARGET_FILE:chai>")
  add_dependencies(chai_serve_e2e_test chai)
  chai_test(chai_transport_e2e_test
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/e2e/transport_e2e_test.cc
    LIBS chai_grpc_server
    LABELS e2e)
  target_compile_definitions(chai_transport_e2e_test PRIVATE CHAI_BINARY="$<TARGET_FILE:chai>")
  add_dependencies(chai_transport_e2e_test chai)
endif()

# The Python grpcio client (tests/e2e/python_client_test.py). Debian's
# python3-grpcio installs into /usr/bin/python3's dist-packages, so that
# interpreter is preferred over one first on PATH; the test exits 77 (skip)
# when grpcio or a stub generator is missing.
if(CHAI_BUILD_SERVER)
  find_program(CHAI_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT CHAI_SYSTEM_PYTHON3)
    find_program(CHAI_SYSTEM_PYTHON3 python3)
  endif()
  if(CHAI_SYSTEM_PYTHON3)
    add_test(NAME chai_python_client_test
      COMMAND ${CHAI_SYSTEM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/python_client_test.py
              --chai $<TARGET_FILE:chai> --source-dir ${CHAI_SOURCE_DIR})
    set_tests_properties(chai_python_client_test PROPERTIES
      LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 600)
  endif()
endif()
