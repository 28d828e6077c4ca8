#pragma once
// The metrics endpoint on the daemon's event loop: non-blocking HTTP/1.0, GET /metrics only
// (404 elsewhere, 405 for other methods), bounded request size, bounded connection count, and
// connections that stall are closed after a deadline so a slow client cannot pin memory.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "sys/event_loop.h"
#include "util/fd.h"

namespace ipsnat::metrics {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;  // the exposition text, built per scrape

  static constexpr size_t kMaxConnections = 32;
  static constexpr std::chrono::seconds kDeadline{5};

  MetricsServer(sys::EventLoop& loop, const config::ListenAddress& addr, Render render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const config::ListenAddress& address() const { return addr_; }
  uint64_t scrapes() const { return scrapes_; }

 private:
  struct Connection {
    Fd socket;
    std::string in;
    std::string out;
    size_t sent = 0;
    bool draining = false;  // response sent, write side shut: discard input until EOF
    std::chrono::steady_clock::time_point deadline;
  };
  void accept_all();
  void on_connection(int fd, uint32_t events);
  void respond(int fd, Connection& c, std::string response);
  void flush(int fd, Connection& c);
  void close_connection(int fd);
  void reap_stalled();

  sys::EventLoop& loop_;
  config::ListenAddress addr_;
  Render render_;
  Fd listen_;
  uint64_t scrapes_ = 0;
  std::unordered_map<int, Connection> conns_;
  std::unique_ptr<sys::PeriodicTimer> reaper_;
};

}  // namespace ipsnat::metrics
