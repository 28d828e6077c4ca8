#!/usr/bin/env python3
"""Spoof flood against the uplink, with and without `ipsnat attach --xdp-prefilter`.

    sudo scripts/bench/xdp_flood.py [--ipsnat build/loader/ipsnat] [--packets N] [--rounds R]

Topology (scripts/lab/netns.py): atk a0 (WAN peer) --- u0 [gw] l0 --- s0 sink (LAN host). The gateway has
the in/fwd policies an IKE daemon installs for a remote prefix (ESP template, no SA) and ipsnat attached
in policy mode. The attacker sends UDP with sources in that remote prefix to the LAN host: cleartext the
kernel refuses in its fwd check (XfrmInTmplMismatch), or, with the pre-filter, the uplink's XDP drops.

Metric: CPU time of the sending thread per packet (sender.c). On veth the receiving side (the gateway's
XDP or its whole IPv4 input and forward path up to the policy check) runs in softirq on the sending
CPU, inline with the send: 1e9 / (ns per packet) is the flood rate one core carries, attacker and
gateway together (a lower bound for the gateway alone), and the difference between the variants is what
the pre-filter saves the gateway per spoof.
The oracle: the kernel's XfrmInTmplMismatch rises by the packets sent without the filter, the
drop-xdp-spoof counter by the packets sent with it.
"""
import argparse
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab"))
from netns import Lab, run  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REMOTE_NET, SPOOF_SRC = "172.28.0.0/16", "172.28.2.3"
LAN_NET, LAN_GW, LAN_HOST = "192.168.77.0/24", "192.168.77.1", "192.168.77.10"
UP_GW, UP_PEER = "203.0.113.2", "203.0.113.1"
VIRTUAL_IP = "100.64.7.2/32"
FLOWS = 100  # the sender's warm-up pass sends one packet per flow before the timed packets


class Flood:
    def __init__(self, lab, args, work):
        self.lab, self.args, self.work = lab, args, work
        self.cpu = str(os.cpu_count() - 1)
        p = lab.prefix
        self.atk, self.gw, self.sink = p + "atk", p + "gw", p + "sink"
        self.env = {"IPSNAT_PIN_ROOT": lab.own_path(f"/sys/fs/bpf/{p}pins"),
                    "IPSNAT_STATE_DIR": lab.own_path(f"{work}/state")}

    def topology(self):
        lab, atk, gw, sink = self.lab, self.atk, self.gw, self.sink
        # scripts/lab/gateway.topo: the LAN host is the sink, the WAN peer the attacker (it owns the
        # spoofed source on lo).
        lab.topology("gateway", {"lan": "sink", "gw": "gw", "wan": "atk"},
                     lan_dev="s0", gw_lan_dev="l0", uplink="u0", wan_dev="a0", host=LAN_HOST, gw_lan=LAN_GW,
                     lan_plen=24, gw_wan=UP_GW, wan_ip=UP_PEER, wan_plen=24, remote=SPOOF_SRC, remote_net="default")
        lab.ip(atk, "route", "add", LAN_NET, "via", UP_GW)
        for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.u0.rp_filter"):
            lab.sysctl(gw, key, 0)
        lab.static_neighbour(atk, "a0", UP_GW, gw, "u0")
        tmpl = ["tmpl", "src", UP_PEER, "dst", UP_GW, "proto", "esp", "reqid", 7, "mode", "tunnel"]
        for d in ("in", "fwd"):
            lab.ip(gw, "xfrm", "policy", "add", "src", REMOTE_NET, "dst", LAN_NET, "dir", d, "priority", 1000, *tmpl)
        otmpl = ["tmpl", "src", UP_GW, "dst", UP_PEER, "proto", "esp", "reqid", 7, "mode", "tunnel"]
        # The virtual IP an IKE daemon would get: ipsnat translates the LAN to it (attach needs a policy).
        lab.ip(gw, "xfrm", "policy", "add", "src", VIRTUAL_IP, "dst", REMOTE_NET, "dir", "out", "priority", 1000,
               *otmpl)
        lab.spawn(sink, f"{self.work}/sender", "sink-udp", "--port", 9)

    def ipsnat(self, *args):
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return self.lab.cmd(self.gw, "env", *env.split(), self.args.ipsnat, *args, timeout=120)

    def counter(self, name):
        m = re.search(rf"^\s*{re.escape(name)}\s+(\d+)", self.ipsnat("status"), re.M)
        return int(m.group(1)) if m else 0

    def mismatch(self):
        text = self.lab.cmd(self.gw, "cat", "/proc/net/xfrm_stat")
        return int(re.search(r"XfrmInTmplMismatch\s+(\d+)", text).group(1))

    def send(self, dst):
        line = self.lab.cmd(self.atk, f"{self.work}/sender", "udp", "--src", SPOOF_SRC, "--dst", dst, "--dport", 9,
                            "--flows", FLOWS, "--packets", self.args.packets, "--cpu", self.cpu, timeout=300)
        r = {k: int(x) for k, x in re.findall(r"(\w+)=(\d+)", line)}
        if r.get("errors"):
            raise RuntimeError(f"sender: {line.strip()}")
        return r["cpu_ns"] / max(r["packets"], 1)

    def variant(self, rounds, oracle):
        samples = []
        for _ in range(rounds):
            k0, x0 = self.mismatch(), self.counter("drop-xdp-spoof")
            samples.append(self.send(LAN_HOST))
            k, x = self.mismatch() - k0, self.counter("drop-xdp-spoof") - x0
            oracle.append((k, x))
        return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ipsnat", default=str(REPO / "build/loader/ipsnat"))
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ipsnat-xdpflood-") as work, Lab(f"ipsx{os.getpid()}-") as lab:
        run(["cc", "-O2", "-Wall", "-o", f"{work}/sender", f"{HERE}/sender.c"])
        f = Flood(lab, args, work)
        f.topology()
        f.ipsnat("attach", "u0", "--allow-empty", "--no-daemon", "-q")
        plain_oracle, xdp_oracle = [], []
        plain = f.variant(args.rounds, plain_oracle)
        f.ipsnat("attach", "u0", "--allow-empty", "--no-daemon", "-q", "--xdp-prefilter")
        xdp = f.variant(args.rounds, xdp_oracle)
        f.ipsnat("detach", "u0")
    print(f"load average at start {load:.1f} on {os.cpu_count()} CPUs"
          + (" (a loaded machine: the numbers are indicative only)" if load >= 1 else ""))
    print(f"{args.packets} spoofed UDP packets per round, {args.rounds} rounds, median CPU ns per packet of the"
          " sending thread (attacker and gateway together)")
    print("| variant | ns/packet | spoofs/s one core sends and the gateway drops |"
          " XfrmInTmplMismatch / drop-xdp-spoof per round |")
    print("|---|---|---|---|")
    for name, ns, oracle in (("kernel drops (no pre-filter)", plain, plain_oracle),
                             ("XDP pre-filter", xdp, xdp_oracle)):
        print(f"| {name} | {ns:.0f} | {1e9 / ns:,.0f} | {', '.join(f'{k}/{x}' for k, x in oracle)} |")
    print(f"the gateway's saving per spoof: {plain - xdp:.0f} ns")
    sent = args.packets + FLOWS
    bad = [o for o in plain_oracle if o != (sent, 0)] + [o for o in xdp_oracle if o != (0, sent)]
    if bad:
        print(f"oracle mismatch: expected {sent}/0 without and 0/{sent} with the filter", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
