/* Shared by the BPF programs (clang -target bpf) and the C++ loader: plain C, fixed-width types,
 * explicit padding. Every schema header asserts its sizes so a layout change is a build error
 * on both sides at once. */
#ifndef IPSNAT_MAPS_COMMON_H
#define IPSNAT_MAPS_COMMON_H

#include <linux/types.h>

#ifdef __cplusplus
#define IPSNAT_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), #type " changed size")
#else
#define IPSNAT_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " changed size")
#endif

#define IPSNAT_PIN_ROOT "/sys/fs/bpf/ipsnat"

#endif
