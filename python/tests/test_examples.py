"""Every program in examples/python runs as a user would run it, against real nodes."""
from __future__ import annotations

import subprocess

from conftest import PYTHON, ROOT, binary

EXAMPLES = ROOT / "examples" / "python"


def run(name, *args, timeout=300):
    p = subprocess.run([PYTHON, str(EXAMPLES / name), *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    return out


def test_tutorial_main(computing_node, domain):
    computing_node()
    out = run("tutorial_main.py", domain, 2)
    assert out.count("solution for task") == 2 and "model of " in out, out


def test_numpy_kind(domain):
    out = run("numpy_kind.py", domain)
    assert "normalize" in out and "aml_train" in out, out
    assert out.count("norms [2. 2. 2. 2.]") == 8, out
    assert "job zeros: failed:" in out and "ValueError: a row of x is all zeros" in out, out


def test_smartsim_client(computing_node, domain):
    computing_node("--serve-models")
    out = run("smartsim_client.py", domain)
    assert "scores (4, 10) predicted digits" in out, out


def test_stream_producer(spawn, domain, tmp_path):
    report = tmp_path / "online.json"
    trainer = spawn(binary("main-node"), "--domain", domain, "--network", "localhost", "online",
                    "--stream", "sim", "--producers", "1", "--max-epochs", "300",
                    "--settle-epochs", "5", "--json", report)
    out = run("stream_producer.py", domain, 0, 10)
    assert "rank 0: 160 samples produced, read whole by 1 trainer(s)" in out, out
    assert trainer.wait(300) == 0, trainer.output()
