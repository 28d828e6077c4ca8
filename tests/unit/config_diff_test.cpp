#include <gtest/gtest.h>

#include "config/diff.h"
#include "pins/mirror_lock.h"

using namespace ipsnat::config;

namespace {

Config parse(const std::string& text) { return parse_config(text, "ipsnat.toml"); }

std::vector<std::string> names(const std::vector<Device>& v) {
  std::vector<std::string> n;
  for (const auto& d : v) n.push_back(d.name);
  return n;
}

using Names = std::vector<std::string>;

TEST(ConfigDiff, AddedRemovedChangedUnchanged) {
  Config a = parse("[[device]]\nname = \"eth0\"\n[[device]]\nname = \"ipsec0\"\nmode = \"route\"\n"
                   "[[device]]\nname = \"vti0\"\n");
  Config b = parse("[[device]]\nname = \"vti0\"\nmode = \"route\"\n[[device]]\nname = \"eth0\"\n"
                   "[[device]]\nname = \"eth1\"\n");
  auto d = diff_devices(a, b);
  EXPECT_EQ(names(d.added), Names{"eth1"});
  EXPECT_EQ(names(d.removed), Names{"ipsec0"});
  EXPECT_EQ(names(d.changed), Names{"vti0"});  // auto -> route
  EXPECT_EQ(d.changed[0].mode, DeviceMode::kRoute);
  EXPECT_EQ(names(d.unchanged), Names{"eth0"});  // order in the file does not matter
  EXPECT_FALSE(d.empty());
}

// Turning binat on or off re-plans the device (its ipsnat_dev entry carries the flag).
TEST(ConfigDiff, BinatChangesTheDevice) {
  auto d = diff_devices(parse("[[device]]\nname = \"eth0\"\n"), parse("[[device]]\nname = \"eth0\"\nbinat = true\n"));
  EXPECT_EQ(names(d.changed), Names{"eth0"});
  EXPECT_TRUE(d.changed[0].binat);
}

TEST(ConfigDiff, SameConfigIsEmpty) {
  const char* text = "inside = [\"192.168.1.0/24\"]\n[[device]]\nname = \"eth0\"\n";
  auto d = diff_devices(parse(text), parse(text));
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(names(d.unchanged), Names{"eth0"});
  EXPECT_FALSE(nat_changed(parse(text), parse(text)));
  EXPECT_FALSE(datapath_config_changed(parse(text), parse(text)));
}

TEST(ConfigDiff, InsideChangeReattachesEveryDevice) {
  Config a = parse("inside = [\"192.168.1.0/24\"]\n[[device]]\nname = \"eth0\"\n[[device]]\nname = \"ipsec0\"\n");
  Config b = parse("inside = [\"192.168.2.0/24\"]\n[[device]]\nname = \"eth0\"\n[[device]]\nname = \"ipsec0\"\n");
  auto d = diff_devices(a, b);
  EXPECT_EQ(names(d.changed), (Names{"eth0", "ipsec0"}));
  EXPECT_TRUE(nat_changed(a, b));
}

TEST(ConfigDiff, FromNothingAndToNothing) {
  Config none = parse("");
  Config one = parse("[[device]]\nname = \"eth0\"\n");
  EXPECT_EQ(names(diff_devices(none, one).added), Names{"eth0"});
  EXPECT_EQ(names(diff_devices(one, none).removed), Names{"eth0"});
}

TEST(ConfigDiff, NatRules) {
  Config a = parse("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.2\"\n");
  Config b = parse("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.3\"\n");
  Config c = parse("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.2\"\ndestinations = [\"10.0.0.0/8\"]\n");
  EXPECT_FALSE(nat_changed(a, a));
  EXPECT_TRUE(nat_changed(a, b));
  EXPECT_TRUE(nat_changed(a, c));
  EXPECT_TRUE(nat_changed(a, parse("")));
  EXPECT_TRUE(diff_devices(a, b).empty());  // NAT rules do not re-attach devices
}

TEST(ConfigDiff, TimeoutsAndPorts) {
  Config a = parse("port_range = \"20000-29999\"\n");
  EXPECT_TRUE(datapath_config_changed(a, parse("port_range = \"20000-30000\"\n")));
  EXPECT_TRUE(datapath_config_changed(a, parse("port_range = \"20000-29999\"\n[timeouts]\nudp = \"2m\"\n")));
  EXPECT_FALSE(datapath_config_changed(a, parse("port_range = \"20000-29999\"\nlog_level = \"debug\"\n")));
}

TEST(MirrorLockHolder, ParsesProcLocks) {
  const std::string locks =
      "1: POSIX  ADVISORY  WRITE 100 00:1f:5678 0 EOF\n"
      "2: FLOCK  ADVISORY  WRITE 4242 00:2a:5678 0 EOF\n"
      "2: -> FLOCK  ADVISORY  WRITE 4343 00:2a:5678 0 EOF\n"
      "3: FLOCK  ADVISORY  WRITE 777 00:1f:5678 0 EOF\n";
  EXPECT_EQ(ipsnat::pins::lock_holder_pid(locks, 0x1f, 0, 5678), std::nullopt);  // other minor
  EXPECT_EQ(ipsnat::pins::lock_holder_pid(locks, 0, 0x1f, 5678), std::optional<int>(777));
  EXPECT_EQ(ipsnat::pins::lock_holder_pid(locks, 0, 0x2a, 5678), std::optional<int>(4242));  // not the waiter
  EXPECT_EQ(ipsnat::pins::lock_holder_pid(locks, 0, 0x2a, 5679), std::nullopt);
  EXPECT_EQ(ipsnat::pins::lock_holder_pid("", 0, 0x2a, 5678), std::nullopt);
}

}  // namespace
