#!/usr/bin/python3
"""Reference for `stylize train`'s speed: the same filter network (include/stylize/filter.hpp), the
same losses (train.hpp: content MSE, per-image Gram MSE against the style's Gram, TV on the network
input, batch means) and the same data handling (photos resized so the shorter side is 5/4 of the
crop, random crops, random mirror) written with PyTorch's Python API and torch.optim.Adam, the way
pytorch/examples' fast_neural_style trains.

    /usr/bin/python3 bench/train_reference.py --weights W.safetensors --style S.jpg --data DIR \
        --crop-size 256 --batch-size 4 --steps 5 --width 32 --threads 2 [--profile]
    # prints one JSON object: images_per_second over the steps after the first, losses, peak RSS
"""
import argparse
import glob
import json
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import make_parity  # noqa: E402
import reference  # noqa: E402


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride=1, norm=True):
        super().__init__()
        self.pad = k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride)
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else None

    def forward(self, x):
        h = self.conv(F.pad(x, [self.pad] * 4, mode="reflect"))
        return self.norm(h) if self.norm is not None else h


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = ConvLayer(c, c, 3), ConvLayer(c, c, 3)

    def forward(self, x):
        return x + self.b(F.relu(self.a(x)))


class Filter(nn.Module):
    def __init__(self, w=32, blocks=5):
        super().__init__()
        self.inp = ConvLayer(3, w, 9)
        self.down1, self.down2 = ConvLayer(w, 2 * w, 3, 2), ConvLayer(2 * w, 4 * w, 3, 2)
        self.res = nn.Sequential(*[Residual(4 * w) for _ in range(blocks)])
        self.up1, self.up2 = ConvLayer(4 * w, 2 * w, 3), ConvLayer(2 * w, w, 3)
        self.out = ConvLayer(w, 3, 9, norm=False)

    def forward(self, rgb):
        h = rgb / 127.5 - 1.0
        h = F.relu(self.inp(h))
        h = F.relu(self.down1(h))
        h = F.relu(self.down2(h))
        h = self.res(h)
        h = F.relu(self.up1(F.interpolate(h, scale_factor=2, mode="nearest")))
        h = F.relu(self.up2(F.interpolate(h, scale_factor=2, mode="nearest")))
        return self.out(h) * 127.5 + 127.5


def load_photos(folder, crop):
    from PIL import Image
    photos = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
        if os.path.splitext(path)[1].lower() not in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"):
            continue
        try:
            im = Image.open(path).convert("RGB")
        except Exception:
            continue
        if min(im.size) < crop:
            continue
        scale = crop * 1.25 / min(im.size)
        if scale < 1:
            im = im.resize((max(crop, round(im.width * scale)), max(crop, round(im.height * scale))), Image.BOX)
        photos.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(im.height, im.width, 3))
    return photos


def batch(photos, crop, size, rng):
    crops = []
    for _ in range(size):
        p = photos[rng.randrange(len(photos))]
        y, x = rng.randrange(p.shape[0] - crop + 1), rng.randrange(p.shape[1] - crop + 1)
        c = p[y:y + crop, x:x + crop].permute(2, 0, 1).float()
        crops.append(c.flip(2) if rng.random() < 0.5 else c)
    return torch.stack(crops)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--crop-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--style-size", type=int, default=512)
    ap.add_argument("--content-layers", default="relu3_2")
    ap.add_argument("--style-layers", default="relu1_1,relu2_1,relu3_1")
    ap.add_argument("--content-weight", type=float, default=5.0)
    ap.add_argument("--style-weight", type=float, default=6.0)
    ap.add_argument("--tv-weight", type=float, default=1e-3)
    ap.add_argument("--preprocess", default="", help="default: the weights file's")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    content_layers, style_layers = a.content_layers.split(","), a.style_layers.split(",")
    names = make_parity.layer_names()
    last = max(names.index(n) for n in content_layers + style_layers)
    params, preprocessing = reference.load_safetensors(a.weights)
    vgg = reference.build_model(params, last)
    a.preprocess = a.preprocess or preprocessing
    photos = load_photos(a.data, a.crop_size)
    style = reference.load_image(a.style, a.style_size)
    with torch.no_grad():
        sf = make_parity.features(vgg, make_parity.preprocess(style, a.preprocess), style_layers)
        targets = [make_parity.gram(sf[n]) for n in style_layers]
    net = Filter(a.width)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = random.Random(0)

    def step():
        x = batch(photos, a.crop_size, a.batch_size, rng)
        y = net(x)
        yin = make_parity.preprocess(y, a.preprocess)
        with torch.no_grad():
            cf = make_parity.features(vgg, make_parity.preprocess(x, a.preprocess), content_layers)
        f = make_parity.features(vgg, yin, content_layers + style_layers)
        content = sum(F.mse_loss(f[n], cf[n]) for n in content_layers) * a.content_weight
        style_loss = 0
        for n, t in zip(style_layers, targets):
            style_loss = style_loss + sum(((make_parity.gram(f[n][b:b + 1]) - t) ** 2).mean()
                                          for b in range(x.shape[0])) / x.shape[0]
        style_loss = style_loss * a.style_weight
        tv = ((yin[:, :, 1:] - yin[:, :, :-1]) ** 2).sum() + ((yin[:, :, :, 1:] - yin[:, :, :, :-1]) ** 2).sum()
        tv = tv * a.tv_weight / x.shape[0]
        total = content + style_loss + tv
        opt.zero_grad()
        total.backward()
        opt.step()
        return float(total)

    step()  # the first step pays for one-time set-up in both programs
    if a.profile:
        with torch.autograd.profiler.profile() as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    t0 = time.perf_counter()
    losses = [step() for _ in range(a.steps)]
    seconds = time.perf_counter() - t0
    print(json.dumps({"images_per_second": a.steps * a.batch_size / seconds, "seconds_per_step": seconds / a.steps,
                      "losses": losses, "photos": len(photos), "peak_rss_mib": reference.peak_rss_mib(),
                      "threads": a.threads, "width": a.width, "crop_size": a.crop_size,
                      "batch_size": a.batch_size}))


if __name__ == "__main__":
    main()
