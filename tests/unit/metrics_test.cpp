#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon/datapath_metrics.h"
#include "daemon/logging.h"
#include "metrics/exposition.h"
#include "metrics/http.h"
#include "state/daemon_state.h"

using namespace ipsnat;
using metrics::MetricType;

TEST(Exposition, HelpTypeAndSamples) {
  metrics::Exposition e;
  e.family("ipsnat_packets_total", "Packets by reason", MetricType::kCounter)
      .add(7, {{"reason", "xlate-snat"}})
      .add(0, {{"reason", "drop-leak-guard"}});
  e.family("ipsnat_up", "1 while up", MetricType::kGauge).add(1);
  EXPECT_EQ(e.render(),
            "# HELP ipsnat_packets_total Packets by reason\n"
            "# TYPE ipsnat_packets_total counter\n"
            "ipsnat_packets_total{reason=\"xlate-snat\"} 7\n"
            "ipsnat_packets_total{reason=\"drop-leak-guard\"} 0\n"
            "# HELP ipsnat_up 1 while up\n"
            "# TYPE ipsnat_up gauge\n"
            "ipsnat_up 1\n");
}

TEST(Exposition, EscapingAndLargeValues) {
  metrics::Exposition e;
  e.family("ipsnat_x", "back\\slash\nnewline", MetricType::kGauge)
      .add(18446744073709551615ULL, {{"a", "q\"uote\\ and\nnl"}, {"b", ""}})
      .add_double(0.25);
  EXPECT_EQ(e.render(),
            "# HELP ipsnat_x back\\\\slash\\nnewline\n"
            "# TYPE ipsnat_x gauge\n"
            "ipsnat_x{a=\"q\\\"uote\\\\ and\\nnl\",b=\"\"} 18446744073709551615\n"
            "ipsnat_x 0.25\n");
}

