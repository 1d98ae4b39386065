#!/usr/bin/python3
"""CTest: stylize_engine_bench (what bench/gpu.sh times on a GPU) and bench/reference.py --inputs
optimise the same problem: same weights, images and losses, so their starting losses agree; both
lower it; the driver runs exactly the iterations asked. Usage: engine_bench_check.py BENCH_BINARY"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main(binary):
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "inputs.safetensors")
        ours = json.loads(subprocess.run([binary, "--device", "cpu", "--size", "48", "--iterations", "4",
                                          "--threads", "2", "--inputs-out", inputs],
                                         check=True, capture_output=True, text=True).stdout)
        ref = json.loads(subprocess.run(["/usr/bin/python3", os.path.join(HERE, "..", "bench", "reference.py"),
                                         "--inputs", inputs, "--iterations", "4", "--threads", "2"],
                                        check=True, capture_output=True, text=True).stdout)
    problems = []
    if (ours["width"], ours["height"]) != (48, 36) or (ref["width"], ref["height"]) != (48, 36):
        problems.append(f"sizes {ours['width']}x{ours['height']} / {ref['width']}x{ref['height']}, expected 48x36")
    if ours["iterations"] != 4 or ours["evaluations"] != 4:
        problems.append(f"iterations {ours['iterations']}, evaluations {ours['evaluations']}, expected 4")
    if abs(ours["loss_initial"] - ref["loss_initial"]) > 1e-4 * abs(ref["loss_initial"]):
        problems.append(f"starting losses differ: {ours['loss_initial']} vs reference {ref['loss_initial']}")
    for name, r in (("stylize", ours), ("reference", ref)):
        if not r["loss_final"] < 0.9 * r["loss_initial"]:
            problems.append(f"{name} did not lower the loss: {r['loss_initial']} -> {r['loss_final']}")
    rejected = subprocess.run([binary, "--size", "ten"], capture_output=True, text=True)
    if rejected.returncode != 2 or "--size" not in rejected.stderr:
        problems.append(f"a bad --size gave exit {rejected.returncode}: {rejected.stderr!r}")
    print(json.dumps({"stylize": ours, "reference": ref}))
    for p in problems:
        print("FAIL:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
