#!/usr/bin/python3
"""The choices made under synthetic weights, re-made on the REAL VGG19 prefix (../shared/weights,
conv1_1 … conv3_4): keeping pixels in range, content vs random start, multi-scale, bf16 and mixed vs fp32,
the TV weight. Writes the "Real weights" section of BENCHMARKS.md (between its markers; the rest of
the file is scripts/bench.sh's) and docs/gallery/init_progress.jpg + multiscale.jpg. Every number is
measured in this run. About 8 minutes on 2 cores with AMX.

    bash scripts/build.sh && /usr/bin/python3 bench/real_weights.py
"""
import atexit
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gallery  # noqa: E402  (contact sheets, and the same inputs and layers)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from machine import bf16_default, cpu_description  # noqa: E402

BIN = os.path.join(ROOT, "build", "stylize")
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
WEIGHTS = os.path.join(SHARED, "weights", "vgg19-conv1-3-real.safetensors")
CONTENT = os.path.join(SHARED, "images", "tubingen.jpg")
STYLE = os.path.join(SHARED, "images", "starry_night.jpg")
SIZE = 256
TMP = tempfile.mkdtemp(prefix="stylize-real-")
atexit.register(shutil.rmtree, TMP, True)
BEGIN, END = "<!-- real-weights:begin -->", "<!-- real-weights:end -->"


def log(*a):
    print("real_weights:", *a, file=sys.stderr, flush=True)


def run(name, args, content=CONTENT):
    """stylize on the real file with the shallow layers; returns (report, stderr, output path)."""
    out, rep = os.path.join(TMP, name + ".png"), os.path.join(TMP, name + ".json")
    cmd = [BIN, content, STYLE, "-o", out, "--weights", WEIGHTS, "-s", str(SIZE), "--report", rep] + \
        gallery.LAYERS + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"stylize failed: {' '.join(cmd)}\n{p.stderr}")
    with open(rep) as f:
        return json.load(f), p.stderr, out


def fp32_score(image):
    """The loss of an image as written, in fp32 arithmetic (the same yardstick for every run)."""
    rep, _, _ = run("score", ["-n", "0", "--init", image, "--precision", "fp32"])
    return rep["losses"]["final"]["total"]


def logged_losses(stderr):
    return {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"iteration (\d+)/\d+\s+loss (\S+)", stderr)}


def mean_abs_difference(a, b):
    import numpy
    from PIL import Image
    x = numpy.asarray(Image.open(a).convert("RGB"), dtype=numpy.float64)
    y = numpy.asarray(Image.open(b).convert("RGB"), dtype=numpy.float64)
    return float(numpy.abs(x - y).mean())


def range_gap():
    rows = []
    for opt in ("lbfgs", "adam"):
        for unbounded in (False, True):
            rep, _, _ = run(f"gap_{opt}_{unbounded}", ["-n", "100", "--tv-weight", "0", "--optimizer", opt] +
                            (["--unbounded"] if unbounded else []))
            rows.append((opt, unbounded, rep["losses"]["final"]["total"], rep["losses"]["written"]["total"],
                         rep["seconds"]["optimise"]))
    return rows


def starts():
    out = {}
    for init in ("content", "random"):
        rep, err, path = run(f"init_{init}", ["-n", "1000", "--init", init, "--print-every", "100",
                                              "--save-every", "100"])
        out[init] = {"losses": logged_losses(err), "final": rep["losses"]["final"]["total"],
                     "written": rep["losses"]["written"]["total"], "seconds": rep["seconds"]["optimise"],
                     "path": path}
    cells = []
    for init in ("content", "random"):
        for n in (100, 300, 1000):
            p = out[init]["path"] if n == 1000 else os.path.join(TMP, f"init_{init}_{n}.png")
            cells.append(gallery.cell(p, [f"--init {init}, {n} its", f"loss {out[init]['losses'].get(n, 0):.3g}"]))
    gallery.sheet("init_progress.jpg", f"Content vs random start at 100, 300, 1000 iterations ({SIZE} px)",
                  [cells[:3], cells[3:]])
    return out


def multiscale(single):
    rows = []
    for fine in (100, 200):
        rep, _, path = run(f"scales_{fine}", ["--scales", "3", "-n", f"400,300,{fine}"])
        rows.append((fine, rep["losses"]["final"]["total"], rep["seconds"]["optimise"] + rep["seconds"]["targets"],
                     path))
    gallery.sheet("multiscale.jpg", f"One scale against coarse-to-fine ({SIZE} px)",
                  [[gallery.cell(single["path"], ["one scale, 1000 its", f"loss {single['final']:.3g}"])] +
                   [gallery.cell(p, [f"--scales 3 -n 400,300,{f}", f"loss {l:.3g}, {s:.0f} s"]) for f, l, s, p in rows]])
    return rows


