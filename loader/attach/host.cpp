#include "attach/host.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "state/daemon_state.h"
#include "pins/mirror_lock.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::attach {

std::optional<Host> running_host(const std::string& pin_root, const std::string& state_dir) {
  auto holder = pins::MirrorLock::holder(pin_root);
  if (!holder) return std::nullopt;
  Host h{holder->pid, false, holder->str()};
  try {
    auto published = state::read_state_file(state_dir);
    h.started_by_attach = published && published->pid == h.pid && published->exit_when_detached;
  } catch (const std::exception&) {
    // Unreadable: not known to be attach's, so left alone.
  }
  return h;
}

int start_host(const HostLaunch& how) {
  std::vector<std::string> args = {"ipsnat", "--pin-root", how.pin_root, "run", "--exit-when-detached",
                                   "--state-dir", how.state_dir};
  if (how.limit_log_interval)
    args.insert(args.end(), {"--limit-log-interval", std::to_string(how.limit_log_interval) + "s"});
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw SysError("pipe", errno);
  Fd read_end(pipefd[0]), write_end(pipefd[1]);
  pid_t child = fork();
  if (child < 0) throw SysError("fork", errno);
  // The child ends in _exit or execv and runs no destructor: the
  // pipe's ends close on exec (O_CLOEXEC) or with the process.
  if (child == 0) {
    setsid();
    pid_t grandchild = fork();
    if (grandchild != 0) {
      (void)!write(write_end.get(), &grandchild, sizeof(grandchild));
      _exit(grandchild < 0 ? 1 : 0);
    }
    int devnull = open("/dev/null", O_RDONLY);
    int out = open(how.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(devnull, 0);
    if (out >= 0) dup2(out, 1), dup2(out, 2);
    // The host gets 0, 1 and 2 and nothing else: not the originals above, not whatever the
    // caller of attach left open without O_CLOEXEC (a shell's or a supervisor's descriptors).
    close_range(3, ~0U, 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  write_end.reset();  // or the read below waits for this process's own copy
  pid_t host = -1;
  (void)!read(read_end.get(), &host, sizeof(host));
  read_end.reset();
  waitpid(child, nullptr, 0);
  if (host <= 0) throw SysError("starting the ipsnat host process", ECHILD);
  return host;
}

bool stop_host(const Host& host, const std::string& pin_root) {
  auto holds = [&] {
    auto h = pins::MirrorLock::holder(pin_root);
    return h && h->pid == host.pid;
  };
  if (!holds()) return true;
  kill(host.pid, SIGTERM);
  // The lock goes with the process's files; the pid a moment later, once its parent reaped it.
  for (int i = 0; i < 125 && (holds() || kill(host.pid, 0) == 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  return !holds();
}

void stop_host_started_by_attach(const std::string& pin_root, const std::string& state_dir) {
  auto host = running_host(pin_root, state_dir);
  if (!host || !host->started_by_attach) return;
  if (!stop_host(*host, pin_root)) {
    kill(host->pid, SIGKILL);
    for (int i = 0; i < 50 && pins::MirrorLock::holder(pin_root); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
}

int ensure_host(const HostLaunch& how) {
  if (auto host = running_host(how.pin_root, how.state_dir)) return host->pid;
  return start_host(how);
}

}  // namespace ipsnat::attach
