"""Fixtures for the Python package's tests: a DDS domain no other test or checkout uses (the
same lock files as the Rust tests and scripts), and amlip's binaries as real processes."""
from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RELEASE = TARGET / "release"
PEER = TARGET / "fastdds-peer" / "peer"

# Every node these tests start stays on loopback.
os.environ.setdefault("AMLIP_NETWORK", "localhost")


def binary(name: str) -> str:
    path = RELEASE / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build --release --workspace)")
    return str(path)


@pytest.fixture
def domain():
    """A DDS domain leased for this test: an exclusive lock on
    $TMPDIR/amlip-domains/<domain>.lock, as testkit and scripts/lease-domain.sh take."""
    folder = Path(tempfile.gettempdir()) / "amlip-domains"
    folder.mkdir(exist_ok=True)
    candidates = [d for d in range(1, 233) if d not in (42, 166)]
    random.shuffle(candidates)
    for d in candidates:
        f = open(folder / f"{d}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        try:
            yield d
        finally:
            f.close()
        return
    pytest.fail("no free DDS domain")


class Proc:
    """A process of ours, killed at the end of the test, its output kept for messages."""

    def __init__(self, args, **kw):
        self.args = args
        self.log = tempfile.TemporaryFile()
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, **kw)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.p.wait(timeout)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def spawn():
    """Starts processes; every one is stopped when the test ends."""
    procs = []

    def start(*args, **kw) -> Proc:
        p = Proc([str(a) for a in args], **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def computing_node(spawn, domain):
    """Starts `computing-node` on the test's domain; returns its process."""
    def start(*extra, name="Computing") -> Proc:
        env = dict(os.environ, RUST_LOG="warn")
        return spawn(binary("computing-node"), "--domain", domain, "--network", "localhost",
                     "--name", name, *extra, env=env)
    return start


def peer_or_skip() -> str:
    if PEER.exists():
        return str(PEER)
    if os.environ.get("AMLIP_INTEROP_REQUIRED") == "1":
        pytest.fail(f"{PEER} is missing (interop/fastdds-peer/build.sh builds it)")
    pytest.skip("the Fast DDS peer is not built")


def wait_until(condition, timeout: float, what: str) -> None:
    """Polls `condition` until true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.02)


PYTHON = sys.executable
