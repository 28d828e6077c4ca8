#include "util/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace ipsnat {
namespace {

// The kernel is the oracle: fcntl(F_GETFD) fails with EBADF exactly when the number is closed.
bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

int open_null() {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  return fd;
}

TEST(Fd, ClosesWhatItOwnsWhenDestroyed) {
  int raw = open_null();
  {
    Fd fd(raw);
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(fd.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(Fd, MovingHandsOverOwnershipAndClosesTheTargetsOldFd) {
  int a = open_null(), b = open_null();
  Fd first(a);
  Fd second(b);
  second = std::move(first);
  EXPECT_FALSE(first.valid());
  EXPECT_EQ(second.get(), a);
  EXPECT_FALSE(is_open(b));  // the one second held before
  Fd third(std::move(second));
  EXPECT_EQ(third.get(), a);
  EXPECT_TRUE(is_open(a));
  third = Fd();
  EXPECT_FALSE(is_open(a));
}

TEST(Fd, ReleaseGivesUpOwnership) {
  int raw = open_null();
  {
    Fd fd(raw);
    EXPECT_EQ(fd.release(), raw);
    EXPECT_FALSE(fd.valid());
  }
  EXPECT_TRUE(is_open(raw));
  close(raw);
}

TEST(Fd, ResetClosesAndKeepsErrno) {
  int raw = open_null();
  Fd fd(raw);
  errno = ENOENT;
  fd.reset();
  EXPECT_EQ(errno, ENOENT);
  EXPECT_FALSE(is_open(raw));
  EXPECT_FALSE(fd);
  Fd failed(-1);  // a failed open owns nothing and closes nothing
  EXPECT_FALSE(failed.valid());
}

}  // namespace
}  // namespace ipsnat
