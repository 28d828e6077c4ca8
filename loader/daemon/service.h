#pragma once
// The daemon's plug-in interface. Each long-running concern (the SPD mirror, conntrack GC, the
// datapath counters) is a Service; the daemon owns the event loop and calls into services:
//   fd() / on_readable()      a socket to watch (the mirror's NETLINK_XFRM socket)
//   period() / on_timer()     periodic work (conntrack GC every gc_interval)
//   apply(config)             at start and after every successful SIGHUP reload
//   collect(exposition)       contributes ipsnat_* samples to each metrics scrape
//   report(state)             contributes to the published daemon state (status, probes)
// Services are created in daemon/plugins.cpp; that is where other components plug in.
#include <chrono>
#include <string>

#include "config/config.h"
#include "metrics/exposition.h"
#include "state/daemon_state.h"

namespace ipsnat::daemon {

class Service {
 public:
  virtual ~Service() = default;
  virtual std::string name() const = 0;

  virtual int fd() const { return -1; }
  virtual void on_readable() {}

  // 0: no timer. Re-read after every apply(), so a reload can change it.
  virtual std::chrono::milliseconds period() const { return std::chrono::milliseconds(0); }
  virtual void on_timer() {}

  // May throw (UserError) to reject a configuration: at start the daemon exits, on reload the
  // failure is logged and counted.
  virtual void apply(const config::Config&) {}

  virtual void collect(metrics::Exposition&) const {}
  virtual void report(state::DaemonState&) const {}
};

}  // namespace ipsnat::daemon
