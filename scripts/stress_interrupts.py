#!/usr/bin/python3
"""Ctrl-C and SIGTERM at random moments: `stylize` or `stylize batch` must end cleanly every time.

Each run starts the command on small random images, sends SIGINT or SIGTERM after 0.3-4 s (loading,
the first job, between jobs, writing), and now and then a second one soon after (a user who insists).
Clean means: exit 130 (interrupted, best image written) or 0 (it finished first), or death by the
signal itself when it came before the run could take it (while loading) or was the second one;
never another code, a glibc abort ("corrupted size ..."), a backtrace, a temporary file left in the
output folder, or a report that is not whole JSON.

  /usr/bin/python3 scripts/stress_interrupts.py [--command batch|stylize] [--runs 40] [--seed 1]
      [--stylize build/stylize] [--weights ../shared/weights/vgg19-conv1-3-real.safetensors]

Prints the exit codes counted and one BAD line per unclean run; exits 1 if there was any.
"""
import argparse
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLEAN = {0, 130, -signal.SIGINT, -signal.SIGTERM}


def make_inputs(folder):
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(folder, "in"))
    for i in range(4):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(os.path.join(folder, "in", f"c{i}.png"))
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(os.path.join(folder, "s.png"))


def command_line(a, folder):
    layers = ["--style-layers", "relu1_1,relu2_1,relu3_1", "--content-layers", "relu3_2", "--weights", a.weights]
    report = os.path.join(folder, "report.json")
    if a.command == "batch":
        return [a.stylize, "batch", os.path.join(folder, "in"), "--style", os.path.join(folder, "s.png"), "--out-dir",
                os.path.join(folder, "out"), "--report", report, "-s", "48", "-n", "60", "-q"] + layers
    return [a.stylize, os.path.join(folder, "in", "c0.png"), os.path.join(folder, "s.png"), "-o",
            os.path.join(folder, "out", "out.png"), "--report", report, "-s", "64", "-n", "100000", "-q"] + layers


def one_run(a, folder, rng):
    """The exit code and, for an unclean run, why."""
    out = os.path.join(folder, "out")
    for f in glob.glob(os.path.join(out, "*")) + glob.glob(os.path.join(folder, "report.json")):
        os.remove(f)
    os.makedirs(out, exist_ok=True)
    p = subprocess.Popen(command_line(a, folder), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        p.wait(timeout=rng.uniform(0.3, 4.0))
    except subprocess.TimeoutExpired:
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        p.send_signal(sig)
        if rng.random() < 0.15:
            try:
                p.wait(timeout=rng.uniform(0, 0.2))
            except subprocess.TimeoutExpired:
                p.send_signal(sig)
    err = p.communicate(timeout=120)[1]
    why = []
    if p.returncode not in CLEAN:
        why.append(f"exit {p.returncode}")
    left = [f for f in os.listdir(out) + os.listdir(folder) if ".tmp" in f]
    if left:
        why.append(f"temporaries left: {left}")
    if os.path.exists(os.path.join(folder, "report.json")):
        try:
            with open(os.path.join(folder, "report.json")) as f:
                json.load(f)
        except ValueError:
            why.append("the report is not whole JSON")
    for mark in ("corrupted", "Exception raised from", "terminate called"):
        if mark in err:
            why.append(f"stderr has '{mark}': {err[-300:]!r}")
    return p.returncode, why


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", choices=["batch", "stylize"], default="batch")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stylize", default=os.path.join(ROOT, "build", "stylize"))
    ap.add_argument("--weights", default=os.path.join(ROOT, "..", "shared", "weights", "vgg19-conv1-3-real.safetensors"))
    a = ap.parse_args()
    for path, what in ((a.stylize, "--stylize"), (a.weights, "--weights")):
        if not os.path.exists(path):
            sys.exit(f"error: {what} {path!r} does not exist; build first (scripts/build.sh) or give {what}")
    rng = random.Random(a.seed)
    codes, bad = {}, 0
    with tempfile.TemporaryDirectory() as folder:
        make_inputs(folder)
        for k in range(a.runs):
            code, why = one_run(a, folder, rng)
            codes[code] = codes.get(code, 0) + 1
            if why:
                bad += 1
                print(f"BAD run {k}: " + "; ".join(why))
    print(f"{a.command}: {a.runs} runs, exit codes {dict(sorted(codes.items()))}, {bad} unclean")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
