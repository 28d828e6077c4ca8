#!/usr/bin/python3
"""Turns results.csv of scripts/bench/run.py into ratios.csv, summary.md and chart.png.

  report.py OUT_DIR [MAX_LOAD]   (MAX_LOAD: the threshold of a quiet round, default 1.5)

Per pass (one slice of every variant, interleaved: run.py), ns/packet of each variant v gives the
forwarding-cost ratio
    r(v) = (v - Z) / (A - Z)
(Z: packets dropped on entry to gw, so v - Z is what forwarding through gw adds); a round's ratio is
the median over its passes, so a slow phase of the vCPU that hits some slices and not others does
not move it. min/median/max and the coefficient of variation over rounds say how much noise is left;
the summary also gives two other estimators on the same slices (min, pooled) beside it.
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
    ("UDP, 1,000\nestablished flows", "udp-est", ["F0", "F1", "F2", "B", "Cb", "C", "Ct"]),
    ("UDP, new 5-tuple\nevery packet", "udp-new", ["F0", "F1", "F2", "B", "Cb", "C", "Ct"]),
    ("TCP\nconnect/close", "tcp-cc", ["F0", "F1", "F2", "B", "Cb", "C", "Ct"]),
    ("policy mode,\nUDP established", "udp-est", ["PN", "PS", "PR", "P"]),
    ("policy mode,\nUDP new", "udp-new", ["PN", "PS", "PR", "P"]),
    ("masquerade,\nUDP established", "udp-est", ["Bm", "Cm", "Bmr", "Cmr"]),
    ("masquerade,\nUDP new", "udp-new", ["Bm", "Cm", "Bmr", "Cmr"]),
    ("masquerade,\nTCP connect/close", "tcp-cc", ["Bm", "Cm", "Bmr", "Cmr"]),
    ("SPD size\n(UDP established)", "udp-est", ["C", "C100", "C1000", "C10000", "A1000", "A10000"]),
    ("conntrack filled\n(UDP established)", "udp-est", ["C", "Cct"]),
]
VARIANT_NAMES = {
    "A": "A plain forwarding",
    "B": "B nftables snat",
    "C": "C ipsnat route mode (1 policy)",
    "Cb": "Cb ipsnat route mode, the --baseline build",
    "Ct": "Ct ipsnat route mode, its programs on tcx links",
    "F0": "F0 stateless TC rewrite",
    "F1": "F1 TC rewrite + one hash op",
    "F2": "F2 TC rewrite + one entry per flow, looked up both ways",
    "F3": "F3 F2 with ipsnat's conntrack layout (two 120-byte elements per flow)",
    "F4": "F4 F2 with the NAT address looked up per egress packet (LPM trie)",
    "P": "P ipsnat policy mode",
    "PR": "PR ipsnat policy mode --no-daemon (table 421, rule 210)",
    "PN": "PN nftables SNAT + IPsec policy",
    "PS": "PS nftables SNAT + IPsec policy + charon's routing",
    "Bm": "Bm nftables masquerade",
    "Cm": "Cm ipsnat --masquerade",
    "Bmr": "Bmr nftables masquerade, gw with a tunnel elsewhere + charon's routing",
    "Cmr": "Cmr ipsnat --masquerade, gw with a tunnel elsewhere",
    "BmR": "BmR nftables masquerade + a routing rule",
    "BmT": "BmT nftables masquerade + a routing rule with a destination selector",
    "BmD": "BmD nftables masquerade, a routing rule added and deleted",
    "Cct": "C ipsnat, conntrack filled",
}


def name(v):
    """A variant's name; A<n> and C<n> are plain forwarding and ipsnat with an SPD of n policies."""
    if v in VARIANT_NAMES:
        return VARIANT_NAMES[v]
    if v[0] in "AC" and v[1:].isdigit():
        return f"{VARIANT_NAMES[v[0]].split(' (')[0]}, {int(v[1:]):,} policies"
    return v
