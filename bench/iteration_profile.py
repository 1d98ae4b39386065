#!/usr/bin/python3
"""Where one L-BFGS iteration's time goes, layer by layer and pass by pass, against the arithmetic of
each pass; and the iteration against the Python reference on the same problem (#20).

    /usr/bin/python3 bench/iteration_profile.py [--sizes 256,512] [--precisions fp32] [--iterations 4]
        [--threads 2] [--markdown]

For each size and precision: `stylize_engine_bench --profile-out` records `--iterations` iterations
(after three unrecorded ones) with LibTorch's profiler, on synthetic VGG19 weights and images and the
CLI's default losses (style relu1_1..relu5_1, content relu4_2); the spans are attributed here to
layers (the engine names each layer's forward, `vgg19::conv3_2`, and autograd ties each backward
node to its forward by sequence number) and passes. Each convolution and Gram product is then run
alone, in the same layout and precision, in this process (the same LibTorch and oneDNN): the rate
this machine reaches for that shape. ReLU and pooling are memory-bound; their rows show GB/s against
this machine's copy rate. The recording itself costs a few percent: per-iteration ratios against
the reference come from separate, unrecorded runs (`stylize_engine_bench` and `bench/reference.py
--inputs` on the same weights and images). Prints a Markdown section; --markdown also writes it into
BENCHMARKS.md (between its iteration-profile markers; scripts/bench.sh carries it over).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell"}
# glibc hands every block over 32 MiB back to the system when it is freed, so each new full-resolution
# tensor of a plain PyTorch process costs page faults on first touch (~126,000 per 512 px iteration).
# stylize keeps its blocks (src/engine/cpu_allocator.cpp). This process times layers "alone" with
# glibc keeping its memory too (no mmap, no trim), or the alone column would time page faults; the
# reference runs once plainly, as its users run it, and once with the same settings.
KEEP_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
WANTED = {**KEEP_MEMORY, **(AVX2_CAP if "--as-avx2" in sys.argv else {})}
if any(os.environ.get(k) != v for k, v in WANTED.items()):
    # Both are read when glibc, oneDNN, ATen and OpenBLAS start: this process starts again with them.
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **WANTED})


def child_env(keep_memory):
    """The environment of a child: the AVX2 caps if any, glibc's settings only when asked."""
    return {k: v for k, v in os.environ.items() if keep_memory or k not in KEEP_MEMORY}

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sections import replace_section, section_names, section_text  # noqa: E402
from timing import timed  # noqa: E402
import machine  # noqa: E402
from machine import cpu_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The engine's bench binary: the Release build's, or another build's (bench/gpu.sh profiles the GPU
# machine's host CPU with its own LibTorch build).
BENCH = os.environ.get("STYLIZE_ENGINE_BENCH") or os.path.join(ROOT, "build", "stylize_engine_bench")
BLOCKS, WIDTHS = [2, 2, 4, 4, 4], [64, 128, 256, 512, 512]
DEEPEST = "relu5_1"


def log(*a):
    print("profile:", *a, file=sys.stderr, flush=True)


def capped_to_avx2():
    return all(os.environ.get(k) == v for k, v in AVX2_CAP.items())


def cpu_flags():
    """The CPU's flags; with --as-avx2 less every AVX-512 and AMX one, as the capped kernels see it."""
    flags = machine.cpu_flags()
    return {f for f in flags if not f.startswith(("avx512", "amx"))} if capped_to_avx2() else flags


def layers(h, w):
    """VGG19 up to relu5_1: (name, kind, in channels, out channels, height, width) per layer."""
    out, cin = [], 3
    for b, n in enumerate(BLOCKS):
        for c in range(n):
            s = f"{b + 1}_{c + 1}"
            out.append((f"conv{s}", "conv", cin, WIDTHS[b], h, w))
            out.append((f"relu{s}", "relu", WIDTHS[b], WIDTHS[b], h, w))
            cin = WIDTHS[b]
            if f"relu{s}" == DEEPEST:
                return out
        out.append((f"pool{b + 1}", "pool", cin, cin, h, w))
        h, w = h // 2, w // 2
    return out


