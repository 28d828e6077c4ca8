#!/usr/bin/python3
"""Where a variant's extra cost goes: two `perf record` files of the sender (baseline and variant)
plus their measured ns/packet -> Markdown table of ns/packet per symbol, largest increase first.

    perfdiff.py BASE.data BASE_NS_PER_PKT VARIANT.data VARIANT_NS_PER_PKT [TOP]
"""
import subprocess
import sys


def shares(path):
    out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "sym", "--stdio",
                          "-F", "overhead,sym"], capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line:
            continue
        pct, _, sym = line.partition("%")
        sym = sym.strip()
        # "[k] name" / "[.] name"; JITed BPF programs appear as bpf_prog_<tag>_<name>
        sym = sym.split("] ", 1)[-1]
        try:
            res[sym] = res.get(sym, 0.0) + float(pct) / 100
        except ValueError:
            continue
    return res


def main():
    base_f, base_ns, var_f, var_ns = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    b, v = shares(base_f), shares(var_f)
    rows = []
    for sym in set(b) | set(v):
        nb, nv = b.get(sym, 0) * base_ns, v.get(sym, 0) * var_ns
        rows.append((nv - nb, sym, nb, nv))
    rows.sort(reverse=True)
    print("| symbol | baseline ns/pkt | variant ns/pkt | difference |")
    print("|---|---|---|---|")
    for d, sym, nb, nv in rows[:top]:
        print(f"| `{sym}` | {nb:.0f} | {nv:.0f} | {d:+.0f} |")
    print(f"| (total) | {base_ns:.0f} | {var_ns:.0f} | {var_ns - base_ns:+.0f} |")


if __name__ == "__main__":
    main()