# mixed: bf16 up to pool2, fp32 after, what --precision auto runs on CPUs with AVX512-BF16 and no AMX.
# Without bf16 dot products (AVX2 only) bf16 runs LibTorch's generic kernels, ~100x slower than fp32:
# 300 iterations would take hours, and no one runs it there (auto picks fp32), so fp32 runs alone.
PRECISIONS = ("fp32", "bf16", "mixed") if bf16_default() else ("fp32",)


def precisions():
    out = {}
    for prec in PRECISIONS:
        rep, _, path = run(f"prec_{prec}", ["-n", "300", "--precision", prec])
        out[prec] = {"own": rep["losses"]["final"]["total"], "fp32": fp32_score(path), "path": path,
                     "s_per_it": rep["seconds_per_iteration"]}
        if prec != "fp32":
            out[prec]["pixels"] = mean_abs_difference(out["fp32"]["path"], path)
    return out


def tv_weights():
    rows = []
    for tv in ("0", "0.001", "0.01", "0.1"):
        rep, _, _ = run(f"tv_{tv}", ["-n", "300", "--tv-weight", tv])
        l = rep["losses"]["final"]
        rows.append((tv, l["content"], l["style"], l["tv"], l["total"]))
    return rows


def section(gap, st, ms, pr, tv, cpu, minutes):
    L = [BEGIN, "## Real weights", "",
         f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {cpu} by `bench/real_weights.py` ({minutes:.1f} min; "
         "rerun it to regenerate this section). Weights: the **real** VGG19 for conv1_1 … conv3_4 "
         "(`../shared/weights/vgg19-conv1-3-real.safetensors`, caffe preprocessing); content relu3_2, style relu1_1, "
         f"relu2_1, relu3_1 (what README recommends for this file); tubingen + starry_night at {SIZE} px; the defaults "
         "otherwise. Pictures: README's gallery (`scripts/gallery.sh`) and the two sheets named below.", "",
         "### Keeping pixels in range: the written image against the optimiser's", "",
         "100 iterations, TV weight 0. *final* is the loss of the image the optimiser ends with, *written* the loss "
         "of that image as the file holds it (clamped to 0..255 and rounded to 8 bits).", "",
         "| optimiser | pixels | final loss | written image's loss | written / final | optimise s |",
         "| --- | --- | --- | --- | --- | --- |"]
    for opt, unb, fin, wr, s in gap:
        L.append(f"| {opt} | {'unbounded (`--unbounded`)' if unb else 'kept in range (default)'} | {fin:.4g} | "
                 f"{wr:.4g} | {wr / fin:.3f} | {s:.1f} |")
    lb = {u: (f, w) for o, u, f, w, _ in gap if o == "lbfgs"}
    L += ["", f"Kept in range, rounding to 8 bits is all that separates the two numbers "
          f"({100 * (lb[False][1] / lb[False][0] - 1):+.2f}%); so of the unbounded run's "
          f"{100 * (lb[True][1] / lb[True][0] - 1):+.1f}%, the clamp on saving is nearly all. Projected, the written "
          f"image scores {lb[False][1]:.4g} against {lb[True][1]:.4g} for the unbounded run's "
          f"({100 * (1 - lb[False][1] / lb[True][1]):.0f}% lower), at the cost of a slightly higher optimiser loss "
          f"({100 * (lb[False][0] / lb[True][0] - 1):+.1f}%). Hence the default (each L-BFGS step is clamped into the "
          "box and the step actually taken is what the history stores). Tried in a Python prototype and not kept: an "
          "unbounded run with a final in-range polish (clamp, then 10 projected iterations with a fresh history) ended "
          "above the projected run; a sigmoid parameterisation diverged under L-BFGS's unit step.", ""]

    c, r = st["content"], st["random"]
    L += ["### Content vs random start", "",
          "The optimiser's loss at iterations 100, 300 and 1000 (`--print-every 100`), and the written image's at 1000. "
          "Pictures at each: `docs/gallery/init_progress.jpg`.", "",
          "| start | 100 | 300 | 1000 | written at 1000 | optimise s |", "| --- | --- | --- | --- | --- | --- |"]
    for name, d in (("content (default)", c), ("random", r)):
        L.append(f"| {name} | {d['losses'].get(100, 0):.4g} | {d['losses'].get(300, 0):.4g} | "
                 f"{d['losses'].get(1000, 0):.4g} | {d['written']:.4g} | {d['seconds']:.0f} |")
    L += ["", f"Random ends at {r['written'] / c['written']:.2f}x the content start's loss after 1000 iterations "
          f"(at 100: {r['losses'].get(100, 0) / c['losses'].get(100, 1):.2f}x). What the sheet showed when this was "
          "written (2026-12-01): from the content start the picture is all but final at 100 iterations; from random "
          "it is still blurred at 100 and alike from 300 on, with bluer houses (less of the photo's colour). The "
          "default stays `--init content`.", ""]

    L += ["### Coarse-to-fine", "",
          f"`--scales 3` ({SIZE // 4} → {SIZE // 2} → {SIZE} px) against one scale of 1000 iterations "
          f"(loss {c['final']:.4g} in {c['seconds']:.0f} s of optimisation). Pictures: `docs/gallery/multiscale.jpg`.", "",
          "| run | final loss at the output size | seconds (targets + optimise) | one scale at as many iterations: "
          "loss, seconds | vs one scale's 1000-its loss |",
          "| --- | --- | --- | --- | --- |"]
    rate = c["seconds"] / 1000
    for fine, loss, s, _ in ms:
        L.append(f"| `-n 400,300,{fine}` | {loss:.4g} | {s:.0f} | {c['losses'].get(fine, 0):.4g}, ~{fine * rate:.0f} | "
                 f"{loss / c['final']:.3f} |")
    L += ["", "(One scale's seconds at fewer iterations: its 1000-iteration run's rate times the count. Seconds on this "
          "shared host vary by tens of percent, at times 2x, between runs of one command: compare losses here, "
          "and time in BENCHMARKS.md's timing sections.) On the "
          "shallow real network coarse-to-fine buys nothing: with as many final iterations it ends at about the "
          "single-scale loss after the coarse scales' extra time, and with a fifth of them (README's old recipe, "
          "measured under synthetic weights) its picture keeps the coarse scale's blobs (README's gallery, "
          "`scales.jpg`). With 100 or more final iterations the blobs are gone (`multiscale.jpg`).", ""]

    L += ["### bf16 and mixed against fp32", "",
          "300 iterations each way; each written image then scored in fp32 (`-n 0 --init OUT --precision fp32`). "
          "mixed runs bf16 up to pool2 and fp32 from conv3_1 on (in this file, conv3_1 … conv3_4 in fp32).", "",
          "| precision | s/it | final loss (own arithmetic) | written image, scored in fp32 | "
          "against fp32's image, levels of 255 |", "| --- | --- | --- | --- | --- |"]
    for prec in PRECISIONS:
        d = pr[prec]
        L.append(f"| {prec} | {d['s_per_it']:.3f} | {d['own']:.4g} | {d['fp32']:.4g} | "
                 f"{'—' if prec == 'fp32' else format(d['pixels'], '.2f')} |")
    if len(PRECISIONS) == 1:
        L += ["", "bf16 and mixed not run: this CPU has no bf16 dot products (AMX or AVX512-BF16), where they take "
              "LibTorch's generic kernels, ~100x slower than fp32, and `--precision auto` picks fp32."]
    L += [""] + [f"{prec}'s image scores **{100 * pr[prec]['fp32'] / pr['fp32']['fp32']:.1f}%** of fp32's loss and "
                 f"differs from it by **{pr[prec]['pixels']:.2f}** levels (of 255) per channel on average." for prec in PRECISIONS[1:]] + [""]

    L += ["### TV weight", "", "300 iterations; the terms of the final loss (TV is measured on the network input). "
          "Pictures: README's gallery (`tv_weight.jpg`): 0 and 1e-3 look alike, 1e-2 softens the strokes, 1e-1 blurs "
          "the picture into saturated blobs. The default 1e-3 stays.", "",
          "| `--tv-weight` | content | style | tv | total |", "| --- | --- | --- | --- | --- |"]
    for t, co, sty, tvv, tot in tv:
        L.append(f"| {t}{' (default)' if t == '0.001' else ''} | {co:.4g} | {sty:.4g} | {tvv:.4g} | {tot:.4g} |")
    L += ["", "### Layers for the shallow file", "",
          "README's gallery (`layers.jpg`) compares four choices; content relu3_2 with style relu1_1, relu2_1, "
          "relu3_1 is the one recommended (and used everywhere above): content relu2_2 keeps more of the photo, "
          "relu3_4 in both looks about the same, and adding relu1_2 and relu2_2 to the style stylises much harder.",
          "", END]
    return "\n".join(L) + "\n"


def write_section(text):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        doc = f.read()
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) + 1:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(doc)


def main():
    if not os.path.exists(WEIGHTS):
        raise SystemExit(f"real_weights: {WEIGHTS} not found (set SHARED=…)")
    t0 = time.time()
    os.makedirs(gallery.OUT, exist_ok=True)
    cpu = cpu_description()
    gap = range_gap(); log("range gap", gap)
    st = starts(); log("starts", {k: v["losses"] for k, v in st.items()})
    ms = multiscale(st["content"]); log("multiscale", [(f, l, s) for f, l, s, _ in ms])
    pr = precisions(); log("precisions", pr)
    tv = tv_weights(); log("tv", tv)
    write_section(section(gap, st, ms, pr, tv, cpu, (time.time() - t0) / 60))
    log(f"wrote the Real weights section of BENCHMARKS.md in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
