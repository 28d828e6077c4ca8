#!/usr/bin/env python3
"""check-stack.py OBJ [LIMIT]: the BPF stack of every call chain of OBJ's programs as Linux 6.1's
verifier counts it (check_max_stack_depth), which clang and newer kernels do not: each frame
rounded up to 32 bytes (an empty one counts 32), a bpf_loop callback's frame added to the chain
of the function that names it, the sum along any chain at most LIMIT (512). Prints each
program's deepest chain; exits 1 when one exceeds LIMIT. Reads `llvm-objdump -dr`."""
import re
import shutil
import subprocess
import sys

obj = sys.argv[1]
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 512
objdump = shutil.which("llvm-objdump") or next(
    (p for p in (shutil.which(f"llvm-objdump-{v}") for v in range(25, 13, -1)) if p), None)
if not objdump:
    print("check-stack: no llvm-objdump", file=sys.stderr)
    sys.exit(77)
text = subprocess.run([objdump, "-dr", "--no-show-raw-insn", obj], check=True, capture_output=True,
                      text=True).stdout

frame = {}      # function -> deepest r10 offset
refs = {}       # function -> [("off", byte offset in .text) | ("sym", name)]
entries = []    # functions outside .text: the programs
text_at = {}    # byte offset in .text -> function
section = fn = None
frame_ptr = set()  # registers holding r10
pending = None  # the last call / ld_imm64 immediate, for the relocation line after it
for line in text.splitlines():
    m = re.match(r"Disassembly of section (\S+):", line)
    if m:
        section = m.group(1)
        continue
    m = re.match(r"^([0-9a-f]+) <([A-Za-z_][A-Za-z_0-9]*)>:", line)
    if m and not m.group(2).startswith("LBB"):
        fn = m.group(2)
        frame_ptr = set()
        frame.setdefault(fn, 0)
        refs.setdefault(fn, [])
        if section == ".text":
            text_at[int(m.group(1), 16)] = fn
        else:
            entries.append(fn)
        continue
    if fn is None:
        continue
    m = re.search(r"\(r10 - (\d+)\)", line)
    if m:
        frame[fn] = max(frame[fn], int(m.group(1)))
    # A pointer into the frame handed to a helper: rN = r10; rN += -X.
    m = re.search(r"^\s*\d+:\s+(r\d+) (\S*)= (\S+)", line)
    if m:
        reg, op, val = m.groups()
        if op == "" and val == "r10":
            frame_ptr.add(reg)
        elif op == "+" and reg in frame_ptr and val.startswith("-"):
            frame[fn] = max(frame[fn], -int(val))
            frame_ptr.discard(reg)
        else:
            frame_ptr.discard(reg)
    m = re.search(r"^\s*\d+:\s+call (-?\d+)$", line)
    if m:
        pending = ("call", int(m.group(1)))
        continue
    m = re.search(r"^\s*\d+:\s+r\d+ = (-?\d+) ll$", line)
    if m:
        pending = ("ld", int(m.group(1)))
        continue
    m = re.search(r"R_BPF_64_(32|64)\s+(\S+)", line)
    if m and pending:
        kind, imm = pending
        sym = m.group(2)
        if kind == "call" and m.group(1) == "32":
            refs[fn].append(("off", (imm + 1) * 8) if sym == ".text" else ("sym", sym))
        elif kind == "ld" and m.group(1) == "64" and sym == ".text":
            refs[fn].append(("off", imm))  # a callback (bpf_loop): the verifier counts it
    pending = None


def round32(n):
    return (max(n, 1) + 31) // 32 * 32


def deepest(f, seen=()):
    """(bytes, chain) of the deepest call chain from f."""
    best = (0, [])
    for kind, v in refs.get(f, []):
        callee = text_at.get(v) if kind == "off" else v
        if callee in frame and callee not in seen:
            best = max(best, deepest(callee, seen + (f,)))
    return round32(frame[f]) + best[0], [f"{f} {frame[f]}"] + best[1]


worst = 0
for e in entries:
    total, chain = deepest(e)
    worst = max(worst, total)
    print(f"{total:4d} {e}: {' -> '.join(chain)}{'  TOO LARGE' if total > limit else ''}")
sys.exit(1 if worst > limit else 0)
