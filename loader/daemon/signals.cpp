#include "daemon/signals.h"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>

#include "util/error.h"

namespace ipsnat::daemon {

SignalFd::SignalFd(std::vector<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : signals) sigaddset(&mask, s);
  if (sigprocmask(SIG_BLOCK, &mask, &old_mask_) < 0) throw SysError("sigprocmask", errno);
  fd_.reset(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd_) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
    throw SysError("signalfd", err);
  }
}

SignalFd::~SignalFd() {
  fd_.reset();
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

int SignalFd::read_signal() {
  signalfd_siginfo info;
  ssize_t n = read(fd_.get(), &info, sizeof(info));
  return n == sizeof(info) ? static_cast<int>(info.ssi_signo) : 0;
}

}  // namespace ipsnat::daemon
