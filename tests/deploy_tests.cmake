# Deployment (issue 6): docker/, deploy/k8s, deploy/prometheus,
# deploy/grafana (label deploy) and the nginx gRPC load balancer in front of
# two `chai serve` replicas (label e2e). Python tests run on Debian's
# /usr/bin/python3 (the interpreter deploy/setup.sh installs the pinned
# tools for, into .cache/pytools); each exits 77 (skip) only when a tool is
# missing, and fails instead under CI=true.
if(CHAI_BUILD_SERVER)
  find_program(CHAI_DEPLOY_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT CHAI_DEPLOY_PYTHON3)
    find_program(CHAI_DEPLOY_PYTHON3 python3)
  endif()
  set(_chai_deploy_dir ${CMAKE_CURRENT_SOURCE_DIR}/deploy)
  set(_chai_pytools ${CHAI_SOURCE_DIR}/.cache/pytools)
  set(_chai_cuda_module "")
  if(TARGET chai_cuda_backend)
    set(_chai_cuda_module $<TARGET_FILE:chai_cuda_backend>)
  endif()

  add_test(NAME chai_deploy_prometheus_test
    COMMAND ${_chai_deploy_dir}/prometheus_test.sh ${CHAI_SOURCE_DIR})
  set_tests_properties(chai_deploy_prometheus_test PROPERTIES
    LABELS deploy SKIP_RETURN_CODE 77 TIMEOUT 120)

  if(CHAI_DEPLOY_PYTHON3)
    add_test(NAME chai_deploy_docker_test
      COMMAND ${CHAI_DEPLOY_PYTHON3} ${_chai_deploy_dir}/docker_test.py
              --chai $<TARGET_FILE:chai> --source-dir ${CHAI_SOURCE_DIR}
              --cuda-module "${_chai_cuda_module}")
    add_test(NAME chai_deploy_k8s_test
      COMMAND ${CHAI_DEPLOY_PYTHON3} ${_chai_deploy_dir}/k8s_test.py
              --chai $<TARGET_FILE:chai> --source-dir ${CHAI_SOURCE_DIR}
              --pytools ${_chai_pytools})
    add_test(NAME chai_deploy_metric_names_test
      COMMAND ${CHAI_DEPLOY_PYTHON3} ${_chai_deploy_dir}/metric_names_test.py
              --chai $<TARGET_FILE:chai> --source-dir ${CHAI_SOURCE_DIR}
              --pytools ${_chai_pytools})
    set_tests_properties(chai_deploy_docker_test chai_deploy_k8s_test
      chai_deploy_metric_names_test PROPERTIES
      LABELS deploy SKIP_RETURN_CODE 77 TIMEOUT 300)
    add_test(NAME chai_nginx_lb_e2e_test
      COMMAND ${CHAI_DEPLOY_PYTHON3} ${_chai_deploy_dir}/nginx_lb_test.py
              --chai $<TARGET_FILE:chai> --source-dir ${CHAI_SOURCE_DIR})
    # Two replicas of one thread each, nginx and the bench: keep it off the
    # cores other e2e tests use.
    set_tests_properties(chai_nginx_lb_e2e_test PROPERTIES
      LABELS e2e SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)
  endif()
endif()
