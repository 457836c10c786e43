#!/usr/bin/env python3
"""llvm-mca cycle estimates of the hot loops of aarch64 kernels, from a built binary.

For each function named (a substring of its demangled name; every match is analysed), the
loops are found in its disassembly (`objdump -d`: a backward branch to an address inside the
function closes a loop), the innermost loops that hold integer multiplies (sdot, smmla,
smull/smlal, mul) are kept, and each loop body goes through llvm-mca for each CPU model.
Reports cycles per iteration (llvm-mca's Total Cycles / Iterations: throughput with the loop's
dependencies) and cycles per 32 multiply-adds (one 32-value block of one row and one token),
the multiply-adds counted from the instructions: sdot 16, smmla 32, smull/smlal (8-bit) 8,
16-bit widening multiplies 4.

Usage: mca_loops.py BINARY LABEL=FUNCTION[,FUNCTION...] ... [--cpus cortex-a72,neoverse-n1] [--mca PATH]
Prints one markdown row per (label, function, loop, cpu). A model, not a measurement: no cache
misses, no front-end limits beyond llvm-mca's model.
"""
import argparse
import re
import subprocess
import sys

BRANCH = re.compile(r"^(b|b\.\w+|cbn?z|tbn?z)$")
# Multiply-adds per instruction, by mnemonic and the arrangement of the first operand.
MACS = {"sdot": 16, "udot": 16, "smmla": 32, "ummla": 32, "usmmla": 32}


def macs_of(mn, ops):
    if mn in MACS:
        return MACS[mn]
    if mn in ("smull", "smull2", "smlal", "smlal2", "umull", "umull2", "umlal", "umlal2"):
        return 8 if ops.startswith("v") and ".8h" in ops.split(",")[0] else 4
    if mn in ("mul", "mla") and ops.startswith("v"):
        arr = ops.split(",")[0].split(".")[-1]
        return {"16b": 16, "8b": 8, "8h": 8, "4h": 4, "4s": 4, "2s": 2}.get(arr, 0)
    return 0


def symbols(binary, pattern):
    """(start, end, demangled name) of every function whose demangled name contains pattern."""
    out = subprocess.run(["aarch64-linux-gnu-nm", "-C", "-S", "--defined-only", binary],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW" and pattern in parts[3]:
            start, size = int(parts[0], 16), int(parts[1], 16)
            if size:
                found.append((start, start + size, parts[3]))
    return sorted(set(found))


def disassemble(binary, start, end):
    out = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn",
                          f"--start-address={start:#x}", f"--stop-address={end:#x}", binary],
                         capture_output=True, text=True, check=True).stdout
    insns = []
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        ops = re.sub(r"\s*//.*$", "", m.group(3)).strip()
        insns.append((int(m.group(1), 16), m.group(2), ops))
    return insns


def loops(insns, start, end):
    """Innermost loops as (first index, last index): a backward branch inside the function."""
    idx = {a: i for i, (a, _, _) in enumerate(insns)}
    found = []
    for i, (a, mn, ops) in enumerate(insns):
        if BRANCH.match(mn):
            target = int(ops.split(",")[-1].split()[0], 16)
            if start <= target <= a and target in idx:
                found.append((idx[target], i))
    return [l for l in found if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in found)]


def mca_input(body, first_addr):
    """The loop body as assembly llvm-mca reads: branch targets become labels."""
    lines = [".Lloop:"]
    for a, mn, ops in body:
        if BRANCH.match(mn):
            parts = ops.split(",")
            target = int(parts[-1].split()[0], 16)
            parts[-1] = " .Lloop" if target == first_addr else " .Lout"
            ops = ",".join(parts)
        lines.append(f"  {mn} {re.sub(r'<[^>]*>', '', ops).strip()}")
    lines.append(".Lout:")
    return "\n".join(lines) + "\n"


def mca(asm, cpu, iters=300):
    r = subprocess.run([MCA, "-mtriple=aarch64", f"-mcpu={cpu}", "-mattr=+dotprod,+i8mm",
                        f"-iterations={iters}"], input=asm, capture_output=True, text=True)
    m = re.search(r"Total Cycles:\s+(\d+)", r.stdout)
    if not m:
        sys.exit(f"llvm-mca failed on {cpu}:\n{r.stderr}\n{asm}")
    return int(m.group(1)) / iters


def main():
    global MCA
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("funcs", nargs="+", help="LABEL=FUNCTION[,FUNCTION...]")
    p.add_argument("--cpus", default="cortex-a72,neoverse-n1")
    p.add_argument("--mca", default="llvm-mca")
    a = p.parse_args()
    MCA = a.mca
    cpus = a.cpus.split(",")
    print("| kernel | function | loop | insns | MACs | " + " | ".join(
        f"{c} cyc/iter, per 32" for c in cpus) + " |")
    print("|---|---|---|---|---|" + "---|" * len(cpus))
    for spec in a.funcs:
        label, names = spec.split("=", 1)
        for name in names.split(","):
            syms = symbols(a.binary, name)
            if not syms:
                print(f"| {label} | {name}: not in the binary | | | |" + " |" * len(cpus))
            for start, end, full in syms:
                insns = disassemble(a.binary, start, end)
                for lo, hi in loops(insns, start, end):
                    body = insns[lo:hi + 1]
                    macs = sum(macs_of(mn, ops) for _, mn, ops in body)
                    if not macs:
                        continue
                    asm = mca_input(body, body[0][0])
                    cells = []
                    for cpu in cpus:
                        c = mca(asm, cpu)
                        cells.append(f"{c:.1f}, {32 * c / macs:.2f}")
                    short = re.sub(r"\(.*", "", full)[-60:]
                    print(f"| {label} | `{short}` | {body[0][0]:#x} | {len(body)} | {macs} | "
                          + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
