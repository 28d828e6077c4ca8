# cmake -P script of cmake/Docs.cmake: runs the built ipsnat's generators and fills the man page
# template. Inputs: IPSNAT (the binary), VERSION, TEMPLATE (docs/ipsnat.8.in), OUT_DIR.
function(run_generator out)
  execute_process(COMMAND ${IPSNAT} ${ARGN} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "${IPSNAT} ${ARGN} failed (${rc})")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY ${OUT_DIR})
run_generator(IPSNAT_CLI_SECTIONS --help-man)
string(REGEX REPLACE "\n$" "" IPSNAT_CLI_SECTIONS "${IPSNAT_CLI_SECTIONS}")
set(IPSNAT_VERSION ${VERSION})
configure_file(${TEMPLATE} ${OUT_DIR}/ipsnat.8 @ONLY)
# Installed compressed, as Debian's man pages are.
file(ARCHIVE_CREATE OUTPUT ${OUT_DIR}/ipsnat.8.gz PATHS ${OUT_DIR}/ipsnat.8 FORMAT raw COMPRESSION GZip)
run_generator(bash --completion bash)
file(WRITE ${OUT_DIR}/ipsnat.bash "${bash}")
run_generator(zsh --completion zsh)
file(WRITE ${OUT_DIR}/_ipsnat "${zsh}")
