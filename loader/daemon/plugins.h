#pragma once
// Where the daemon's services come from. Each factory is a plug point for one component:
//   make_spd_mirror_service  the SPD mirror (NETLINK_XFRM socket -> model -> compiled maps)
//   make_ct_gc_service       conntrack housekeeping on a timer (timeouts from [timeouts])
//   make_attach_service      attaches/adopts the configured devices at start and on reload, and
//                            re-plans them and the devices attached by hand after SPD changes
// A factory returns nullptr while its component is not in this build; the daemon logs that and
// reports the component as disabled in its state file and metrics.
#include <functional>
#include <memory>
#include <string>

#include "daemon/service.h"

namespace ipsnat::daemon {

struct ServiceContext {
  std::string pin_root;
  // Called by the attach service once no device is attached under pin_root (none: keep running).
  std::function<void()> when_nothing_attached;
};

class SpdMirrorService;
std::unique_ptr<SpdMirrorService> make_spd_mirror_service(const ServiceContext& ctx);
std::unique_ptr<Service> make_ct_gc_service(const ServiceContext& ctx);
// Wires itself to the mirror: attach writes no SPD maps while the mirror is live, and re-plans
// the devices after each SPD change the mirror applied.
std::unique_ptr<Service> make_attach_service(const ServiceContext& ctx, SpdMirrorService* mirror);
std::unique_ptr<Service> make_datapath_metrics_service(const ServiceContext& ctx);
// Logs the resource limits (conntrack full, NAT ports exhausted, SPD larger than the maps).
std::unique_ptr<Service> make_limit_service(const ServiceContext& ctx);

}  // namespace ipsnat::daemon
