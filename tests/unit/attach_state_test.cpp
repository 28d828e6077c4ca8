#include <gtest/gtest.h>

#include "attach/state.h"

namespace ipsnat::attach {
namespace {

// The host process re-plans a device attached by hand with the knobs of that attach.
TEST(AttachState, TheAttachKnobsSurviveAJsonRoundTrip) {
  AttachState st;
  st.dev = "eth0";
  st.mode = "policy";
  st.pin_root = "/sys/fs/bpf/x";
  st.table = 77;
  st.rule_priority = 150;
  st.route_mtu = 1300;
  auto back = AttachState::from_json(nlohmann::json::parse(st.to_json().dump()));
  EXPECT_EQ(back.table, 77u);
  EXPECT_EQ(back.rule_priority, 150u);
  EXPECT_EQ(back.route_mtu, 1300u);
}

TEST(AttachState, ARecordWithoutKnobsReadsAsTheDefaults) {
  AttachState st;
  st.dev = "eth0";
  auto j = st.to_json();
  j.erase("table");
  j.erase("rule_priority");
  j.erase("route_mtu");
  auto back = AttachState::from_json(j);
  EXPECT_EQ(back.table, Settings{}.table);
  EXPECT_EQ(back.rule_priority, Settings{}.rule_priority);
  EXPECT_EQ(back.route_mtu, 0u);
}

// The inside prefixes attach inferred are the mirror's; only those given with --inside bind the
// re-plan (empty: it infers them again). A record from before the distinction keeps them fixed.
TEST(AttachState, OnlyConfiguredInsidePrefixesBindTheReplan) {
  AttachState st;
  st.dev = "eth0";
  st.inside = {"172.16.1.0/24", "fd00:1::/64"};
  auto back = AttachState::from_json(nlohmann::json::parse(st.to_json().dump()));
  EXPECT_EQ(back.inside, st.inside);
  EXPECT_TRUE(back.inside_configured.empty());
  st.inside_configured = {"fd00::/48"};
  EXPECT_EQ(AttachState::from_json(st.to_json()).inside_configured, st.inside_configured);
  auto old = st.to_json();
  old.erase("inside_configured");
  EXPECT_EQ(AttachState::from_json(old).inside_configured, st.inside);
}

}  // namespace
}  // namespace ipsnat::attach