TARGETS = {  # (workload, variant) -> limit of the ratio to plain forwarding, (v - Z) / (A - Z)
    ("udp-est", "C"): 1.30,
    ("udp-new", "C"): 2.0,
}
# (workload, variant) -> limit of the whole chain's ratio v / A: the TCP target is set on the whole
# connection (socket, handshake, close: the sender's own cost included), not on its forwarding cost.
WHOLE_TARGETS = {
    ("tcp-cc", "C"): 1.06,
}
# Relative targets: (workload, variant, against, limit) on (variant - Z) / (against - Z).
RELATIVE = [
    ("udp-est", "C<n>", "C", 1.05, "cost at {n} policies / at 1 policy"),
    ("udp-est", "Cct", "C", 1.10, "cost with the conntrack table filled (1,000,000; --quick 100,000) / small table"),
    ("udp-est", "P", "PN", 1.0, "policy mode / nftables + policy, UDP established"),
    ("udp-new", "P", "PN", 1.0, "policy mode / nftables + policy, UDP new flows"),
    ("tcp-cc", "P", "PN", 1.0, "policy mode / nftables + policy, TCP connect (SYN)"),
    ("udp-est", "P", "PS", 1.0, "policy mode / nftables + policy + charon's routing, UDP established"),
    ("udp-new", "P", "PS", 1.0, "policy mode / nftables + policy + charon's routing, UDP new flows"),
    ("tcp-cc", "P", "PS", 1.0, "policy mode / nftables + policy + charon's routing, TCP connect (SYN)"),
    ("udp-est", "P", "PR", 1.0, "policy mode: routes in the main table / in table 421 behind rule 210, UDP established"),
    ("udp-new", "P", "PR", 1.0, "policy mode: routes in the main table / in table 421 behind rule 210, UDP new flows"),
    ("tcp-cc", "P", "PR", 1.0, "policy mode: routes in the main table / in table 421 behind rule 210, TCP connect (SYN)"),
    ("udp-est", "Cm", "Bm", 1.0, "masquerade: ipsnat / nftables, UDP established"),
    ("udp-new", "Cm", "Bm", 1.0, "masquerade: ipsnat / nftables, UDP new flows"),
    ("tcp-cc", "Cm", "Bm", 1.0, "masquerade: ipsnat / nftables, TCP connect/close"),
    ("udp-est", "Cmr", "Bm", 1.0, "masquerade on a gw with a tunnel elsewhere: ipsnat / nftables without a tunnel, UDP established"),
    ("udp-new", "Cmr", "Bm", 1.0, "masquerade on a gw with a tunnel elsewhere: ipsnat / nftables without a tunnel, UDP new flows"),
    ("tcp-cc", "Cmr", "Bm", 1.0, "masquerade on a gw with a tunnel elsewhere: ipsnat / nftables without a tunnel, TCP connect/close"),
    ("udp-est", "Cmr", "Bmr", 1.0, "masquerade on a gw with a tunnel elsewhere: ipsnat / nftables with the same tunnel, UDP established"),
    ("udp-new", "Cmr", "Bmr", 1.0, "masquerade on a gw with a tunnel elsewhere: ipsnat / nftables with the same tunnel, UDP new flows"),
    ("tcp-cc", "Cmr", "Bmr", 1.0, "masquerade on a gw with a tunnel elsewhere: ipsnat / nftables with the same tunnel, TCP connect/close"),
]


# ipsnat variant -> the nftables variants it must beat: P (and PR, P's routes behind rule 210)
# against the netfilter recipe without and with the routing strongSwan's charon installs (PS), P
# against PR (what the main table saves), Cm against nftables masquerade, Cmr (a
# gw with a tunnel elsewhere) against nftables masquerade without and with the same tunnel (Bmr),
# C against Cb (the --baseline build: what a datapath change bought), Ct (C's programs on tcx links)
# against C (what the hook mechanism costs), C against F3 (ipsnat's logic over the two-entry
# layout it shares with F3), F3 against F2 (the layout's second, larger entry) and F4 against F2
# (the per-packet lookup of the NAT address that one entry per flow needs) and F3 (one entry and that
# lookup against two entries).
PAIRS = {"C": ("Cb", "F3"), "F3": ("F2",), "F4": ("F2", "F3"), "Ct": ("C",), "P": ("PN", "PS", "PR"), "PR": ("PN", "PS"), "Cm": ("Bm",), "Cmr": ("Bm", "Bmr")}


