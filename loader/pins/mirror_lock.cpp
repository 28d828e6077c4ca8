#include "pins/mirror_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::pins {

namespace {
std::string read_cmdline(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& c : raw)
    if (c == '\0') c = ' ';
  return raw;
}
}  // namespace

std::string MirrorLock::Holder::str() const {
  return "pid " + std::to_string(pid) + (cmdline.empty() ? "" : " (" + cmdline + ")");
}

std::optional<MirrorLock> MirrorLock::try_acquire(const std::string& pin_root) {
  std::string dir = path(pin_root);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw SysError("creating " + dir, errno);
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw SysError("opening " + dir, errno);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return std::nullopt;
    throw SysError("locking " + dir, errno);
  }
  return MirrorLock(std::move(fd));
}

// A line: "3: FLOCK  ADVISORY  WRITE 4242 00:1f:5678 0 EOF" (blocked waiters have "->").
std::optional<int> lock_holder_pid(const std::string& proc_locks, unsigned dev_major, unsigned dev_minor,
                                   unsigned long ino) {
  char want[64];
  std::snprintf(want, sizeof(want), "%02x:%02x:%lu", dev_major, dev_minor, ino);
  std::istringstream in(proc_locks);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("->") != std::string::npos) continue;
    std::istringstream f(line);
    std::string id, type, advisory, mode, pid, dev;
    if (!(f >> id >> type >> advisory >> mode >> pid >> dev) || type != "FLOCK") continue;
    if (dev != want) continue;
    try {
      return std::stoi(pid);
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

std::optional<MirrorLock::Holder> MirrorLock::holder(const std::string& pin_root) {
  struct stat st {};
  if (stat(path(pin_root).c_str(), &st) != 0) return std::nullopt;
  std::ifstream in("/proc/locks");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto pid = lock_holder_pid(text, major(st.st_dev), minor(st.st_dev), st.st_ino);
  if (!pid) return std::nullopt;
  return Holder{*pid, read_cmdline(*pid)};
}

}  // namespace ipsnat::pins
