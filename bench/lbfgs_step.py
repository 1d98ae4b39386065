#!/usr/bin/python3
"""One L-BFGS step with 1, 10 and 100 stored pairs on a 512 px image's values: stylize's
(`build/stylize_lbfgs_bench`: SyncFreeLbfgs, its two-loop recursion in fused passes on the CPU in
fp32, against ATen's ops, which other devices run) against torch.optim.LBFGS (the reference's
optimizer: neural-style-pt's settings, history 100, no line search), in this process on the same
machine. The per-iteration benchmarks (scripts/bench.sh) run 20 iterations, so their history is
never full; a 1000-iteration run holds 100 pairs from its 101st iteration on, and each step then
reads every pair twice.

    /usr/bin/python3 bench/lbfgs_step.py [--size 512] [--threads 2] [--markdown]

Prints a Markdown section; --markdown also writes it into BENCHMARKS.md (between its lbfgs-step
markers; scripts/bench.sh carries it over).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_description  # noqa: E402
from sections import replace_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "build", "stylize_lbfgs_bench")


def torch_step_ms(n, pairs, curvature):
    """The median time torch.optim.LBFGS spends between two evaluations once `pairs` are stored, on
    f(x) = ½ Σ c·x² (the evaluations themselves excluded)."""
    x = torch.randn(n, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    stamps = []

    def closure():
        t0 = time.perf_counter()
        with torch.no_grad():
            g = x * curvature
            loss = (g * x).sum() * 0.5
        x.grad = g
        stamps.append((t0, time.perf_counter()))
        return loss

    opt = torch.optim.LBFGS([x], lr=1, max_iter=pairs + 15, history_size=pairs, tolerance_grad=-1,
                            tolerance_change=-1)
    opt.step(closure)
    stored = len(opt.state[opt._params[0]]["old_dirs"])
    if stored != pairs:
        raise SystemExit(f"lbfgs_step: torch's L-BFGS stored {stored} pairs, not {pairs}: the problem converged")
    gaps = [stamps[i + 1][0] - stamps[i][1] for i in range(len(stamps) - 1)]
    steady = sorted(gaps[pairs + 4:])  # once the ring is full (as stylize_lbfgs_bench times it)
    return 1e3 * steady[len(steady) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--markdown", action="store_true", help="write the section into BENCHMARKS.md")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = subprocess.run([BENCH, "--size", str(a.size), "--threads", str(a.threads)], check=True,
                         capture_output=True, text=True).stdout
    head = out.splitlines()[0]
    ours = {}
    for line in out.splitlines():
        m = re.match(r"\| (on|off) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", line)
        if m:
            ours[(m.group(1), int(m.group(2)))] = (float(m.group(3)), float(m.group(4)), float(m.group(5)))
    n = 3 * (a.size * 3 // 4) * a.size
    # The same problem as stylize_lbfgs_bench's shape; ill-conditioned, so that every pair passes
    # torch's curvature test (y·s > 1e-10) and its history fills.
    curvature = torch.logspace(-4, 0, n)
    ref = {p: torch_step_ms(n, p, curvature) for p in (1, 10, 100)}
    L = ["<!-- lbfgs-step:begin -->", "## One L-BFGS step against the reference's (`bench/lbfgs_step.py`)", "",
         f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {cpu_description()}, {a.threads} threads, by "
         f"`bench/lbfgs_step.py` (torch {torch.__version__}); {head}.", "",
         "Time between two evaluations once the pairs are stored (the evaluations excluded), median of 10: "
         "torch.optim.LBFGS as neural-style-pt runs it (history 100, no line search) against stylize's "
         "SyncFreeLbfgs without backtracking (the same recursion) and with it (stylize's default). stylize's "
         "two-loop recursion runs in fused passes on the CPU in fp32 (src/engine/lbfgs_passes.hpp); the "
         "ATen column is the same optimizer on ATen's ops, as on other devices. The last column is the "
         "floor of the recursion: every stored pair read twice at this machine's copy rate. The "
         "per-iteration tables above run 20 iterations, so this cost is not in them; a 1000-iteration run "
         "pays the 100-pair row from its 101st iteration on.", "",
         "| pairs stored | torch.optim.LBFGS ms | stylize ms | ratio | stylize on ATen's ops ms | "
         "stylize with backtracking ms | pairs read twice at the copy rate ms |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in (1, 10, 100):
        aten, fused, floor = ours[("off", p)]
        L.append(f"| {p} | {ref[p]:.2f} | {fused:.2f} | {fused / ref[p]:.2f} | {aten:.2f} | {ours[('on', p)][1]:.2f} | "
                 f"{floor:.2f} |")
    L += ["", "Rerun: `/usr/bin/python3 bench/lbfgs_step.py --markdown` (about a minute).", "<!-- lbfgs-step:end -->"]
    section = "\n".join(L)
    print(section)
    if a.markdown:
        replace_section(os.path.join(ROOT, "BENCHMARKS.md"), "lbfgs-step", section)


if __name__ == "__main__":
    main()
