#include "daemon/plugins.h"

#include "daemon/attach_service.h"
#include "daemon/components.h"
#include "daemon/datapath_metrics.h"
#include "daemon/limit_service.h"

namespace ipsnat::daemon {

// The SPD mirror (mirror::SpdMirror): fd() is its NETLINK_XFRM socket, on_readable() applies the
// notifications and rewrites the maps, report() fills state.mirror.
std::unique_ptr<SpdMirrorService> make_spd_mirror_service(const ServiceContext& ctx) {
  return std::make_unique<SpdMirrorService>(ctx.pin_root);
}

// Conntrack housekeeping (pins::CtGc) every gc_interval; apply() writes the port range and the
// timeouts into ipsnat_cfg, report() fills state.gc.
std::unique_ptr<Service> make_ct_gc_service(const ServiceContext& ctx) {
  return std::make_unique<CtGcService>(ctx.pin_root);
}

// apply() attaches (or adopts the pinned state of) every [[device]], detaches removed ones, and
// nothing on exit; devices attached by hand are re-planned too (daemon/attach_service.h).
std::unique_ptr<Service> make_attach_service(const ServiceContext& ctx, SpdMirrorService* mirror) {
  auto a = std::make_unique<AttachService>(
      ctx.pin_root, [mirror] { return mirror && mirror->live(); },
      [mirror](std::vector<std::string> inside) {
        if (mirror) mirror->set_inferred_inside(std::move(inside));
      },
      ctx.when_nothing_attached);
  if (mirror) {
    mirror->set_on_change([raw = a.get()] { raw->replan(); });
    a->set_on_host_change([mirror] { mirror->refresh_local(); });
  }
  return a;
}

std::unique_ptr<Service> make_datapath_metrics_service(const ServiceContext& ctx) {
  return std::make_unique<DatapathMetrics>(ctx.pin_root);
}

}  // namespace ipsnat::daemon

namespace ipsnat::daemon {

std::unique_ptr<Service> make_limit_service(const ServiceContext& ctx) {
  return std::make_unique<LimitService>(ctx.pin_root);
}

}  // namespace ipsnat::daemon