TEST(Exposition, SameFamilyTwiceMergesAndNamesAreChecked) {
  metrics::Exposition e;
  e.family("ipsnat_a", "h", MetricType::kGauge).add(1, {{"x", "1"}});
  e.family("ipsnat_a", "h", MetricType::kGauge).add(2, {{"x", "2"}});
  EXPECT_EQ(e.families().size(), 1u);
  EXPECT_EQ(e.families()[0].samples.size(), 2u);
  EXPECT_THROW(e.family("ipsnat_a", "h", MetricType::kCounter), std::invalid_argument);
  EXPECT_THROW(e.family("ipsnat-bad", "h", MetricType::kGauge), std::invalid_argument);
  EXPECT_THROW(e.family("9ipsnat", "h", MetricType::kGauge), std::invalid_argument);
  EXPECT_THROW(e.family("ipsnat_b", "h", MetricType::kGauge).add(1, {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(e.family("ipsnat_c", "h", MetricType::kGauge).add(1, {{"__reserved", "v"}}), std::invalid_argument);
}

TEST(DatapathMetrics, ReasonsMapsConntrack) {
  daemon::DatapathSnapshot snap;
  snap.reasons = std::vector<state::ReasonCount>{{3, "xlate-snat", 10, 1000}, {6, "drop-leak-guard", 2, 120}};
  snap.maps = {{"ipsnat_ct", 5, "hash", 262144, 4}, {"ipsnat_stats", 6, "percpu_array", 64, std::nullopt}};
  state::ConntrackSummary ct;
  ct.ipv4.entries = 4;
  ct.ipv4.flows = 2;
  ct.ipv4.by_proto = {{"tcp", 1}, {"udp", 1}};
  ct.ports_in_use = {{"10.20.30.2", 2}};
  ct.busiest_endpoint = {{"10.20.30.2", 1}};
  ct.by_reqid[1] = {2, 30, 4000};
  snap.conntrack = ct;
  metrics::Exposition e;
  daemon::add_datapath_metrics(e, snap, config::PortRange{1024, 1031});
  std::string text = e.render();
  for (const char* want : {
           "ipsnat_datapath_pinned 1\n",
           "# TYPE ipsnat_packets_total counter\n",
           "ipsnat_packets_total{verdict=\"xlate\",reason=\"xlate-snat\"} 10\n",
           "ipsnat_packets_total{verdict=\"drop\",reason=\"drop-leak-guard\"} 2\n",
           "ipsnat_bytes_total{verdict=\"drop\",reason=\"drop-leak-guard\"} 120\n",
           "ipsnat_map_max_entries{map=\"ipsnat_ct\"} 262144\n",
           "ipsnat_map_entries{map=\"ipsnat_ct\"} 4\n",
           "ipsnat_active_flows{proto=\"tcp\"} 1\n",
           "ipsnat_active_flows{proto=\"icmp\"} 0\n",
           "ipsnat_nat_ports_in_use{nat_address=\"10.20.30.2\"} 2\n",
           "ipsnat_nat_port_range_use_ratio{nat_address=\"10.20.30.2\"} 0.25\n",
           "ipsnat_nat_port_range_size 8\n",
           "ipsnat_nat_busiest_endpoint_ports{nat_address=\"10.20.30.2\"} 1\n",
           "ipsnat_policy_tracked_bytes{reqid=\"1\"} 4000\n",
       })
    EXPECT_NE(text.find(want), std::string::npos) << "missing: " << want << "in:\n" << text;
  // Arrays have no fill level.
  EXPECT_EQ(text.find("ipsnat_map_entries{map=\"ipsnat_stats\"}"), std::string::npos);
  // No ipsnat_ct6 pinned: no IPv6 family.
  EXPECT_EQ(text.find("ipsnat_active_flows6"), std::string::npos);
}

// NAT66 flows (ipsnat_ct6): their own family by protocol, with ICMPv6 named as such; their NAT
// addresses beside the IPv4 ones; their reqid's traffic with the IPv4 flows of the same reqid.
TEST(DatapathMetrics, Ipv6FlowsBesideIpv4) {
  daemon::DatapathSnapshot snap;
  snap.reasons = std::vector<state::ReasonCount>{};
  state::ConntrackSummary ct;
  ct.ipv4.by_proto = {{"udp", 1}};
  ct.ipv6 = state::FlowCounts{6, 3, {{"tcp", 1}, {"icmpv6", 2}}};
  ct.ports_in_use = {{"10.20.30.2", 1}, {"2001:db8:66::5", 2}, {"2001:db8:66::6", 1}};
  ct.busiest_endpoint = {{"10.20.30.2", 1}, {"2001:db8:66::5", 2}, {"2001:db8:66::6", 1}};
  ct.by_reqid[2] = {3, 12, 1200};
  snap.conntrack = ct;
  metrics::Exposition e;
  daemon::add_datapath_metrics(e, snap, config::PortRange{1024, 1031});
  std::string text = e.render();
  for (const char* want : {
           "ipsnat_active_flows{proto=\"udp\"} 1\n",
           "ipsnat_active_flows{proto=\"tcp\"} 0\n",
           "ipsnat_active_flows6{proto=\"tcp\"} 1\n",
           "ipsnat_active_flows6{proto=\"udp\"} 0\n",
           "ipsnat_active_flows6{proto=\"icmpv6\"} 2\n",
           "ipsnat_active_flows6{proto=\"other\"} 0\n",
           "ipsnat_nat_ports_in_use{nat_address=\"10.20.30.2\"} 1\n",
           "ipsnat_nat_ports_in_use{nat_address=\"2001:db8:66::5\"} 2\n",
           "ipsnat_nat_ports_in_use{nat_address=\"2001:db8:66::6\"} 1\n",
           "ipsnat_nat_port_range_use_ratio{nat_address=\"2001:db8:66::5\"} 0.25\n",
           "ipsnat_nat_busiest_endpoint_ports{nat_address=\"2001:db8:66::5\"} 2\n",
           "ipsnat_policy_flows{reqid=\"2\"} 3\n",
           "ipsnat_policy_tracked_bytes{reqid=\"2\"} 1200\n",
       })
    EXPECT_NE(text.find(want), std::string::npos) << "missing: " << want << "in:\n" << text;
  EXPECT_EQ(text.find("ipsnat_active_flows6{proto=\"icmp\"}"), std::string::npos);
}

TEST(DatapathMetrics, NothingPinned) {
  metrics::Exposition e;
  daemon::add_datapath_metrics(e, {}, config::PortRange{});
  EXPECT_EQ(e.render(),
            "# HELP ipsnat_datapath_pinned 1 when the datapath's maps are pinned (ipsnat is attached)\n"
            "# TYPE ipsnat_datapath_pinned gauge\n"
            "ipsnat_datapath_pinned 0\n");
}

TEST(Http, RequestHead) {
  using S = metrics::RequestHead::State;
  auto r = metrics::parse_request_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.state, S::kComplete);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/metrics");
  EXPECT_EQ(metrics::parse_request_head("GET /metrics HTTP/1.0\r\n").state, S::kIncomplete);
  EXPECT_EQ(metrics::parse_request_head("GET /metrics HTTP/1.0\n\n").state, S::kComplete);
  EXPECT_EQ(metrics::parse_request_head("GARBAGE\r\n\r\n").state, S::kBad);
  EXPECT_EQ(metrics::parse_request_head("GET /metrics FTP/1\r\n\r\n").state, S::kBad);
  EXPECT_EQ(metrics::parse_request_head(std::string(5000, 'a')).state, S::kTooLarge);
  EXPECT_EQ(metrics::parse_request_head("GET / HTTP/1.0\r\n" + std::string(5000, 'a') + "\r\n\r\n").state, S::kTooLarge);
}

TEST(Http, Response) {
  EXPECT_EQ(metrics::http_response(404, "text/plain", "nope\n"),
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n");
  EXPECT_EQ(metrics::http_response(200, "t", "body", true),
            "HTTP/1.0 200 OK\r\nContent-Type: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\n");
}

TEST(Logging, JsonLinesAreValidJson) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("t", sink);
  logger.set_formatter(daemon::make_log_formatter(config::LogFormat::kJson));
  logger.warn("reload: \"{}\" failed\nsecond line\t\\", "x.toml");
  logger.flush();
  std::string line = out.str();
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per record";
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["msg"], "reload: \"x.toml\" failed\nsecond line\t\\");
  EXPECT_EQ(j["time"].get<std::string>().size(), std::string("2026-01-01T00:00:00.000Z").size());
}

TEST(DaemonState, JsonRoundTrip) {
  state::DaemonState s;
  s.pid = 42;
  s.running = true;
  s.devices = {"eth0", "ipsec0"};
  s.mirror.enabled = true;
  s.mirror.resyncs = 3;
  s.gc.evicted = 9;
  s.last_reload_error = "x.toml:3: port_range: expected";
  s.device_errors = {{"eth1", "no such device"}};
  s.device_replan_errors = {{"eth0", "saving /run/ipsnat/1@eth0.json: No space left on device"}};
  auto back = state::state_from_json(state::to_json(s));
  EXPECT_EQ(state::to_json(back), state::to_json(s));
  // Missing fields (an older writer) take defaults rather than failing.
  auto partial = state::state_from_json(nlohmann::json{{"pid", 7}});
  EXPECT_EQ(partial.pid, 7);
  EXPECT_FALSE(partial.running);
  EXPECT_THROW(state::state_from_json(nlohmann::json::array()), UserError);
}