def references(v):
    """The variants v is compared with directly (besides A): P with PN and PS, Cm with Bm, C<n> and
    Cct with C (1 policy, small table); none for the others."""
    return PAIRS.get(v) or (("C",) if v == "Cct" or (v[0] == "C" and v[1:].isdigit()) else ())


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


ESTIMATORS = {
    "paired": "median over the round's passes of the ratio within each pass",
    "min": "each variant's fastest slice of the round",
    "pooled": "CPU time over packets of all the round's slices (one long measurement)",
}
ESTIMATOR = "paired"  # the one the tables, targets and chart use


def read_passes(out):
    """results.csv as (round, workload) -> [{variant: (cpu_ns, packets)} per pass], the warm-up
    pass (0) left out. A file without passes (one measurement per variant, A and Z twice) is one
    pass per round with a variant's measurements summed."""
    acc = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    for row in csv.DictReader(open(out / "results.csv")):
        k = int(row.get("pass") or 1)
        if k == 0 or int(row["packets"]) <= 0:
            continue
        cell = acc[(int(row["round"]), row["workload"])][k][row["variant"]]
        cell[0] += int(row["cpu_ns"])
        cell[1] += int(row["packets"])
    return {key: [dict(per[k]) for k in sorted(per)] for key, per in acc.items()}


def round_ns(passes, v, est):
    """v's ns/packet in one round by estimator est (None when v has no slice in it)."""
    cells = [p[v] for p in passes if v in p]
    if not cells:
        return None
    if est == "pooled":
        return sum(c for c, _ in cells) / sum(n for _, n in cells)
    per = [c / n for c, n in cells]
    return min(per) if est == "min" else statistics.median(per)


def round_ratio(passes, v, against, est):
    """(v - Z) / (against - Z) in one round by estimator est; None when not computable."""
    if est == "paired":
        rs = [(p[v][0] / p[v][1] - z) / (p[against][0] / p[against][1] - z)
              for p in passes if v in p and against in p and "Z" in p
              for z in [p["Z"][0] / p["Z"][1]] if p[against][0] / p[against][1] > z]
        return statistics.median(rs) if rs else None
    x, a, z = (round_ns(passes, u, est) for u in (v, against, "Z"))
    return (x - z) / (a - z) if None not in (x, a, z) and a > z else None


def whole_chain(rounds, wl):
    """variant -> [per round: the median over the round's passes of v / A within each pass] for
    workload wl: the whole chain's cost against plain forwarding, the sender's own cost (Z)
    included."""
    out = defaultdict(list)
    for (rnd, w), passes in sorted(rounds.items()):
        if w != wl:
            continue
        for v in sorted({v for p in passes for v in p} - {"A", "Z"}):
            rs = [(p[v][0] / p[v][1]) / (p["A"][0] / p["A"][1]) for p in passes if v in p and "A" in p]
            if rs:
                out[v].append(statistics.median(rs))
    return out


def estimate(rounds, est):
    """Per estimator: ns (workload, variant) -> [per round], ratios (workload, variant) -> [ratio to A
    per round], rel (workload, variant, against) -> [ratio to its reference per round]."""
    raw, ratios, rel, per_round = defaultdict(list), defaultdict(list), defaultdict(list), {}
    for (rnd, wl), passes in sorted(rounds.items()):
        variants = sorted({v for p in passes for v in p})
        for v in variants:
            x = round_ns(passes, v, est)
            raw[(wl, v)].append(x)
            r = round_ratio(passes, v, "A", est) if v not in ("A", "Z") else None
            if r is not None:
                ratios[(wl, v)].append(r)
            per_round[(rnd, wl, v)] = (x, r)
            for against in references(v):
                if against in variants:
                    r = round_ratio(passes, v, against, est)
                    if r is not None:
                        rel[(wl, v, against)].append(r)
    return raw, ratios, rel, per_round


