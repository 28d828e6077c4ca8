#pragma once
// Prometheus text exposition format 0.0.4, pure: families of samples in, the page out. The
// daemon's collectors fill an Exposition on every scrape; the HTTP server only serves its text.
#include <cstdint>
#include <string>
#include <deque>
#include <utility>
#include <vector>

namespace ipsnat::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge };

struct Sample {
  Labels labels;
  std::string value;  // already formatted: integers exactly, floats with full precision
};

struct MetricFamily {
  std::string name;  // ipsnat_..., [a-zA-Z_:][a-zA-Z0-9_:]*
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;

  MetricFamily& add(uint64_t v, Labels labels = {});
  MetricFamily& add_double(double v, Labels labels = {});
};

class Exposition {
 public:
  // Returns the family `name`, creating it; asking again for the same name returns the same
  // family so that several collectors may contribute samples to it. Throws std::invalid_argument
  // on a name or label name the format does not allow.
  MetricFamily& family(const std::string& name, const std::string& help, MetricType type);
  std::string render() const;
  const std::deque<MetricFamily>& families() const { return families_; }

 private:
  std::deque<MetricFamily> families_;  // deque: references from family() stay valid
};

bool valid_metric_name(const std::string& name);
bool valid_label_name(const std::string& name);
std::string escape_label_value(const std::string& v);
std::string escape_help(const std::string& v);

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace ipsnat::metrics
