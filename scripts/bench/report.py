#!/usr/bin/python3
"""Turns results.csv of scripts/bench/run.sh into ratios.csv, summary.md and chart.png.

Per round and workload, ns/packet of each variant v gives the forwarding-cost ratio
    r(v) = (v - Z) / (A - Z)
(Z: packets dropped on entry to gw, so v - Z is what forwarding through gw adds). Pairing within a
round cancels most of the drift of a shared machine; min/median/max and the coefficient of
variation over rounds say how much is left.
"""
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WORKLOADS = {
    "udp-est": "UDP, 1,000 established flows",
    "udp-new": "UDP, new 5-tuple every packet",
    "tcp-cc": "TCP connect/close",
}
# Chart groups: (title, workload, variants). SPD size and conntrack fill are variants measured
# with the established-flow packets, in udp-est's slot of every round.
GROUPS = [
    ("UDP, 1,000\nestablished flows", "udp-est", ["B", "C"]),
    ("UDP, new 5-tuple\nevery packet", "udp-new", ["B", "C"]),
    ("TCP\nconnect/close", "tcp-cc", ["B", "C"]),
    ("SPD size\n(UDP established)", "udp-est", ["C", "C100", "C10000", "A10000"]),
    ("conntrack filled\n(UDP established)", "udp-est", ["C", "Cct"]),
]
VARIANT_NAMES = {
    "A": "A plain forwarding",
    "B": "B nftables snat",
    "C": "C ipsnat (1 policy)",
    "C100": "C ipsnat, 100 policies",
    "C10000": "C ipsnat, 10,000 policies",
    "A10000": "A plain forwarding, 10,000 policies",
    "Cct": "C ipsnat, conntrack filled",
    "Bm": "Bm nftables masquerade",
    "Cm": "Cm ipsnat --masquerade",
}
TARGETS = {  # (workload, variant) -> (limit, what)
    ("udp-est", "C"): 1.30,
    ("udp-new", "C"): 2.0,
    ("tcp-cc", "C"): 1.08,
}
REFERENCE = {  # measured earlier on this machine by the same method (issue 6)
    ("udp-est", "B"): 1.77, ("udp-new", "B"): 4.19, ("tcp-cc", "B"): 1.23,
    ("udp-est", "TC"): 1.25, ("udp-new", "TC"): 1.23, ("tcp-cc", "TC"): 1.05,
}


def stats(xs):
    xs = sorted(xs)
    mean = statistics.fmean(xs)
    cv = statistics.pstdev(xs) / mean if len(xs) > 1 and mean else 0.0
    return {"n": len(xs), "min": xs[0], "median": statistics.median(xs), "max": xs[-1], "cv": cv}


