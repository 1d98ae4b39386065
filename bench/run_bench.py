#!/usr/bin/python3
"""Benchmarks stylize against bench/reference.py (PyTorch, same losses) on this machine and writes
BENCHMARKS.md. Run through scripts/bench.sh, which builds in Release first. Every number in the
report is measured in this run; ratios compare the two implementations side by side.

Environment knobs: BENCH_REPEATS (3), BENCH_SINGLE_ITERS (1000: the single-scale run that sets the
target loss), BENCH_COARSE (400,300: iterations at the two coarse scales), BENCH_IMAGES
(../shared/images).
"""
import atexit
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_description  # noqa: E402
from sections import section_names, section_text  # noqa: E402
from timing import timed  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "stylize")
IMAGES = os.environ.get("BENCH_IMAGES", os.path.join(ROOT, "..", "shared", "images"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SINGLE_ITERS = int(os.environ.get("BENCH_SINGLE_ITERS", "1000"))
# Iterations at 128 and 256 px before the 512 px scale of the multi-scale run. Chosen by measuring, on
# 2026-11-29 (bf16, this machine), the 512 px iterations each choice then needs to reach the
# single-scale 1000-iteration loss, and the coarse scales' time: 200,100: 329 its after 33 s of
# coarse scales; 300,200: 254 after 49 s; 400,200: 233 after 61 s; 400,300: 210 after 68 s; 600,300:
# 215 after 92 s. At ~0.65 s per 512 px iteration, 400,300 is the shortest (~205 s, against ~247 s).
COARSE = [int(v) for v in os.environ.get("BENCH_COARSE", "400,300").split(",")]
THREADS = os.cpu_count()
CONTENT = os.path.join(IMAGES, "tubingen.jpg")
STYLE = os.path.join(IMAGES, "starry_night.jpg")
TMP = tempfile.mkdtemp(prefix="stylize-bench-")
# Wall time of the whole run, across the os.execv restart in same_blas_kernels_as_stylize.
STARTED = float(os.environ.setdefault("BENCH_STARTED", str(time.time())))
# Removed at exit (80 MB of weights plus the images); the os.execv restart skips atexit handlers, so
# same_blas_kernels_as_stylize removes the folder itself first.
atexit.register(shutil.rmtree, TMP, True)
WEIGHTS = os.path.join(TMP, "vgg19-synthetic.safetensors")


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def run_stylize(args, report=True):
    rep = os.path.join(TMP, "report.json")
    cmd = [BIN] + args + ["--weights", WEIGHTS, "--threads", str(THREADS)] + (["--report", rep] if report else [])
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"stylize failed: {' '.join(cmd)}\n{p.stderr}")
    return (json.load(open(rep)) if report else None), p.stderr, wall


def run_reference(size, iterations, precision="fp32"):
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "reference.py"), "--weights", WEIGHTS, "--content",
           CONTENT, "--style", STYLE, "--size", str(size), "--iterations", str(iterations), "--threads", str(THREADS),
           "--precision", precision]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def machine_rates():
    """Peak sgemm and 3×3 convolution rates: the best of several single timings, since a floor is
    what the machine can do, and this host's speed drifts from minute to minute."""
    torch.set_num_threads(THREADS)

    def best(fn):
        return timed(fn, 7, min)

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    sgemm = 2 * 2048 ** 3 / best(lambda: a @ b) / 1e9
    x, w = torch.randn(1, 256, 128, 128), torch.randn(256, 256, 3, 3)
    conv = 2 * 9 * 256 * 256 * 128 * 128 / best(lambda: torch.conv2d(x, w, padding=1)) / 1e9
    # The same convolution in bf16, channels-last as stylize runs it in bf16 (oneDNN uses AMX when present).
    xb, wb = x.bfloat16().contiguous(memory_format=torch.channels_last), w.bfloat16()
    conv_bf16 = 2 * 9 * 256 * 256 * 128 * 128 / best(lambda: torch.conv2d(xb, wb, padding=1)) / 1e9
    return sgemm, conv, conv_bf16


def vgg_flops(h, w, last=29):
    """Multiply-adds ×2 of the conv layers up to relu5_1, forward; the input-gradient pass costs the
    same again (weights are frozen: no weight gradients). Gram matrices and losses are added."""
    blocks, widths, cin, flops, grams = [2, 2, 4, 4, 4], [64, 128, 256, 512, 512], 3, 0, 0
    index = 0
    for b, n in enumerate(blocks):
        for _ in range(n):
            flops += 2 * 9 * cin * widths[b] * h * w
            if index + 1 in (1, 6, 11, 20, 29):  # style layers relu1_1 .. relu5_1: Gram fwd + bwd
                grams += 3 * 2 * widths[b] ** 2 * h * w
            cin = widths[b]
            index += 2
            if index > last:
                return 2 * flops + grams
        index += 1
        h, w = h // 2, w // 2
    return 2 * flops + grams


