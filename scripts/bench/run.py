#!/usr/bin/python3
"""Per-packet forwarding cost of ipsnat against plain forwarding, nftables SNAT and masquerade and
two TC floors, as CPU time of the sending thread (method and how to read the results: docs/benchmarks.md).

  sudo scripts/bench/run.py [--rounds N] [--slices N] [--quick] [--out DIR] [--ipsnat BIN] [--publish]
                            [--max-load L] [--load-wait S] [--variants A,B,...]

Everything runs in namespaces this script creates (prefix ipsb<pid>-) and removes on every exit.
"""
import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab"))
from netns import CommandFailed, Lab, run, wait_for  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# Addresses of the bench topology (lab only; the product never hard-codes them).
LAN_HOST, LAN_GW, LAN_NET, LAN_LEN = "192.168.1.10", "192.168.1.1", "192.168.1.0", 24
UP_GW, UP_PEER = "200.2.2.2", "200.2.2.1"
NAT_ADDR, REMOTE = "10.20.30.2", "10.0.0.0/8"
REMOTE_HOST = "10.0.0.1"  # gateway.topo's address on dst's lo; all of REMOTE is local there
PROBE_DST = "10.9.9.9"  # the xfrm-lookup probe's destination: no workload sends there
# The tunnel of the masquerading gateways Bmr and Cmr: an IPsec policy to this net, where no
# workload sends, so that their gws hold what a gateway with a tunnel holds beside its masquerade.
ELSEWHERE = "172.31.0.0/16"
POLICY_PRIO = 379519
FLOWS = 1000
# gw's ip_local_port_range in Bm and Cm: fewer than 1024 ports above it, so attach --masquerade
# takes 1024..64511 (below it) for NAPT, room for a round's new flows to one destination.
MASQ_LOCAL_PORTS = "64512 65535"
SNAT_RULE = f'ip saddr {LAN_NET}/{LAN_LEN} ip daddr {REMOTE} oifname "u0" snat to {NAT_ADDR}'
MASQ_RULE = 'oifname "u0" masquerade'
NFT_CT = ("B", "PN", "PS", "Bm", "Bmr", "BmR", "BmT", "BmD")  # gws whose nftables NAT keeps netfilter conntrack entries
# Flushes netfilter's conntrack table of the namespace it runs in: IPCTNL_MSG_CT_DELETE without
# attributes over ctnetlink (what `conntrack -F` sends), exit status = the kernel's error.
CT_FLUSH = """import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
s.sendto(struct.pack("=IHHIIBBH", 20, (1 << 8) | 2, 1 | 4, 1, 0, 0, 0, 0), (0, 0))
raise SystemExit(-struct.unpack("=i", s.recv(4096)[16:20])[0])
"""
QUIET_LOAD = 1.5  # the summary calls a run quiet only below this (report.py), whatever --max-load was

# Variants: what each gw adds. A, Z (the ratio's two ends) are always measured.
VARIANTS = {
    "A": "plain forwarding",
    "B": "nftables SNAT",
    "C": "ipsnat route mode (attach u0 --mode route)",
    "Cb": "C with the --baseline binary (another build, e.g. the commit before a datapath change): "
          "what the change bought, paired with C in one run; not by default",
    "Ct": "C with its programs on u0 on tcx links instead of clsact filters (Linux 6.6+): what the hook "
          "mechanism costs, paired with C in one run; not by default",
    "F0": "floor: stateless TC rewrite",
    "F1": "floor: TC rewrite + one hash operation",
    "F2": "floor: TC rewrite + one entry per flow, looked up both ways (a NAT that admits only replies)",
    "F3": "floor: F2 with ipsnat's conntrack layout (two entries per flow of ipsnat_ct's size; not by default)",
    "F4": "floor: F2 with the NAT address looked up per egress packet (an LPM trie of destination prefixes; "
          "not by default)",
    "P": "ipsnat policy mode (attach u0, with its host process: routes in the main table, no rule)",
    "PR": "P attached with --no-daemon: its routes in table 421 behind rule 210",
    "PN": "nftables SNAT, same IPsec policy",
    "PS": "PN plus charon's routing (its table 220 route and rule)",
    "Bm": "nftables masquerade (oifname u0 masquerade)",
    "Cm": "ipsnat masquerade (attach u0 --masquerade, with its host process)",
    "Bmr": "Bm on a gw with a tunnel elsewhere (an IPsec policy to ELSEWHERE, charon's routing for it)",
    "BmR": "Bm plus a routing rule and nothing else (priority 210 lookup 421, an empty table); not by default",
    "BmT": "BmR with the rule selecting ELSEWHERE only (to ELSEWHERE lookup 421); not by default",
    "BmD": "BmR with the rule deleted again before the rounds (what detach leaves); not by default",
    "Cmr": "Cm on a gw with a tunnel elsewhere (the same IPsec policy: attach adds its LWT route, in the main table)",
    "SPD": "1 vs 10,000 policies (A<n>, C100, C<n>)",
    "CT": "1,000,000 tracked flows (Cct)",
    "Z": "drop on entry to gw (calibration)",
}
DEFAULT_VARIANTS = ["A", "B", "C", "F0", "F1", "F2", "P", "PR", "PN", "PS", "Bm", "Cm", "Bmr", "Cmr", "SPD", "CT", "Z"]
IPSEC_GW = ("C", "Cb", "Ct", "P", "PR", "PN", "PS")  # gws whose out-policy has a required ESP template
HELD = ("P", "PR", "PN", "PS")  # translated packets match that policy: no SA here, they end in the SA lookup
RULE_ONLY = ("BmR", "BmT", "BmD")  # Bm plus a routing rule alone (not by default)
MASQUERADING = ("Bm", "Cm", "Bmr", "Cmr", *RULE_ONLY)  # gws whose packets must reach dst from UP_GW


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def load1():
    return float(Path("/proc/loadavg").read_text().split()[0])


def xfrm_stat(lab, ns):
    out = lab.cmd(ns, "cat", "/proc/net/xfrm_stat")
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def slice_plan(rnd, workload, variants, slices):
    """Slice order of one round and workload as (pass, position, variant): a warm-up pass (pass 0,
    not used by report.py), then `slices` passes, each every variant once in an order of its own
    (seeded random, so a run can be repeated): a variant meets every position and every neighbour."""
    passes = [list(variants)]
    for k in range(1, slices + 1):
        order = list(variants)
        random.Random(f"{rnd}/{workload}/{k}").shuffle(order)
        passes.append(order)
    return [(k, pos, v) for k, order in enumerate(passes) for pos, v in enumerate(order)]