def record(size, precision, iterations, threads, tmp):
    path = os.path.join(tmp, f"profile-{size}-{precision}.json")
    cmd = [BENCH, "--device", "cpu", "--size", str(size), "--precision", precision, "--threads", str(threads),
           "--iterations", str(iterations), "--profile-out", path]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=child_env(False))
    return json.load(open(path))


def children_index(spans):
    """Per span, its descendants (same thread, inside its time range); spans sorted by start."""
    by_thread = defaultdict(list)
    for s in spans:
        by_thread[s["thread"]].append(s)
    for ss in by_thread.values():
        ss.sort(key=lambda s: (s["start_us"], -s["us"]))
    return by_thread


def descendants(thread_spans, i):
    s = thread_spans[i]
    end = s["start_us"] + s["us"]
    j = i + 1
    while j < len(thread_spans) and thread_spans[j]["start_us"] < end:
        yield thread_spans[j]
        j += 1


def attribute(profile, h, w):
    """{(layer, pass): µs over the recorded iterations}, plus the iteration's wall µs."""
    spans = profile["spans"]
    by_thread = children_index(spans)
    main = next(t for t, ss in by_thread.items() if any(s["name"].startswith("vgg19::") for s in ss))
    ss = by_thread[main]
    # Forward sequence numbers → layer name (the ops each vgg19:: span ran).
    seq_layer = {}
    for i, s in enumerate(ss):
        if s["name"].startswith("vgg19::") and s["depth"] == 0:
            for d in descendants(ss, i):
                if d["sequence"] >= 0:
                    seq_layer.setdefault(d["sequence"], s["name"][7:])
    time_in = defaultdict(float)
    top = 0.0
    for i, s in enumerate(ss):
        if s["depth"] != 0:
            continue
        top += s["us"]
        name = s["name"]
        if name.startswith("vgg19::"):
            layer = name[7:]
            if layer.startswith("pool") and next(descendants(ss, i), None) is None:
                continue  # done by the ReLU before it (fused)
            kind = "forward" if layer.startswith("conv") else layer.rstrip("0123456789_")
            if kind == "relu" and any(d["name"] in ("aten::max_pool2d_with_indices", "stylize::relu_max_pool")
                                      for d in descendants(ss, i)):
                kind = "relu + pool (fused)"  # ReluMaxPool in src/engine/vgg19.cpp
            time_in[(layer, kind)] += s["us"]
        elif name.startswith("stylize::gram"):
            time_in[(gram_layer(s, ss, i, h, w), "Gram forward")] += s["us"]
        elif name.startswith("stylize::lbfgs_step"):
            time_in[("", "L-BFGS update")] += s["us"]
        elif name.startswith("stylize::keep_best"):
            time_in[("", "best-image bookkeeping")] += s["us"]
        elif "evaluate_function" in name:
            time_in[backward_key(s, ss, i, seq_layer, h, w)] += s["us"]
        else:
            time_in[("", "loss terms, casts, glue (forward)")] += s["us"]
    wall = profile["seconds"] * 1e6
    time_in[("", "autograd engine and untraced")] += wall - top
    n = profile["iterations"]
    return {k: v / n for k, v in time_in.items()}, wall / n


def gram_layer(s, ss, i, h, w):
    """The style layer whose [1, C, H, W] features a Gram span took (matched by C and H)."""
    for d in [s] + list(descendants(ss, i)):
        if d["shapes"] and len(d["shapes"][0]) == 4:
            c, fh = d["shapes"][0][1], d["shapes"][0][2]
            for name, kind, _, cout, lh, _ in layers(h, w):
                if kind == "relu" and name.endswith("_1") and (cout, lh) == (c, fh):
                    return name
    return "?"


