#pragma once
// The kernel's SPD over NETLINK_XFRM: subscribed to XFRMNLGRP_POLICY and XFRMNLGRP_EXPIRE
// before the first dump, so no change falls between the two. On ENOBUFS (events lost) the caller resyncs from a new dump.
#include <cstddef>
#include <cstdint>

#include "spd/model.h"

struct mnl_socket;

namespace ipsnat::xfrm {

class PolicySource {
 public:
  // rcvbuf: SO_RCVBUF in bytes (0 = the kernel default); tests make it small to force overruns.
  explicit PolicySource(int rcvbuf = 0);
  ~PolicySource();
  PolicySource(const PolicySource&) = delete;
  PolicySource& operator=(const PolicySource&) = delete;

  int fd() const;
  // Replaces the model with a fresh dump (events that arrive meanwhile are applied in order).
  void resync(spd::SpdModel& model);

  struct Drained {
    size_t events = 0;    // policy events applied
    bool changed = false; // the model changed
    bool overrun = false; // ENOBUFS: events were lost, resync needed
  };
  // Applies every queued notification without blocking.
  Drained drain(spd::SpdModel& model);

  // One dump, no subscription: for the CLI.
  static spd::SpdModel read_once();

 private:
  bool handle(const char* buf, size_t len, spd::SpdModel& model, Drained& d, uint32_t dump_seq, bool& done);
  mnl_socket* nl_ = nullptr;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
};

}  // namespace ipsnat::xfrm
