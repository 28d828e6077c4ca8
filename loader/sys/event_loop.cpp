#include "sys/event_loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>

#include "util/error.h"

namespace ipsnat::sys {

EventLoop::EventLoop() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
  if (!epfd_) throw SysError("epoll_create1", errno);
}

void EventLoop::add(int fd, uint32_t events, Handler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) throw SysError("epoll_ctl(ADD)", errno);
  handlers_[fd] = std::make_shared<Handler>(std::move(handler));
}

void EventLoop::modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) throw SysError("epoll_ctl(MOD)", errno);
}

void EventLoop::remove(int fd) {
  epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::run() {
  running_ = true;
  epoll_event events[32];
  while (running_) {
    int n = epoll_wait(epfd_.get(), events, 32, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError("epoll_wait", errno);
    }
    for (int i = 0; i < n && running_; ++i) {
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;  // removed by an earlier handler of this batch
      auto handler = it->second;
      (*handler)(events[i].events);
    }
  }
}

PeriodicTimer::PeriodicTimer(EventLoop& loop, std::chrono::milliseconds period, std::function<void()> fn)
    : loop_(loop), fd_(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)), fn_(std::move(fn)) {
  if (!fd_) throw SysError("timerfd_create", errno);
  set_period(period);
  loop_.add(fd_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations;
    if (read(fd_.get(), &expirations, sizeof(expirations)) == sizeof(expirations)) fn_();
  });
}

PeriodicTimer::~PeriodicTimer() {
  loop_.remove(fd_.get());
}

void PeriodicTimer::set_period(std::chrono::milliseconds period) {
  itimerspec spec{};
  spec.it_interval.tv_sec = period.count() / 1000;
  spec.it_interval.tv_nsec = (period.count() % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (timerfd_settime(fd_.get(), 0, &spec, nullptr) < 0) throw SysError("timerfd_settime", errno);
}

}  // namespace ipsnat::sys
