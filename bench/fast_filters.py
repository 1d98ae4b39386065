#!/usr/bin/python3
"""Fast filters: `stylize apply` against one Gatys L-BFGS iteration at the same size, and `stylize
train` against bench/train_reference.py (the same network, losses, data, crop, batch and threads in
PyTorch), in one run on this machine. With --filter, also the real filter's row: its output on
Tübingen, a Gatys run with the filter's own layers and weights, both scored by the same Gatys loss,
and their times. Writes the "Fast filters" section of BENCHMARKS.md (between its markers) and
bench/fast_filters.json; about 15 minutes on 2 cores (more with --filter).

    bash scripts/build.sh && scripts/demo-photos.sh /tmp/photos
    /usr/bin/python3 bench/fast_filters.py --data /tmp/photos [--filter starry.safetensors]
"""
import argparse
import atexit
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import bf16_default, cpu_description, cpu_flags  # noqa: E402
from paths import BIN, CONTENT, REAL_WEIGHTS as REAL, ROOT, SHARED, STYLE  # noqa: E402,F401
TMP = tempfile.mkdtemp(prefix="stylize-filters-")
atexit.register(shutil.rmtree, TMP, True)
BEGIN, END = "<!-- fast-filters:begin -->", "<!-- fast-filters:end -->"
SIZES = [256, 512, 1024, 2048]


def log(*a):
    print("fast_filters:", *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return p


def content_at(size):
    path = os.path.join(TMP, f"content_{size}.png")
    if not os.path.exists(path):
        im = Image.open(CONTENT).convert("RGB")
        s = size / max(im.size)
        im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS).save(path)
    return path


def untrained_filter(width, data):
    """A filter of `width` after one tiny step: apply's time does not depend on what it learned."""
    out = os.path.join(TMP, f"w{width}.safetensors")
    run([BIN, "train", "--style", STYLE, "--data", data, "-o", out, "--weights", REAL, "--steps", "1",
         "--crop-size", "32", "--batch-size", "1", "--width", str(width), "--checkpoint-every", "0",
         "--preview-every", "0", "-q"])
    return out


def apply_seconds(filt, size, precision, repeats=3):
    """(whole process wall seconds, the filter pass's own seconds): medians of `repeats` runs."""
    walls, passes = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = run([BIN, "apply", "--filter", filt, content_at(size), "-o", os.path.join(TMP, "applied.png"),
                 "--threads", "2", "--precision", precision])
        walls.append(time.perf_counter() - t0)
        passes.append(float(re.search(r"in ([0-9.]+) s", p.stderr).group(1)))
    return statistics.median(walls), statistics.median(passes)


def gatys_iteration(size, weights, precision):
    """Seconds per L-BFGS iteration of a default `stylize` run (full VGG19 layers) at `size`."""
    rep = os.path.join(TMP, "gatys.json")
    run([BIN, content_at(size), STYLE, "-o", os.path.join(TMP, "gatys.png"), "-s", str(size), "-n", "3",
         "--weights", weights, "--threads", "2", "--precision", precision, "-q", "--report", rep])
    with open(rep) as f:
        return json.load(f)["seconds_per_iteration"]


def train_rates(data, steps=4, crop=256, batch=4, width=32):
    """images/s of stylize train and of the PyTorch reference, the first step left out of both."""
    logf = os.path.join(TMP, "train.jsonl")
    run([BIN, "train", "--style", STYLE, "--data", data, "-o", os.path.join(TMP, "t.safetensors"), "--weights", REAL,
         "--steps", str(steps + 1), "--crop-size", str(crop), "--batch-size", str(batch), "--width", str(width),
         "--threads", "2", "--precision", "fp32", "--checkpoint-every", "0", "--preview-every", "0", "--log", logf,
         "-q"])
    lines = [json.loads(l) for l in open(logf)]
    ours = steps * batch / (lines[-1]["seconds"] - lines[0]["seconds"])
    ref = json.loads(run(["/usr/bin/python3", os.path.join(ROOT, "bench", "train_reference.py"), "--weights", REAL,
                          "--style", STYLE, "--data", data, "--steps", str(steps), "--crop-size", str(crop),
                          "--batch-size", str(batch), "--width", str(width), "--threads", "2"]).stdout)
    return ours, ref["images_per_second"], ref["photos"]