def backward_key(s, ss, i, seq_layer, h, w):
    node = s["name"].split(": ", 1)[-1]
    if "ReluMaxPool" in node:  # named by the pooled activation's shape: the ReLU before that pool
        relu = "?"
        for d in descendants(ss, i):
            # ATen's pooling backward or the engine's own (ReluMaxPoolOnePass): both take the pooled gradient first
            if d["name"] in ("aten::max_pool2d_with_indices_backward", "stylize::relu_max_pool_backward") and d["shapes"]:
                c, ph = d["shapes"][0][1], d["shapes"][0][2]
                for name, kind, _, cout, lh, _ in layers(h, w):
                    if kind == "relu" and (cout, lh // 2) == (c, ph) and not name.endswith("_1"):
                        relu = name
                return (relu, "relu + pool backward (fused)")
    # Their backward names its layer (src/engine/vgg19.cpp WinogradConv, DirectConv3x3)
    if "WinogradConv" in node or "DirectConv3x3" in node:
        for d in descendants(ss, i):
            if d["name"].startswith(("stylize::winograd_conv_input_gradient:", "stylize::direct_conv_input_gradient:")):
                return (d["name"].rsplit(":", 1)[-1], "input gradient")
    if "GramFunction" in node:
        for d in descendants(ss, i):
            if d["name"] == "stylize::gram_backward":
                return (gram_layer(d, ss, ss.index(d), h, w), "Gram backward")
    layer = seq_layer.get(s["sequence"])
    if layer is None:
        for d in descendants(ss, i):
            if d["sequence"] >= 0 and d["sequence"] in seq_layer:
                layer = seq_layer[d["sequence"]]
                break
    if layer is None:
        return ("", "loss terms, casts, glue (backward)")
    if layer.startswith("conv") and "Convolution" in node:
        return (layer, "input gradient")
    if layer.startswith("conv"):  # anything else in a convolution's span: a layout change
        return (layer, "layout change (backward)")
    return (layer, layer.rstrip("0123456789_") + " backward")


def best(fn):
    return timed(fn, 5)


MIXED_FP32_FROM = 10  # conv3_1, the first fp32 layer of --precision mixed (include/stylize/vgg19.hpp)


def in_bf16(precision, index):
    """Whether layer `index` (torchvision's numbering, the position in layers()) computes in bf16."""
    return precision == "bf16" or (precision == "mixed" and index < MIXED_FP32_FROM)


def alone(h, w, precision):
    """Per conv layer (forward, input gradient) and style layer (Gram forward, backward): seconds run
    alone, in the type and layout the engine uses (src/engine/vgg19.cpp: fp32 NCHW, bf16
    channels-last; mixed each layer as its type)."""
    out = {}
    for index, (name, kind, cin, cout, lh, lw) in enumerate(layers(h, w)):
        dt = torch.bfloat16 if in_bf16(precision, index) else torch.float32
        fmt = torch.channels_last if dt == torch.bfloat16 else torch.contiguous_format
        if kind == "conv":
            x = torch.randn(1, cin, lh, lw, dtype=dt).contiguous(memory_format=fmt)
            wt, bias = torch.randn(cout, cin, 3, 3, dtype=dt), torch.randn(cout, dtype=dt)
            go = torch.randn(1, cout, lh, lw, dtype=dt).contiguous(memory_format=fmt)
            out[(name, "forward")] = best(lambda: torch.conv2d(x, wt, bias, padding=1))
            out[(name, "input gradient")] = best(lambda: torch.ops.aten.convolution_backward(
                go, x, wt, [cout], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]))
        elif kind == "relu" and name.endswith("_1"):
            f = torch.randn(lh * lw, cout, dtype=dt).t() if fmt == torch.channels_last else torch.randn(cout, lh * lw, dtype=dt)
            sym = torch.randn(cout, cout, dtype=dt)
            out[(name, "Gram forward")] = best(lambda: f @ f.t())
            out[(name, "Gram backward")] = best(lambda: sym @ f)
    return out


def flops(h, w):
    out = {}
    for name, kind, cin, cout, lh, lw in layers(h, w):
        if kind == "conv":
            out[(name, "forward")] = out[(name, "input gradient")] = 2 * 9 * cin * cout * lh * lw
        elif kind == "relu" and name.endswith("_1"):
            out[(name, "Gram forward")] = out[(name, "Gram backward")] = 2 * cout * cout * lh * lw
    return out