def network_floor_seconds(h, w, repeats=3, precision="fp32"):
    """The arithmetic of one iteration and nothing else: each conv layer up to conv5_1 run alone,
    forward and input gradient (torch's convolution_backward, input only), in the memory layout and
    precision the engine uses for it (fp32: NCHW throughout; bf16: channels-last throughout; mixed:
    bf16 channels-last for blocks 1-2, fp32 NCHW from conv3_1; see src/engine/vgg19.cpp), with oneDNN's direct kernels (the reference's: in fp32 the engine runs
    conv1_2 … conv5_1 by Winograd instead, so an fp32 iteration can beat this floor), plus the
    Gram products of the five style layers (F·Fᵀ forward, one product backward; on bf16 operands in
    bf16, where torch.mm runs the same oneDNN kernel as stylize, but rounds its result to bf16: same
    time). What an iteration would cost if ReLU,
    pooling, the casts, the other loss terms and autograd were free: the floor for this network on
    this library. Random tensors of the real shapes; the time does not depend on the values."""
    torch.set_num_threads(THREADS)

    def median_time(fn):
        return timed(fn, repeats)

    blocks, widths, cin, total = [2, 2, 4, 4, 4], [64, 128, 256, 512, 512], 3, 0.0
    for b, n in enumerate(blocks):
        low = precision == "bf16" or (precision == "mixed" and b < 2)
        fmt = torch.channels_last if low else torch.contiguous_format
        dt = torch.bfloat16 if low else torch.float32
        for layer in range(n if b < 4 else 1):  # block 5 stops at conv5_1 (relu5_1 is the deepest loss layer)
            x = torch.randn(1, cin, h, w, dtype=dt).contiguous(memory_format=fmt)
            wt = torch.randn(widths[b], cin, 3, 3, dtype=dt)
            bias = torch.randn(widths[b], dtype=dt)
            go = torch.randn(1, widths[b], h, w, dtype=dt).contiguous(memory_format=fmt)
            total += median_time(lambda: (torch.conv2d(x, wt, bias, padding=1), torch.ops.aten.convolution_backward(
                go, x, wt, [widths[b]], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])))
            if layer == 0:  # relu{b+1}_1 is a style layer: its Gram matrix and the Gram's backward
                feats = (torch.randn(h * w, widths[b], dtype=dt).t() if fmt == torch.channels_last
                         else torch.randn(widths[b], h * w, dtype=dt))
                sym = torch.randn(widths[b], widths[b], dtype=dt)
                total += median_time(lambda: (feats @ feats.t(), sym @ feats))
            cin = widths[b]
        h, w = h // 2, w // 2
    return total


