// A conntrack map of another layout (another ipsnat build's pins) is named, never read as this
// build's: pins::layout_mismatch and require_layout (loader/pins/ct_map.h) against maps the kernel
// made with other key and value sizes. tests/netns/t_attach_ct_schema.sh runs the commands on a
// pinned one.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include "pins/ct_map.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::pins {
namespace {

Fd hash_map(uint32_t key_size, uint32_t value_size) {
  Fd fd(bpf_map_create(BPF_MAP_TYPE_HASH, "ct_layout_test", key_size, value_size, 16, nullptr));
  EXPECT_TRUE(fd.valid());
  return fd;
}

TEST(CtLayout, AnotherBuildsTableIsNamedWithBothLayouts) {
  // ipsnat_ct of schema 2 (48-byte entries, before spd_version).
  Fd old = hash_map(sizeof(ipsnat_ct_key), 48);
  EXPECT_EQ("pinned map /pins/ipsnat_ct has 16-byte keys and 48-byte values, this build reads 16-byte keys and "
            "56-byte values",
            layout_mismatch<Ct4Family>(old.get(), "/pins/ipsnat_ct"));
  try {
    require_layout<Ct4Family>(old.get(), "/pins/ipsnat_ct");
    ADD_FAILURE() << "another layout was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("48-byte values"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  // The IPv4 table's layout is not the IPv6 table's, either way round.
  Fd v4 = hash_map(sizeof(ipsnat_ct_key), sizeof(ipsnat_ct_entry));
  EXPECT_NE("", layout_mismatch<Ct6Family>(v4.get(), "/pins/ipsnat_ct6"));
  Fd v6 = hash_map(sizeof(ipsnat_ct6_key), sizeof(ipsnat_ct6_entry));
  EXPECT_NE("", layout_mismatch<Ct4Family>(v6.get(), "/pins/ipsnat_ct"));
  // A descriptor that is no map.
  EXPECT_NE("", layout_mismatch<Ct4Family>(-1, "/pins/ipsnat_ct"));
}

TEST(CtLayout, ThisBuildsTablesPass) {
  Fd v4 = hash_map(sizeof(ipsnat_ct_key), sizeof(ipsnat_ct_entry));
  Fd v6 = hash_map(sizeof(ipsnat_ct6_key), sizeof(ipsnat_ct6_entry));
  EXPECT_EQ("", layout_mismatch<Ct4Family>(v4.get(), "/pins/ipsnat_ct"));
  EXPECT_EQ("", layout_mismatch<Ct6Family>(v6.get(), "/pins/ipsnat_ct6"));
  EXPECT_NO_THROW(require_layout<Ct4Family>(v4.get(), "/pins/ipsnat_ct"));
}

}  // namespace
}  // namespace ipsnat::pins
