// The loader's map names (loader/pins/names.h) are the names the compiled BPF object pins, both
// ways: every listed name is a map the object pins by name, and every map it pins is listed.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "ipsnat_bpf.skel.h"
#include "pins/names.h"

namespace ipsnat::test {
namespace {

TEST(PinNames, AreTheMapsTheObjectPinsByName) {
  // Opening parses the object and sets the pin path of each LIBBPF_PIN_BY_NAME map; nothing is
  // loaded or pinned.
  const std::string root = "/sys/fs/bpf/ipsnat-test-names-not-created";
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = root.c_str());
  ipsnat_bpf* skel = ipsnat_bpf__open_opts(&opts);
  ASSERT_NE(nullptr, skel);
  std::set<std::string> pinned_by_object;
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    if (const char* pin = bpf_map__pin_path(map)) {
      EXPECT_EQ(root + "/" + bpf_map__name(map), pin);
      pinned_by_object.insert(bpf_map__name(map));
    }
  }
  ipsnat_bpf__destroy(skel);
  std::set<std::string> listed;
  for (std::string_view name : pins::kPinnedMaps) {
    EXPECT_LE(name.size(), 15u) << name;
    listed.insert(std::string(name));
  }
  EXPECT_EQ(std::size(pins::kPinnedMaps), listed.size()) << "a name is listed twice";
  EXPECT_EQ(pinned_by_object, listed);
}

}  // namespace
}  // namespace ipsnat::test
