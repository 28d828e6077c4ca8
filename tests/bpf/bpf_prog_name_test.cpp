// sys::bpf_prog_name (loader/sys/bpf_prog.h): the kernel's name of a loaded program by its id, which
// `ipsnat status`, the XDP hook's ownership check and the tcx census print or compare.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <optional>

#include "support/datapath.h"
#include "sys/bpf_prog.h"

namespace ipsnat::test {
namespace {

TEST(BpfProgName, IsTheLoadedProgramsNameAndEmptyOnceItIsGone) {
  // An object of its own: a Datapath's outlives the test (support/datapath.cpp).
  ipsnat_bpf* skel = load_unpinned_skeleton();
  uint32_t rev = program_id(skel->progs.tc_rev_ingress);
  uint32_t guard = program_id(skel->progs.tc_guard_egress);
  EXPECT_NE(0u, rev);
  EXPECT_NE(rev, guard);
  EXPECT_EQ("tc_rev_ingress", sys::bpf_prog_name(rev));
  EXPECT_EQ("tc_guard_egress", sys::bpf_prog_name(guard));  // 15 characters: the kernel's longest
  ipsnat_bpf__destroy(skel);
  // The skeleton closed its programs: the kernel freed them and their ids.
  EXPECT_EQ("", sys::bpf_prog_name(rev));
  EXPECT_EQ("", sys::bpf_prog_name(0));
}

}  // namespace
}  // namespace ipsnat::test
