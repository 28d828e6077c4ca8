#!/usr/bin/python3
"""Turns results.csv of scripts/bench/run.py into ratios.csv, summary.md and chart.png.

  report.py OUT_DIR [MAX_LOAD]   (MAX_LOAD: the threshold of a quiet round, default 1.5)

Per round and workload, ns/packet of each variant v gives the forwarding-cost ratio
    r(v) = (v - Z) / (A - Z)
(Z: packets dropped on entry to gw, so v - Z is what forwarding through gw adds). Pairing within a
round cancels most of the drift of a shared machine; min/median/max and the coefficient of
variation over rounds say how much is left.
"""
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

WORKLOADS = {
    "udp-est": "UDP, 1,000 established flows",
    "udp-new": "UDP, new 5-tuple every packet",
    "tcp-cc": "TCP connect/close",
}
# Chart groups: (title, workload, variants). SPD size and conntrack fill are variants measured
# with the established-flow packets, in udp-est's slot of every round.
GROUPS = [
    ("UDP, 1,000\nestablished flows", "udp-est", ["F0", "F1", "B", "C"]),
    ("UDP, new 5-tuple\nevery packet", "udp-new", ["F0", "F1", "B", "C"]),
    ("TCP\nconnect/close", "tcp-cc", ["F0", "F1", "B", "C"]),
    ("policy mode,\nUDP established", "udp-est", ["PN", "P"]),
    ("policy mode,\nUDP new", "udp-new", ["PN", "P"]),
    ("masquerade,\nUDP established", "udp-est", ["Bm", "Cm"]),
    ("masquerade,\nUDP new", "udp-new", ["Bm", "Cm"]),
    ("masquerade,\nTCP connect/close", "tcp-cc", ["Bm", "Cm"]),
    ("SPD size\n(UDP established)", "udp-est", ["C", "C100", "C1000", "C10000", "A1000", "A10000"]),
    ("conntrack filled\n(UDP established)", "udp-est", ["C", "Cct"]),
]
VARIANT_NAMES = {
    "A": "A plain forwarding",
    "B": "B nftables snat",
    "C": "C ipsnat route mode (1 policy)",
    "F0": "F0 stateless TC rewrite",
    "F1": "F1 TC rewrite + one hash op",
    "P": "P ipsnat policy mode",
    "PN": "PN nftables SNAT + IPsec policy",
    "Bm": "Bm nftables masquerade",
    "Cm": "Cm ipsnat --masquerade",
    "Cct": "C ipsnat, conntrack filled",
}


def name(v):
    """A variant's name; A<n> and C<n> are plain forwarding and ipsnat with an SPD of n policies."""
    if v in VARIANT_NAMES:
        return VARIANT_NAMES[v]
    if v[0] in "AC" and v[1:].isdigit():
        return f"{VARIANT_NAMES[v[0]].split(' (')[0]}, {int(v[1:]):,} policies"
    return v
TARGETS = {  # (workload, variant) -> limit of the ratio to plain forwarding
    ("udp-est", "C"): 1.30,
    ("udp-new", "C"): 2.0,
    ("tcp-cc", "C"): 1.06,
}
# Relative targets: (workload, variant, against, limit) on (variant - Z) / (against - Z).
RELATIVE = [
    ("udp-est", "C<n>", "C", 1.05, "cost at {n} policies / at 1 policy"),
    ("udp-est", "Cct", "C", 1.10, "cost with the conntrack table filled (1,000,000; --quick 100,000) / small table"),
    ("udp-est", "P", "PN", 1.0, "policy mode / nftables + policy, UDP established"),
    ("udp-new", "P", "PN", 1.0, "policy mode / nftables + policy, UDP new flows"),
    ("tcp-cc", "P", "PN", 1.0, "policy mode / nftables + policy, TCP connect (SYN)"),
    ("udp-est", "Cm", "Bm", 1.0, "masquerade: ipsnat / nftables, UDP established"),
    ("udp-new", "Cm", "Bm", 1.0, "masquerade: ipsnat / nftables, UDP new flows"),
    ("tcp-cc", "Cm", "Bm", 1.0, "masquerade: ipsnat / nftables, TCP connect/close"),
]


PAIRS = {"P": "PN", "Cm": "Bm"}  # ipsnat variant -> the nftables variant it must beat


def reference(v):
    """The variant v is compared with directly (besides A): P with PN, Cm with Bm, C<n> and Cct
    with C (1 policy, small table); None for the others."""
    return PAIRS.get(v) or ("C" if v == "Cct" or (v[0] == "C" and v[1:].isdigit()) else None)


def stats(xs):
    xs = sorted(xs)
    mean = statistics.fmean(xs)
    cv = statistics.pstdev(xs) / mean if len(xs) > 1 and mean else 0.0
    return {"n": len(xs), "min": xs[0], "median": statistics.median(xs), "max": xs[-1], "cv": cv}


QUIET_LOAD = 1.5  # a machine is quiet below this 1-minute load average, whatever --max-load was


