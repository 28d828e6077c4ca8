#!/usr/bin/python3
"""Slice plans for scripts/bench/vm_policy.sh, and its results.csv turned into summary.md.

  vm_report.py plan ROUND SLICES CONFIG...   one "pass position config" line per slice (run.py's plan)
  vm_report.py OUT_DIR                        summary.md

Per pass, ns/packet of each configuration c gives the cost ratio to plain IPsec
    r(c) = (c - Z) / (base - Z)
(Z: the LAN's packets dropped on entry to gw), and ipsnat / netfilter = (ipsnat - Z) / (nft - Z),
also against nftrt (nft with strongSwan's routing rule);
a round's ratio is the median over its passes and the statistics over rounds are report.py's
(estimator `paired`). Workload udp-est holds the interleaved slices; udp-est-seq, when measured,
one sender run per configuration and round (one pass: each configuration's runs summed).
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ESTIMATOR, ESTIMATORS, fmt, noise_section, read_passes, round_ns, round_ratio, stats  # noqa: E402

NAMES = {
    "Z": "Z: dropped on entry to gw (calibration)",
    "base": "plain IPsec, no NAT (LAN prefix in the policy)",
    "nft": "nftables SNAT + policy",
    "nftrt": "nftables SNAT + policy + charon's table 220 route and rule",
    "ipsnat": "ipsnat policy mode (`attach eth0`, its host process: routes in the main table, no rule)",
    "ipsnatr": "ipsnat policy mode (`attach eth0 --no-daemon`: routes in table 421 behind rule 210)",
}
RATIOS = [("nft", "base"), ("nftrt", "base"), ("ipsnat", "base"), ("ipsnatr", "base"), ("ipsnat", "nft"),
          ("ipsnat", "nftrt"), ("ipsnatr", "nft"), ("ipsnatr", "nftrt"), ("ipsnat", "ipsnatr")]
METHODS = {
    "udp-est": "interleaved slices, one sender run per round",
    "udp-est-seq": "one sender run per configuration (Z, base, nft and ipsnat swapped every round, base, Z)",
}


def per_round(rounds, workload, fn):
    """fn(passes) for every round of workload, rounds where it is None left out."""
    xs = [fn(passes) for (_, wl), passes in sorted(rounds.items()) if wl == workload]
    return [x for x in xs if x is not None]


def method_section(rounds, workload):
    if not any(wl == workload for _, wl in rounds):
        return []
    ests = list(ESTIMATORS) if workload == "udp-est" else [ESTIMATOR]  # one pass: all estimators agree
    md = [f"## {METHODS[workload]} (`{workload}`)", "",
          "| configuration | ns/packet per round: median (min-max, CV) |", "|---|---|"]
    md += [f"| {NAMES[c]} | {fmt(stats(xs), 0)} |" for c in NAMES
           if (xs := per_round(rounds, workload, lambda p, c=c: round_ns(p, c, ESTIMATOR)))]
    md += ["", "| ratio | " + " | ".join(f"{e}: median (min-max, CV)" for e in ests) + " |",
           "|---|" + "---|" * len(ests)]
    for a, b in RATIOS:
        cells = []
        for e in ests:
            xs = per_round(rounds, workload, lambda p, e=e: round_ratio(p, a, b, e))
            cells.append(fmt(stats(xs)) if xs else "-")
        md.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
    return md + [""]


def profile_section(out, rounds):
    """profile.txt (vm_policy.sh: "packets N", then "program runs run_time_ns" per ipsnat program
    that ran during one untimed run with bpf_stats on) beside the ns/packet ipsnat adds to nft and
    nftrt in the timed rounds (medians over rounds of the paired estimator's ns)."""
    path = out / "profile.txt"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    packets = next((int(w[1]) for w in lines if w[0] == "packets"), 0)
    progs = [(w[0], int(w[1]), int(w[2])) for w in lines if w[0] != "packets" and len(w) == 3]
    if not packets or not progs:
        return []
    md = ["## Where ipsnat's time goes", "",
          f"One untimed run of the ipsnat configuration ({packets} packets) with kernel.bpf_stats_enabled=1: "
          "each program's runs per packet and run time (bpftool prog show run_time_ns / run_cnt).", "",
          "| program | runs per packet | ns per run | ns per packet |", "|---|---|---|---|"]
    total = 0.0
    for name, runs, ns in sorted(progs):
        total += ns / packets
        md.append(f"| {name} | {runs / packets:.2f} | {ns / max(runs, 1):.0f} | {ns / packets:.0f} |")
    md.append(f"| all | | | {total:.0f} |")

    def median_ns(c):
        xs = per_round(rounds, "udp-est", lambda p: round_ns(p, c, ESTIMATOR))
        return stats(xs)["median"] if xs else None
    ip = median_ns("ipsnat")
    for other in ("nft", "nftrt"):
        o = median_ns(other)
        if ip is not None and o is not None:
            md.append(f"\nipsnat − {other}: {ip - o:.0f} ns/packet (medians over rounds); ipsnat's programs: {total:.0f}.")
    return md + [""]


def summary(out):
    out = Path(out)
    rounds = read_passes(out)
    meta = dict(line.split("=", 1) for line in (out / "machine.txt").read_text().splitlines() if "=" in line)
    md = ["# Policy mode on real ESP (VM)", "",
          f"{meta.get('date', '?')}; guest kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} vCPUs, "
          f"accelerator **{meta.get('accel', '?')}**; {meta.get('workload', '?')}; generated by "
          "scripts/bench/vm_policy.sh (method: docs/benchmarks.md, \"Policy mode on real ESP\").", "",
          "Under TCG every instruction is emulated: the absolute numbers mean nothing, only the ratios "
          "within this run do. Ratios are (c - Z) / (against - Z) per round, by report.py's estimators: "
          + "; ".join(f"{e}: {d}" for e, d in ESTIMATORS.items()) + f". The one that counts is **{ESTIMATOR}**.", ""]
    for wl in METHODS:
        md += method_section(rounds, wl)
    md += profile_section(out, rounds)
    md += noise_section(out)
    checks = (out / "checks.txt").read_text().splitlines()
    md += ["## Verified before timing", "", "10 flows, a warm-up packet and a timed one each, on real ESP:", ""]
    md += [f"- {line}" for line in checks] + [""]
    (out / "summary.md").write_text("\n".join(md))


def plan(rnd, slices, configs):
    from run import slice_plan  # run.py needs root only when it runs, not to be imported
    for k, pos, c in slice_plan(rnd, "vm-udp-est", configs, slices):
        print(k, pos, c)


if __name__ == "__main__":
    if sys.argv[1] == "plan":
        plan(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    else:
        summary(sys.argv[1])