def gatys_loss_of(image, size, meta):
    """The Gatys loss of an image under the filter's own training objective (a 0-iteration run)."""
    rep = os.path.join(TMP, "score.json")
    args = [BIN, content_at(size), STYLE, "-o", os.path.join(TMP, "score.png"), "-s", str(size), "-n", "0",
            "--init", image, "--weights", REAL, "-q", "--report", rep] + objective(meta)
    run(args)
    with open(rep) as f:
        return json.load(f)["losses"]["initial"]


def objective(meta):
    """The filter's training objective as `stylize` flags. The style image is at the output's size
    (style scale 1) for both results: one yardstick, stated in the section."""
    args = ["--content-layers", meta["content_layers"], "--style-layers", meta["style_layers"],
            "--content-weight", meta["content_weight"], "--style-weight", meta["style_weight"],
            "--tv-weight", meta["tv_weight"]]
    if meta.get("style_layer_weights"):
        args += ["--style-layer-weights", meta["style_layer_weights"]]
    return args


def filter_metadata(path):
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))["__metadata__"]


def real_filter_row(filt, size, iterations):
    meta = filter_metadata(filt)
    t0 = time.perf_counter()
    out = os.path.join(ROOT, "docs", "gallery", "filter_tubingen.jpg")
    run([BIN, "apply", "--filter", filt, content_at(size), "-o", out, "--threads", "2", "--quality", "90"])
    t_filter = time.perf_counter() - t0
    gatys_out = os.path.join(ROOT, "docs", "gallery", "filter_gatys_tubingen.jpg")
    rep = os.path.join(TMP, "g.json")
    t0 = time.perf_counter()
    run([BIN, content_at(size), STYLE, "-o", gatys_out, "-s", str(size), "-n", str(iterations), "--weights", REAL,
         "--threads", "2", "-q", "--report", rep, "--quality", "90"] + objective(meta))
    t_gatys = time.perf_counter() - t0
    return {"size": size, "iterations": iterations, "filter_seconds": t_filter, "gatys_seconds": t_gatys,
            "filter_loss": gatys_loss_of(out, size, meta), "gatys_loss": gatys_loss_of(gatys_out, size, meta),
            "meta": meta}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="photos for the training-speed comparison (required unless --from-json)")
    ap.add_argument("--filter", help="a trained filter for the quality row and the gallery")
    ap.add_argument("--gatys-iterations", type=int, default=300)
    ap.add_argument("--from-json", action="store_true", help="only rewrite the section from bench/fast_filters.json")
    a = ap.parse_args()
    if a.from_json:
        with open(os.path.join(ROOT, "bench", "fast_filters.json")) as f:
            return write_section(json.load(f))
    if not a.data:
        ap.error("--data DIR is required")
    flags = cpu_flags()
    cpu = cpu_description()
    amx = "amx_bf16" in flags
    native_bf16 = bf16_default(flags)
    synth = os.path.join(TMP, "vgg19-synth.safetensors")
    run([BIN, "weights", "synth", "--force", "-o", synth])
    precisions = ["fp32"] + (["bf16"] if native_bf16 else [])
    result = {"cpu": cpu, "amx": amx, "native_bf16": native_bf16, "date": time.strftime("%Y-%m-%d"), "apply": [], "train": {}}
    filters = {w: untrained_filter(w, a.data) for w in (32, 16)}
    for size in SIZES:
        for precision in precisions:
            log("size", size, precision)
            it = gatys_iteration(size, synth, precision) if size <= 1024 else None
            row = {"size": size, "precision": precision, "gatys_iteration_s": it}
            for w, f in filters.items():
                row[f"w{w}_process_s"], row[f"w{w}_pass_s"] = apply_seconds(f, size, precision)
            result["apply"].append(row)
    log("training speed")
    ours, ref, photos = train_rates(a.data)
    result["train"] = {"stylize_images_per_second": ours, "reference_images_per_second": ref, "photos": photos,
                       "crop": 256, "batch": 4, "width": 32, "threads": 2}
    if a.filter:
        log("real filter")
        result["real_filter"] = real_filter_row(a.filter, 512, a.gatys_iterations)
    with open(os.path.join(ROOT, "bench", "fast_filters.json"), "w") as f:
        json.dump(result, f, indent=2)
    write_section(result)