def noise_section(out):
    """What the vCPU did during the slices: steal, the spin probe's spread, wall against CPU time."""
    rows = [r for r in csv.DictReader(open(out / "results.csv")) if r.get("pass") not in (None, "", "0")]
    if not rows or "spin_ns" not in rows[0]:
        return []
    spin = sorted(int(r["spin_ns"]) for r in rows)
    med = statistics.median(spin)
    slow = sum(x > 1.2 * med for x in spin)
    steal = sum(int(r["steal_ns"]) for r in rows)
    cpu = sum(int(r["cpu_ns"]) for r in rows)
    wall = sum(int(r["wall_ns"]) for r in rows)
    errors = sum(int(r["errors"]) for r in rows)
    return ["## Noise", "",
            f"{len(rows)} timed slices (warm-up pass left out): steal time of the sender's CPU (/proc/stat) "
            f"{steal / 1e6:.0f} ms in all, {100 * steal / max(wall, 1):.2f} % of their wall time; wall time "
            f"{wall / max(cpu, 1):.3f} × CPU time (above 1: the sender waited for its CPU); send errors {errors}. "
            f"Spin probe (a fixed user-space loop before each slice): median {med / 1e3:.0f} µs, "
            f"min {spin[0] / 1e3:.0f}, max {spin[-1] / 1e3:.0f}; {slow} slices "
            f"({100 * slow / len(spin):.0f} %) ran it over 20 % slower than the median.", ""]


def estimator_section(rounds):
    """The coefficient of variation over rounds of each estimator, side by side."""
    got = {e: estimate(rounds, e)[1] for e in ESTIMATORS}
    md = ["## Estimators", "", "Ratio to A per round by each estimator: median over rounds (CV). "
          f"The tables above use **{ESTIMATOR}**. " + "; ".join(f"{e}: {d}" for e, d in ESTIMATORS.items()) + ".", "",
          "| workload | variant | " + " | ".join(ESTIMATORS) + " |", "|---|---|" + "---|" * len(ESTIMATORS)]
    for wl, v in sorted(got[ESTIMATOR]):
        cells = [f"{stats(got[e][(wl, v)])['median']:.2f} ({100 * stats(got[e][(wl, v)])['cv']:.1f}%)"
                 if got[e].get((wl, v)) else "-" for e in ESTIMATORS]
        md.append(f"| {wl} | {name(v)} | " + " | ".join(cells) + " |")
    return md + [""]