def keep_freed_memory_in_the_heap():
    """The floor measurements allocate their outputs afresh on every call. glibc would map each of
    them from the system (they are above its 128 KiB threshold) and page-fault it in: time that
    stylize, with its reusing allocator (src/cpu_allocator.cpp), no longer spends. So in this process
    freed memory stays in the heap, and the floor is the arithmetic alone. The reference runs in its
    own process with glibc's defaults, as PyTorch does for its users."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 2 ** 31 - 1) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    if not ok:
        log("warning: mallopt refused; the floor includes page faults")


def median(xs):
    return statistics.median(xs)


def per_iteration(size, iters, precision):
    # The floor is measured between the runs it is compared with: this machine's speed drifts by tens of
    # percent over minutes (a shared host), and interleaving keeps the comparison to the same moment.
    ours, ref, floor = [], [], []
    for r in range(REPEATS):
        rep, _, _ = run_stylize([CONTENT, STYLE, "-o", os.path.join(TMP, "o.png"), "-s", str(size), "-n", str(iters), "-q",
                                 "--precision", precision])
        ours.append(rep)
        ref.append(run_reference(size, iters, precision))
        floor.append(network_floor_seconds(rep["output"]["height"], rep["output"]["width"], 3, precision))
        log(f"{size}px {precision} repeat {r + 1}: stylize {rep['seconds_per_iteration']:.3f} s/it, "
            f"reference {ref[-1]['seconds_per_iteration']:.3f} s/it, arithmetic alone {floor[-1]:.3f} s")
    s = {
        "size": size, "w": ours[0]["output"]["width"], "h": ours[0]["output"]["height"], "precision": precision,
        "spi": median([o["seconds_per_iteration"] for o in ours]),
        "spi_ref": median([o["seconds_per_iteration"] for o in ref]),
        "load": median([o["seconds"]["load_weights"] + o["seconds"]["targets"] for o in ours]),
        "load_ref": median([o["seconds_load_targets"] for o in ref]),
        "rss": median([o["peak_memory_mib"] for o in ours]),
        "rss_ref": median([o["peak_memory_mib"] for o in ref]),
        "floor": median(floor),
    }
    return s


def fp32_loss_of(image, size):
    """The loss of a written output image, evaluated in fp32 (stylize -n 0 from that image): one yardstick
    for runs made in either precision."""
    rep, _, _ = run_stylize([CONTENT, STYLE, "-o", os.path.join(TMP, "rescored.png"), "-s", str(size), "-n", "0", "-q",
                             "--init", image, "--precision", "fp32"])
    return rep["losses"]["final"]["total"]


def mean_abs_pixel_difference(a, b):
    from torchvision.io import ImageReadMode, read_image
    return (read_image(a, ImageReadMode.RGB).float() - read_image(b, ImageReadMode.RGB).float()).abs().mean().item()


def precision_quality(low, size=256, iterations=200):
    """Same run in fp32 and `low` (bf16 or mixed): time, and the final images' loss in fp32 and how far
    apart they are."""
    out = {"size": size, "iterations": iterations, "low": low}
    for precision in ("fp32", low):
        image = os.path.join(TMP, f"quality-{precision}.png")
        rep, _, _ = run_stylize([CONTENT, STYLE, "-o", image, "-s", str(size), "-n", str(iterations), "-q",
                                 "--precision", precision])
        out[precision] = {"spi": rep["seconds_per_iteration"], "loss": rep["losses"]["final"]["total"],
                          "loss_fp32": fp32_loss_of(image, size), "initial": rep["losses"]["initial"]["total"]}
        out["wh"] = f"{rep['output']['width']}×{rep['output']['height']}"
        log(f"quality {precision}: {out[precision]}")
    out["pixel_difference"] = mean_abs_pixel_difference(os.path.join(TMP, "quality-fp32.png"),
                                                        os.path.join(TMP, f"quality-{low}.png"))
    return out


def run_until_loss(args, scale_prefix, target):
    """Runs stylize with a line per iteration and interrupts it (Ctrl-C: it keeps the best image and
    still writes its report) once an iteration at the scale named by `scale_prefix` reaches `target`.
    Returns the report and that iteration (None when the run ended first)."""
    rep = os.path.join(TMP, "report-until.json")
    cmd = [BIN] + args + ["--print-every", "1", "--weights", WEIGHTS, "--threads", str(THREADS), "--report", rep]
    pat = re.compile(re.escape(scale_prefix) + r"iteration (\d+)/\d+\s+loss ([0-9.e+-]+)")
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    reached = None
    for line in p.stderr:
        m = pat.search(line)
        if m and float(m.group(2)) <= target:
            reached = int(m.group(1))
            p.send_signal(signal.SIGINT)
            break
    p.stderr.read()
    if p.wait() not in (0, 130):
        raise SystemExit(f"stylize failed: {' '.join(cmd)}")
    return json.load(open(rep)), reached


def multiscale():
    single, err, _ = run_stylize([CONTENT, STYLE, "-o", os.path.join(TMP, "single.png"), "-s", "512", "-n",
                                  str(SINGLE_ITERS), "--print-every", "100"])
    curve = [(int(m.group(1)), float(m.group(2)))
             for m in re.finditer(r"iteration (\d+)/\d+\s+loss ([0-9.e+-]+)", err)]
    target = single["losses"]["final"]["total"]
    t_single = single["seconds"]["optimise"] + single["seconds"]["targets"]
    log(f"single-scale {SINGLE_ITERS} iterations: loss {target:.6g} in {t_single:.0f} s")
    multi, reached = run_until_loss([CONTENT, STYLE, "-o", os.path.join(TMP, "multi.png"), "-s", "512", "--scales",
                                     "3", "-n", f"{COARSE[0]},{COARSE[1]},{SINGLE_ITERS}"], "scale 3/3 ", target)
    sc = multi["scales"]
    t_coarse = sum(s["seconds_optimise"] + s["seconds_style_targets"] for s in sc[:2])
    spi_final = sc[2]["seconds_per_iteration"]
    t_multi = t_coarse + (reached if reached else SINGLE_ITERS) * spi_final + sc[2]["seconds_style_targets"]
    return {"target": target, "t_single": t_single, "reached": reached, "t_multi": t_multi, "t_coarse": t_coarse,
            "precision": single["settings"]["precision"],
            "multi_final": multi["losses"]["final"]["total"], "coarse": COARSE,
            "start_loss_512": sc[2]["losses"]["initial"]["total"],
            "single_start_loss": single["losses"]["initial"]["total"], "single_curve": curve}


def memory_levers(size=256, iterations=110):
    """Peak RSS with the two memory levers, long enough for a 100-entry L-BFGS history to fill."""
    out = {}
    for name, args in (("lbfgs-100", ["--lbfgs-history", "100"]), ("lbfgs-10", ["--lbfgs-history", "10"]),
                       ("adam", ["--optimizer", "adam"])):
        rep, _, _ = run_stylize([CONTENT, STYLE, "-o", os.path.join(TMP, "m.png"), "-s", str(size), "-n",
                                 str(iterations), "-q"] + args)
        out[name] = rep["peak_memory_mib"]
        out["pixels"] = rep["output"]["width"] * rep["output"]["height"]
        out["size"] = f"{rep['output']['width']}×{rep['output']['height']}"
    # Bytes per output pixel that one history entry costs, measured: 100 vs 10 entries.
    out["entry_bytes_per_px"] = (out["lbfgs-100"] - out["lbfgs-10"]) * 2 ** 20 / (90 * out["pixels"])
    out["iterations"] = iterations
    return out


def batch():
    photos = [os.path.join(IMAGES, n) for n in ("tubingen.jpg", "golden_gate.jpg", "hoovertowernight.jpg", "shipwreck.jpg")]
    out1, out2 = os.path.join(TMP, "b1"), os.path.join(TMP, "b2")
    os.makedirs(out1), os.makedirs(out2)
    rep = os.path.join(TMP, "batch.json")
    t = time.perf_counter()
    subprocess.run([BIN, "batch", "--style", STYLE, "--out-dir", out1, *photos, "-s", "256", "-n", "20", "-q",
                    "--weights", WEIGHTS, "--report", rep], check=True)
    t_batch = time.perf_counter() - t
    t = time.perf_counter()
    for p in photos:
        subprocess.run([BIN, p, STYLE, "-o", os.path.join(out2, os.path.basename(p) + ".png"), "-s", "256", "-n", "20",
                        "-q", "--weights", WEIGHTS], check=True)
    t_sep = time.perf_counter() - t
    r = json.load(open(rep))["totals"]
    return {"n": len(photos), "batch": t_batch / len(photos), "separate": t_sep / len(photos),
            "targets": r["style_target_computations"], "loads": r["model_loads"]}


def openblas_core():
    """The kernel set of the OpenBLAS this process loaded with torch ("" if the BLAS is another)."""
    import ctypes
    try:
        lib = ctypes.CDLL("libblas.so.3")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return ""


def same_blas_kernels_as_stylize():
    """stylize restarts itself with OPENBLAS_CORETYPE set when OpenBLAS fell back to its generic
    kernels on a CPU it does not know (src/cli/main.cpp). The reference and the floor measurements
    run in this process and its children on the same OpenBLAS; they get the kernels stylize chose, so
    that the ratios compare the implementations, not two BLAS kernel sets. Restarts this script."""
    rep = os.path.join(TMP, "blas.json")
    subprocess.run([BIN, CONTENT, STYLE, "-o", os.path.join(TMP, "blas.png"), "-s", "32", "-n", "1", "-q",
                    "--weights", WEIGHTS, "--report", rep], check=True)
    probe = json.load(open(rep))
    core = probe.get("blas_core", "")
    if core and core != openblas_core() and "OPENBLAS_CORETYPE" not in os.environ:
        log(f"OpenBLAS runs its {openblas_core()} kernels here, stylize its {core} ones: restarting with "
            f"OPENBLAS_CORETYPE={core}")
        os.environ["OPENBLAS_CORETYPE"] = core
        os.environ["BENCH_OPENBLAS_DEFAULT"] = openblas_core()
        shutil.rmtree(TMP, ignore_errors=True)
        os.execv(sys.executable, [sys.executable] + sys.argv)
    return core, probe["settings"]["precision"]


def add_shares(row, conv_rate):
    """The row's GFLOP per iteration and how close it comes to the two floors, in percent."""
    row["gflop"] = vgg_flops(row["h"], row["w"]) / 1e9
    row["conv_share"] = 100 * row["gflop"] / row["spi"] / conv_rate
    row["floor_share"] = 100 * row["floor"] / row["spi"]


