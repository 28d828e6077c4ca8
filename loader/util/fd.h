#pragma once
// One owned file descriptor (socket, map, program, lock, pipe end): closed when the Fd is
// destroyed or reset, so no error path leaks it. Move-only; get() lends the number, release()
// hands ownership to the caller. An Fd holding -1 owns nothing (a failed open stays checkable).
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace ipsnat {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // The descriptor, no longer owned: the caller closes it.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the held descriptor and holds fd instead. errno survives, so an error path can
  // still report the failure that made it close.
  void reset(int fd = -1) noexcept {
    int old = std::exchange(fd_, fd);
    if (old < 0) return;
    int saved = errno;
    ::close(old);
    errno = saved;
  }

 private:
  int fd_ = -1;
};

}  // namespace ipsnat
