// The limit watcher (loader/limits/watcher.h): which warnings a sequence of counter readings
// gives, against a simulated clock.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "limits/watcher.h"

namespace ipsnat::limits {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = LimitWatcher::Clock;

struct Feed {
  LimitWatcher w{seconds(60)};
  Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);
  LimitSample s;
  // One reading at t0 + when; the lines it gives.
  std::vector<LimitLine> at(Clock::duration when) { return w.observe(s, t0 + when); }
};

TEST(LimitWatcher, FirstReadingIsTheBaseline) {
  Feed r;
  r.s.ct_full_drops = 5000;  // dropped before this process started: not reported
  EXPECT_TRUE(r.at(seconds(0)).empty());
  EXPECT_TRUE(r.at(seconds(1)).empty());
}

TEST(LimitWatcher, FirstDropIsReportedAtOnceWithItsContext) {
  Feed r;
  r.s.ct_max = 4096;
  r.at(seconds(0));
  r.s.ct_full_drops = 1234;
  auto lines = r.at(seconds(1));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].limit, Limit::kCtFull);
  EXPECT_FALSE(lines[0].recovered);
  EXPECT_EQ(lines[0].dropped, 1234u);
  EXPECT_EQ(lines[0].text,
            "limit: conntrack table full: 1234 packets dropped in the last 1s (ct-max 4096 entries = 2048 flows; raise "
            "--ct-max, or shorten the timeouts)");
}

TEST(LimitWatcher, AtMostOneLinePerIntervalWithTheCountSinceTheLastLine) {
  Feed r;
  r.at(seconds(0));
  std::vector<LimitLine> all;
  std::vector<int> at_second;
  // 10 drops every second for 200 s, read every second.
  for (int t = 1; t <= 200; ++t) {
    r.s.no_port_drops += 10;
    for (auto& l : r.at(seconds(t))) {
      all.push_back(l);
      at_second.push_back(t);
    }
  }
  ASSERT_EQ(all.size(), 4u);  // t = 1, 61, 121, 181
  EXPECT_EQ(at_second, (std::vector<int>{1, 61, 121, 181}));
  EXPECT_EQ(all[0].dropped, 10u);
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_EQ(all[i].dropped, 600u);
    EXPECT_NE(all[i].text.find("600 packets of new flows dropped in the last 60s"), std::string::npos) << all[i].text;
  }
  uint64_t sum = 0;
  for (const auto& l : all) sum += l.dropped;
  // The 190 dropped after the last line are reported with the next one.
  EXPECT_EQ(sum + 190, r.s.no_port_drops);
}

TEST(LimitWatcher, RecoveredOnceAfterAQuietInterval) {
  Feed r;
  r.at(seconds(0));
  r.s.ct_full_drops = 3;
  ASSERT_EQ(r.at(seconds(1)).size(), 1u);
  r.s.ct_full_drops = 7;  // 4 more within the interval
  EXPECT_TRUE(r.at(seconds(30)).empty());
  auto l = r.at(seconds(61));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_FALSE(l[0].recovered);
  EXPECT_EQ(l[0].dropped, 4u);
  EXPECT_TRUE(r.at(seconds(100)).empty());
  l = r.at(seconds(121));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_TRUE(l[0].recovered);
  EXPECT_EQ(l[0].text, "limit: conntrack table full: recovered, no drops in the last 60s");
  for (int t = 122; t < 400; ++t) EXPECT_TRUE(r.at(seconds(t)).empty()) << t;  // once only
  // A new episode is reported at once again.
  r.s.ct_full_drops = 8;
  l = r.at(seconds(400));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].dropped, 1u);
  EXPECT_NE(l[0].text.find("in the last 1s"), std::string::npos) << l[0].text;
}

TEST(LimitWatcher, LimitsAreIndependent) {
  Feed r;
  r.at(seconds(0));
  r.s.ct_full_drops = 1;
  auto l = r.at(seconds(1));
  ASSERT_EQ(l.size(), 1u);
  r.s.no_port_drops = 2;
  l = r.at(seconds(2));  // ct-full is within its interval; no-port starts its own
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].limit, Limit::kNoPort);
}

TEST(LimitWatcher, SpdConditionIsReportedWhileItStandsEvenWithoutDrops) {
  Feed r;
  r.s.spd_fail_closed = true;  // standing at start (e.g. the follower restarted)
  r.s.spd_max = 64;
  r.s.spd_dst = 40, r.s.spd_src = 40, r.s.spd_lists = 40;
  auto l = r.at(seconds(0));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].limit, Limit::kSpdTooLarge);
  EXPECT_EQ(l[0].text,
            "limit: SPD larger than the maps: the datapath fails closed, 0 packets of cleartext dropped in the last "
            "1s (the SPD needs 40 spd_dst, 40 spd_src, 40 spd_lists entries per generation; each map holds 64 for "
            "both generations; raise --spd-max)");
  EXPECT_TRUE(r.at(seconds(59)).empty());
  EXPECT_EQ(r.at(seconds(60)).size(), 1u);  // still standing: one line per interval
  r.s.spd_fail_closed = false;
  r.s.spd_incomplete_drops = 9;  // dropped before it fitted again
  l = r.at(seconds(120));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_FALSE(l[0].recovered);
  EXPECT_NE(l[0].text.find("fitted again, 9 packets"), std::string::npos) << l[0].text;
  l = r.at(seconds(180));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_TRUE(l[0].recovered);
}

