#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/reasons.h"

namespace ipsnat {

TEST(Reasons, EveryReasonHasAUniqueNameThatRoundTrips) {
  std::set<std::string_view> seen;
  for (unsigned r = 0; r < IPSNAT_R_MAX; ++r) {
    auto name = reason_name(r);
    EXPECT_NE(name, "unknown") << "reason " << r;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate name " << name;
    EXPECT_EQ(reason_by_name(name), r);
  }
  EXPECT_EQ(reason_name(IPSNAT_R_MAX), "unknown");
  EXPECT_FALSE(reason_by_name("no-such-reason").has_value());
}

}  // namespace ipsnat
