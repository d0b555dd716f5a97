"""amlip from Python against amlip from Rust, same machine, same run:
  1. a 1 KB job's round trip (one at a time), Python's MainNode vs `main-node jobs`;
  2. a 10 MB payload's round trip, same;
  3. a Python job kind on 4 computing-node processes: tiny jobs per second from a Rust main.
Every job is checked (the solution is the payload upper-cased). Prints a table and JSON.

    python bench.py DOMAIN [--rounds N]        (scripts/bench-python.sh runs it)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import amlip

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"


def rust_jobs(domain, count, size, in_flight=1, nodes=1):
    out = subprocess.run([BIN / "main-node", "--domain", str(domain), "--network", "localhost",
                          "jobs", "--count", str(count), "--size", size, "--in-flight",
                          str(in_flight), "--quiet", "--wait-nodes", str(nodes)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    m = re.search(r"(\d+) of (\d+) jobs solved, 0 failed, in ([\d.]+) s; per job: median ([\d.]+) ms",
                  out.stdout)
    if not m:
        sys.exit(out.stdout)
    return float(m.group(4)), float(m.group(3))


def python_round_trips(main, size, count):
    payload = (b"abcdefgh" * (size // 8 + 1))[:size]
    want = payload.upper()
    times = []
    for _ in range(count):
        t = time.perf_counter()
        got = main.request(payload, timeout=120)
        times.append((time.perf_counter() - t) * 1e3)
        assert got == want
    return statistics.median(times)


def upper(data: bytes) -> bytes:
    return data.upper()


def serve(domain):
    """One computing node process whose job is a Python function."""
    with amlip.ComputingNode("PyWorker", domain, plain=upper):
        sys.stdin.read()  # until the bench closes our stdin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("domain", type=int)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("AMLIP_NETWORK", "localhost")
    if a.serve:
        return serve(a.domain)
    rows = {}
    rust_node = subprocess.Popen([BIN / "computing-node", "--domain", str(a.domain), "--network",
                                  "localhost", "--job", "uppercase"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with amlip.MainNode("PyBench", a.domain) as main:
            main.wait_for_nodes(1, 30)
            python_round_trips(main, 1024, 20)  # warm up
            rust_1k, _ = rust_jobs(a.domain, a.rounds, "1KB")
            py_1k = python_round_trips(main, 1024, a.rounds)
            rows["1 KB round trip, median ms"] = (py_1k, rust_1k)
            big = max(5, a.rounds // 20)
            rust_10m, _ = rust_jobs(a.domain, big, "10MB")
            py_10m = python_round_trips(main, 10 << 20, big)
            rows["10 MB round trip, median ms"] = (py_10m, rust_10m)
    finally:
        rust_node.terminate()
        rust_node.wait()
    workers = [subprocess.Popen([sys.executable, __file__, str(a.domain), "--serve"],
                                stdin=subprocess.PIPE) for _ in range(4)]
    try:
        with amlip.MainNode("PyCount", a.domain) as probe:
            if probe.wait_for_nodes(4, 60) < 4:
                sys.exit("the 4 Python computing nodes did not appear")
        jobs = 20 * a.rounds
        _, secs = rust_jobs(a.domain, jobs, "16B", in_flight=64, nodes=4)
        rows["Python job kind, 4 nodes: jobs/s"] = (jobs / secs, None)
    finally:
        for w in workers:
            w.stdin.close()
        for w in workers:
            w.wait(30)
    print(f"{'':38} {'Python':>10} {'Rust':>10} {'ratio':>7}")
    for name, (py, rust) in rows.items():
        ratio = f"{py / rust:6.2f}x" if rust else ""
        rust_s = f"{rust:10.3f}" if rust is not None else f"{'':10}"
        print(f"{name:38} {py:10.3f} {rust_s} {ratio:>7}")
    print(json.dumps({k: {"python": p, "rust": r} for k, (p, r) in rows.items()}))


if __name__ == "__main__":
    main()
