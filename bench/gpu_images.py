#!/usr/bin/python3
"""Photos into one safetensors file of RGB 0-255 float32 [1, 3, H, W] tensors, for a machine whose C++
side has no image library (bench/gpu.sh --prepare; stylize_engine_bench --images reads it).

    /usr/bin/python3 bench/gpu_images.py OUT.safetensors content=tubingen.jpg style=starry_night.jpg
    /usr/bin/python3 bench/gpu_images.py --ppm-to-png IN.ppm OUT.png     # the result back, for viewing
"""
import json
import struct
import sys

import numpy as np
from PIL import Image


def write(out, pairs):
    header, offset, blobs = {}, 0, []
    for name, path in pairs:
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)  # H, W, 3
        t = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])              # 1, 3, H, W
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
        blobs.append(t.tobytes())
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--ppm-to-png":
        Image.open(sys.argv[2]).save(sys.argv[3])
    elif len(sys.argv) >= 3 and all("=" in a for a in sys.argv[2:]):
        write(sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]])
    else:
        sys.exit(__doc__)
