#!/usr/bin/python3
"""Reference implementation for benchmarks: the same losses as stylize (README "Losses"), written
with PyTorch's Python API and VGG19 in torchvision's layer layout, optimised with torch.optim.LBFGS the way
neural-style-pt does (one step() call, max_iter = iterations, no early stop).

    /usr/bin/python3 bench/reference.py --weights W.safetensors --content C.jpg --style S.jpg \
        --size 512 --iterations 5 --threads 2 [--precision bf16|mixed] [--style-layers relu1_1,relu2_1
        --content-layers relu2_2]   # prints one JSON object
    /usr/bin/python3 bench/reference.py --inputs I.safetensors --iterations 500 --device cuda
        # weights and images from `stylize_engine_bench --inputs-out` (bench/gpu.sh): no torchvision needed
    /usr/bin/python3 bench/reference.py --check        # loss definitions vs tests/fixtures/parity.json
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import make_parity  # noqa: E402  (same layer names, Gram and preprocessing helpers)

CAFFE_MEAN = [103.939, 116.779, 123.68]


def peak_rss_mib():
    """This process's own peak (VmHWM); ru_maxrss would include the parent's size, carried over exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_safetensors(path, wanted=lambda name: name.startswith("features.")):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__" or not wanted(name):
            continue
        assert e["dtype"] == "F32", "reference reads F32 files (stylize weights synth writes F32)"
        b, t = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:t]), dtype=torch.float32).view(e["shape"])
    return out, header.get("__metadata__", {}).get("preprocessing", "caffe")


def build_model(params, last):
    """torchvision's vgg19().features[: last + 1], built by hand (a GPU machine may lack torchvision)."""
    layers, channels = [], 3
    for name in make_parity.layer_names()[: last + 1]:
        if name.startswith("conv"):
            out = params[f"features.{len(layers)}.weight"].shape[0]
            layers.append(torch.nn.Conv2d(channels, out, 3, padding=1))
            channels = out
        elif name.startswith("relu"):
            layers.append(torch.nn.ReLU(inplace=False))
        else:
            layers.append(torch.nn.MaxPool2d(2, 2))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k[len("features."):]: v for k, v in params.items() if int(k.split(".")[1]) <= last})
    return model.eval().requires_grad_(False)


def load_image(path, longest):
    from torchvision.io import ImageReadMode, read_image
    x = read_image(path, ImageReadMode.RGB).float().unsqueeze(0)
    h, w = x.shape[2:]
    scale = longest / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 255)


MIXED_FP32_FROM = 10  # conv3_1: Vgg19::kMixedFp32From (include/stylize/vgg19.hpp)


class InFloat(torch.nn.Module):
    """A layer that casts its input to fp32 first: where --precision mixed leaves bf16."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.float())


def run(args):
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as stylize does on CUDA
    if args.inputs:
        params, pre = load_safetensors(args.inputs, lambda name: True)
        content_rgb, style_rgb = params.pop("content"), params.pop("style")
    else:
        params, pre = load_safetensors(args.weights)
        content_rgb, style_rgb = load_image(args.content, args.size), load_image(args.style, args.size)
    cl, sl = args.content_layers.split(","), args.style_layers.split(",")
    names = make_parity.layer_names()
    model = build_model(params, max(names.index(n) for n in cl + sl)).to(device)
    cw, sw, tw = (5.0, 100.0, 1e-3) if pre == "caffe" else (1.0, 1e6, 0.5)
    content = make_parity.preprocess(content_rgb, pre).to(device)
    style = make_parity.preprocess(style_rgb, pre).to(device)
    # --precision bf16: the network in bf16, its features cast back to fp32 for the losses; the targets
    # too, so that the content loss at the content image is zero as in fp32. stylize takes the bf16
    # features to its Gram products directly (oneDNN, fp32 accumulation and result: the same values);
    # PyTorch's Python API has no bf16 product with an fp32 result (torch.mm on bf16 rounds G to
    # bf16), so the faithful way here is the cast and an fp32 product.
    dtype = torch.bfloat16 if args.precision in ("bf16", "mixed") else torch.float32
    net = model.to(dtype)
    if args.precision == "mixed" and len(net) > MIXED_FP32_FROM:  # stylize's mixed: fp32 from conv3_1 on
        for m in list(net)[MIXED_FP32_FROM:]:
            m.float()
        net[MIXED_FP32_FROM] = InFloat(net[MIXED_FP32_FROM])

    def features(img, wanted):
        return {k: v.float() for k, v in make_parity.features(net, img.to(dtype), wanted).items()}

    with torch.no_grad():
        p = features(content, cl)
        a = {k: make_parity.gram(v) for k, v in features(style, sl).items()}
    t_load = time.perf_counter() - t0
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=args.iterations, history_size=100,
                            tolerance_grad=-1, tolerance_change=-1)
    losses = []

    def closure():
        opt.zero_grad()
        f = features(x, cl + sl)
        loss = sum(cw * F.mse_loss(f[k], p[k]) for k in cl)
        loss = loss + sum(sw * F.mse_loss(make_parity.gram(f[k]), a[k]) for k in sl)
        loss = loss + tw * (((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum())
        loss.backward()
        losses.append(loss.item())
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t1 = time.perf_counter()
    opt.step(closure)
    sync()
    t_opt = time.perf_counter() - t1
    return {"seconds_per_iteration": t_opt / max(1, len(losses)), "seconds_load_targets": t_load,
            "evaluations": len(losses), "loss_initial": losses[0], "loss_final": losses[-1],
            "width": x.shape[3], "height": x.shape[2],
            "peak_memory_mib": peak_rss_mib(), "device": str(device),
            **({"peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20} if device.type == "cuda" else {})}


def check():
    """Recomputes the parity fixture's loss terms with this file's helpers: they must agree."""
    fixture = json.load(open(os.path.join(HERE, "..", "tests", "fixtures", "parity.json")))
    worst = 0.0
    for cfg in fixture["configs"]:
        got = make_parity.run({k: v for k, v in cfg.items() if k != "expected"})["expected"]
        for key in ("content", "style"):
            for g, e in zip(got[key], cfg["expected"][key]):
                worst = max(worst, abs(g - e) / abs(e))
        worst = max(worst, abs(got["tv"] - cfg["expected"]["tv"]) / abs(cfg["expected"]["tv"]))
    print(json.dumps({"max_relative_difference": worst}))
    return worst < 1e-9


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights")
    ap.add_argument("--content")
    ap.add_argument("--style")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--precision", choices=["fp32", "bf16", "mixed"], default="fp32")
    ap.add_argument("--inputs", help="weights + content + style in one safetensors file (stylize_engine_bench)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--content-layers", default="relu4_2", help="comma list (stylize's default)")
    ap.add_argument("--style-layers", default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1", help="comma list")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.check:
        sys.exit(0 if check() else 1)
    print(json.dumps(run(a)))