def load_section(out, max_load):
    """The load of every round and whether the run may be called quiet: every round started below
    both --max-load and QUIET_LOAD (the sender itself adds up to 1 while it runs)."""
    path = out / "rounds.csv"
    if not path.exists():
        return ["Load per round: not recorded (no rounds.csv): **not a quiet run**.", ""], False
    rows = list(csv.DictReader(open(path)))
    limit = min(max_load, QUIET_LOAD)
    loud = [r for r in rows if float(r["load_start"]) >= limit or r["quiet"] != "1"]
    peak = max((max(float(r["load_start"]), float(r["load_end"])) for r in rows), default=0.0)
    if rows and not loud:
        verdict = (f"**Quiet run**: every round started with the 1-minute load average below {limit} "
                   f"(highest seen at a round's start or end: {peak:.2f}).")
    else:
        verdict = (f"**Not a quiet run**: {len(loud)} of {len(rows)} rounds started with the 1-minute load average "
                   f"at or above {limit} (up to {peak:.2f}; rounds waited for a load below --max-load {max_load}). The machine was busy; these numbers cannot separate "
                   "variants that differ by less than the spread below.")
    md = ["## Load", "", verdict, "", f"| round | load at start | load at end | waited s | below --max-load {max_load} |",
          "|---|---|---|---|---|"]
    md += [f"| {r['round']} | {r['load_start']} | {r['load_end']} | {r['waited_s']} | "
           f"{'yes' if r['quiet'] == '1' else '**no**'} |" for r in rows]
    return md + [""], bool(rows) and not loud


def fmt(s, digits=2):
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f}, CV {100 * s['cv']:.1f}%)"


def main(out, max_load=1.5):
    out = Path(out)
    # A and Z are measured at both ends of every workload group (run.py): a variant's round value
    # is its CPU time over its packets, summed over its measurements in that round.
    sums = defaultdict(lambda: [0, 0])  # (round, workload, variant) -> [cpu_ns, packets]
    for row in csv.DictReader(open(out / "results.csv")):
        acc = sums[(int(row["round"]), row["workload"], row["variant"])]
        acc[0] += int(row["cpu_ns"])
        acc[1] += int(row["packets"])
    ns = defaultdict(dict)  # (round, workload) -> variant -> ns/packet
    for (rnd, wl, v), (cpu, pkts) in sums.items():
        if pkts > 0:
            ns[(rnd, wl)][v] = cpu / pkts

    ratios = defaultdict(list)  # (workload, variant) -> [ratio per round]
    raw = defaultdict(list)  # (workload, variant) -> [ns/packet per round]
    rel = defaultdict(list)  # (workload, variant, against) -> [(v - Z) / (against - Z) per round]
    with open(out / "ratios.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "workload", "variant", "ns_per_packet", "ratio_to_A"])
        for (rnd, wl), per in sorted(ns.items()):
            for v, x in per.items():
                raw[(wl, v)].append(x)
            if "A" not in per or "Z" not in per:
                continue
            base = per["A"] - per["Z"]
            for v, x in sorted(per.items()):
                r = (x - per["Z"]) / base if v not in ("A", "Z") and base > 0 else None
                if r is not None:
                    ratios[(wl, v)].append(r)
                w.writerow([rnd, wl, v, f"{x:.1f}", "" if r is None else f"{r:.3f}"])
            for v in per:
                against = reference(v)
                if against in per and per[against] > per["Z"]:
                    rel[(wl, v, against)].append((per[v] - per["Z"]) / (per[against] - per["Z"]))

    machine = (out / "machine.txt").read_text() if (out / "machine.txt").exists() else ""
    status = json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}
    extra = (out / "extra.md").read_text() if (out / "extra.md").exists() else ""
    load_md, quiet = load_section(out, max_load)
    title = "forwarding cost relative to plain forwarding" + ("" if quiet else " (busy machine, not a quiet run)")
    md = [f"# ipsnat benchmark: {title}", "", "```", machine.strip(), "```", ""] + load_md
    md += ["Ratio = (variant - Z) / (A - Z) per round, ns = CPU time of the sending thread per packet",
           "(per connection for TCP). Lower is better; A = 1 by definition. P and PN end in the kernel's SA lookup",
           "(no SA on this kernel), so their ratios to A leave out what A does after it; compare P with PN.", ""]
    md += ["| workload | variant | ratio median | min | max | CV | ns/pkt median | rounds |",
           "|---|---|---|---|---|---|---|---|"]
    for wl in WORKLOADS:
        for v in ["A", "Z"] + sorted(v for (w_, v) in ratios if w_ == wl):
            if (wl, v) not in raw:
                continue
            nsm = statistics.median(raw[(wl, v)])
            if (wl, v) in ratios:
                s = stats(ratios[(wl, v)])
                md.append(f"| {wl} | {name(v)} | **{s['median']:.2f}** | {s['min']:.2f} | "
                          f"{s['max']:.2f} | {100 * s['cv']:.1f}% | {nsm:.0f} | {s['n']} |")
            else:
                md.append(f"| {wl} | {name(v) if v != 'Z' else 'Z drop on entry'} | "
                          f"{'1' if v == 'A' else '-'} | | | | {nsm:.0f} | {len(raw[(wl, v)])} |")
    md.append("")

    md += ["## Targets", "", "Median (min-max, CV) over rounds; the floors and nftables measured in the same rounds.", "",
           "| check | target | ipsnat | nftables SNAT | stateless TC rewrite | TC rewrite + hash op | verdict |",
           "|---|---|---|---|---|---|---|"]
    got = lambda wl, v: fmt(stats(ratios[(wl, v)])) if (wl, v) in ratios else "not measured"  # noqa: E731
    for (wl, v), limit in TARGETS.items():
        verdict = "-"
        if (wl, v) in ratios:
            verdict = "met" if stats(ratios[(wl, v)])["median"] <= limit else "**missed**"
        md.append(f"| {WORKLOADS[wl]} | <= {limit} | {got(wl, v)} | {got(wl, 'B')} | {got(wl, 'F0')} | "
                  f"{got(wl, 'F1')} | {verdict} |")
    spd_sizes = sorted(int(v[1:]) for (_, v) in raw if v[0] == "C" and v[1:].isdigit())
    for wl, v, against, limit, what in RELATIVE:
        if v == "C<n>":  # the largest SPD measured (10,000 policies; 1,000 with --quick)
            v, what = f"C{spd_sizes[-1] if spd_sizes else 10000}", what.format(n=f"{spd_sizes[-1] if spd_sizes else 10000:,}")
        key = (wl, v, against)
        if key in rel:
            s = stats(rel[key])
            verdict = "met" if s["median"] <= limit else "**missed**"
            md.append(f"| {what} | <= {limit} | {fmt(s)} | | | | {verdict} |")
        else:
            md.append(f"| {what} | <= {limit} | not measured | | | | - |")
    md.append("")
    if not quiet:
        md += ["Verdicts of a busy run say nothing about the targets.", ""]
    if rel:
        md += ["## Against ipsnat with 1 policy and a small table (C), policy mode against nftables (PN), "
               "masquerade against nftables masquerade (Bm)", "",
               "| workload | variant | (variant - Z) / (against - Z) median | min | max | CV |",
               "|---|---|---|---|---|---|"]
        for (wl, v, against), xs in sorted(rel.items()):
            s = stats(xs)
            md.append(f"| {wl} | {name(v)} / {against} | {s['median']:.3f} | {s['min']:.3f} | "
                      f"{s['max']:.3f} | {100 * s['cv']:.1f}% |")
        md.append("")
    unmeasured = [f"- {v}: {s}" for v, s in status.items() if not s.startswith("measured")]
    if unmeasured:
        md += ["## Not measured", ""] + unmeasured + [""]
    if extra.strip():
        md += [extra.strip(), ""]
    if not chart(out, ratios):
        md += ["chart.png: not drawn (needs python3-matplotlib).", ""]
    (out / "summary.md").write_text("\n".join(md))
    print("\n".join(md))


