#!/usr/bin/python3
"""Renders README's gallery: contact sheets (content | style | results, each labelled with its settings
and the seconds it took) from ../shared/images and the real VGG19 prefix in ../shared/weights.

Run it through scripts/gallery.sh (which builds first). Environment:
  SIZE (320)        longest side of every result
  ITERATIONS (200)  L-BFGS iterations per result (the --scales run splits its own)
  OUT (docs/gallery) where the sheets and runs.json go
  KEEP (unset)      keep the results in this folder, and take any already there instead of
                    running them again (to redo the sheets' layout without the runs)
Every result is a real `stylize` run; runs.json records each one's command, losses and seconds.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from machine import bf16_default, cpu_description, default_precision  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
IMAGES = os.path.join(SHARED, "images")
WEIGHTS = os.path.join(SHARED, "weights", "vgg19-conv1-3-real.safetensors")
STYLIZE = os.environ.get("STYLIZE", os.path.join(ROOT, "build", "stylize"))
SIZE = int(os.environ.get("SIZE", "320"))
ITERATIONS = int(os.environ.get("ITERATIONS", "200"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "docs", "gallery"))
CELL = 200  # thumbnail height in the sheets, px
# The layers the shallow file serves best (BENCHMARKS.md "Real weights").
LAYERS = ["--content-layers", "relu3_2", "--style-layers", "relu1_1,relu2_1,relu3_1"]
PHOTOS = ["tubingen.jpg", "golden_gate.jpg"]
PAINTINGS = ["starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg"]
if os.environ.get("KEEP"):
    TMP = os.path.abspath(os.environ["KEEP"])
    os.makedirs(TMP, exist_ok=True)
else:
    TMP = tempfile.mkdtemp(prefix="stylize-gallery-")
    atexit.register(shutil.rmtree, TMP, True)
RUNS = []


def stylize(name, content, styles, extra=(), iterations=None):
    """One real run (or, with KEEP, the result already kept under this name); returns (output path, report)."""
    out = os.path.join(TMP, name + ".png")
    report = os.path.join(TMP, name + ".json")
    n = ["-n", str(iterations or ITERATIONS)]
    cmd = [STYLIZE, os.path.join(IMAGES, content)] + [os.path.join(IMAGES, s) for s in styles] + \
          ["-o", out, "--weights", WEIGHTS, "-s", str(SIZE), "--report", report, "-q"] + LAYERS + n + list(extra)
    t = time.time()
    if not (os.environ.get("KEEP") and os.path.exists(out) and os.path.exists(report)):
        subprocess.run(cmd, check=True)
    with open(report) as f:
        rep = json.load(f)
    RUNS.append({"name": name, "command": " ".join(["stylize"] + cmd[1:]).replace(SHARED, "../shared").replace(TMP + "/", ""),
                 "seconds": rep["seconds"]["total"], "precision": rep["settings"]["precision"],
                 "loss_initial": rep["losses"]["initial"]["total"], "loss_final": rep["losses"]["final"]["total"],
                 "loss_written": rep["losses"]["written"]["total"]})
    print(f"gallery: {name}: {time.time() - t:.1f} s, loss {rep['losses']['final']['total']:.4g}", file=sys.stderr)
    return out, rep


_font_cache = {}


def font(size):
    if size not in _font_cache:
        try:
            _font_cache[size] = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size)
        except OSError:
            _font_cache[size] = ImageFont.load_default()
    return _font_cache[size]


def thumb(path):
    im = Image.open(path).convert("RGB")
    return im.resize((max(1, round(im.width * CELL / im.height)), CELL), Image.LANCZOS)


def wrapped(lines, width):
    """The label lines, each broken after a comma or space where it would be wider than `width`."""
    out = []
    for line in lines:
        while ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(line, font=font(12)) > width:
            cut = max(line.rfind(",", 0, len(line) - 1), line.rfind(" ", 0, len(line) - 1))
            while cut > 0 and ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(line[:cut + 1], font=font(12)) > width:
                cut = max(line.rfind(",", 0, cut), line.rfind(" ", 0, cut))
            if cut <= 0:
                break
            out.append(line[:cut + 1].rstrip())
            line = line[cut + 1:].lstrip()
        out.append(line)
    return out


def cell(path, lines):
    """A thumbnail with its label lines under it (wrapped to its width)."""
    im = thumb(path)
    pad = 6
    width = max(im.width, 150)
    lines = wrapped(lines, width)
    canvas = Image.new("RGB", (width + 2 * pad, CELL + 2 * pad + 16 * len(lines)), "white")
    canvas.paste(im, (pad + (width - im.width) // 2, pad))
    d = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        d.text((pad, CELL + pad + 2 + 16 * i), line, fill=(20, 20, 20), font=font(12))
    return canvas


def sheet(filename, title, rows):
    """rows: lists of cells; written as JPEG under OUT."""
    pad, head = 8, 30
    widths = [sum(c.width for c in r) for r in rows]
    heights = [max(c.height for c in r) for r in rows]
    canvas = Image.new("RGB", (max(widths) + 2 * pad, head + sum(heights) + 2 * pad), "white")
    d = ImageDraw.Draw(canvas)
    d.text((pad, 6), title, fill=(0, 0, 0), font=font(16))
    y = head
    for r, h in zip(rows, heights):
        x = pad
        for c in r:
            canvas.paste(c, (x, y))
            x += c.width
        y += h
    path = os.path.join(OUT, filename)
    canvas.save(path, quality=82, optimize=True)
    print(f"gallery: wrote {path} ({os.path.getsize(path) // 1024} KB)", file=sys.stderr)


def stem(f):
    return os.path.splitext(f)[0]


def seconds(rep):
    return f"{rep['seconds']['total']:.0f} s, loss {rep['losses']['final']['total']:.3g}"


def main():
    os.makedirs(OUT, exist_ok=True)
    base = f"{SIZE} px, {ITERATIONS} its"
    # 1. Every painting on two photos.
    header = [cell(os.path.join(IMAGES, PHOTOS[0]), ["content \u2193 / style \u2192"])]
    header += [cell(os.path.join(IMAGES, p), [stem(p)]) for p in PAINTINGS]
    rows, results = [header], {}
    for photo in PHOTOS:
        row = [cell(os.path.join(IMAGES, photo), [stem(photo)])]
        for p in PAINTINGS:
            out, rep = stylize(f"{stem(photo)}_{stem(p)}", photo, [p])
            results[(photo, p)] = (out, rep)
            row.append(cell(out, [f"{base}, defaults", seconds(rep)]))
        rows.append(row)
    sheet("paintings.jpg", "Every painting on two photos (real VGG19 conv1_1-conv3_4, content relu3_2, "
          "style relu1_1, relu2_1, relu3_1)", rows)

    photo, style = PHOTOS[0], PAINTINGS[0]
    inputs = [cell(os.path.join(IMAGES, photo), ["content"]), cell(os.path.join(IMAGES, style), ["style"])]
    default_out, default_rep = results[(photo, style)]
    default_cell = lambda label: cell(default_out, [label, seconds(default_rep)])  # noqa: E731

    # 2. The starting image.
    out, rep = stylize("init_random", photo, [style], ["--init", "random"])
    sheet("init.jpg", f"Starting image ({base})",
          [inputs + [default_cell("--init content (default)"), cell(out, ["--init random", seconds(rep)])]])

    # 3. Coarse-to-fine against one scale: a fifth of the iterations at the output size (the recipe
    # measured under synthetic weights), and as many as the single-scale run.
    cells = [default_cell(f"one scale, {ITERATIONS} its")]
    for fine in (ITERATIONS // 5, ITERATIONS):
        name = "scales3" if fine == ITERATIONS // 5 else f"scales3_{fine}"
        out, rep = stylize(name, photo, [style], ["--scales", "3"], iterations=f"400,300,{fine}")
        cells.append(cell(out, [f"--scales 3 -n 400,300,{fine}", seconds(rep)]))
    sheet("scales.jpg", f"One scale against --scales 3 ({SIZE} px)", [inputs + cells])

    # 4. fp32 against the default (only where that is bf16 or mixed: a CPU with AMX or AVX512-BF16).
    if bf16_default():
        out, rep = stylize("fp32", photo, [style], ["--precision", "fp32"])
        sheet("precision.jpg", f"Network arithmetic ({base})",
              [inputs + [cell(out, ["--precision fp32", seconds(rep)]),
                         default_cell(f"--precision {default_precision()} (auto here)")]])

    def sweep(flag, values, default, name):
        """One flag over `values`; the default's result is the one made above."""
        cells = []
        for v in values:
            if v == default:
                cells.append(default_cell(f"{flag} {v} (default)"))
                continue
            out, rep = stylize(f"{name}_{v}", photo, [style], [flag, v])
            cells.append(cell(out, [f"{flag} {v}", seconds(rep)]))
        return inputs + cells

    # 5. Style weight, 6. TV weight.
    sheet("style_weight.jpg", f"Style weight beta, content weight 5 ({base})",
          [sweep("--style-weight", ("20", "100", "500"), "100", "style_weight")])
    sheet("tv_weight.jpg", f"Total-variation weight ({base})",
          [sweep("--tv-weight", ("0", "0.001", "0.01", "0.1"), "0.001", "tv")])

    # 7. Original colours, on the photo whose colours differ most from the painting's.
    photo2, style2 = PHOTOS[1], PAINTINGS[0]
    out, rep = stylize("original_colors", photo2, [style2], ["--original-colors"])
    plain_out, plain_rep = results[(photo2, style2)]
    sheet("original_colors.jpg", f"--original-colors ({base})",
          [[cell(os.path.join(IMAGES, photo2), ["content"]), cell(os.path.join(IMAGES, style2), ["style"]),
            cell(plain_out, ["style's colours", seconds(plain_rep)]),
            cell(out, ["--original-colors", seconds(rep)])]])

    # 8. Two styles blended.
    a, b = PAINTINGS[0], PAINTINGS[1]
    out, rep = stylize("blend", photo, [a, b], ["--style-blend", "1,1"])
    sheet("blend.jpg", f"Two styles blended 1:1 ({base})",
          [[cell(os.path.join(IMAGES, photo), ["content"]), cell(os.path.join(IMAGES, a), ["style 1"]),
            cell(os.path.join(IMAGES, b), ["style 2"]), cell(results[(photo, a)][0], ["style 1 alone"]),
            cell(results[(photo, b)][0], ["style 2 alone"]), cell(out, ["--style-blend 1,1", seconds(rep)])]])

    # 9. Which layers, with only the shallow file.
    global LAYERS
    layer_sets = [("relu3_2", "relu1_1,relu2_1,relu3_1"), ("relu2_2", "relu1_1,relu2_1,relu3_1"),
                  ("relu3_4", "relu1_1,relu2_1,relu3_1,relu3_4"), ("relu3_2", "relu1_1,relu1_2,relu2_1,relu2_2,relu3_1")]
    cells = []
    for c, s in layer_sets:
        if (c, s) == layer_sets[0]:
            cells.append(default_cell(f"content {c}, style {s}"))
            continue
        LAYERS = ["--content-layers", c, "--style-layers", s]
        out, rep = stylize(f"layers_{c}_{s.replace(',', '_')}", photo, [style])
        cells.append(cell(out, [f"content {c}", f"style {s}", seconds(rep)]))
    sheet("layers.jpg", f"Loss layers the shallow file offers ({base})", [inputs + cells])

    cpu = cpu_description()
    with open(os.path.join(OUT, "runs.json"), "w") as f:
        json.dump({"size": SIZE, "iterations": ITERATIONS, "cpu": cpu, "bf16_default": bf16_default(), "runs": RUNS}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT) if n.endswith(".jpg"))
    print(f"gallery: {len(RUNS)} runs, sheets {total / 1e6:.2f} MB in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
