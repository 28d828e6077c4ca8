# `cpack -G DEB` (in the build directory): a Debian package of what `make install` installs with
# the prefix /usr: the binary (the BPF object is embedded in it as a skeleton), ipsnat(8), the
# bash and zsh completions, the systemd unit, the example configuration and the operations
# guide. Depends are computed by dpkg-shlibdeps from the binary's shared libraries.
install(FILES ${PROJECT_SOURCE_DIR}/deploy/ipsnat.service DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/ipsnat.toml.example ${PROJECT_SOURCE_DIR}/docs/operations.md
        ${PROJECT_SOURCE_DIR}/docs/config.md DESTINATION share/doc/ipsnat)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ipsnat)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "source NAT in front of Linux IPsec, in eBPF")
set(CPACK_PACKAGE_DESCRIPTION "Translates LAN sources to the inner address an XFRM out-policy names before the kernel's xfrm lookup, so the traffic leaves encrypted; replies are translated back.")
set(CPACK_PACKAGE_CONTACT "ipsnat maintainers <ipsnat@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
include(CPack)
