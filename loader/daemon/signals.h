#pragma once
// SIGHUP, SIGTERM and SIGINT as readable events on a signalfd: blocked for normal delivery so
// they only arrive through the event loop, never in the middle of a map update.
#include <csignal>
#include <vector>

#include "util/fd.h"

namespace ipsnat::daemon {

class SignalFd {
 public:
  explicit SignalFd(std::vector<int> signals);
  ~SignalFd();  // restores the previous signal mask
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;

  int fd() const { return fd_.get(); }
  // The next pending signal number, or 0 when none is pending.
  int read_signal();

 private:
  Fd fd_;
  sigset_t old_mask_;
};

}  // namespace ipsnat::daemon
