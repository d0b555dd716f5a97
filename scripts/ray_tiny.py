"""Tiny-job throughput with Ray actors: the reference for amlip's `bench --nodes 4`.

Four actors each upper-case a 16-byte payload; N jobs are submitted at once, round-robin, and
every answer is checked. Prints jobs/s. Run by scripts/bench-ray.sh (which installs Ray in a
venv); not part of CI.
"""
import sys
import time

import ray


@ray.remote
class Upper:
    def run(self, payload: bytes) -> bytes:
        return payload.upper()


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    actors_n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    ray.init(num_cpus=actors_n, include_dashboard=False, log_to_driver=False)
    actors = [Upper.remote() for _ in range(actors_n)]
    payload = lambda i: bytes([ord("a") + i % 26]) * 16
    # Warm up every actor.
    ray.get([a.run.remote(b"warm") for a in actors])
    t = time.perf_counter()
    refs = [actors[i % actors_n].run.remote(payload(i)) for i in range(jobs)]
    out = ray.get(refs)
    secs = time.perf_counter() - t
    for i, o in enumerate(out):
        assert o == payload(i).upper(), f"job {i}: wrong answer"
    print(f"ray actors: {jobs} tiny jobs on {actors_n} actors in {secs:.2f} s: {jobs / secs:.0f} jobs/s")
    ray.shutdown()


if __name__ == "__main__":
    main()