def gpu_results():
    """bench/gpu-results.json: a bench/gpu.sh run on a GPU machine, copied here (this one has no GPU)."""
    path = os.path.join(ROOT, "bench", "gpu-results.json")
    return json.load(open(path)) if os.path.exists(path) else None


def gpu_section(gpu):
    L = [f"## GPU: {gpu['gpu']}, {gpu['date']} (`bench/gpu.sh`, not this run)\n",
         f"PyTorch {gpu['torch']}, CUDA {gpu['cuda']}, cuDNN {gpu['cudnn']}; host CPU {gpu.get('cpu', '?')}. "
         "Each row: the same weights, images and losses for both; L-BFGS with a 100-entry history (stylize's with "
         "its backtracking line search and pixels kept in 0..255, the reference's torch.optim.LBFGS unconstrained); "
         "stylize reads nothing back during its iterations, the reference reads every loss (as neural-style-pt "
         "does); cuDNN's TF32 on in both (LibTorch's default). Per iteration: the whole optimisation over its "
         "iteration count.\n",
         "| run | size | iterations | stylize s/it | reference s/it | ratio | stylize final loss | reference final loss |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in gpu["rows"]:
        what = "real VGG19 conv1-3, Tübingen × Starry Night" if r.get("weights", "synthetic") != "synthetic" \
            else "synthetic VGG19, default layers"
        L.append(f"| {what} | {r['width']}×{r['height']} | {r['iterations']} | "
                 f"{r['stylize']['seconds_per_iteration']:.4f} | {r['reference']['seconds_per_iteration']:.4f} | "
                 f"{r['ratio']:.2f} | {r['stylize']['loss_final']:.5g} | {r['reference']['loss_final']:.5g} |")
    for f in gpu.get("failed", []):
        L.append(f"| {f.get('run', f.get('size'))} | failed: {f['error']} | | | | | | |")
    if gpu.get("tests"):
        L.append("\nThe engine's tests on that machine (tests/test_parity.cpp, CUDA cases included): " +
                 "; ".join(f"`{t}`" for t in gpu["tests"]) + (f" ({gpu['tests_note']})" if gpu.get("tests_note") else ""))
    if gpu.get("note"):
        L.append("\n" + gpu["note"])
    return L + [""]


def goals(table, ms):
    """The goals of issue #5, each with this run's numbers and whether they meet it."""
    met = lambda ok: "**met**" if ok else "**not met**"
    L = ["## Goals, from this run\n"]
    at512 = [r for r in table if r["size"] == 512]
    L.append("- Time per iteration at 512 px ≤ the Python reference's: " + "; ".join(
        f"{r['precision']} {r['spi']:.3f} vs {r['spi_ref']:.3f} s, ratio {r['spi'] / r['spi_ref']:.2f}, "
        f"{met(r['spi'] <= r['spi_ref'])}" for r in at512) + ".")
    share = {f"{r['precision']} {r['w']}×{r['h']}": r["floor_share"] for r in table}
    L.append("- ≥ 85% of the floor, taken as this network's arithmetic alone (its convolutions and Gram products "
             "at the rates this machine reaches for their shapes; column *% of arithmetic alone*): " +
             ", ".join(f"{k} {v:.0f}%" for k, v in share.items()) + ". " +
             met(all(v >= 85 for v in share.values())) + (" for every row" if all(v >= 85 for v in share.values())
                                                        else " where below 85%") + ".")
    winograd = ("fp32", "mixed")  # precisions whose engine runs Winograd where the floor times direct kernels
    if any(v > 100 for k, v in share.items() if k.startswith(winograd)):
        L.append("  Above 100% in fp32 or mixed: the floor times oneDNN's direct convolutions (what the reference runs), "
                 "and the engine runs fp32's conv1_2 … conv5_1 (mixed's conv3_1 … conv5_1) by Winograd's F(4×4, 3×3), 4x fewer multiplications "
                 "(src/engine/winograd.hpp; BENCHMARKS.md \"Where an iteration goes\" times each layer both ways). "
                 "The fp32 floor is a direct-kernel floor, not this engine's.")
    if any(v > 100 for k, v in share.items() if not k.startswith(winograd)):
        L.append("  Above 100% in bf16: the floor, timed op by op from Python between the runs it is compared with, "
                 "came out slower than stylize's whole iteration. This host's speed swings by tens of percent from "
                 "one minute to the next (compare the machine rates of successive runs); read such a row as at the "
                 "floor, within that noise.")
    if any(v < 85 for v in share.values()):
        L.append("  Why: what the floor leaves out — ReLU, pooling, the elementwise loss terms, the L-BFGS "
                 "update, autograd — are memory-bound passes over full-resolution tensors; they weigh more in bf16, "
                 "where the convolutions run on bf16 dot products (AMX or AVX512-BF16), so bf16 sits further from "
                 "its floor. "
                 "Short runs also pay the first iterations' one-off costs (oneDNN kernel creation, the allocator "
                 "filling its cache), which weigh most at 256 px. And the floor is timed apart from the runs, op by "
                 "op, on a host whose speed swings by tens of percent from minute to minute (compare the machine "
                 "rates above between runs of this script): a row moves by several points from run to run.")
    below = [r for r in table if r["conv_share"] < 85]
    L.append("- Against the machine's measured 256-channel convolution rate (column *% of conv floor*): " +
             ", ".join(f"{r['precision']} {r['w']}×{r['h']} {r['conv_share']:.0f}%" for r in table) + ": " +
             ("**met** for every row." if not below else
              "**not met** for " + ", ".join(f"{r['precision']} {r['w']}×{r['h']}" for r in below) +
              ", and not reachable by this network's shapes: its full-resolution layers (3→64, 64→64 channels) "
              "and the Gram products of 64 and 128 channels run far below a 256→256 convolution's rate even alone "
              "(the *arithmetic alone* column is that ceiling).") +
             (" Above 100% in fp32 or mixed: Winograd (above) does fewer multiplications than the GFLOP counted, which "
              "are a direct convolution's." if any(r["conv_share"] > 100 and r["precision"] in winograd for r in table)
              else ""))
    if ms["reached"]:
        share_ms = 100 * ms["t_multi"] / ms["t_single"]
        L.append(f"- Multi-scale reaches the single-scale {SINGLE_ITERS}-iteration loss at 512 px in ≤ 40% of its "
                 f"time: **{share_ms:.0f}%**, {met(share_ms <= 40)}.")
    else:
        L.append(f"- Multi-scale reaches the single-scale {SINGLE_ITERS}-iteration loss at 512 px in ≤ 40% of its "
                 "time: **not reached** in this run, **not met**.")
    if not ms["reached"] or ms["t_multi"] > 0.4 * ms["t_single"]:
        tail = {i: l for i, l in ms["single_curve"]}
        if 500 in tail:
            L.append(f"  Why: the target sits in single-scale's flat tail ({tail[500]:.4g} at iteration 500, "
                     f"{ms['target']:.4g} at {SINGLE_ITERS}: the last half of the run buys "
                     f"{100 * (1 - ms['target'] / tail[500]):.1f}%), and the 512 px scale of a multi-scale run has "
                     "to reach that polish itself; the coarse scales give it a better start, not a shorter tail.")
    minutes = (time.time() - STARTED) / 60
    L.append(f"- `scripts/bench.sh` in under 30 minutes: this run took **{minutes:.1f} min** "
             f"(up to writing this file), {met(minutes < 30)}.")
    gpu = gpu_results()
    if gpu:
        ratios = ", ".join(f"{r.get('run', r['size'])} {r['size']} px {r['ratio']:.2f}" for r in gpu["rows"])
        L.append(f"- GPU: measured on {gpu['date']} on {gpu['gpu']} by `bench/gpu.sh` (not in this run: this "
                 f"machine has no GPU); stylize over the reference per iteration: {ratios} (section below). "
                 f"{met(all(r['ratio'] <= 1 for r in gpu['rows']))} for ≤ the reference.\n")
    else:
        L.append("- GPU (500 iterations at 512 and 2048 px against the reference on the same GPU): **not measured**. "
                 "No GPU machine was lent to this project's sessions so far. `bench/gpu.sh` is the prepared run: "
                 "it builds the engine against the GPU machine's PyTorch (`-DSTYLIZE_ENGINE_ONLY=ON`, or g++ "
                 "directly where CMake cannot find the CUDA toolkit) and times `stylize_engine_bench` and "
                 "`bench/reference.py --device cuda` on the same synthetic problem. On CUDA, cuDNN's benchmark "
                 "mode is on and an L-BFGS iteration reads nothing back from the device except the progress the "
                 "caller asks for (stylize's own L-BFGS; a test counts the reads), but none of it has run on a "
                 "GPU yet.\n")
    return L


def main():
    subprocess.run([BIN, "weights", "synth", "--force", "-o", WEIGHTS, "-q"], check=True)
    blas_core, default_precision = same_blas_kernels_as_stylize()
    keep_freed_memory_in_the_heap()
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "reference.py"), "--check"], check=True,
                   capture_output=True)
    sgemm, conv, conv_bf16 = machine_rates()
    log(f"machine: sgemm {sgemm:.1f} GFLOP/s, conv {conv:.1f} GFLOP/s, bf16 conv {conv_bf16:.1f} GFLOP/s")
    sizes = {256: 10, 512: 6, 1024: 3}
    # fp32 always (the like-for-like comparison with other implementations); bf16 or mixed too where
    # it is stylize's default (CPUs with AMX; with AVX512-BF16 and no AMX). The default precision gets
    # all three sizes; fp32, when it is not the default, 256 and 512 px (1024 px fp32 would add ~5
    # minutes here).
    precisions = ["fp32"] + ([default_precision] if default_precision != "fp32" else [])
    table = [per_iteration(s, n, p) for p in precisions for s, n in sizes.items()
             if p == default_precision or s <= 512]
    # The default precision's rows feed the memory model: that is what a user's run costs.
    rows = {r["size"]: r for r in table if r["precision"] == default_precision}
    # mixed against bf16's rate: its convolutions from conv3_1 are fp32 Winograd, which beats fp32's
    # direct rate there (a share over 100% says so, as for fp32).
    floor_rate = {"fp32": conv, "bf16": conv_bf16, "mixed": conv_bf16}
    for r in table:
        add_shares(r, floor_rate[r["precision"]])
    log(f"{default_precision} vs fp32, the same run")
    quality = precision_quality(default_precision) if default_precision != "fp32" else None
    log("multi-scale vs single-scale (this takes a while)")
    ms = multiscale()
    log("memory with --lbfgs-history 100 / 10 and Adam")
    mem = memory_levers()
    log("batch vs one process per image")
    b = batch()
    log("serve load test")
    lt = json.loads(subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "load_test.py"), "--requests", "40",
                                    "--clients", "4"], capture_output=True, text=True).stdout)
    # Memory model: peak RSS ≈ fixed + per-pixel activations (fitted on 256..1024 from short runs, whose
    # L-BFGS history is still nearly empty), plus the history: h entries at the measured bytes per pixel
    # (in theory 2 image-sized float tensors, 24 bytes per pixel).
    px = {s: rows[s]["w"] * rows[s]["h"] for s in rows}
    per_px = (rows[1024]["rss"] - rows[256]["rss"]) * 2 ** 20 / (px[1024] - px[256])
    fixed = rows[256]["rss"] * 2 ** 20 - per_px * px[256]

    def largest(limit_gib, history):
        per = per_px + history * mem["entry_bytes_per_px"]
        pixels = (limit_gib * 2 ** 30 - fixed) / per
        side = int((pixels * 4 / 3) ** 0.5)  # longest side of a 4:3 image
        return side

    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cpu = cpu_description()
    L = []
    L.append("# Benchmarks\n")
    L.append(f"Measured {now} on {cpu}, {THREADS} threads, by `scripts/bench.sh` (rerun it to regenerate this file).")
    L.append("Weights: seeded synthetic VGG19 (same architecture and cost as the real one); images: "
             "`tubingen.jpg` + `starry_night.jpg`. Reference: `bench/reference.py`, the same losses in PyTorch's "
             "Python API on the same LibTorch (VGG19 in torchvision's layout, `torch.optim.LBFGS`), checked against the "
             "parity fixture. Medians of " + str(REPEATS) + " runs.\n")
    L.append(f"Machine floor: sgemm 2048² **{sgemm:.1f} GFLOP/s**, 3×3 convolution (256→256, 128²) **{conv:.1f} GFLOP/s** "
             f"in fp32, **{conv_bf16:.1f} GFLOP/s** in bf16 (channels-last).")
    L.append(f"OpenBLAS kernels: **{blas_core or 'not OpenBLAS'}** for stylize, the reference and the floor alike"
             + (f" (OpenBLAS alone would pick its generic {os.environ.get('BENCH_OPENBLAS_DEFAULT')} kernels on this "
                "CPU; stylize restarts itself with `OPENBLAS_CORETYPE` set, and so did this script)"
                if os.environ.get("BENCH_OPENBLAS_DEFAULT") else "") + ".")
    L.append(f"stylize's default precision here (`--precision auto`): **{default_precision}**"
             + (" (this CPU has AMX-BF16)." if default_precision == "bf16" else
                " (this CPU has AVX512-BF16 dot products, no AMX: bf16 up to pool2, fp32 from conv3_1)."
                if default_precision == "mixed" else
                " (no bf16 dot products on this CPU, so no bf16 rows are measured).") + "\n")
    L.extend(goals(table, ms))
    L.append("## Time per L-BFGS iteration\n")
    L.append("| precision | size | stylize s/it | reference s/it | ratio (stylize/ref) | GFLOP/it | stylize GFLOP/s "
             "| % of conv floor | arithmetic alone s/it | % of arithmetic alone |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in table:
        L.append(f"| {r['precision']} | {r['w']}×{r['h']} | {r['spi']:.3f} | {r['spi_ref']:.3f} | "
                 f"{r['spi'] / r['spi_ref']:.2f} | {r['gflop']:.0f} | {r['gflop'] / r['spi']:.1f} | "
                 f"{r['conv_share']:.0f}% | {r['floor']:.3f} | {r['floor_share']:.0f}% |")
    L.append("\nEach row compares like with like: the reference runs in the same precision (`bench/reference.py "
             "--precision`: its network in bf16, the features cast to fp32 for the losses). stylize's bf16 Gram "
             "products take the bf16 features directly (oneDNN, accumulated in fp32 with an fp32 result: the same "
             "values as the cast and an fp32 product, at the bf16 rate), which PyTorch's Python API cannot express "
             "(`torch.mm` on bf16 rounds the result to bf16); that is part of the bf16 lead. "
             "GFLOP/it counts the convolutions up to relu5_1 forward and their input-gradient pass (weights are "
             "frozen, so no weight gradients), plus the Gram products; the conv floor is the convolution rate above in "
             "the row's precision. *Arithmetic alone* runs each of this network's conv layers by itself, forward and "
             "input gradient, in the layout and precision the engine uses, plus the five Gram products and their "
             "backward, also in the row's precision (`network_floor_seconds` in bench/run_bench.py): the time an "
             "iteration would take if ReLU, pooling, the casts, the elementwise loss terms, the L-BFGS update and "
             "autograd cost nothing. The last column is how close an "
             "iteration comes to that floor. Part of the lead over the reference at every size is BLAS threading: "
             "stylize runs OpenBLAS single-threaded and splits the Gram products over ATen's threads itself, while a "
             "plain PyTorch process lets OpenBLAS's spinning threads compete with ATen's for the cores "
             "(`OPENBLAS_NUM_THREADS=1` would give the reference part of that back).\n")
    if len(precisions) > 1:
        f32 = {r["size"]: r for r in table if r["precision"] == "fp32"}
        L.append(f"{default_precision} over fp32, stylize, per iteration: " + ", ".join(
            f"{r['w']}×{r['h']} **{f32[r['size']]['spi'] / r['spi']:.2f}x** faster" for r in table
            if r["precision"] == default_precision and r["size"] in f32) + ".\n")
    L.append("## Load + targets, peak memory\n")
    L.append("| precision | size | stylize load+targets s | reference s | ratio | stylize peak RSS MiB | reference MiB | ratio |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in table:
        L.append(f"| {r['precision']} | {r['w']}×{r['h']} | {r['load']:.2f} | {r['load_ref']:.2f} | "
                 f"{r['load'] / r['load_ref']:.2f} | {r['rss']:.0f} | {r['rss_ref']:.0f} | {r['rss'] / r['rss_ref']:.2f} |")
    if quality:
        q, low = quality, quality["low"]
        L.append(f"\n## {low} against fp32: the same run both ways (synthetic weights)\n")
        L.append(f"{q['wh']}, {q['iterations']} iterations from the content image, `--precision fp32` and "
                 f"`--precision {low}`; each output image's loss then evaluated in fp32 (`stylize -n 0 --init "
                 "OUTPUT --precision fp32`: the same yardstick for both), reading each image as written (8 bits). "
                 "Synthetic weights check the arithmetic, not the picture: the same comparison on the real "
                 "weights, with pictures, is in \"Real weights\" below.\n")
        L.append("| precision | s/it | final loss (own arithmetic) | final loss of the image, in fp32 |")
        L.append("| --- | --- | --- | --- |")
        for p in ("fp32", low):
            L.append(f"| {p} | {q[p]['spi']:.3f} | {q[p]['loss']:.5g} | {q[p]['loss_fp32']:.5g} |")
        L.append(f"\n{low}'s image, scored in fp32, is at **{100 * q[low]['loss_fp32'] / q['fp32']['loss_fp32']:.1f}%** "
                 f"of fp32's loss (the start was {q['fp32']['initial']:.4g}); the two images differ by "
                 f"**{q['pixel_difference']:.2f}** levels (of 255) per channel on average.\n")
    L.append("\n## Multi-scale vs single-scale at 512 px (synthetic weights)\n")
    if ms["reached"]:
        verdict = (f"reached in **{ms['t_multi']:.0f} s = {100 * ms['t_multi'] / ms['t_single']:.0f}%** of the "
                   f"single-scale time (coarse scales {ms['t_coarse']:.0f} s, then {ms['reached']} iterations at 512 px)")
    else:
        verdict = f"not reached within {SINGLE_ITERS} iterations at 512 px (final {ms['multi_final']:.4g})"
    L.append(f"Target: the loss a single-scale {SINGLE_ITERS}-iteration run reaches at 512 px, "
             f"**{ms['target']:.4g}**, in {ms['t_single']:.0f} s (targets + optimisation). "
             f"`--scales 3 -n {ms['coarse'][0]},{ms['coarse'][1]},{SINGLE_ITERS}` (128 → 256 → 512 px): {verdict}. "
             "The multi-scale run is stopped (Ctrl-C) as soon as a 512 px iteration reaches the target, and its time "
             "is the coarse scales plus that many 512 px iterations at the measured rate, plus the 512 px targets. "
             f"Its first 512 px loss is {ms['start_loss_512']:.4g} against {ms['single_start_loss']:.4g} for the "
             "content start. Losses are measured at 512 px both ways. This is time to a loss under synthetic "
             "weights; on the real weights the same recipe ends far from the single-scale picture (\"Real weights\" "
             "below).\n")
    if ms["single_curve"]:
        L.append(f"Single-scale loss on the way (iteration: loss): " + ", ".join(
            f"{i}: {l:.4g}" for i, l in ms["single_curve"] if i in (100, 200, 300, 500, 700, 900)) + ". Most of "
            "a long run polishes the last few percent of the loss, and that is where a better start pays.\n")
    L.append("## Batch vs one process per image\n")
    L.append(f"{b['n']} photos × 1 style at 256 px, 20 iterations: `stylize batch` **{b['batch']:.2f} s/image** "
             f"({b['loads']} model load, style targets computed {b['targets']} time) vs one `stylize` process per "
             f"image **{b['separate']:.2f} s/image**: ratio {b['batch'] / b['separate']:.2f}. What a batch saves per "
             "image is the process start, the weights load and the style targets (the load + targets column above, "
             "minus the content targets); at this size and iteration count the optimisation dominates, so the "
             "saving is within run-to-run noise. It grows with fewer iterations, many styles, or GPU runs where "
             "iterations are fast.\n")
    L.append("## `stylize serve` load test (loopback)\n")
    L.append(f"`bench/load_test.py`: {lt['requests']} synchronous `/v1/stylize` requests ({lt['size']} px, "
             f"{lt['iterations']} iterations) from {lt['clients']} concurrent clients against one worker: "
             f"**{lt['jobs_per_minute']:.0f} jobs/minute**, latency p50 **{lt['p50_s']:.2f} s**, p95 "
             f"**{lt['p95_s']:.2f} s** (queueing included); {lt['ok']}/{lt['requests']} answered with an image, "
             f"{lt['lost_or_failed']} lost or failed; server alive afterwards: {lt['server_alive_after']}, "
             f"exit code after SIGTERM {lt['server_exit_code']}.\n")
    L.append(f"## Memory: the levers, measured, and the limits they give ({default_precision}, the default here)\n")
    L.append(f"Peak RSS at {mem['size']} after {mem['iterations']} iterations (the 100-entry history full): "
             f"`--lbfgs-history 100` **{mem['lbfgs-100']:.0f} MiB**, `--lbfgs-history 10` **{mem['lbfgs-10']:.0f} "
             f"MiB**, `--optimizer adam` **{mem['adam']:.0f} MiB**. One history entry costs "
             f"**{mem['entry_bytes_per_px']:.1f} bytes per output pixel** (100 vs 10 entries; in theory 24: two "
             "image-sized float tensors).\n")
    L.append(f"Model for the limits: ≈ {fixed / 2**20:.0f} MiB fixed + {per_px:.0f} bytes per output pixel for "
             "activations (fitted on the peak RSS of the short runs above) + history entries at the measured "
             "cost. Adam is counted as one entry (its two moment tensors).\n")
    L.append("| RAM | `--lbfgs-history 100` | `--lbfgs-history 10` | `--optimizer adam` |")
    L.append("| --- | --- | --- | --- |")
    for gib in (8, 24):
        L.append(f"| {gib} GB | ~{largest(gib, 100)} px | ~{largest(gib, 10)} px | ~{largest(gib, 1)} px |")
    L.append("\n(Longest side of a 4:3 image: an estimate from the model, not a run at that size. `stylize` checks "
             "its own estimate against available memory before a CPU run starts, exit 7.)")
    if gpu_results():
        L.append("")
        L.extend(gpu_section(gpu_results()))
    path = os.path.join(ROOT, "BENCHMARKS.md")
    # Every section between markers is owned by another script (bench/real_weights.py, print_size.py,
    # fast_filters.py, job_store_choice.py, queue_load.py, lbfgs_step.py, iteration_profile.py: one per
    # CPU) or written by hand ("lbfgs-backtracking", "mixed-precision", "speed-notes"): all are carried
    # over as they are, in their order, whatever their names.
    real = ""
    if os.path.exists(path):
        old = open(path).read()
        for name in section_names(old):
            real += "\n" + section_text(old, name) + "\n"
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n" + real)
    log("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
