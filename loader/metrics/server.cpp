#include "metrics/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "metrics/exposition.h"
#include "metrics/http.h"
#include "util/error.h"

namespace ipsnat::metrics {

MetricsServer::MetricsServer(sys::EventLoop& loop, const config::ListenAddress& addr, Render render)
    : loop_(loop), addr_(addr), render_(std::move(render)) {
  listen_.reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listen_) throw SysError("socket", errno);
  int one = 1;
  setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(addr.port);
  sa.sin_addr.s_addr = htonl(addr.addr);
  if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    throw UserError("cannot listen for metrics on " + addr.str() + ": " + std::strerror(errno),
                    "is the address local and the port free?");
  if (listen(listen_.get(), 16) < 0) throw SysError("listen", errno);
  loop_.add(listen_.get(), EPOLLIN, [this](uint32_t) { accept_all(); });
  reaper_ = std::make_unique<sys::PeriodicTimer>(loop_, std::chrono::seconds(1), [this] { reap_stalled(); });
}

MetricsServer::~MetricsServer() {
  reaper_.reset();
  std::vector<int> fds;
  for (auto& [fd, _] : conns_) fds.push_back(fd);
  for (int fd : fds) close_connection(fd);
  loop_.remove(listen_.get());
}

void MetricsServer::accept_all() {
  for (;;) {
    Fd conn(accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        spdlog::warn("metrics: accept: {}", std::strerror(errno));
      return;
    }
    if (conns_.size() >= kMaxConnections) continue;  // overload: closed, the scraper retries next time
    int fd = conn.get();
    Connection& c = conns_[fd];
    c.socket = std::move(conn);
    c.deadline = std::chrono::steady_clock::now() + kDeadline;
    loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this, fd](uint32_t ev) { on_connection(fd, ev); });
  }
}

void MetricsServer::on_connection(int fd, uint32_t events) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Connection& c = it->second;
  if (c.draining) {
    // Closing with unread input would send RST and could destroy the response in flight
    // (an oversized request is exactly that case): read and drop until the peer closes.
    char sink[4096];
    ssize_t n;
    while ((n = read(fd, sink, sizeof(sink))) > 0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) close_connection(fd);
    return;
  }
  if (!c.out.empty()) {  // responding; only writability matters now
    if (events & (EPOLLERR | EPOLLHUP)) return close_connection(fd);
    return flush(fd, c);
  }
  char buf[1024];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      c.in.append(buf, n);
      if (c.in.size() > kMaxRequestHead) break;
      continue;
    }
    if (n == 0) break;  // peer finished sending; answer what we have (or close)
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return close_connection(fd);
  }
  RequestHead head = parse_request_head(c.in);
  switch (head.state) {
    case RequestHead::State::kIncomplete:
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) close_connection(fd);
      return;
    case RequestHead::State::kTooLarge:
      return respond(fd, c, http_response(431, "text/plain", "request too large\n"));
    case RequestHead::State::kBad:
      return respond(fd, c, http_response(400, "text/plain", "bad request\n"));
    case RequestHead::State::kComplete:
      break;
  }
  bool head_only = head.method == "HEAD";
  if (head.method != "GET" && !head_only)
    return respond(fd, c, http_response(405, "text/plain", "only GET\n"));
  if (head.path != "/metrics")
    return respond(fd, c, http_response(404, "text/plain", "not found; try /metrics\n", head_only));
  std::string body;
  try {
    body = render_();
  } catch (const std::exception& e) {
    spdlog::warn("metrics: collecting failed: {}", e.what());
    return respond(fd, c, http_response(503, "text/plain", std::string(e.what()) + "\n", head_only));
  }
  ++scrapes_;
  respond(fd, c, http_response(200, kContentType, body, head_only));
}

void MetricsServer::respond(int fd, Connection& c, std::string response) {
  c.out = std::move(response);
  c.sent = 0;
  c.deadline = std::chrono::steady_clock::now() + kDeadline;
  loop_.modify(fd, EPOLLOUT);
  flush(fd, c);
}

void MetricsServer::flush(int fd, Connection& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait for EPOLLOUT
    if (n < 0 && errno == EINTR) continue;
    return close_connection(fd);
  }
  // Lingering close: the deadline reaper bounds how long a peer may keep us draining.
  shutdown(fd, SHUT_WR);
  c.draining = true;
  loop_.modify(fd, EPOLLIN | EPOLLRDHUP);
}

void MetricsServer::close_connection(int fd) {
  loop_.remove(fd);
  conns_.erase(fd);  // closes the socket
}

void MetricsServer::reap_stalled() {
  auto now = std::chrono::steady_clock::now();
  std::vector<int> stalled;
  for (auto& [fd, c] : conns_)
    if (now > c.deadline) stalled.push_back(fd);
  for (int fd : stalled) close_connection(fd);
}

}  // namespace ipsnat::metrics