def main(out):
    out = Path(out)
    ns = defaultdict(dict)  # (round, workload) -> variant -> ns/packet
    for row in csv.DictReader(open(out / "results.csv")):
        pkts = int(row["packets"])
        if pkts > 0:
            ns[(int(row["round"]), row["workload"])][row["variant"]] = int(row["cpu_ns"]) / pkts

    ratios = defaultdict(list)  # (workload, variant) -> [ratio per round]
    raw = defaultdict(list)  # (workload, variant) -> [ns/packet per round]
    scale = defaultdict(list)  # C<n> cost / C cost, per round (SPD growth)
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
            if "C" in per and per["C"] > per["Z"]:
                for v in per:
                    if v.startswith("C") and v != "C":
                        scale[(wl, v)].append((per[v] - per["Z"]) / (per["C"] - per["Z"]))

    machine = (out / "machine.txt").read_text() if (out / "machine.txt").exists() else ""
    c_status = (out / "c_status.txt").read_text().strip() if (out / "c_status.txt").exists() else "?"
    extra = (out / "extra.md").read_text() if (out / "extra.md").exists() else ""
    md = ["# ipsnat benchmark: forwarding cost relative to plain forwarding", ""]
    md += ["```", machine.strip(), "```", ""]
    md += [f"Variant C (ipsnat): **{c_status}**.", ""]
    qualifier = "" if c_status.startswith("measured") else " (datapath only)"
    md += ["Ratio = (variant - Z) / (A - Z) per round, ns = CPU time of the sending thread per packet",
           "(per connection for TCP). Lower is better; A = 1 by definition.", ""]
    md += ["| workload | variant | ratio median | min | max | CV | ns/pkt median | rounds |",
           "|---|---|---|---|---|---|---|---|"]
    for wl in WORKLOADS:
        for v in ["A", "Z"] + sorted(v for (w_, v) in ratios if w_ == wl):
            if (wl, v) not in raw:
                continue
            nsm = statistics.median(raw[(wl, v)])
            if (wl, v) in ratios:
                s = stats(ratios[(wl, v)])
                md.append(f"| {wl} | {VARIANT_NAMES.get(v, v)} | **{s['median']:.2f}** | {s['min']:.2f} | "
                          f"{s['max']:.2f} | {100 * s['cv']:.1f}% | {nsm:.0f} | {s['n']} |")
            else:
                md.append(f"| {wl} | {VARIANT_NAMES.get(v, v) if v != 'Z' else 'Z drop on entry'} | "
                          f"{'1' if v == 'A' else '-'} | | | | {nsm:.0f} | {len(raw[(wl, v)])} |")
    md.append("")

    md += ["## Targets", "",
           "| check | target | measured (median, min-max) | nftables SNAT: reference / here | "
           "stateless TC rewrite (reference) | verdict |", "|---|---|---|---|---|---|"]
    for (wl, v), limit in TARGETS.items():
        ref_b = REFERENCE.get((wl, "B"))
        here_b = f"{stats(ratios[(wl, 'B')])['median']:.2f}" if (wl, "B") in ratios else "-"
        if (wl, v) in ratios:
            s = stats(ratios[(wl, v)])
            got = f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
            verdict = ("met" if s["median"] <= limit else "**missed**") + qualifier
        else:
            got, verdict = "not measured", "-"
        md.append(f"| {WORKLOADS[wl]} | <= {limit} | {got} | {ref_b} / {here_b} | "
                  f"{REFERENCE.get((wl, 'TC'))} | {verdict} |")
    key = ("udp-est", "C10000")
    if key in scale:
        s = stats(scale[key])
        verdict = "met" if s["median"] <= 1.05 else "**missed**"
        md.append(f"| cost at 10,000 policies / cost at 1 policy | <= 1.05 | {s['median']:.2f} "
                  f"({s['min']:.2f}-{s['max']:.2f}) | | | {verdict} |")
    else:
        md.append("| cost at 10,000 policies / cost at 1 policy | <= 1.05 | not measured | | | - |")
    md.append("")
    if scale:
        md += ["## SPD size and conntrack fill: cost against ipsnat with 1 policy and a small table", "",
               "| workload | variant | (variant - Z) / (C - Z) median | min | max | CV |", "|---|---|---|---|---|---|"]
        for (wl, v), xs in sorted(scale.items()):
            s = stats(xs)
            md.append(f"| {wl} | {VARIANT_NAMES.get(v, v)} | {s['median']:.3f} | {s['min']:.3f} | "
                      f"{s['max']:.3f} | {100 * s['cv']:.1f}% |")
        md.append("")
    if extra:
        md += [extra.strip(), ""]
    (out / "summary.md").write_text("\n".join(md))
    chart(out, ratios)
    print("\n".join(md))


def chart(out, ratios):
    groups = [g for g in GROUPS if any((g[1], v) in ratios for v in g[2])]
    if not groups:
        return
    colors = {"B": "#d62728", "C": "#1f77b4", "C100": "#6baed6", "C10000": "#08306b",
              "A10000": "#7f7f7f", "Cct": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(11, 5.8), dpi=110)
    x = 0.0
    ticks, labels, seen = [], [], set()
    for title, wl, vs in groups:
        vs = [v for v in vs if (wl, v) in ratios]
        start = x
        for v in vs:
            s = stats(ratios[(wl, v)])
            lbl = VARIANT_NAMES.get(v, v)
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
