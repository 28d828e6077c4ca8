#pragma once
// A fresh network namespace for one test, entered by the calling thread (setns), left and
// deleted in the destructor, also when the test fails.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

namespace ipsnat::test {

class NetnsGuard {
 public:
  explicit NetnsGuard(const std::string& tag) {
    std::random_device rd;
    name_ = "ipsnat-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 100000);
    if (std::system(("ip netns add " + name_).c_str()) != 0) throw std::runtime_error("ip netns add failed");
    orig_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (orig_ < 0 || fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) close(fd);
      std::system(("ip netns del " + name_).c_str());
      throw std::runtime_error("entering netns failed");
    }
    close(fd);
    sh("ip link set lo up");
  }
  ~NetnsGuard() {
    if (orig_ >= 0) {
      setns(orig_, CLONE_NEWNET);
      close(orig_);
    }
    std::system(("ip netns del " + name_ + " 2>/dev/null").c_str());
  }
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

  const std::string& name() const { return name_; }
  // Runs `ip -n NS <args>`-style shell commands inside the namespace.
  void sh(const std::string& cmd) const {
    std::string full = "nsenter --net=/run/netns/" + name_ + " sh -c '" + cmd + "'";
    if (std::system(full.c_str()) != 0) throw std::runtime_error("command failed: " + cmd);
  }

 private:
  std::string name_;
  int orig_ = -1;
};

}  // namespace ipsnat::test
