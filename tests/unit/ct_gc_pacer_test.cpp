#include <gtest/gtest.h>

#include "pins/ct_gc.h"

namespace ipsnat::pins {
namespace {

constexpr uint64_t kSec = 1000000000ull;

// interval 10 s, at most one sweep a second under pressure; a table of 1024 entries.
struct Paced : ::testing::Test {
  GcPacer pacer{10 * kSec, kSec};
  uint64_t t0 = 1000 * kSec;
};

TEST_F(Paced, FirstLookSweepsThenWaitsTheInterval) {
  EXPECT_TRUE(pacer.due(t0, 0));
  pacer.swept(t0, 100, 1024);
  EXPECT_FALSE(pacer.due(t0 + 1 * kSec, 0));
  EXPECT_FALSE(pacer.due(t0 + 9 * kSec, 0));
  EXPECT_TRUE(pacer.due(t0 + 10 * kSec, 0));
}

TEST_F(Paced, ARefusedFlowCallsASweepAfterOneSecond) {
  ASSERT_TRUE(pacer.due(t0, 5));
  pacer.swept(t0, 100, 1024);
  EXPECT_FALSE(pacer.due(t0 + kSec / 2, 5));  // nothing refused since
  // Refused within the gap: not yet, but the refusal stays pending until it is served.
  EXPECT_FALSE(pacer.due(t0 + kSec / 2 + 1, 9));
  EXPECT_TRUE(pacer.due(t0 + kSec, 9));
  pacer.swept(t0 + kSec, 100, 1024);
  EXPECT_FALSE(pacer.due(t0 + 2 * kSec, 9));  // served: back to the interval
}

TEST_F(Paced, ANearlyFullTableIsSweptEverySecond) {
  ASSERT_TRUE(pacer.due(t0, 0));
  pacer.swept(t0, 896, 1024);  // 7/8 in use
  EXPECT_FALSE(pacer.due(t0 + kSec - 1, 0));
  EXPECT_TRUE(pacer.due(t0 + kSec, 0));
  pacer.swept(t0 + kSec, 895, 1024);  // below 7/8
  EXPECT_FALSE(pacer.due(t0 + 2 * kSec, 0));
  EXPECT_TRUE(pacer.due(t0 + 11 * kSec, 0));
}

TEST_F(Paced, TheIntervalFollowsTheConfiguration) {
  ASSERT_TRUE(pacer.due(t0, 0));
  pacer.swept(t0, 0, 1024);
  pacer.set_interval(2 * kSec);
  EXPECT_TRUE(pacer.due(t0 + 2 * kSec, 0));
}

}  // namespace
}  // namespace ipsnat::pins