def main(out, max_load=1.5):
    out = Path(out)
    rounds = read_passes(out)
    raw, ratios, rel, per_round = estimate(rounds, ESTIMATOR)
    with open(out / "ratios.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "workload", "variant", "ns_per_packet", "ratio_to_A"])
        for (rnd, wl, v), (x, r) in sorted(per_round.items()):
            w.writerow([rnd, wl, v, f"{x:.1f}", "" if r is None else f"{r:.3f}"])

    machine = (out / "machine.txt").read_text() if (out / "machine.txt").exists() else ""
    status = json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}
    extra = (out / "extra.md").read_text() if (out / "extra.md").exists() else ""
    load_md, quiet = load_section(out, max_load)
    title = "forwarding cost relative to plain forwarding" + ("" if quiet else " (busy machine, not a quiet run)")
    md = [f"# ipsnat benchmark: {title}", "", "```", machine.strip(), "```", ""] + load_md
    md += ["Ratio = (variant - Z) / (A - Z) per round: the median over the round's passes of that ratio within",
           "each pass (every variant's slices interleaved); ns = CPU time of the sending thread per packet",
           "(per connection for TCP), median of the round's slices. Lower is better; A = 1 by definition. P and PN end in the kernel's SA lookup",
           "(no SA on this kernel), so their ratios to A leave out what A does after it; compare P with PN.",
           "The TCP target is set on the whole chain, variant / A per pass (the sender's own cost included; Targets).", ""]
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
           "| check | target | ipsnat | nftables SNAT | stateless TC rewrite | TC rewrite + hash op | TC rewrite + one entry both ways | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    got = lambda wl, v: fmt(stats(ratios[(wl, v)])) if (wl, v) in ratios else "not measured"  # noqa: E731
    for (wl, v), limit in TARGETS.items():
        verdict = "-"
        if (wl, v) in ratios:
            verdict = "met" if stats(ratios[(wl, v)])["median"] <= limit else "**missed**"
        md.append(f"| {WORKLOADS[wl]} | <= {limit} | {got(wl, v)} | {got(wl, 'B')} | {got(wl, 'F0')} | "
                  f"{got(wl, 'F1')} | {got(wl, 'F2')} | {verdict} |")
    for (wl, v), limit in WHOLE_TARGETS.items():
        whole = whole_chain(rounds, wl)
        wgot = lambda u: fmt(stats(whole[u])) if u in whole else "not measured"  # noqa: E731
        verdict = ("met" if stats(whole[v])["median"] <= limit else "**missed**") if v in whole else "-"
        md.append(f"| {WORKLOADS[wl]}, whole chain (variant / A) | <= {limit} | {wgot(v)} | {wgot('B')} | "
                  f"{wgot('F0')} | {wgot('F1')} | {wgot('F2')} | {verdict} |")
        md.append(f"| {WORKLOADS[wl]}, forwarding cost ((variant - Z) / (A - Z)) | - | {got(wl, v)} | "
                  f"{got(wl, 'B')} | {got(wl, 'F0')} | {got(wl, 'F1')} | {got(wl, 'F2')} | - |")
        if "Ct" in whole:  # not the product's attach: what tcx instead of clsact would give
            md.append(f"| {WORKLOADS[wl]}, whole chain, C's programs on tcx links (Ct / A; not how attach "
                      f"hooks them) | - | {wgot('Ct')} | | | | | - |")
    spd_sizes = sorted(int(v[1:]) for (_, v) in raw if v[0] == "C" and v[1:].isdigit())
    for wl, v, against, limit, what in RELATIVE:
        if v == "C<n>":  # the largest SPD measured (10,000 policies; 1,000 with --quick)
            v, what = f"C{spd_sizes[-1] if spd_sizes else 10000}", what.format(n=f"{spd_sizes[-1] if spd_sizes else 10000:,}")
        key = (wl, v, against)
        if key in rel:
            s = stats(rel[key])
            verdict = "met" if s["median"] <= limit else "**missed**"
            md.append(f"| {what} | <= {limit} | {fmt(s)} | | | | | {verdict} |")
        else:
            md.append(f"| {what} | <= {limit} | not measured | | | | | - |")
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
    md += noise_section(out) + estimator_section(rounds)
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
    colors = {"B": "#d62728", "C": "#1f77b4", "F0": "#bdbdbd", "F1": "#969696", "F2": "#737373", "F3": "#525252", "F4": "#252525", "P": "#9467bd", "PN": "#ff7f0e", "PS": "#ffbb78", "Bm": "#e377c2", "Cm": "#17becf", "Bmr": "#f7b6d2", "Cmr": "#9edae5", "C100": "#6baed6", "C10000": "#08306b",
              "A10000": "#7f7f7f", "C1000": "#08306b", "A1000": "#7f7f7f", "Cct": "#2ca02c", "Cb": "#aec7e8", "Ct": "#9edae5"}
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
            limit = TARGETS.get((wl, v)) if title.startswith("UDP") else None
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
