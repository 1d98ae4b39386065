#!/usr/bin/python3
"""Bounded load test of `stylize serve --queue redis://` with `stylize worker`s, loopback only.

Starts redis-server on a free 127.0.0.1 port, one API process that runs no jobs (--workers 0) and
1, 2 or 3 worker processes (synthetic weights, --threads 1 each), submits JOBS asynchronous jobs
(each its own size, so each result shows whose it is), polls until every one is done, and reports
jobs/minute from the first submit to the last result, against the same jobs through serve's own
in-memory queue with as many worker threads (the reference: no Redis, no second process). A fourth run starts 2 workers and kills one
(-9) once a third of the jobs are done. Every run counts lost jobs (not done within the bound),
duplicated ones (a job done twice in the workers' logs) and wrong results (not the job's size).
Every loop is bounded; everything it started is stopped.

    /usr/bin/python3 bench/queue_load.py [--jobs 24] [--size 64] [--iterations 20] [--markdown]

Writes bench/queue_load.json and, with --markdown, the "Queue load" section of BENCHMARKS.md.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_test import multipart  # noqa: E402
from machine import cpu_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "stylize")
REDIS = "/usr/bin/redis-server"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_log(path, pattern, seconds=30):
    until = time.time() + seconds
    while time.time() < until:
        m = re.search(pattern, open(path).read()) if os.path.exists(path) else None
        if m:
            return m
        time.sleep(0.05)
    return None


def png_size(data):
    return struct.unpack(">II", data[16:24]) if data[:8] == b"\x89PNG\r\n\x1a\n" else (0, 0)


def request(port, method, path, body=None, ctype=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


class Cluster:
    def __init__(self, tmp, weights):
        self.tmp, self.weights, self.procs = tmp, weights, []
        self.redis_port = free_port()
        self.url = f"redis://127.0.0.1:{self.redis_port}"
        log = os.path.join(tmp, f"redis-{self.redis_port}.log")
        self.procs.append(subprocess.Popen([REDIS, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                                            "--appendonly", "no", "--logfile", log]))
        if not wait_log(log, "Ready to accept connections"):
            sys.exit("redis-server did not start")

    def start(self, args, name):
        log = os.path.join(self.tmp, name)
        p = subprocess.Popen([BIN] + args + ["--weights", self.weights, "--queue", self.url], stderr=open(log, "w"))
        self.procs.append(p)
        return p, log

    def api(self, local_workers=0):
        if local_workers:  # the reference: serve's own queue, in memory, no Redis
            log = os.path.join(self.tmp, "local.log")
            self.procs.append(subprocess.Popen([BIN, "serve", "--port", "0", "--in-memory", "--workers", str(local_workers),
                                                "--threads", "1", "--queue-limit", "1000", "--weights", self.weights],
                                               stderr=open(log, "w")))
        else:
            p, log = self.start(["serve", "--port", "0", "--workers", "0", "--queue-limit", "1000"], "api.log")
        m = wait_log(log, r"listening on http://127\.0\.0\.1:(\d+)")
        if not m:
            sys.exit("the API did not start")
        return int(m.group(1))

    def worker(self, i):
        p, log = self.start(["worker", "--threads", "1", "--visibility-timeout", "3"], f"worker{i}.log")
        if not wait_log(log, "worker ready"):
            sys.exit(f"worker {i} did not start")
        return p, log

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()


def run(tmp, weights, workers, a, kill_one=False, local=False):
    k = Cluster(tmp, weights)
    try:
        port = k.api(workers if local else 0)
        ws = [] if local else [k.worker(i) for i in range(workers)]
        content = open(os.path.join(tmp, "c.png"), "rb").read()
        style = open(os.path.join(tmp, "s.png"), "rb").read()
        sizes = {}
        t0 = time.time()
        for i in range(a.jobs):
            size = a.size + 2 * (i % 12)
            body, ctype = multipart({"content": ("c.png", content), "style": ("s.png", style),
                                     "size": (None, str(size).encode()), "iterations": (None, str(a.iterations).encode())})
            status, data = request(port, "POST", "/v1/jobs", body, ctype)
            if status != 202:
                sys.exit(f"submit answered {status}: {data[:200]}")
            sizes[json.loads(data)["id"]] = size
        done, wrong, killed = {}, 0, False
        until = time.time() + a.timeout
        while len(done) < len(sizes) and time.time() < until:
            for id_ in [i for i in sizes if i not in done]:
                status, data = request(port, "GET", f"/v1/jobs/{id_}")
                st = json.loads(data) if status == 200 else {}
                if st.get("status") in ("done", "failed"):
                    done[id_] = st
                    if st["status"] == "done":
                        _, res = request(port, "GET", f"/v1/jobs/{id_}/result")
                        wrong += max(png_size(res)) != sizes[id_]
            if kill_one and not killed and len(done) >= len(sizes) // 3:
                ws[0][0].send_signal(signal.SIGKILL)
                killed = True
            time.sleep(0.3)  # this poller shares the cores with the workers: keep its load small
        seconds = time.time() - t0
        logs = "".join(open(log).read() for _, log in ws)
        ok = [i for i, st in done.items() if st["status"] == "done"]
        return {"workers": workers, "killed_one": kill_one, "queue": "local" if local else "redis", "jobs": len(sizes), "done": len(ok),
                "failed": len(done) - len(ok), "lost": len(sizes) - len(done),
                "duplicated": sum(logs.count(f"job {i} done on") > 1 for i in sizes), "wrong_results": wrong,
                "retried": sum(st.get("attempt", 1) > 1 for st in done.values()),
                "seconds": round(seconds, 2), "jobs_per_minute": round(60 * len(ok) / seconds, 1)}
    finally:
        k.stop()


def markdown(r):
    L = ["<!-- queue-load:begin -->", "## Serve on Redis: API + workers (loopback)", "",
         f"`bench/queue_load.py`: {r['jobs']} jobs of {r['size']}-{r['size'] + 22} px, {r['iterations']} iterations "
         f"each, through one `serve --queue redis:// --workers 0` and N `stylize worker --threads 1` processes, "
         f"synthetic weights, on {r['cpu']} ({r['cores']} cores). **The workers share this machine's "
         f"{r['cores']} cores**: a third worker has no core of its own, so the rows show the queue's overhead "
         "and its behaviour under a kill, not how a cluster of GPU machines scales.", "",
         "| queue | workers | killed | jobs done | jobs/min | vs local, same workers | lost | duplicated | wrong results | retried |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    local = {x["workers"]: x["jobs_per_minute"] for x in r["runs"] if x["queue"] == "local"}
    for x in r["runs"]:
        ratio = f"{x['jobs_per_minute'] / local[x['workers']]:.2f}" if x["workers"] in local else "-"
        where = "local (reference)" if x["queue"] == "local" else "Redis"
        L.append(f"| {where} | {x['workers']} | {'one (-9) at a third' if x['killed_one'] else '-'} | {x['done']}/{x['jobs']} | "
                 f"{x['jobs_per_minute']} | {ratio} | {x['lost']} | {x['duplicated']} | {x['wrong_results']} | {x['retried']} |")
    L += ["", "`retried`: jobs whose status shows `attempt` 2 or more (claimed again after their worker died, "
          "once its entry had been idle for `--visibility-timeout 3` s).", "<!-- queue-load:end -->"]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(REDIS):
        sys.exit("redis-server is not installed (scripts/install-deps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="stylize-queue-")
    weights = os.path.join(tmp, "w.safetensors")
    subprocess.run([BIN, "weights", "synth", "-o", weights, "-q"], check=True)
    from PIL import Image
    Image.new("RGB", (96, 72), (200, 120, 40)).save(os.path.join(tmp, "c.png"))
    Image.new("RGB", (64, 64), (30, 60, 200)).save(os.path.join(tmp, "s.png"))
    runs = [run(tmp, weights, n, a, local=True) for n in (1, 2)]
    runs += [run(tmp, weights, n, a) for n in (1, 2, 3)] + [run(tmp, weights, 2, a, kill_one=True)]
    for x in runs:
        print(json.dumps(x))
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "size": a.size, "iterations": a.iterations,
              "jobs": a.jobs, "runs": runs}
    json.dump(result, open(os.path.join(ROOT, "bench", "queue_load.json"), "w"), indent=1)
    if a.markdown:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from sections import replace_section
        replace_section(os.path.join(ROOT, "BENCHMARKS.md"), "queue-load", markdown(result))
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