class Bench:
    def __init__(self, args, lab, work, out):
        self.a, self.lab, self.work, self.out = args, lab, work, out
        self.hosts = []  # (variant, env, pin root) of the attaches with a host process
        q = args.quick
        self.est_pkts = 20000 if q else 500000
        self.new_pkts = 4000 if q else 100000
        self.tcp_conns = 200 if q else 5000
        self.ct_fill = 100000 if q else 1000000
        self.spd_big = 1000 if q else 10000
        self.prof_runs = 10000 if q else 50000
        self.ct_max = 1024
        while self.ct_max < self.ct_fill + 16384:
            self.ct_max *= 2
        self.send_cpu = os.cpu_count() - 1
        self.other_cpus = f"0-{max(self.send_cpu - 1, 0)}"
        self.prefix = f"ipsb{os.getpid()}-"
        self.status = {}  # variant -> "measured ..." / "not measured: why"
        self.extra = []  # markdown for the summary
        self.checks = []  # lines for machine.txt: what the kernel showed per variant
        self.loud_rounds = 0  # rounds that started at or above --max-load (after waiting)
        self.peak_start = 0.0  # the highest load a round started with

    # -- tools ----------------------------------------------------------------------------------
    def build_tools(self):
        w = self.work
        cc = ["cc", "-O2", "-Wall", "-Wextra", "-Werror"]
        run([*cc, "-o", f"{w}/sender", f"{HERE}/sender.c"])
        run([*cc, "-o", f"{w}/progtime", f"{HERE}/progtime.c", "-lbpf"])
        run([*cc, "-o", f"{w}/tcxlink", f"{HERE}/tcxlink.c", "-lbpf"])
        run([*cc, f"-I{REPO}", "-o", f"{w}/ctfill", f"{HERE}/ctfill.c", "-lbpf"])
        arch = run(["cc", "-print-multiarch"]).strip()
        hexaddr = lambda a: "0x" + "".join(f"{int(x):02x}" for x in a.split("."))  # noqa: E731
        clang = ["clang", "-g", "-O2", "-target", "bpf", f"-I/usr/include/{arch}"]
        run([*clang, f"-DLAN_NET={hexaddr(LAN_NET)}", f"-DLAN_LEN={LAN_LEN}", f"-DNAT_ADDR={hexaddr(NAT_ADDR)}",
             f"-DLAN_HOST={hexaddr(LAN_HOST)}", "-c", f"{HERE}/rewrite.bpf.c", "-o", f"{w}/rewrite.o"])
        run([*clang, "-c", f"{HERE}/empty.bpf.c", "-o", f"{w}/empty.o"])

    def ns(self, v, role):
        return f"{self.prefix}{v}-{role}"

    def pin(self, v):
        return f"/sys/fs/bpf/{self.prefix}{v}"

    def sender(self, v, *args, check=True):
        """One sender run in v's src namespace: {cpu_ns, wall_ns, packets, errors}."""
        line = self.lab.cmd(self.ns(v, "src"), f"{self.work}/sender", *args, "--cpu", self.send_cpu,
                            timeout=120, check=check)
        return {k: int(x) for k, x in re.findall(r"(\w+)=(\d+)", line)}

    # -- topology -------------------------------------------------------------------------------
    def topology(self, v):
        """src s0 LAN_HOST --- l0 LAN_GW [gw] u0 UP_GW --- d0 UP_PEER dst (owns REMOTE on lo):
        scripts/lab/gateway.topo, the netns tests' gateway, with the bench's names and addresses.
        gw's default route is via dst, as a gateway's via its ISP: a main-table route for REMOTE
        itself would keep policy mode's routes behind rule 210 (docs/attach.md)."""
        lab = self.lab
        ns = lab.topology("gateway", {"lan": f"{v}-src", "gw": f"{v}-gw", "wan": f"{v}-dst"},
                          lan_dev="s0", gw_lan_dev="l0", uplink="u0", wan_dev="d0",
                          host=LAN_HOST, gw_lan=LAN_GW, lan_plen=LAN_LEN, gw_wan=UP_GW, wan_ip=UP_PEER,
                          wan_plen=24, remote=REMOTE_HOST, remote_net="default")
        src, gw, dst = ns["lan"], ns["gw"], ns["wan"]
        lab.ip(dst, "route", "add", "local", REMOTE, "dev", "lo")
        lab.ip(dst, "route", "add", f"{LAN_NET}/{LAN_LEN}", "via", UP_GW)
        lab.ip(dst, "route", "add", f"{NAT_ADDR}/32", "via", UP_GW)
        lab.sysctl(src, "net.ipv4.ip_local_port_range", "1024 65535")
        lab.static_neighbour(src, "s0", LAN_GW, gw, "l0")
        lab.static_neighbour(gw, "u0", UP_PEER, dst, "d0")
        lab.static_neighbour(dst, "d0", UP_GW, gw, "u0")
        lab.static_neighbour(gw, "l0", LAN_HOST, src, "s0")
        # Every gw holds the out-policy NAT_ADDR -> REMOTE, so the kernel's xfrm lookup runs in
        # every variant (probed per variant by xfrm_lookup_probe). With a required ESP template
        # where ipsnat must see an IPsec policy, and for the policy-mode pair; else without
        # templates (allow: B's translated packets pass it in netfilter's re-lookup).
        tmpl = ["tmpl", "src", UP_GW, "dst", UP_PEER, "proto", "esp", "reqid", 1, "mode", "tunnel"]
        base = v.rstrip("0123456789") if v != "Cct" else "C"
        has_tmpl = base in IPSEC_GW
        lab.ip(gw, "xfrm", "policy", "add", "src", f"{NAT_ADDR}/32", "dst", REMOTE, "dir", "out",
               "priority", POLICY_PRIO, *(tmpl if has_tmpl else []))
        if v in HELD:
            # The in/fwd pair an IKE daemon installs with it (both sides of the pair alike).
            rtmpl = ["tmpl", "src", UP_PEER, "dst", UP_GW, "proto", "esp", "reqid", 1, "mode", "tunnel"]
            for d in ("in", "fwd"):
                lab.ip(gw, "xfrm", "policy", "add", "src", REMOTE, "dst", f"{NAT_ADDR}/32", "dir", d,
                       "priority", POLICY_PRIO, *rtmpl)
        lab.spawn(dst, f"{self.work}/sender", "sink-udp", "--port", 9, cpus=self.other_cpus)
        lab.spawn(dst, f"{self.work}/sender", "sink-tcp", "--port", 80, cpus=self.other_cpus)

    def add_policies(self, v, n):
        """N-1 further out-policies as a hub with many sites has them: per site 10.A.0.0/16, /24s
        inside it and /28s inside those, each with its own virtual source and an ESP template,
        strongSwan-like priorities (more specific = smaller value). No destination is covered by
        more than 4 translating policies; none covers a benchmark flow."""
        lines = []
        for k in range(1, n):
            a, b = 3 + (k // 250) % 250, k % 250
            tmpl = f"tmpl src {UP_GW} dst 200.3.{a}.{b} proto esp reqid {k + 1} mode tunnel"
            if b == 0:
                sel, prio = f"src 10.21.{a}.0/32 dst 10.{a}.0.0/16", POLICY_PRIO - 16 * 512
            elif b % 2:
                sel, prio = f"src 10.21.{a}.{b}/32 dst 10.{a}.{b}.0/24", POLICY_PRIO - 24 * 512
            else:
                sel, prio = f"src 10.22.{a}.{b}/32 dst 10.{a}.{b - 1}.16/28", POLICY_PRIO - 28 * 512
            lines.append(f"xfrm policy add {sel} dir out priority {prio} {tmpl}\n")
        if lines:
            path = self.lab.own_path(f"{self.work}/policies-{v}")
            Path(path).write_text("".join(lines))
            self.lab.ip(self.ns(v, "gw"), "-batch", path, timeout=300)

    # -- what each gw adds ----------------------------------------------------------------------
    def nft_nat(self, v, rule=SNAT_RULE):
        """One nftables postrouting NAT rule in v's gw: SNAT_RULE (B, PN, U) or MASQ_RULE (Bm)."""
        gw = self.ns(v, "gw")
        self.lab.cmd(gw, "nft", "-f", "-", stdin=f"""table ip ipsb_nat {{
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    {rule}
  }}
}}
""")
        # New-flow workloads create unreplied UDP entries; expire them well before the table is full.
        self.lab.sysctl(gw, "net.netfilter.nf_conntrack_udp_timeout", 10)

    def charon_routes(self, v, net=REMOTE):
        """The routing strongSwan's charon installs with an IPsec policy (install_routes, its
        default): the remote selector's route in table 220 behind `ip rule priority 220 lookup 220`.
        With any rule but the kernel's own the forwarding lookup walks the rules (local table, then
        220), where without one it is a single lookup in the merged local/main table; ipsnat's
        own rule 210 makes P walk them too (docs/attach.md)."""
        gw = self.ns(v, "gw")
        self.lab.ip(gw, "route", "add", net, "via", UP_PEER, "dev", "u0", "table", 220)
        self.lab.ip(gw, "rule", "add", "priority", 220, "lookup", 220)

    def tunnel_elsewhere(self, v):
        """What a gateway with a tunnel holds beside its masquerade (Bmr, Cmr): an IPsec policy
        NAT_ADDR -> ELSEWHERE with its in/fwd pair (reqid 2), and for Bmr charon's routing for it
        (charon_routes' table 220 and rule), for Cmr nothing more: attach adds its own."""
        gw = self.ns(v, "gw")
        tmpl = ["proto", "esp", "reqid", 2, "mode", "tunnel"]
        self.lab.ip(gw, "xfrm", "policy", "add", "src", f"{NAT_ADDR}/32", "dst", ELSEWHERE, "dir", "out",
                    "priority", POLICY_PRIO, "tmpl", "src", UP_GW, "dst", UP_PEER, *tmpl)
        for d in ("in", "fwd"):
            self.lab.ip(gw, "xfrm", "policy", "add", "src", ELSEWHERE, "dst", f"{NAT_ADDR}/32", "dir", d,
                        "priority", POLICY_PRIO, "tmpl", "src", UP_PEER, "dst", UP_GW, *tmpl)
        if v == "Bmr":
            self.charon_routes(v, ELSEWHERE)

    def placement_check(self, v, rule):
        """None when attach placed its routes in v's gw as the variant says (rule: in table 421
        behind rule 210; else in the main table with no rule: docs/attach.md "Where the routes
        go"), else why not."""
        gw = self.ns(v, "gw")
        rules = self.lab.ip(gw, "rule", "show")
        in_main = self.lab.ip(gw, "route", "show", "table", "main", "proto", 165)
        if rule and ("lookup 421" not in rules or in_main.strip()):
            return f"not measured: attach's routes are not behind rule 210 ({rules.strip()!r}; main: {in_main.strip()!r})"
        if not rule and ("lookup 421" in rules or "lwt_snat_xmit" not in in_main):
            return f"not measured: attach's routes are not in the main table ({rules.strip()!r}; main: {in_main.strip()!r})"
        return None

    def drop_on_entry(self, v):
        self.lab.cmd(self.ns(v, "gw"), "nft", "-f", "-", stdin="""table netdev ipsb_drop {
  chain in {
    type filter hook ingress device "l0" priority 0; policy drop;
  }
}
""")

    def tc_floor(self, v):
        """Attaches rewrite.bpf.c's programs on u0: F0 stateless, F1 with the hash operation on
        egress, F2 with one entry per flow looked up both ways, F3 with two of ipsnat_ct's size, F4 with
        F2's entry found through the NAT address of the destination (rw_route: REMOTE -> NAT_ADDR)."""
        gw, pin = self.ns(v, "gw"), self.lab.own_path(self.pin(v))
        os.makedirs(pin, exist_ok=True)
        run(["bpftool", "prog", "loadall", f"{self.work}/rewrite.o", pin, "pinmaps", f"{pin}/maps",
             "type", "classifier"])
        egress, ingress = {"F0": ("tc_rw_egress", "tc_rw_ingress"), "F1": ("tc_rw_hash_egress", "tc_rw_ingress"),
                           "F2": ("tc_rw_reply_egress", "tc_rw_reply_ingress"),
                           "F3": ("tc_rw_pair_egress", "tc_rw_pair_ingress"),
                           "F4": ("tc_rw_routed_egress", "tc_rw_reply_ingress")}[v]
        if v == "F4":
            net, length = REMOTE.split("/")
            key = struct.pack("<I", int(length)) + ipaddress.IPv4Address(net).packed
            value = ipaddress.IPv4Address(NAT_ADDR).packed
            run(["bpftool", "map", "update", "pinned", f"{pin}/maps/rw_route",
                 "key", "hex", *(f"{b:02x}" for b in key), "value", "hex", *(f"{b:02x}" for b in value)])
        self.lab.cmd(gw, "tc", "qdisc", "add", "dev", "u0", "clsact")
        for hook, prog in (("egress", egress), ("ingress", ingress)):
            self.lab.cmd(gw, "tc", "filter", "add", "dev", "u0", hook, "bpf", "direct-action", "pinned",
                         f"{pin}/{prog}")

    def ipsnat(self, v, *extra, host=False):
        """ipsnat attach u0 in v's gw, own pin root and state dir. With host, as attach is run by
        default: with its host process, which decides where policy mode's routes go (the main
        table where no other rule exists); stop_hosts() detaches it. Else with --no-daemon (the SPD
        is static here; conntrack is emptied by the script where a workload needs it). Cb runs
        the --baseline binary."""
        gw, pin = self.ns(v, "gw"), self.lab.own_path(self.pin(v))
        os.makedirs(pin, exist_ok=True)
        state = f"{self.work}/state-{v}"
        os.makedirs(state, exist_ok=True)
        env = ["env", f"IPSNAT_PIN_ROOT={pin}", f"IPSNAT_STATE_DIR={state}"]
        try:
            binary = self.a.baseline if v == "Cb" else self.a.ipsnat
            out = self.lab.cmd(gw, *env, binary, "--pin-root", pin, "attach", "u0",
                               *([] if host else ["--no-daemon"]), *extra, timeout=120)
        except (CommandFailed, OSError) as e:
            return f"not measured: 'ipsnat attach u0 {' '.join(extra)}' failed: {e}"
        if host:
            self.hosts.append((v, env, pin))
        Path(f"{self.work}/attach-{v}.log").write_text(out)
        return None

    def move_to_tcx(self, v):
        """Ct: the programs of ipsnat's clsact filters on u0 (handle and priority 0x1a5) go onto u0's
        tcx hooks (scripts/bench/tcxlink, links pinned beside v's maps) and the filters are deleted,
        so the same programs run through tcx_run instead of tc_run -> cls_bpf. None, or why not."""
        release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
        if release < (6, 6):
            return f"not measured: kernel {os.uname().release} has no tcx (Linux 6.6+)"
        gw = self.ns(v, "gw")
        ifindex = self.lab.ifindex(gw, "u0")
        for hook in ("ingress", "egress"):
            filters = json.loads(self.lab.cmd(gw, "tc", "-j", "filter", "show", "dev", "u0", hook))
            ids = {f["options"]["prog"]["id"] for f in filters
                   if f.get("pref") == 0x1a5 and "prog" in f.get("options", {})}
            if len(ids) != 1:
                return f"not measured: u0 {hook}: no single ipsnat filter (prio 0x1a5) to move ({filters})"
            self.lab.cmd(gw, f"{self.work}/tcxlink", ids.pop(), ifindex, hook, f"{self.pin(v)}/tcx-{hook}")
            self.lab.cmd(gw, "tc", "filter", "del", "dev", "u0", hook, "pref", 0x1a5)
            if json.loads(self.lab.cmd(gw, "tc", "-j", "filter", "show", "dev", "u0", hook)):
                return f"not measured: u0 {hook}: filters left after moving ipsnat's to tcx"
        return None

    def stop_hosts(self):
        """Detaches what ipsnat(host=True) attached, which stops its host process (deleting the
        namespace would not)."""
        for v, env, pin in self.hosts:
            try:
                self.lab.cmd(self.ns(v, "gw"), *env, self.a.ipsnat, "--pin-root", pin, "detach", "u0", timeout=60)
            except (CommandFailed, OSError) as e:
                log(f"{v}: detach failed: {e}")
        self.hosts.clear()

    def ct_map(self, v):
        found = list(Path(self.pin(v)).rglob("ipsnat_ct"))
        return str(found[0]) if found else None

    def flush_state(self, v):
        """Empties the table a workload fills: ipsnat's conntrack, the floors' hash maps, netfilter's
        conntrack of the nftables variants (ctnetlink flush in gw)."""
        floor_map = {"F1": "rw_flows", "F2": "rw_flows", "F3": "rw_pairs", "F4": "rw_flows"}.get(v)
        m = self.ct_map(v) if v[0] in "CP" else f"{self.pin(v)}/maps/{floor_map}" if floor_map else None
        if m:
            run([f"{self.work}/ctfill", "flush", m], timeout=120)
        if v in NFT_CT:
            gw = self.ns(v, "gw")
            self.lab.cmd(gw, "/usr/bin/python3", "-c", CT_FLUSH)
            left = int(self.lab.cmd(gw, "sysctl", "-n", "net.netfilter.nf_conntrack_count"))
            if left:
                raise CommandFailed(f"{v}: {left} netfilter conntrack entries left in gw after the flush")

    # -- what the kernel shows ------------------------------------------------------------------
    def fate(self, v):
        """What 10 packets from src become in v: translated (seen on dst from NAT_ADDR),
        masqueraded (from the uplink's address), untranslated (from the LAN host), held (the
        kernel's SA lookup found no state for them: XfrmOutNoStates in gw) or lost."""
        dst, gw = self.ns(v, "dst"), self.ns(v, "gw")
        sources = {"translated": NAT_ADDR, "masqueraded": UP_GW, "untranslated": LAN_HOST}
        counters = "".join(f"  counter {c} {{}}\n" for c in sources)
        rules = "".join(f"    udp dport 7 ip saddr {a} counter name {c}\n" for c, a in sources.items())
        self.lab.cmd(dst, "nft", "-f", "-", stdin=f"""table ip ipsb_check {{
{counters}  chain in {{
    type filter hook input priority 0; policy accept;
{rules}  }}
}}
""")
        before = xfrm_stat(self.lab, gw)
        self.sender(v, "udp", "--dport", 7, "--flows", 10, "--packets", 10)
        held = xfrm_stat(self.lab, gw)["XfrmOutNoStates"] - before["XfrmOutNoStates"]

        def count(name):
            out = self.lab.cmd(dst, "nft", "-j", "list", "counter", "ip", "ipsb_check", name)
            return json.loads(out)["nftables"][1]["counter"]["packets"]
        seen = {c: count(c) for c in sources}
        self.lab.cmd(dst, "nft", "delete", "table", "ip", "ipsb_check")
        for c, n in seen.items():
            if n >= 10:
                return c
        return "held" if held >= 10 else "lost"

    def xfrm_lookup_probe(self, v):
        """Proves the kernel's xfrm out-lookup runs on v's forward path: a block policy for the
        LAN -> PROBE_DST and 10 packets there; gw's XfrmOutPolBlock must rise by 10 (Z: 0)."""
        gw = self.ns(v, "gw")
        sel = ["src", f"{LAN_NET}/{LAN_LEN}", "dst", f"{PROBE_DST}/32", "dir", "out"]
        self.lab.ip(gw, "xfrm", "policy", "add", *sel, "priority", 1, "action", "block")
        before = xfrm_stat(self.lab, gw)["XfrmOutPolBlock"]
        self.sender(v, "udp", "--dport", 7, "--dst", PROBE_DST, "--flows", 10, "--packets", 10)
        blocked = xfrm_stat(self.lab, gw)["XfrmOutPolBlock"] - before
        self.lab.ip(gw, "xfrm", "policy", "delete", *sel)
        return blocked

    def acquires(self, v, packets=1000):
        """ACQUIRE messages the kernel sends while `packets` translated packets meet the policy
        without an SA (counted by `ip xfrm monitor acquire` in gw)."""
        log_path = self.lab.own_path(f"{self.work}/acquire-{v}.log")
        with open(log_path, "w") as f:
            mon = self.lab.spawn(self.ns(v, "gw"), "ip", "xfrm", "monitor", "acquire", stdout=f)
            time.sleep(0.5)
            self.sender(v, "udp", "--dport", 7, "--flows", 100, "--packets", packets)
            time.sleep(0.5)
            mon.terminate()
            mon.wait(timeout=5)
        return sum(1 for line in open(log_path) if line.startswith("acquire"))

    def optional_template_check(self):
        """What the kernel does with a template it may skip (`level use`), the other way to let
        policy mode's packets through without an SA: nftables SNAT (as PN) in a gw of its own
        (variant U, not timed). Returns a markdown paragraph."""
        v = "U"
        self.topology(v)
        gw = self.ns(v, "gw")
        sel = ["src", f"{NAT_ADDR}/32", "dst", REMOTE, "dir", "out"]
        tmpl = ["tmpl", "src", UP_GW, "dst", UP_PEER, "proto", "esp", "reqid", 1, "mode"]
        self.lab.ip(gw, "xfrm", "policy", "delete", *sel)
        try:
            self.lab.ip(gw, "xfrm", "policy", "add", *sel, "priority", POLICY_PRIO, *tmpl, "tunnel", "level", "use")
            tunnel = "accepted"
            self.lab.ip(gw, "xfrm", "policy", "delete", *sel)
        except CommandFailed as e:
            tunnel = f"refused ({str(e).rsplit(': ', 1)[-1]})"
        self.lab.ip(gw, "xfrm", "policy", "add", *sel, "priority", POLICY_PRIO, *tmpl, "transport", "level", "use")
        self.nft_nat(v)
        fate, acq = self.fate(v), self.acquires(v)
        return (f"Optional template (`level use`, variant U, not timed): in an out-policy with tunnel mode "
                f"{tunnel}; with transport mode nftables' translated packets were {fate} and 1,100 of them "
                f"(1,000 over 100 flows and the warm-up pass) raised {acq} ACQUIRE messages. ipsnat treats a "
                "policy with only optional templates as a bypass (no NAT), so P cannot use it: P and PN use a "
                "required template and end in the SA lookup.")

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, chosen):
        """Builds every chosen variant and checks what its packets become; returns the list of
        (workload-group, variant) to measure per round."""
        want = {"A": "untranslated", "B": "translated", "C": "translated", "Cb": "translated", "Ct": "translated", "F0": "translated",
                "F1": "translated", "F2": "translated", "F3": "translated", "F4": "translated", "P": "held", "PR": "held", "PN": "held", "PS": "held", "Z": "lost",
                **{v: "masqueraded" for v in MASQUERADING}}
        main = [v for v in ["A", "B", "C", "Cb", "Ct", "F0", "F1", "F2", "F3", "F4", "P", "PR", "PN", "PS", "Bm", "Cm", "Bmr", "Cmr", "BmR", "BmT", "BmD", "Z"]
                if v in chosen]
        spd, ct = [], []
        for v in main:
            self.topology(v)
        for v in main:
            err = None
            if v in ("B", "PN", "PS"):
                self.nft_nat(v)
                if v == "PS":
                    self.charon_routes(v)
            elif v in MASQUERADING:
                self.lab.sysctl(self.ns(v, "gw"), "net.ipv4.ip_local_port_range", MASQ_LOCAL_PORTS)
                if v in RULE_ONLY:  # what a routing rule alone costs, with or without a selector
                    sel = ["to", ELSEWHERE] if v == "BmT" else []
                    self.lab.ip(self.ns(v, "gw"), "rule", "add", "priority", 210, *sel, "lookup", 421)
                    if v == "BmD":  # and after it is gone: the kernel keeps walking the rules
                        self.lab.ip(self.ns(v, "gw"), "rule", "del", "priority", 210)
                if v in ("Bmr", "Cmr"):
                    self.tunnel_elsewhere(v)
                if v.startswith("Bm"):
                    self.nft_nat(v, MASQ_RULE)
                else:
                    err = self.ipsnat(v, "--masquerade", host=True) or (self.placement_check(v, False) if v == "Cmr" else None)
            elif v == "Z":
                self.drop_on_entry(v)
            elif v in ("F0", "F1", "F2", "F3", "F4"):
                self.tc_floor(v)
            elif v in ("C", "Cb", "Ct"):
                err = self.ipsnat(v, "--mode", "route") or (self.move_to_tcx(v) if v == "Ct" else None)
            elif v in ("P", "PR"):
                err = self.ipsnat(v, host=v == "P") or self.placement_check(v, v == "PR")
            self.status[v] = err or self.verify(v, want[v])
        for v in ("A", "Z"):
            if not self.status[v].startswith("measured"):
                raise SystemExit(f"run.py: variant {v} is unusable: {self.status[v]}")
        ok = lambda v: self.status.get(v, "").startswith("measured")  # noqa: E731
        if "SPD" in chosen:
            a_big = f"A{self.spd_big}"
            self.topology(a_big)
            self.add_policies(a_big, self.spd_big)
            self.status[a_big] = self.verify(a_big, "untranslated")
            spd.append(a_big)
            if ok("C"):
                for n in (100, self.spd_big):
                    v = f"C{n}"
                    self.topology(v)
                    self.add_policies(v, n)
                    self.status[v] = self.ipsnat(v, "--mode", "route") or self.verify(v, "translated")
                    spd.append(v)
        if "CT" in chosen and ok("C"):
            self.topology("Cct")
            self.status["Cct"] = (self.ipsnat("Cct", "--mode", "route", "--ct-max", self.ct_max)
                                  or self.verify("Cct", "translated"))
            if ok("Cct"):
                self.fill_ct("Cct")
            ct.append("Cct")
        for v in [*spd, *ct]:
            if not ok(v):
                self.extra.append(f"{v}: {self.status[v]}.")
        if ok("P") or ok("PN"):
            self.extra.append(
                f"Policy mode: ACQUIRE messages from gw while 1,100 translated packets (1,000 over 100 flows and "
                f"the warm-up pass) met "
                f"the policy without an SA: P {self.acquires('P') if ok('P') else '-'}, "
                f"PN {self.acquires('PN') if ok('PN') else '-'} (the kernel keeps one larval state per "
                "template endpoints for net.core.xfrm_acq_expires seconds and asks the key manager once "
                "for it, not per packet).")
            self.extra.append(self.optional_template_check())
        est = [v for v in main if v != "Z"] + spd + ct + ["Z"]
        return [v for v in est if ok(v)], [v for v in main if ok(v)]

    def verify(self, v, want):
        got = self.fate(v)
        blocked = self.xfrm_lookup_probe(v)
        expect_blocked = 0 if v == "Z" else 10
        self.checks.append(f"{v}: packets {got} (want {want}); xfrm out-lookup probe: {blocked} packets blocked "
                           "(10 timed + the sender's warm-up pass; XfrmOutPolBlock in gw)")
        if got != want:
            return f"not measured: its packets were {got}, not {want}"
        if blocked < expect_blocked:
            return f"not measured: the kernel's xfrm out-lookup did not run ({blocked} probe packets blocked, want >= 10)"
        return f"measured ({VARIANTS.get(v, v)})"

    def fill_ct(self, v):
        """Fills v's conntrack map to ct_fill entries or its capacity, whichever is smaller."""
        m = self.ct_map(v)
        info = lambda: json.loads(run(["bpftool", "-j", "map", "show", "pinned", m]))  # noqa: E731
        before = info()
        cap = before["max_entries"]
        want = min(self.ct_fill, cap - 4 * FLOWS)
        t0 = time.monotonic()
        run([f"{self.work}/ctfill", "fill", m, want], timeout=300)
        secs = time.monotonic() - t0
        after = info()
        self.extra += [
            "## Conntrack table filled", "",
            f"Variant Cct: ipsnat's `ipsnat_ct` (max_entries {cap}) filled with {want} entries ({want // 2} flows, "
            f"both directions) by scripts/bench/ctfill in {secs:.1f} s (`bpf_map_update_batch`, no packets) before "
            f"the rounds; the {FLOWS:,} measured flows come on top. Attached with `--ct-max {self.ct_max}` "
            "(preallocated).", "",
            "| | entries | memlock (bpftool) | bytes per slot |", "|---|---|---|---|",
            f"| empty | 0 | {before['bytes_memlock']} B | {int(before['bytes_memlock']) // cap} |",
            f"| filled | {want} | {after['bytes_memlock']} B | {int(after['bytes_memlock']) // cap} |", ""]

    # -- rounds ---------------------------------------------------------------------------------
    def wait_quiet(self):
        """Waits (bounded) until the 1-minute load average is below --max-load."""
        t0 = time.monotonic()
        quiet = wait_for(lambda: load1() < self.a.max_load, self.a.load_wait, interval=5)
        return bool(quiet), time.monotonic() - t0

    def new_base(self, rnd):
        """First new-flow tuple of round rnd (rounds + 1, + 2: the profile's and perf's runs): every
        variant's slices take their tuples from there on (sender.c), unique over the whole run."""
        return rnd * self.new_pkts * (self.a.slices + 1) // self.a.slices

    def measure(self, rnd, workload, variants, csv):
        """One sender process runs every variant's slices of this round and workload interleaved
        (sender.c --ns/--plan); each slice is a row of results.csv."""
        per = self.a.slices
        for v in variants:
            if v != "Cct":  # Cct's filled table is what it measures
                self.flush_state(v)  # every workload starts with no flows left by another
        if workload == "udp-est":
            args = ["udp", "--flows", FLOWS, "--packets", self.est_pkts // per]
        elif workload == "udp-new":
            args = ["udp", "--new", "--base", self.new_base(rnd), "--dst", "10.1.0.0", "--packets", self.new_pkts // per]
        else:
            args = ["tcp", "--dport", 80, "--count", self.tcp_conns // per, "--dst", f"10.{2 + rnd // 250}.{rnd % 250}.1"]
        plan = slice_plan(rnd, workload, variants, self.a.slices)
        for v in variants:
            # no SYN-ACK comes in Z and the held variants: the SYN dies in gw
            nowait = workload == "tcp-cc" and (v == "Z" or v in HELD)
            args += ["--ns-no-wait" if nowait else "--ns", f"/run/netns/{self.ns(v, 'src')}"]
        index = {v: j for j, v in enumerate(variants)}
        args += ["--plan", ",".join(str(index[v]) for _, _, v in plan), "--cpu", self.send_cpu]
        p = subprocess.run([f"{self.work}/sender", *map(str, args)], capture_output=True, text=True, timeout=900)
        lines = [dict((k, int(x)) for k, x in re.findall(r"(\w+)=(\d+)", line)) for line in p.stdout.splitlines()]
        if len(lines) != len(plan):
            raise CommandFailed(f"sender ran {len(lines)} of {len(plan)} slices of {workload} in round {rnd}: "
                                f"{p.stderr.strip()[:600]}")
        for (k, pos, v), r in zip(plan, lines):
            csv.write(f"{rnd},{workload},{v},{k},{pos},{r['packets']},{r['cpu_ns']},{r['wall_ns']},{r['errors']},"
                      f"{r['steal_ns']},{r['spin_ns']}\n")

    def rounds(self, est, others):
        t0 = time.monotonic()
        with open(self.out / "results.csv", "w") as csv, open(self.out / "rounds.csv", "w") as rcsv:
            csv.write("round,workload,variant,pass,position,packets,cpu_ns,wall_ns,errors,steal_ns,spin_ns\n")
            rcsv.write("round,load_start,load_end,waited_s,quiet\n")
            for rnd in range(1, self.a.rounds + 1):
                quiet, waited = self.wait_quiet()
                start = load1()
                if not quiet:
                    log(f"round {rnd}: load {start:.2f} still >= {self.a.max_load} after {waited:.0f} s; running anyway")
                self.measure(rnd, "udp-est", est, csv)
                for w in ("udp-new", "tcp-cc"):
                    self.measure(rnd, w, others, csv)
                csv.flush()
                rcsv.write(f"{rnd},{start:.2f},{load1():.2f},{waited:.0f},{int(quiet)}\n")
                self.loud_rounds += not quiet
                self.peak_start = max(self.peak_start, start)
                rcsv.flush()
                log(f"round {rnd}/{self.a.rounds} done ({time.monotonic() - t0:.0f} s, load {load1():.2f})")

    # -- profile of C ---------------------------------------------------------------------------
    def attached_programs(self, v):
        progs = []
        for ns in json.loads(self.lab.cmd(self.ns(v, "gw"), "bpftool", "-j", "net", "show")):
            for kind in ("tc", "tcx"):
                for e in ns.get(kind, []):
                    progs.append((e.get("id") or e.get("prog_id"), e.get("name", "?").split(":")[0], e.get("devname", "?"),
                                  e.get("kind", "?")))
        return sorted(set(progs))

    def prog_stats(self, pid):
        p = json.loads(run(["bpftool", "-j", "prog", "show", "id", pid]))
        return p.get("run_time_ns", 0), p.get("run_cnt", 0)

    def profile(self, v="C"):
        progs = self.attached_programs(v)
        md = ["## Profile of variant C", "",
              "Programs attached in gw: " + ", ".join(f"{n} (id {i}, {d} {k})" for i, n, d, k in progs) + ".", "",
              "Run time per invocation with real traffic (`bpftool prog show` run_time_ns / run_cnt with "
              "kernel.bpf_stats_enabled=1, during one extra, unrecorded sender run per workload):", "",
              "| workload | program | invocations | ns per invocation | sender ns/packet in that run |",
              "|---|---|---|---|---|"]
        old = Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip()
        run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"])
        try:
            for w in ("udp-est", "udp-new"):
                if w == "udp-new":
                    self.flush_state(v)
                before = {i: self.prog_stats(i) for i, *_ in progs}
                args = (["udp", "--flows", FLOWS, "--packets", self.est_pkts] if w == "udp-est" else
                        ["udp", "--new", "--base", self.new_base(self.a.rounds + 1), "--dst", "10.1.0.0",
                         "--packets", self.new_pkts])
                r = self.sender(v, *args)
                for i, name, *_ in progs:
                    t1, c1 = self.prog_stats(i)
                    t0, c0 = before[i]
                    if c1 > c0:
                        md.append(f"| {w} | {name} | {c1 - c0} | {(t1 - t0) // (c1 - c0)} | "
                                  f"{r['cpu_ns'] // max(r['packets'], 1)} |")
        finally:
            run(["sysctl", "-qw", f"kernel.bpf_stats_enabled={old}"])
        md += ["", "Programs alone, BPF_PROG_TEST_RUN with a fresh 60-byte UDP frame per run (repeat = 1), "
               "ctx ifindex = u0, in gw's namespace (scripts/bench/progtime):", "", "```"]
        snat = next((i for i, n, *_ in progs if "snat_egress" in n), None)
        if snat is None:
            md += ["tc_snat_egress not found among the attached programs", "```", ""]
            self.extra += md
            return
        gw = self.ns(v, "gw")
        ifindex = self.lab.ifindex(gw, "u0")
        pt = lambda pid, *a: self.lab.cmd(gw, f"{self.work}/progtime", "--id", pid, "--ifindex", ifindex,  # noqa: E731
                                          "--runs", self.prof_runs, *a, timeout=300).strip()
        empty = self.lab.own_path(f"{self.pin(v)}/bench_empty")
        run(["bpftool", "prog", "load", f"{self.work}/empty.o", empty, "type", "classifier"])
        empty_id = json.loads(run(["bpftool", "-j", "prog", "show", "pinned", empty]))["id"]
        md.append(f"empty TC program (the floor of this timing):       {pt(empty_id)}")
        for f, label in (("F0", "stateless rewrite (F0's tc_rw_egress):           "),
                         ("F1", "rewrite + one hash op (F1, 1,000 flows):          ")):
            fid = next((i for i, n, *_ in self.attached_programs(f) if n.startswith("tc_rw_") and "ingress" not in n),
                       None) if self.status.get(f, "").startswith("measured") else None
            if fid:
                md.append(f"{label}{pt(fid, '--flows', FLOWS)}")
        self.flush_state(v)
        md += [f"destination not covered by the SPD (pass):         {pt(snat, '--flows', 1, '--dst', '11.0.0.1')}",
               f"one established flow:                              {pt(snat, '--flows', 1)}",
               f"1,000 established flows (first pass creates them): {pt(snat, '--flows', FLOWS)}",
               f"new 5-tuple every run:                             {pt(snat, '--new', '--dst', '10.3.0.0')}",
               " ".join(run(["bpftool", "prog", "show", "id", snat]).split()), "```", ""]
        self.flush_state(v)
        if self.a.quick:
            md.append("perf profile skipped in --quick mode.")
        elif shutil.which("perf"):
            for w in ("udp-est", "udp-new", "tcp-cc"):
                md += self.perf_diff(v, w)
        self.extra += md

    def perf_diff(self, v, w):
        """perf (cpu-clock samples of the sender) in A and in v; per-symbol difference in ns/packet."""
        ns_pkt = {}
        for x in ("A", v):
            if w != "udp-est":
                self.flush_state(x)
            args = (["udp", "--flows", FLOWS, "--packets", self.est_pkts] if w == "udp-est" else
                    ["udp", "--new", "--base", self.new_base(self.a.rounds + 2), "--dst", "10.1.0.0",
                     "--packets", self.new_pkts] if w == "udp-new" else
                    ["tcp", "--dport", 80, "--count", 4 * self.tcp_conns, "--dst", "10.1.250.1"])
            line = run(["perf", "record", "-q", "-e", "cpu-clock", "-o", f"{self.work}/perf-{x}.data", "--",
                        "nsenter", f"--net=/run/netns/{self.ns(x, 'src')}", f"{self.work}/sender", *map(str, args),
                        "--cpu", str(self.send_cpu)], timeout=300)
            r = {k: int(n) for k, n in re.findall(r"(\w+)=(\d+)", line)}
            ns_pkt[x] = r["cpu_ns"] // max(r["packets"], 1)
        diff = run(["/usr/bin/python3", f"{HERE}/perfdiff.py", f"{self.work}/perf-A.data", ns_pkt["A"],
                    f"{self.work}/perf-{v}.data", ns_pkt[v], 25], timeout=300)
        return [f"perf, {w}: sender task sampled (cpu-clock) in A and in {v}; each symbol's share of samples "
                "times the run's ns/packet (symbols of the JITed programs are bpf_prog_<tag>_<name>):", "",
                diff, ""]

    # -- outputs --------------------------------------------------------------------------------
    def machine_info(self, load_start):
        def revision(where):  # the commit of the git work tree holding `where`
            return subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty"], capture_output=True,
                                  text=True).stdout.strip() or "unknown"
        git = revision(REPO)
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                   "?")
        lines = [f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                 f"kernel: {os.uname().release}", f"nproc: {os.cpu_count()}", f"cpu: {cpu}",
                 f"load average at start: {load_start}",
                 f"load average at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
                 f"max load: {self.a.max_load} (a round waits up to {self.a.load_wait} s for the 1-minute load "
                 "average to fall below it, then runs anyway and says so)",
                 f"rounds started at or above max load: {self.loud_rounds} of {self.a.rounds}; highest load at a "
                 f"round's start: {self.peak_start:.2f}: "
                 + ("quiet run" if not self.loud_rounds and self.peak_start < QUIET_LOAD else "NOT a quiet run"),
                 f"rounds: {self.a.rounds}; per variant and round, in {self.a.slices} interleaved slices and a warm-up "
                 f"slice: udp-est packets: {self.est_pkts} over {FLOWS} flows; udp-new packets: {self.new_pkts}; "
                 f"tcp connections: {self.tcp_conns}; quick: {int(self.a.quick)}",
                 f"ipsnat: {git} ({self.a.ipsnat})"]
        if "Cb" in self.status:
            lines.append(f"baseline (Cb): {revision(Path(self.a.baseline).parent)} ({self.a.baseline})")
        lines += [f"variant {v}: {s}" for v, s in self.status.items()]
        lines += ["checks (before the rounds):"] + [f"  {c}" for c in self.checks]
        (self.out / "machine.txt").write_text("\n".join(lines) + "\n")
        (self.out / "status.json").write_text(json.dumps(self.status, indent=1) + "\n")
        (self.out / "extra.md").write_text("\n".join(self.extra) + "\n")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    build = Path(os.environ.get("IPSNAT_BUILD_DIR", "build"))
    build = build if build.is_absolute() else REPO / build
    p.add_argument("--rounds", type=int, help="rounds (default 8; --quick: 2)")
    p.add_argument("--slices", type=int,
                   help="slices per variant, workload and round, interleaved with the other variants' "
                   "(default 20; --quick: 4)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test of the script (2 rounds unless --rounds, small counts); numbers meaningless")
    p.add_argument("--out", help="results directory (default: $IPSNAT_BUILD_DIR/bench-results/<UTC time>)")
    p.add_argument("--ipsnat", default=str(build / "loader/ipsnat"), help="the ipsnat binary for C, P, Cm, Cct, C<n>")
    p.add_argument("--baseline", help="another ipsnat binary, measured as variant Cb beside C (--variants ...,Cb)")
    p.add_argument("--publish", action="store_true", help="copy the results to docs/bench/")
    p.add_argument("--max-load", type=float, default=1.5,
                   help="a round starts only while the 1-minute load average is below this (default 1.5)")
    p.add_argument("--load-wait", type=float, default=None,
                   help="seconds a round waits for that (default 900; --quick: 0)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help="comma-separated subset of " + ", ".join(f"{k} ({v})" for k, v in VARIANTS.items())
                   + "; A and Z are always included")
    a = p.parse_args()
    if a.rounds is None:
        a.rounds = 2 if a.quick else 8
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    if a.slices is None:
        a.slices = 4 if a.quick else 20
    if a.slices < 1:
        p.error("--slices must be >= 1")
    if a.load_wait is None:
        a.load_wait = 0 if a.quick else 900
    chosen = {v.strip() for v in a.variants.split(",") if v.strip()} | {"A", "Z"}
    unknown = chosen - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}")
    if ("Cb" in chosen) != bool(a.baseline):
        p.error("variant Cb and --baseline BIN go together")
    if a.baseline:
        a.baseline = str(Path(a.baseline).resolve())
    a.chosen = chosen
    a.out = Path(a.out or build / "bench-results" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    return a


def main():
    a = parse_args()
    if os.geteuid() != 0:
        sys.exit("run.py: needs root (namespaces, nftables, BPF)")
    for tool in ("nft", "bpftool", "cc", "clang", "tc"):
        if not shutil.which(tool):
            sys.exit(f"run.py: {tool} not found (scripts/install-deps.sh installs it)")
    a.out.mkdir(parents=True, exist_ok=True)
    a.out = a.out.resolve()
    started, load_start = time.monotonic(), " ".join(Path("/proc/loadavg").read_text().split()[:3])
    work = tempfile.mkdtemp(prefix="ipsnat-bench.")
    with Lab(f"ipsb{os.getpid()}-") as lab:
        lab.own_path(work)
        b = Bench(a, lab, work, a.out)
        try:
            b.build_tools()
            log(f"results in {a.out} (rounds {a.rounds}, quick {int(a.quick)}, max load {a.max_load})")
            est, others = b.setup(a.chosen)
            for v, s in b.status.items():
                log(f"{v}: {s}")
            log(f"setup done in {time.monotonic() - started:.0f} s")
            b.rounds(est, others)
            if b.status.get("C", "").startswith("measured"):
                b.profile("C")
            b.machine_info(load_start)
        finally:
            b.stop_hosts()
    subprocess.run(["/usr/bin/python3", f"{HERE}/report.py", str(a.out), str(a.max_load)], check=True,
                   stdout=subprocess.DEVNULL, timeout=300)
    if a.publish:
        dest = REPO / "docs/bench"
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("results.csv", "ratios.csv", "rounds.csv", "summary.md", "chart.png", "machine.txt"):
            if (a.out / f).exists():
                shutil.copy(a.out / f, dest / f)
        log("published to docs/bench/")
    log(f"done in {time.monotonic() - started:.0f} s: {a.out}/summary.md")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
