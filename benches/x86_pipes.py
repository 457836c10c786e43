#!/usr/bin/env python3
"""Throughput of the x86 instructions the AVX2 prompt kernels are made of, on this CPU.

Each probe is a loop of twelve independent instructions (no dependency chains), assembled and
timed with gcc; the clock comes from a loop of dependent scalar adds (one per cycle). Pairs of
six and six show which instructions share execution pipes: a pair that takes as long as twelve
of one kind shares them, one that takes half as long does not. The AVX2 q4_0 tile kernel's
budget per tile and group of four tokens (docs/BENCHMARKS.md) is read against these numbers.

Usage: python3 benches/x86_pipes.py        (needs gcc and an AVX2 CPU; about 10 s)
"""

import os
import subprocess
import tempfile

PROBES = {
    "vpmaddubsw": ["vpmaddubsw %ymm15, %ymm{k}, %ymm{k}"] * 12,
    "vpmaddwd": ["vpmaddwd %ymm15, %ymm{k}, %ymm{k}"] * 12,
    "vfmadd231ps": ["vfmadd231ps %ymm15, %ymm14, %ymm{k}"] * 12,
    "vcvtdq2ps": ["vcvtdq2ps %ymm{k}, %ymm{k}"] * 12,
    "vpaddw": ["vpaddw %ymm15, %ymm{k}, %ymm{k}"] * 12,
    "vpbroadcastd (load)": ["vpbroadcastd {o4}(%rsi), %ymm{k}"] * 12,
    "vmovdqu (load)": ["vmovdqu {o32}(%rsi), %ymm{k}"] * 12,
    "6 vpmaddubsw + 6 vfmadd231ps": ["vpmaddubsw %ymm15, %ymm{k}, %ymm{k}"] * 6
    + ["vfmadd231ps %ymm15, %ymm14, %ymm{k}"] * 6,
    "6 vpmaddubsw + 6 vcvtdq2ps": ["vpmaddubsw %ymm15, %ymm{k}, %ymm{k}"] * 6 + ["vcvtdq2ps %ymm{k}, %ymm{k}"] * 6,
    "6 vpmaddubsw + 6 vpaddw": ["vpmaddubsw %ymm15, %ymm{k}, %ymm{k}"] * 6 + ["vpaddw %ymm15, %ymm{k}, %ymm{k}"] * 6,
    "6 vpmaddubsw + 6 vpbroadcastd": ["vpmaddubsw %ymm15, %ymm{k}, %ymm{k}"] * 6
    + ["vpbroadcastd {o4}(%rsi), %ymm{k}"] * 6,
    # The Q8_0 kernel's sign trick: do vpsignb and vpabsb take the multiply pipes?
    "vpsignb": ["vpsignb %ymm15, %ymm{k}, %ymm{k}"] * 12,
    "vpabsb": ["vpabsb %ymm{k}, %ymm{k}"] * 12,
    "6 vpmaddubsw + 6 vpsignb": ["vpmaddubsw %ymm15, %ymm{k}, %ymm{k}"] * 6 + ["vpsignb %ymm15, %ymm{k}, %ymm{k}"] * 6,
}


def assembly() -> str:
    out = [".text", ".globl clock_probe", "clock_probe:", "1:"]
    out += ["  add $1, %rax"] * 8 + ["  dec %rdi", "  jnz 1b", "  ret"]
    for i, body in enumerate(PROBES.values()):
        out += [f".globl probe{i}", f"probe{i}:", "1:"]
        out += ["  " + ins.format(k=k, o4=4 * k, o32=32 * k) for k, ins in enumerate(body)]
        out += ["  dec %rdi", "  jnz 1b", "  vzeroupper", "  ret"]
    out.append('.section .note.GNU-stack,"",@progbits')
    return "\n".join(out) + "\n"


def harness() -> str:
    names = list(PROBES)
    decls = "".join(f"void probe{i}(long, void*);\n" for i in range(len(names)))
    runs = "".join(
        f'  t = now(); probe{i}(N, buf); dt = now() - t;\n'
        f'  printf("%-32s %5.2f per cycle\\n", "{n}", 12.0 * N / (dt * hz));\n'
        for i, n in enumerate(names)
    )
    return f"""#include <stdio.h>
#include <time.h>
static double now(void) {{ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }}
static char buf[4096] __attribute__((aligned(64)));
void clock_probe(long);
{decls}
int main(void) {{
  long N = 50000000; double t, dt, hz = 0;
  for (int r = 0; r < 3; r++) {{ t = now(); clock_probe(N); dt = now() - t; if (8.0 * N / dt > hz) hz = 8.0 * N / dt; }}
  printf("clock: %.2f GHz (dependent adds)\\n", hz / 1e9);
{runs}  return 0;
}}
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        for name, text in [("probes.S", assembly()), ("main.c", harness())]:
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        exe = os.path.join(d, "probes")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(d, "main.c"), os.path.join(d, "probes.S")], check=True)
        subprocess.run([exe], check=True)


if __name__ == "__main__":
    main()
