#include "daemon/plugins.h"

#include "daemon/datapath_metrics.h"

namespace ipsnat::daemon {

// Plug point for the spd branch's mirror class: wrap it in a Service whose fd() is the
// NETLINK_XFRM socket, on_readable() drains events into the model and recompiles the maps,
// and report() fills state.mirror (events, resyncs, last_resync, healthy).
std::unique_ptr<Service> make_spd_mirror_service(const ServiceContext&) { return nullptr; }

// Plug point for the dp branch's conntrack GC class: period() = config.gc_interval, on_timer()
// runs one pass with the configured timeouts, report() fills state.gc.
std::unique_ptr<Service> make_ct_gc_service(const ServiceContext&) { return nullptr; }

// Plug point for the attach branch: apply() attaches (or adopts the pinned state of) every
// [[device]] and detaches nothing on exit.
std::unique_ptr<Service> make_attach_service(const ServiceContext&) { return nullptr; }

std::unique_ptr<Service> make_datapath_metrics_service(const ServiceContext& ctx) {
  return std::make_unique<DatapathMetrics>(ctx.pin_root);
}

}  // namespace ipsnat::daemon