def chart(out, ratios):
    """Draws chart.png when python3-matplotlib is installed; says whether it did."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = [g for g in GROUPS if any((g[1], v) in ratios for v in g[2])]
    if not groups:
        return False
    colors = {"B": "#d62728", "C": "#1f77b4", "F0": "#bdbdbd", "F1": "#969696", "P": "#9467bd", "PN": "#ff7f0e", "Bm": "#e377c2", "Cm": "#17becf", "C100": "#6baed6", "C10000": "#08306b",
              "A10000": "#7f7f7f", "C1000": "#08306b", "A1000": "#7f7f7f", "Cct": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(11, 5.8), dpi=110)
    x = 0.0
    ticks, labels, seen = [], [], set()
    for title, wl, vs in groups:
        vs = [v for v in vs if (wl, v) in ratios]
        start = x
        for v in vs:
            s = stats(ratios[(wl, v)])
            lbl = name(v)
            ax.bar(x, s["median"], 0.8, color=colors.get(v, "#999999"),
                   label=lbl if lbl not in seen else None)
            seen.add(lbl)
            ax.errorbar(x, s["median"], yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]],
                        fmt="none", ecolor="black", capsize=4, lw=1)
            ax.text(x, s["max"] + 0.04, f"{s['median']:.2f}", ha="center", va="bottom", fontsize=8)
            limit = TARGETS.get((wl, v)) if title.startswith(("UDP", "TCP")) else None
            if limit:
                ax.hlines(limit, x - 0.45, x + 0.45, colors="green", linestyles="--", lw=1.8,
                          label="ipsnat target" if "target" not in seen else None)
                seen.add("target")
            x += 1
        ticks.append((start + x - 1) / 2)
        labels.append(title)
        x += 0.8
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_ylabel("forwarding cost / plain forwarding  ((v - Z) / (A - Z))")
    ax.set_title("CPU time per packet of the sending thread, paired per round; "
                 "bars: median, whiskers: min-max over rounds", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "chart.png")
    return True


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".", float(sys.argv[2]) if len(sys.argv) > 2 else 1.5)