def copy_rate():
    """GB/s of a large out-of-place copy (read + write): the ceiling for ReLU and pooling."""
    a = torch.randn(64 * 1024 * 1024 // 4)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / best(lambda: b.copy_(a)) / 1e9


def elementwise_bytes(h, w, precision):
    """Bytes each ReLU/pool pass moves per layer (forward reads and writes the activation, backward
    reads the gradient and the mask source and writes the gradient)."""
    out = {}
    for index, (name, kind, cin, cout, lh, lw) in enumerate(layers(h, w)):
        n = cout * lh * lw * (2 if in_bf16(precision, index) else 4)
        if kind == "relu":
            out[(name, "relu")], out[(name, "relu backward")] = 2 * n, 3 * n
        elif kind == "pool":
            out[(name, "pool")], out[(name, "pool backward")] = n + n // 4, n // 4 * 2 + n
            relu = prev  # fused with the ReLU before it: what the two passes would move, unfused
            out[(relu, "relu + pool (fused)")] = out[(relu, "relu")] + out[(name, "pool")]
            out[(relu, "relu + pool backward (fused)")] = out[(relu, "relu backward")] + out[(name, "pool backward")]
        prev = name
    return out


def reference_ratio(size, precision, iterations, threads, tmp):
    inputs = os.path.join(tmp, f"inputs-{size}.safetensors")
    ours = json.loads(subprocess.run([BENCH, "--device", "cpu", "--size", str(size), "--precision", precision,
                                      "--threads", str(threads), "--iterations", str(iterations), "--inputs-out", inputs],
                                     check=True, capture_output=True, text=True, env=child_env(False)).stdout)
    def reference(keep_memory):
        return json.loads(subprocess.run([sys.executable, os.path.join(ROOT, "bench", "reference.py"), "--inputs",
                                          inputs, "--iterations", str(iterations), "--threads", str(threads), "--device",
                                          "cpu", "--precision", precision], check=True, capture_output=True, text=True,
                                         env=child_env(keep_memory)).stdout)["seconds_per_iteration"]
    # Like for like: the reference times torch's LBFGS.step alone (its content targets are in its load
    # time), so stylize's figure is its loop alone, without the content targets and closing evaluation.
    return ours["seconds_loop_per_iteration"], reference(False), reference(True)


def table(size, h, w, precision, per, wall, solo, fl, bytes_, bw):
    rows = [f"#### {precision}, {w}×{h}: {wall / 1e3:.0f} ms per recorded iteration", "",
            "| layer | pass | ms/it | share | GFLOP | GFLOP/s in the run | alone ms | run/alone |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = {name: i for i, (name, *_rest) in enumerate(layers(h, w))}
    def key(k):
        layer, _ = k
        if layer in order:
            return (0, order[layer], k[1])
        return (1 if layer else 2, 0, k[0] + k[1])
    for k in sorted(per, key=key):
        us = per[k]
        ms = us / 1e3
        cells = [k[0] or "—", k[1], f"{ms:.1f}", f"{100 * us / wall:.1f}%"]
        if k in fl:
            s_alone = solo.get(k)
            cells += [f"{fl[k] / 1e9:.2f}", f"{fl[k] / (us / 1e6) / 1e9:.0f}",
                      f"{s_alone * 1e3:.1f}" if s_alone else "", f"{ms / (s_alone * 1e3):.2f}" if s_alone else ""]
        elif k in bytes_:
            gbs = bytes_[k] / (us / 1e6) / 1e9
            cells += ["", f"{gbs:.1f} GB/s", f"{bytes_[k] / bw / 1e6:.1f} (copy rate)", f"{ms / (bytes_[k] / bw / 1e6):.2f}"]
        else:
            cells += ["", "", "", ""]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def summary(h, w, per, wall, solo):
    groups = defaultdict(float)
    for (layer, kind), us in per.items():
        if kind in ("forward", "input gradient"):
            groups["convolutions"] += us
        elif kind.startswith("Gram"):
            groups["Gram products"] += us
        elif kind.startswith(("relu", "pool", "layout")):
            groups["ReLU, pooling, layout"] += us
        else:
            groups["loss terms, update, autograd, glue"] += us
    conv_alone = sum(v for (l, k), v in solo.items() if k in ("forward", "input gradient")) * 1e6
    return groups, conv_alone


def best_rate_floor(h, w, per, fl):
    """Seconds per iteration if every convolution and Gram product ran at the best rate any layer
    reached in this recorded run and nothing else cost anything: what no rearrangement of the same
    kernels can beat on this machine."""
    rate = max(fl[k] / (per[k] / 1e6) for k in fl if k in per)
    return sum(fl.values()) / rate


def section_name(flags):
    """BENCHMARKS.md section name, heading and the older sections this profile replaces. One section per
    ISA kind and CPU generation (family and model numbers): a Zen 4 and a Zen 5 have the same ISA kind
    and profiles ~2x apart, and each keeps its own. A section of the kind alone (how names were made
    before 2026-12-05) is replaced when it was measured on this very CPU."""
    kind, isa = (("avx2-capped", None) if capped_to_avx2() else
                 ("amx", "AMX-BF16") if "amx_bf16" in flags else
                 ("avx512-bf16", "AVX512-BF16, no AMX") if "avx512_bf16" in flags else
                 ("avx512", "AVX-512") if "avx512f" in flags else
                 ("avx2", "AVX2, no AVX-512"))
    legacy = "iteration-profile" if kind == "avx2" else f"iteration-profile-{kind}"
    slug = machine.cpu_slug()
    name = f"iteration-profile-{kind}-{slug}" if slug else legacy
    title = (f"AVX2 imitated on {cpu_name()} (kernels capped to AVX2)" if isa is None else f"{isa}, {cpu_name()}")
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else ""
    same_cpu = legacy in section_names(text) and f" on {cpu_name()} (" in section_text(text, legacy)
    return name, title, [legacy] if same_cpu and legacy != name else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--precisions", default="")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--ratio-iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--markdown", action="store_true", help="write the section into BENCHMARKS.md")
    ap.add_argument("--section-out", default="",
                    help="write the section, markers included, into this file instead (a machine whose BENCHMARKS.md "
                         "does not come back: bench/gpu.sh)")
    ap.add_argument("--as-avx2", action="store_true",
                    help="imitate an AVX2-only CPU: oneDNN, ATen and OpenBLAS capped to AVX2 (own section)")
    ap.add_argument("--section", default="",
                    help="BENCHMARKS.md section name (default: one per ISA kind and CPU family/model, so each CPU's profile is kept)")
    ap.add_argument("--keep", default="", help="keep the recorded profiles (JSON spans) in this folder")
    ap.add_argument("--title", default="",
                    help="the section's heading after 'per pass (#20), ' (default: the CPU kind and name)")
    a = ap.parse_args()
    flags = cpu_flags()
    native_bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    # mixed is auto's choice with AVX512-BF16 and no AMX (include/stylize/vgg19.hpp); shown beside both.
    precisions = a.precisions.split(",") if a.precisions else (
        ["fp32"] + (["bf16"] if native_bf16 else []) + (["mixed"] if "avx512_bf16" in flags and "amx_bf16" not in flags else []))
    torch.set_num_threads(a.threads)
    tmp = a.keep or tempfile.mkdtemp(prefix="stylize-profile-")
    os.makedirs(tmp, exist_ok=True)
    started = time.time()
    bw = copy_rate()
    lines = [f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {cpu_name()} "
             f"({machine.cpu_kind(flags)}"
             f"{'; oneDNN, ATen and OpenBLAS capped to AVX2 by ' + ', '.join(f'{k}={v}' for k, v in AVX2_CAP.items()) if capped_to_avx2() else ''}), "
             f"{a.threads} threads, by `bench/iteration_profile.py` (LibTorch {torch.__version__}); "
             f"copy rate {bw:.1f} GB/s.", ""]
    ratio_lines = ["| precision | size | stylize s/it | reference s/it | ratio | reference, memory kept s/it | ratio | "
                   "best-rate floor s/it | floor/reference |",
                   "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    summaries = []
    for precision in precisions:
        for size in [int(s) for s in a.sizes.split(",")]:
            h, w = size * 3 // 4, size
            log(f"{precision} {size} px: recording")
            per, wall = attribute(record(size, precision, a.iterations, a.threads, tmp), h, w)
            log(f"{precision} {size} px: layers alone")
            solo = alone(h, w, precision)
            lines += table(size, h, w, precision, per, wall, solo, flops(h, w), elementwise_bytes(h, w, precision), bw) + [""]
            groups, conv_alone = summary(h, w, per, wall, solo)
            summaries.append((precision, f"{w}×{h}", wall, groups, conv_alone))
            log(f"{precision} {size} px: against the reference")
            ours, ref, kept = reference_ratio(size, precision, a.ratio_iterations, a.threads, tmp)
            floor = best_rate_floor(h, w, per, flops(h, w))
            ratio_lines.append(f"| {precision} | {w}×{h} | {ours:.3f} | {ref:.3f} | {ours / ref:.2f} | {kept:.3f} | "
                               f"{ours / kept:.2f} | {floor:.3f} | {floor / ref:.2f} |")
    head = ["| precision | size | ms/it (recorded) | " + " | ".join(summaries[0][3].keys()) + " | convolutions alone ms |",
            "| --- | --- | --- |" + " --- |" * (len(summaries[0][3]) + 1)]
    for precision, size, wall, groups, conv_alone in summaries:
        head.append(f"| {precision} | {size} | {wall / 1e3:.0f} | " +
                    " | ".join(f"{groups.get(k, 0) / 1e3:.0f} ({100 * groups.get(k, 0) / wall:.0f}%)" for k in summaries[0][3])
                    + f" | {conv_alone / 1e3:.0f} |")
    text = "\n".join(lines[:2] + ["Per iteration, unrecorded, against `bench/reference.py` on the same synthetic problem "
                                  f"({a.ratio_iterations} iterations each); the reference once as its users run it, "
                                  "once with glibc keeping freed memory (`MALLOC_MMAP_MAX_=0`, `MALLOC_TRIM_THRESHOLD_` "
                                  "1 TiB), as stylize's own allocator does, so that the share of the lead that is "
                                  "memory reuse shows. Layers *alone* are timed with glibc keeping its memory. In fp32 the engine "
                                  "runs the convolutions from 64 input channels (all but conv1_1) by Winograd (src/engine/winograd.hpp): "
                                  "their GFLOP are a direct convolution's, so their GFLOP/s is an effective rate, and *alone* "
                                  "is oneDNN's direct kernel, what the reference runs; conv1_1, forward and input gradient, on "
                                  "the engine's own direct kernels (src/engine/direct_conv.hpp). Its fp32 "
                                  "Gram forward runs by SYRK (one triangle, half the multiplications; src/engine/losses.cpp), "
                                  "*alone* by a general product, as the reference. mixed (auto's choice with AVX512-BF16 and no AMX) "
                                  "runs bf16 up to pool2 and fp32 from conv3_1, each part as above; its reference does the same "
                                  "(bench/reference.py --precision mixed):", ""] + ratio_lines + ["", "Where it goes:", ""]
                     + head + [""] + lines[2:] + [f"Whole run: {(time.time() - started) / 60:.1f} min."])
    print(text)
    if a.markdown or a.section_out:
        name, title, drop = section_name(flags)
        name, title = a.section or name, a.title or title
        section = "\n".join([f"<!-- {name}:begin -->", f"## Where an iteration goes: per layer, per pass (#20), {title}",
                             "", text, f"<!-- {name}:end -->"])
        if a.section_out:
            with open(a.section_out, "w") as f:
                f.write(section + "\n")
            log(f"wrote {a.section_out}")
        else:
            replace_section(os.path.join(ROOT, "BENCHMARKS.md"), name, section, drop=drop)
            log("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
