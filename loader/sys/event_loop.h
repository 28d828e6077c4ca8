#pragma once
// One epoll instance multiplexing every file descriptor of the daemon: the signalfd, the SPD
// mirror's netlink socket, timerfds for periodic work, the metrics listener and its connections.
// Single-threaded: handlers run one at a time, so the daemon's state needs no locks.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "util/fd.h"

namespace ipsnat::sys {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches fd for `events` (EPOLLIN, EPOLLOUT...). The loop does not own fd.
  void add(int fd, uint32_t events, Handler handler);
  void modify(int fd, uint32_t events);
  // Safe to call from inside a handler, also for the fd being handled.
  void remove(int fd);

  // Runs until stop(); returns after the handler that called stop() finishes.
  void run();
  void stop() { running_ = false; }

 private:
  Fd epfd_;
  bool running_ = false;
  // shared_ptr so a handler that removes itself is not destroyed while it runs.
  std::unordered_map<int, std::shared_ptr<Handler>> handlers_;
};

// A periodic timerfd registered with a loop; the callback runs every `period` (missed expiries
// coalesce into one call). Removing itself from the loop when destroyed.
class PeriodicTimer {
 public:
  PeriodicTimer(EventLoop& loop, std::chrono::milliseconds period, std::function<void()> fn);
  ~PeriodicTimer();
  PeriodicTimer(const PeriodicTimer&) = delete;
  PeriodicTimer& operator=(const PeriodicTimer&) = delete;
  void set_period(std::chrono::milliseconds period);

 private:
  EventLoop& loop_;
  Fd fd_;
  std::function<void()> fn_;
};

}  // namespace ipsnat::sys
