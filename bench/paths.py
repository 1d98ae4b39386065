"""Where the benchmarks find the binary and the shared real weights and images (SHARED overrides
../shared beside the checkout)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "stylize")
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
REAL_WEIGHTS = os.path.join(SHARED, "weights", "vgg19-conv1-3-real.safetensors")
CONTENT = os.path.join(SHARED, "images", "tubingen.jpg")
STYLE = os.path.join(SHARED, "images", "starry_night.jpg")
