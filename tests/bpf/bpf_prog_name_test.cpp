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

uint32_t prog_id(bpf_program* prog) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  EXPECT_EQ(0, bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len));
  return info.id;
}

TEST(BpfProgName, IsTheLoadedProgramsNameAndEmptyOnceItIsGone) {
  // An object of its own: a Datapath's outlives the test (support/datapath.cpp).
  ipsnat_bpf* skel = load_unpinned_skeleton();
  uint32_t rev = prog_id(skel->progs.tc_rev_ingress);
  uint32_t guard = prog_id(skel->progs.tc_guard_egress);
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
