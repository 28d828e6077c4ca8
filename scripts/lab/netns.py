"""The lab library for Python (scripts/bench/run.py, scripts/bench/xdp_flood.py): the topology files
scripts/lab/*.topo, which the shell side (scripts/lab/netns.sh) builds too (format:
scripts/lab/README.md), commands inside their namespaces, static neighbours, helper processes.

Everything a Lab creates (namespaces named PREFIX*, processes, bpffs pins, scratch files) is removed
when the `with Lab(...)` block ends, whatever ends it: an exception, Ctrl-C or SIGTERM (turned into
KeyboardInterrupt). Every command has a timeout, every wait a bound.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent


class CommandFailed(RuntimeError):
    pass


def run(cmd, timeout=60, check=True, stdin=None):
    """Runs cmd (a list); returns its stdout. Raises CommandFailed with stderr when it fails."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[:600]}")
    return p.stdout


def wait_for(predicate, seconds, interval=0.2):
    """Polls predicate() until it is true or `seconds` passed; returns its last value."""
    end = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Lab:
    def __init__(self, prefix):
        self.prefix = prefix
        self.namespaces = []
        self.procs = []
        self.paths = []

    def __enter__(self):
        self._old_term = signal.signal(signal.SIGTERM, _sigterm)
        return self

    def __exit__(self, *exc):
        # A second Ctrl-C during cleanup must not leave namespaces behind.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.close()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, self._old_term)
        return False

    # -- namespaces and links -------------------------------------------------------------------
    def topology(self, name, roles, **values):
        """Builds scripts/lab/NAME.topo: section [ROLE] in namespace PREFIX+roles[ROLE] (created, lo up,
        if it does not exist), ${KEY} from values, @ROLE the namespace of ROLE. Consecutive ip lines
        of a section run as one `ip -batch`, in file order with the sysctl lines (as lab_topology in
        scripts/lab/netns.sh does)."""
        path = LAB_DIR / f"{name}.topo"
        sections, role = [], None  # [(role, [(line number, line)])]
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            header = re.fullmatch(r"\[(\w+)\]", line)
            if header:
                role = header[1]
                sections.append((role, []))
            elif role is None:
                raise CommandFailed(f"{path}:{no}: outside a [ROLE] section")
            else:
                sections[-1][1].append((no, line))
        ns = {r: self.prefix + roles.get(r, r) for r, _ in sections}
        fresh = set()
        for r, full in ns.items():
            if not os.path.exists(f"/run/netns/{full}"):
                self.namespaces.append(full)  # first: a signal during `ip netns add` must not orphan it
                run(["ip", "netns", "add", full])
                fresh.add(full)

        def expand(no, line):
            def var(m):
                if m[1] not in values:
                    raise CommandFailed(f"{path}:{no}: ${{{m[1]}}} is not set")
                return str(values[m[1]])

            def role_ns(m):
                if m[1] not in ns:
                    raise CommandFailed(f"{path}:{no}: no section [{m[1]}]")
                return ns[m[1]]
            return re.sub(r"@(\w+)", role_ns, re.sub(r"\$\{([A-Za-z_]\w*)\}", var, line))

        for r, lines in sections:
            batch = []
            if ns[r] in fresh:
                batch.append("link set lo up")
                fresh.discard(ns[r])
            for no, line in lines + [(None, None)]:
                if (line is None or line.startswith("sysctl ")) and batch:
                    self.ip(ns[r], "-batch", "-", stdin="\n".join(batch) + "\n")
                    batch = []
                if line is None:
                    break
                line = expand(no, line)
                if line.startswith("sysctl "):
                    self.cmd(ns[r], "sysctl", "-qw", *line.split()[1:])
                else:
                    batch.append(line)
        return ns

    def ip(self, ns, *args, **kw):
        return run(["ip", "-n", ns, *map(str, args)], **kw)

    def cmd(self, ns, *args, **kw):
        """Runs a command in ns's network namespace only (unlike `ip netns exec`, /sys stays the
        host's, so bpffs pins resolve)."""
        return run(["nsenter", f"--net=/run/netns/{ns}", *map(str, args)], **kw)

    def mac(self, ns, dev):
        return json.loads(self.ip(ns, "-j", "link", "show", "dev", dev))[0]["address"]

    def static_neighbour(self, ns, dev, addr, peer_ns, peer_dev):
        """A permanent neighbour entry: no ARP inside a timed loop."""
        self.ip(ns, "neigh", "replace", addr, "lladdr", self.mac(peer_ns, peer_dev), "dev", dev, "nud", "permanent")

    def sysctl(self, ns, key, value):
        self.cmd(ns, "sysctl", "-qw", f"{key}={value}")

    def ifindex(self, ns, dev):
        return json.loads(self.ip(ns, "-j", "link", "show", "dev", dev))[0]["ifindex"]

    # -- processes and files --------------------------------------------------------------------
    def spawn(self, ns, *args, cpus=None, stdout=subprocess.DEVNULL):
        """Starts a long-running process in ns (killed on close)."""
        cmd = ["nsenter", f"--net=/run/netns/{ns}", *map(str, args)]
        if cpus:
            cmd = ["taskset", "-c", cpus, *cmd]
        p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def own_path(self, path):
        """A file or directory removed on close."""
        self.paths.append(path)
        return path

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=3)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
        mine = [line.split()[0] for line in listed.splitlines() if line.startswith(self.prefix)]
        for ns in dict.fromkeys([*reversed(self.namespaces), *mine]):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        for path in reversed(self.paths):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)
        self.procs, self.namespaces, self.paths = [], [], []
