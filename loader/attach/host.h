#pragma once
// The one long-running ipsnat process per pin root: `ipsnat run` (daemon/daemon.h), which holds
// the mirror lock (pins/mirror_lock.h) for its whole life, so the lock's holder IS the host. When
// none runs, `ipsnat attach` starts one: `ipsnat --pin-root ROOT run --exit-when-detached
// --state-dir STATE_DIR`, double-forked (re-parented, its own session), its output appended to
// STATE_DIR/<id>.log of the device whose attach started it. Such a host publishes
// exit_when_detached in STATE_DIR/daemon.json: `ipsnat detach` of the last device stops it, and a
// user's `ipsnat run` takes its place; any other holder is left alone.
#include <cstdint>
#include <optional>
#include <string>

namespace ipsnat::attach {

struct Host {
  int pid = 0;
  bool started_by_attach = false;  // its published state says exit_when_detached
  std::string description;         // "pid 123 (ipsnat run ...)", for messages
};
// The holder of ROOT's mirror lock, if any. state_dir: where an attach-started host publishes.
std::optional<Host> running_host(const std::string& pin_root, const std::string& state_dir);

struct HostLaunch {
  std::string pin_root;
  std::string state_dir;
  std::string log;                  // appended to
  uint32_t limit_log_interval = 0;  // seconds, 0: the default
};
// Returns the host's pid (the grandchild's).
int start_host(const HostLaunch& how);

// SIGTERM to the host, then waits (up to 5 s) until it no longer holds ROOT's mirror lock and
// has been reaped. Returns false when it still holds the lock.
bool stop_host(const Host& host, const std::string& pin_root);

// ROOT's host stopped when attach started it (SIGKILL after a failed SIGTERM: the applier records
// each step before applying it, so a kill leaves nothing detach misses); any other left alone.
void stop_host_started_by_attach(const std::string& pin_root, const std::string& state_dir);

// The pid of ROOT's host: the running one, which takes a newly attached device over (its attach
// service re-plans every device recorded under its pin root), else one started as `how` says.
int ensure_host(const HostLaunch& how);

}  // namespace ipsnat::attach
