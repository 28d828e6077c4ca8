#include "metrics/exposition.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace ipsnat::metrics {

namespace {

bool name_char(char c, bool first, bool colon) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

bool valid_name(const std::string& n, bool colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i)
    if (!name_char(n[i], i == 0, colon)) return false;
  return true;
}

}  // namespace

bool valid_metric_name(const std::string& name) { return valid_name(name, true); }
// "__" prefixed names are reserved for Prometheus itself.
bool valid_label_name(const std::string& name) { return valid_name(name, false) && name.rfind("__", 0) != 0; }

std::string escape_label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

MetricFamily& MetricFamily::add(uint64_t v, Labels labels) {
  for (const auto& [k, _] : labels)
    if (!valid_label_name(k)) throw std::invalid_argument("invalid label name \"" + k + "\"");
  samples.push_back({std::move(labels), std::to_string(v)});
  return *this;
}

MetricFamily& MetricFamily::add_double(double v, Labels labels) {
  for (const auto& [k, _] : labels)
    if (!valid_label_name(k)) throw std::invalid_argument("invalid label name \"" + k + "\"");
  std::string text;
  if (std::isnan(v)) text = "NaN";
  else if (std::isinf(v)) text = v > 0 ? "+Inf" : "-Inf";
  else {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    text = buf;
  }
  samples.push_back({std::move(labels), std::move(text)});
  return *this;
}

MetricFamily& Exposition::family(const std::string& name, const std::string& help, MetricType type) {
  if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name \"" + name + "\"");
  for (auto& f : families_)
    if (f.name == name) {
      if (f.type != type) throw std::invalid_argument("metric \"" + name + "\" registered with two types");
      return f;
    }
  families_.push_back({name, help, type, {}});
  return families_.back();
}

std::string Exposition::render() const {
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + f.name + (f.type == MetricType::kCounter ? " counter\n" : " gauge\n");
    for (const auto& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        out += '{';
        for (size_t i = 0; i < s.labels.size(); ++i) {
          if (i) out += ',';
          out += s.labels[i].first + "=\"" + escape_label_value(s.labels[i].second) + "\"";
        }
        out += '}';
      }
      out += ' ' + s.value + '\n';
    }
  }
  return out;
}

}  // namespace ipsnat::metrics
