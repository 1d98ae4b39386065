#!/usr/bin/env python3
"""How `stylize serve --data-dir` should keep its job records: SQLite (WAL) or an append-only
journal. Both make a job durable before the 202 (the uploads are files either way, written and
fsynced the same way, so they are left out: this times the record). Measures, on this machine's
disk, the time to make one submit durable, one state change durable, and to recover (read every
record) after N jobs. Usage: bench/job_store_choice.py [--jobs N] [--dir D]"""
import argparse, json, os, sqlite3, statistics, tempfile, time

def record(i):
    return {"id": f"{i:032x}", "state": "queued", "attempt": 1, "ext": "png", "total": 300,
            "form": {"size": "512", "iterations": "300", "style_weight": "1e5", "content_weight": "5"},
            "files": {"content": "photo.jpg", "style": "starry.jpg"}, "created": time.time()}

def bench_sqlite(path, n, sync):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    db.execute("CREATE TABLE jobs(id TEXT PRIMARY KEY, state TEXT, attempt INT, record TEXT)")
    submit, change = [], []
    for i in range(n):
        r = record(i)
        t = time.perf_counter()
        db.execute("INSERT INTO jobs VALUES(?,?,?,?)", (r["id"], "queued", 1, json.dumps(r)))
        submit.append(time.perf_counter() - t)
        t = time.perf_counter()
        db.execute("UPDATE jobs SET state='done' WHERE id=?", (r["id"],))
        change.append(time.perf_counter() - t)
    db.close()
    t = time.perf_counter()
    db = sqlite3.connect(path)
    rows = db.execute("SELECT record, state FROM jobs WHERE state != 'gone'").fetchall()
    recover = time.perf_counter() - t
    assert len(rows) == n
    return submit, change, recover

def bench_journal(path, n):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    submit, change = [], []
    for i in range(n):
        r = record(i)
        t = time.perf_counter()
        os.write(fd, (json.dumps(r) + "\n").encode())
        os.fsync(fd)
        submit.append(time.perf_counter() - t)
        t = time.perf_counter()
        os.write(fd, (json.dumps({"id": r["id"], "state": "done"}) + "\n").encode())
        os.fsync(fd)
        change.append(time.perf_counter() - t)
    os.close(fd)
    t = time.perf_counter()
    jobs = {}
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            jobs.setdefault(e["id"], {}).update(e)
    recover = time.perf_counter() - t
    assert len(jobs) == n
    return submit, change, recover

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--dir", default=None, help="a folder on the disk the data dir will live on")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        rows = [("sqlite WAL synchronous=FULL", bench_sqlite(os.path.join(d, "full.db"), a.jobs, "FULL")),
                ("sqlite WAL synchronous=NORMAL", bench_sqlite(os.path.join(d, "normal.db"), a.jobs, "NORMAL")),
                ("journal append + fsync", bench_journal(os.path.join(d, "journal.jsonl"), a.jobs))]
    print(f"{a.jobs} jobs, SQLite {sqlite3.sqlite_version}, on {a.dir or tempfile.gettempdir()}")
    print("| store | submit median ms | submit p99 ms | state change median ms | recover all ms |")
    print("|---|---|---|---|---|")
    for name, (s, c, r) in rows:
        p99 = sorted(s)[int(len(s) * 0.99) - 1]
        print(f"| {name} | {statistics.median(s)*1e3:.3f} | {p99*1e3:.3f} | {statistics.median(c)*1e3:.3f} | {r*1e3:.1f} |")

if __name__ == "__main__":
    main()