TEST(LimitWatcher, AnUnrepresentableSpdNamesItsCauseUntilItsEpisodeEnds) {
  Feed r;
  r.at(seconds(0));
  r.s.spd_fail_closed = true;
  r.s.spd_cause = SpdCause::kUnrepresentable;
  r.s.spd_incomplete_drops = 3;
  auto l = r.at(seconds(1));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].text,
            "limit: SPD not representable in the maps: the datapath fails closed, 3 packets of cleartext dropped in "
            "the last 1s (a policy cannot be mirrored exactly: `ipsnat policies` names it; remove or change it)");
  r.s.spd_fail_closed = false;  // the policy is gone
  r.s.spd_cause = SpdCause::kTooLarge;
  r.s.spd_incomplete_drops = 5;
  l = r.at(seconds(61));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_NE(l[0].text.find("not representable in the maps: mirrored exactly again, 2 packets"), std::string::npos)
      << l[0].text;
  l = r.at(seconds(121));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_TRUE(l[0].recovered);
  EXPECT_EQ(l[0].text.rfind("limit: SPD not representable in the maps: recovered", 0), 0u) << l[0].text;
}

// A policy the maps carry as UNKNOWN: its own limit, saying that only its destinations fail
// closed (drop-spd-unrepresentable), while the SPD limit stays quiet.
TEST(LimitWatcher, AnUnknownPolicyFailsClosedOnlyItsDestinations) {
  Feed r;
  r.at(seconds(0));
  r.s.spd_policy_unknown = true;
  r.s.spd_unrepresentable_drops = 4;
  auto l = r.at(seconds(1));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].limit, Limit::kSpdPolicyUnknown);
  EXPECT_EQ(l[0].dropped, 4u);
  EXPECT_EQ(l[0].text.rfind("limit: a policy is not representable in the maps: cleartext to its destinations fails "
                            "closed, 4 packets dropped in the last 1s (drop-spd-unrepresentable; the rest of the SPD "
                            "is mirrored exactly;",
                            0),
            0u)
      << l[0].text;
  r.s.spd_policy_unknown = false;  // the policy is gone
  l = r.at(seconds(61));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_TRUE(l[0].recovered);
  EXPECT_EQ(l[0].text.rfind("limit: a policy is not representable in the maps: recovered", 0), 0u) << l[0].text;
}

TEST(LimitWatcher, AFailedMapWriteSaysSoAndThatItIsRetried) {
  Feed r;
  r.s.spd_fail_closed = true;
  r.s.spd_cause = SpdCause::kWriteFailed;
  auto l = r.at(seconds(0));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].text,
            "limit: SPD maps not written: the datapath fails closed, 0 packets of cleartext dropped in the last 1s "
            "(the kernel refused a map write; the log of the SPD mirror says why; retried every second)");
  r.s.spd_fail_closed = false;
  r.s.spd_cause = SpdCause::kTooLarge;
  l = r.at(seconds(60));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].text.rfind("limit: SPD maps not written: recovered", 0), 0u) << l[0].text;
}

TEST(LimitWatcher, ACounterThatWentBackwardsCountsFromZero) {
  Feed r;
  r.s.ct_full_drops = 1000;
  r.at(seconds(0));
  r.s.ct_full_drops = 5;  // the map was recreated (re-attach after a schema change)
  auto l = r.at(seconds(1));
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].dropped, 5u);
}

TEST(LimitWatcher, ShortIntervalAndIrregularReadings) {
  Feed r;
  r.w.set_interval(seconds(2));
  r.at(milliseconds(0));
  int lines = 0;
  uint64_t reported = 0;
  // Drops for 10 s, read every 300 ms: a line at once, then one per 2 s.
  for (int ms = 300; ms <= 10000; ms += 300) {
    r.s.ct_full_drops += 7;
    for (auto& l : r.at(milliseconds(ms))) ++lines, reported += l.dropped;
  }
  EXPECT_EQ(lines, 5);  // 0.3 s, then 2.4, 4.5, 6.6, 8.7
  int recovered = 0;
  for (int ms = 10200; ms <= 20000; ms += 300)
    for (auto& l : r.at(milliseconds(ms))) {
      EXPECT_TRUE(l.recovered || l.dropped > 0);
      reported += l.dropped;
      recovered += l.recovered;
    }
  EXPECT_EQ(recovered, 1);
  EXPECT_EQ(reported, r.s.ct_full_drops);  // every drop reported exactly once
}

}  // namespace
}  // namespace ipsnat::limits
