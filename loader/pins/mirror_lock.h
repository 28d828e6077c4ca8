#pragma once
// One SPD mirror per pin root. The SPD maps are written in generations (mirror::SpdMapWriter keeps
// the active generation in memory), so two live writers on the same pins would overwrite each
// other's active generation. The mirroring process — `ipsnat run`, also when `ipsnat attach`
// started it (attach/host.h) — holds an exclusive flock on ROOT/mirror_lock (a directory: bpffs holds no regular files, and no names with a dot) for
// its whole life. The kernel drops the lock when the process dies, also on kill -9.
#include <optional>
#include <string>

#include "util/fd.h"

namespace ipsnat::pins {

class MirrorLock {
 public:
  struct Holder {
    int pid = 0;
    std::string cmdline;  // argv joined by spaces, "" when unreadable; for messages only
    std::string str() const;  // "pid 123 (ipsnat run --config x)"
  };

  // Non-blocking. nullopt when another process holds it. ROOT must exist (PinStore::prepare).
  static std::optional<MirrorLock> try_acquire(const std::string& pin_root);
  // The process holding the lock (from /proc/locks), if any.
  static std::optional<Holder> holder(const std::string& pin_root);
  static std::string path(const std::string& pin_root) { return pin_root + "/mirror_lock"; }

  MirrorLock(MirrorLock&&) noexcept = default;
  MirrorLock& operator=(MirrorLock&&) = delete;

 private:
  explicit MirrorLock(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

// Parses /proc/locks text for the holder of a flock on device MAJ:MIN inode INO (pure, unit-tested).
std::optional<int> lock_holder_pid(const std::string& proc_locks, unsigned dev_major, unsigned dev_minor,
                                   unsigned long ino);

}  // namespace ipsnat::pins
