# tests/scenarios.cmake - one ctest per built-in scenario (scenario_NAME:
# passes, and in sim mode replays byte-identically with the same seed and
# differs with another), and one per deliberate session-manager bug
# (scenario_bug_BUG: the harness catches it). Included from
# tests/CMakeLists.txt.
file(GLOB _pgf_scn CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/scenarios/*.yaml)
list(FILTER _pgf_scn EXCLUDE REGEX "faults-examples\\.yaml$")
list(SORT _pgf_scn)
set(_pgf_scn_env "PGFAULT=$<TARGET_FILE:pgfault>;PGF_SRC=${PROJECT_SOURCE_DIR};PGF_BUILD=${PROJECT_BINARY_DIR}")
set(_pgf_scn_lib ${CMAKE_CURRENT_SOURCE_DIR}/e2e/scenario_lib.bash)
foreach(f ${_pgf_scn})
  get_filename_component(_n ${f} NAME_WE)
  set(_extra "")
  if(_n STREQUAL "soak")
    set(_extra --duration 2000) # the one-hour profile, CI-sized
  endif()
  add_test(NAME scenario_${_n} COMMAND bash ${_pgf_scn_lib} builtin ${_n} ${_extra})
  set_tests_properties(scenario_${_n} PROPERTIES TIMEOUT 300 LABELS scenario
    ENVIRONMENT "${_pgf_scn_env}")
endforeach()

# A client that leaves while its statement (a pg_sleep) still runs: the server
# finishes the statement before it sees the EOF, as PostgreSQL does, so the
# sim drain must let simulated time reach the statement's end before the
# final server count (seed 3 left one connection open and failed the run).
add_test(NAME scenario_drain_after_client_left
  COMMAND $<TARGET_FILE:pgfault> run --scenario pool-exhaustion --seed 3 --mode sim --quiet
    --out ${CMAKE_CURRENT_BINARY_DIR}/drain-out)
set_tests_properties(scenario_drain_after_client_left PROPERTIES TIMEOUT 120 LABELS scenario)

# bug | built-in scenario that exposes it | violation kind | bound on the run
set(_pgf_bugs
  "close-frees-during-connect|incident|illegal_transition|--iterations 3"
  "callback-twice|incident|double_completion|--iterations 3"
  "auth-as-connection-lost|rotated-password|misclassified_health|--iterations 15"
  "failed-returned-to-pool|pool-exhaustion|illegal_start|--iterations 5"
  "release-after-close|pool-exhaustion|use_after_close|--iterations 10"
  "lost-completion|incident|missing_completion|--iterations 3")
foreach(row ${_pgf_bugs})
  string(REPLACE "|" ";" _r "${row}")
  list(GET _r 0 _bug)
  list(GET _r 1 _scen)
  list(GET _r 2 _kind)
  list(GET _r 3 _bound)
  separate_arguments(_bound)
  add_test(NAME scenario_bug_${_bug}
    COMMAND bash ${_pgf_scn_lib} bug ${_scen} ${_bug} ${_kind} ${_bound})
  set_tests_properties(scenario_bug_${_bug} PROPERTIES TIMEOUT 60 LABELS scenario
    ENVIRONMENT "${_pgf_scn_env}")
endforeach()

# A session layer that calls back twice, under a pool: the pool and the
# driver must take the second completion as the bug it is, not as news
# (it handed one session to two borrowers and closed it under the first:
# a use after free, exit 139, or a hang on a freed mutex). Caught as
# double_completion and nothing else.
add_test(NAME scenario_bug_callback-twice_pool
  COMMAND bash ${_pgf_scn_lib} bug pool-exhaustion callback-twice double_completion --seed 3)
set_tests_properties(scenario_bug_callback-twice_pool PROPERTIES TIMEOUT 60 LABELS scenario
  ENVIRONMENT "${_pgf_scn_env};PGF_BUG_ONLY=1")
