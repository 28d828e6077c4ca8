# The man page ipsnat(8) and the bash/zsh completions, generated at build time from the CLI11
# definition that prints --help (`ipsnat --help-man`, `ipsnat --completion SHELL`) and, for the
# man page, the hand-written prose of docs/ipsnat.8.in. Outputs in ${CMAKE_BINARY_DIR}/docs/.
set(IPSNAT_DOCS_DIR ${CMAKE_BINARY_DIR}/docs)
set(IPSNAT_MAN_PAGE ${IPSNAT_DOCS_DIR}/ipsnat.8)
set(IPSNAT_BASH_COMPLETION ${IPSNAT_DOCS_DIR}/ipsnat.bash)
set(IPSNAT_ZSH_COMPLETION ${IPSNAT_DOCS_DIR}/_ipsnat)

add_custom_command(
  OUTPUT ${IPSNAT_MAN_PAGE} ${IPSNAT_MAN_PAGE}.gz ${IPSNAT_BASH_COMPLETION} ${IPSNAT_ZSH_COMPLETION}
  COMMAND ${CMAKE_COMMAND} -DIPSNAT=$<TARGET_FILE:ipsnat> -DVERSION=${PROJECT_VERSION}
          -DTEMPLATE=${PROJECT_SOURCE_DIR}/docs/ipsnat.8.in -DOUT_DIR=${IPSNAT_DOCS_DIR}
          -P ${PROJECT_SOURCE_DIR}/cmake/GenerateDocs.cmake
  DEPENDS ipsnat ${PROJECT_SOURCE_DIR}/docs/ipsnat.8.in ${PROJECT_SOURCE_DIR}/cmake/GenerateDocs.cmake
  COMMENT "Generating ipsnat.8 and the shell completions from the CLI definition"
  VERBATIM)
add_custom_target(ipsnat_docs ALL DEPENDS ${IPSNAT_MAN_PAGE} ${IPSNAT_BASH_COMPLETION} ${IPSNAT_ZSH_COMPLETION})

install(FILES ${IPSNAT_MAN_PAGE}.gz DESTINATION share/man/man8)
install(FILES ${IPSNAT_BASH_COMPLETION} DESTINATION share/bash-completion/completions RENAME ipsnat)
install(FILES ${IPSNAT_ZSH_COMPLETION} DESTINATION share/zsh/vendor-completions)
