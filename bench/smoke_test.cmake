# CTest bench-smoke: kcont-bench --quick --json runs every area; kcont-bench-check finds every
# expected figure present and finite; compare of the file with itself flags nothing. Speed is
# reported in the output, never asserted. Variables: BENCH, CHECK, EXPECTED, HAVE_LIBEVENT, OUT.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
execute_process(COMMAND ${BENCH} --quick --json ${OUT}/out.json --plots ${OUT}/plots
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kcont-bench --quick failed: ${rc}")
endif()
set(libevent_arg "")
if(HAVE_LIBEVENT)
  set(libevent_arg --libevent)
endif()
execute_process(COMMAND ${CHECK} ${OUT}/out.json ${EXPECTED} ${libevent_arg} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "expected figures missing or not finite (kcont-bench-check: ${rc})")
endif()
execute_process(COMMAND ${BENCH} compare ${OUT}/out.json ${OUT}/out.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kcont-bench compare failed: ${rc}")
endif()
if(NOT out MATCHES " 0 flagged")
  message(FATAL_ERROR "compare of a file with itself flagged figures")
endif()
execute_process(COMMAND ${BENCH} compare ${OUT}/out.json ${OUT}/does-not-exist.json
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "kcont-bench compare with a missing file should exit 2, not ${rc}")
endif()
