# The man page ipsnat(8), generated at build time from the CLI11 definition that prints --help
# (`ipsnat --help-man`) and the hand-written prose of docs/ipsnat.8.in. Output in
# ${CMAKE_BINARY_DIR}/docs/.
set(IPSNAT_DOCS_DIR ${CMAKE_BINARY_DIR}/docs)
set(IPSNAT_MAN_PAGE ${IPSNAT_DOCS_DIR}/ipsnat.8)

add_custom_command(
  OUTPUT ${IPSNAT_MAN_PAGE}
  COMMAND ${CMAKE_COMMAND} -DIPSNAT=$<TARGET_FILE:ipsnat> -DVERSION=${PROJECT_VERSION}
          -DTEMPLATE=${PROJECT_SOURCE_DIR}/docs/ipsnat.8.in -DOUT_DIR=${IPSNAT_DOCS_DIR}
          -P ${PROJECT_SOURCE_DIR}/cmake/GenerateDocs.cmake
  DEPENDS ipsnat ${PROJECT_SOURCE_DIR}/docs/ipsnat.8.in ${PROJECT_SOURCE_DIR}/cmake/GenerateDocs.cmake
  COMMENT "Generating ipsnat.8 from the CLI definition"
  VERBATIM)
add_custom_target(ipsnat_docs ALL DEPENDS ${IPSNAT_MAN_PAGE})

install(FILES ${IPSNAT_MAN_PAGE} DESTINATION share/man/man8)
