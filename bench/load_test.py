#!/usr/bin/python3
"""Bounded load test of `stylize serve`, loopback only: starts the server on a free 127.0.0.1 port
with synthetic weights, sends REQUESTS synchronous /v1/stylize requests from CLIENTS threads, and
reports jobs/minute, p50/p95 latency, and whether every request got its image and the server
survived. It stops by itself (every loop is bounded) and stops the server.

    /usr/bin/python3 bench/load_test.py [--requests 40] [--clients 4] [--size 64] [--iterations 10]
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "stylize")
IMAGES = os.environ.get("BENCH_IMAGES", os.path.join(ROOT, "..", "shared", "images"))


def multipart(fields):
    boundary = "stylize-load-test-boundary"
    parts = []
    for name, (filename, data) in fields.items():
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="stylize-load-")
    weights = os.path.join(tmp, "w.safetensors")
    subprocess.run([BIN, "weights", "synth", "-o", weights, "-q"], check=True)
    log = open(os.path.join(tmp, "server.log"), "w+")
    server = subprocess.Popen([BIN, "serve", "--port", "0", "--weights", weights, "--workers", str(a.workers),
                               "--queue-limit", str(a.requests), "--drain-seconds", "5", "--data-dir", os.path.join(tmp, "data")], stderr=log)
    port = None
    for _ in range(200):
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    if port is None:
        server.kill()
        sys.exit("server did not start")
    body, ctype = multipart({"content": ("c.jpg", open(os.path.join(IMAGES, "tubingen.jpg"), "rb").read()),
                             "style": ("s.jpg", open(os.path.join(IMAGES, "starry_night.jpg"), "rb").read()),
                             "size": (None, str(a.size).encode()), "iterations": (None, str(a.iterations).encode())})
    latencies, statuses, lock = [], [], threading.Lock()
    todo = list(range(a.requests))

    def client():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            t = time.perf_counter()
            try:
                conn.request("POST", "/v1/stylize", body, {"Content-Type": ctype})
                r = conn.getresponse()
                data = r.read()
                ok = r.status == 200 and r.getheader("Content-Type") == "image/png" and data[:4] == b"\x89PNG"
                status = r.status if ok else f"{r.status} {data[:80]!r}"
            except Exception as e:  # a lost request is a result, not a crash of this script
                status = f"error {e}"
            with lock:
                latencies.append(time.perf_counter() - t)
                statuses.append(status)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    alive = conn.getresponse().status == 200
    server.terminate()
    exit_code = server.wait(timeout=60)
    ok = sum(1 for s in statuses if s == 200)
    lat = sorted(latencies)
    result = {"requests": a.requests, "clients": a.clients, "size": a.size, "iterations": a.iterations,
              "ok": ok, "lost_or_failed": a.requests - ok, "failures": [s for s in statuses if s != 200][:5],
              "jobs_per_minute": 60 * ok / wall, "p50_s": statistics.median(lat),
              "p95_s": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))],
              "server_alive_after": alive, "server_exit_code": exit_code, "wall_s": wall}
    print(json.dumps(result))
    sys.exit(0 if ok == a.requests and alive and exit_code == 0 else 1)


if __name__ == "__main__":
    main()