def write_section(r):
    L = [BEGIN, "## Fast filters", "",
         f"`/usr/bin/python3 bench/fast_filters.py` on {r['cpu']}, 2 threads, {r['date']}"
         f"{' (AMX: bf16 rows too)' if r['amx'] else ' (AVX512-BF16: bf16 rows too)' if r.get('native_bf16') else ' (no bf16 dot products: fp32 only)'}. Every number below is from that run.", "",
         "### Apply against one Gatys iteration", "",
         "`stylize apply` at each size (Tübingen, longest side), the whole process (start, filter load, decode, "
         "the pass, encode, write) and the filter pass alone, medians of 3; one L-BFGS iteration of a default "
         "`stylize` run (full VGG19 layers, synthetic weights of the real shapes) at the same size. "
         "Goal: the whole apply process at 512 px <= 1/5 of one iteration.", "",
         "| size | precision | Gatys iteration s | apply w32: process s | pass s | process / iteration | "
         "apply w16: process s | pass s | process / iteration |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["apply"]:
        it = row["gatys_iteration_s"]
        ratio = lambda w: f"{row[f'w{w}_process_s'] / it:.3f}" if it else "—"
        L.append(f"| {row['size']} | {row['precision']} | {f'{it:.2f}' if it else '— (not run: ~16x the 512 px one)'} | "
                 f"{row['w32_process_s']:.2f} | {row['w32_pass_s']:.3f} | {ratio(32)} | "
                 f"{row['w16_process_s']:.2f} | {row['w16_pass_s']:.3f} | {ratio(16)} |")
    t = r["train"]
    L += ["", "### Training speed", "",
          f"`stylize train` against `bench/train_reference.py` (the same network, losses and data handling in PyTorch "
          f"with torch.optim.Adam), {t['photos']} photos, {t['crop']} px crops, batch {t['batch']}, width {t['width']}, "
          f"{t['threads']} threads, real conv1-3 weights, default layers; 4 steps after a first one each.", "",
          "| program | images/s | vs reference |", "| --- | --- | --- |",
          f"| stylize train | {t['stylize_images_per_second']:.3f} | "
          f"{t['stylize_images_per_second'] / t['reference_images_per_second']:.2f}x |",
          f"| reference (PyTorch) | {t['reference_images_per_second']:.3f} | 1.00x |"]
    if "real_filter" in r:
        f = r["real_filter"]
        m = f["meta"]
        L += ["", "### A real filter", "",
              f"Trained by `stylize train` on the real conv1-3 weights: style {m.get('style')}, "
              f"{m.get('steps')} steps of {m.get('batch_size')} crops of {m.get('crop_size')} px "
              f"({m.get('images_seen')} images), content {m.get('content_layers')} x {m.get('content_weight')}, "
              f"style {m.get('style_layers')} x {m.get('style_weight')}, TV {m.get('tv_weight')}, style size "
              f"{m.get('style_size')}. Applied to Tübingen at {f['size']} px beside a Gatys run of "
              f"{f['iterations']} iterations with the filter's own objective, both scored by that objective "
              "(a 0-iteration run from each image; the style image at the output's size, style scale 1, for both).", "",
              "| result | seconds (whole process) | content | style | TV | total | vs Gatys |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, key, secs in (("filter", "filter_loss", f["filter_seconds"]), ("Gatys", "gatys_loss", f["gatys_seconds"])):
            l = f[key]
            L.append(f"| {name} | {secs:.1f} | {l['content']:.4g} | {l['style']:.4g} | {l['tv']:.4g} | "
                     f"{l['total']:.4g} | {l['total'] / f['gatys_loss']['total']:.2f}x |")
        L += ["", "![The filter's Tübingen](docs/gallery/filter_tubingen.jpg) "
              "![Gatys' Tübingen, same objective](docs/gallery/filter_gatys_tubingen.jpg)"]
    L.append(END)
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read()
    text = "\n".join(L)
    if BEGIN in old and END in old:
        old = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        old = old.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as fh:
        fh.write(old)
    log("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
