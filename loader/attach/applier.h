#pragma once
// Executes an AttachPlan against the kernel and keeps the AttachState in step with it, so that
// detach — from any process — removes exactly what attach added.
#include <functional>
#include <string>

#include "attach/plan.h"
#include "attach/state.h"

namespace ipsnat::attach {

class Applier {
 public:
  using ProgFd = std::function<int(const std::string& prog_name)>;
  Applier(const StateStore& store, std::string id, AttachState& state)
      : store_(store), id_(std::move(id)), st_(state) {}

  // Brings the device to `plan`: steps already recorded are replaced in place (TC filters and
  // LWT routes get the new programs atomically), new ones are added (never over another tool's
  // object: EEXIST is an error), recorded ones the plan no longer has are removed.
  void apply(const AttachPlan& plan, const ProgFd& prog_fd);
  // Removes every recorded step, newest first; a step already gone is not an error. Removes the
  // clsact qdisc only if attach created it and no other filter is left on it.
  void remove_all();

 private:
  void add(const Step& s, const ProgFd& prog_fd, bool ours);
  void remove(const Step& s);
  // A hook on another device than the attached one (lo), which every attach in the network
  // namespace may share.
  void add_shared(const TcStep& v, int prog_fd);
  int remove_shared(const TcStep& v);
  // Before a TC step on ifindex: whether it has a clsact qdisc this attach did not create (the
  // hook need not look again). Where it has none, `created` (clsact_created, lo_clsact_created)
  // is recorded before the hook creates it (state.h).
  bool clsact_not_ours(bool& created, int ifindex);
  void save() { store_.save(id_, st_); }
  const StateStore& store_;
  std::string id_;
  AttachState& st_;
};

}  // namespace ipsnat::attach
