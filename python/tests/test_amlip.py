"""amlip's numpy API: nodes with bytes, batches and asyncio, job kinds written in Python, the
SmartSim client, sample streams, the cluster table, errors, Ctrl-C and interpreter exit."""
from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
import textwrap

import numpy as np
import pytest

import amlip
from conftest import PYTHON, ROOT, binary, wait_until


def scale(arrays, params):
    if params.get("k") == 13:
        raise ValueError("thirteen is unlucky")
    return {"y": arrays["x"] * params["k"]}, {"k": params["k"]}


def test_a_python_kind_serves_a_thousand_jobs_and_survives_an_exception(domain):
    with amlip.ComputingNode("PyKinds", domain, kinds={"scale": scale}) as node, \
            amlip.MainNode("Main", domain) as main:
        assert main.wait_for_nodes(1, 30) == 1
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        seen = []
        batch = main.batch(timeout=60, on_progress=lambda done, total, o: seen.append(done))
        for k in range(1000):
            batch.submit_job("scale", {"x": x}, {"k": k}, label=k)
        outcomes = {o.label: o for o in batch}
        assert len(outcomes) == 1000 and seen == list(range(1, 1001))
        bad = outcomes.pop(13)
        assert isinstance(bad.error, amlip.JobError)
        assert "ValueError: thirteen is unlucky" in str(bad.error)
        for k, o in outcomes.items():
            s = o.solution()
            assert s.params == {"k": k} and s.server.startswith("PyKinds.")
            np.testing.assert_array_equal(s["y"], x * k)
        # Still serving after the exception.
        again = main.request_job("scale", {"x": x}, {"k": 2}, timeout=30)
        np.testing.assert_array_equal(again["y"], x * 2)
        assert node.served == 1000 and node.failed == 1


def upper_but_500(data: bytes) -> bytes:
    if data.startswith(b"job-500-"):
        raise ValueError("job 500 is refused")
    return data.upper()


def test_a_rust_main_s_thousand_jobs_done_by_python_code_one_raising(spawn, domain):
    with amlip.ComputingNode("PyPlain", domain, plain=upper_but_500) as node:
        jobs = spawn(binary("main-node"), "--domain", domain, "--network", "localhost", "jobs",
                     "--count", "1000", "--in-flight", "16", "--size", "64", "--quiet",
                     "--wait-nodes", "1")
        assert jobs.wait(300) == 1, jobs.output()
        out = jobs.output()
        assert "999 of 1000 jobs solved, 1 failed" in out, out
        assert "ValueError: job 500 is refused" in out, out
        # The node kept serving after the exception, and serves still.
        with amlip.MainNode("After", domain) as main:
            assert main.request("still here", timeout=30) == b"STILL HERE"
        assert node.served == 1000 and node.failed == 1


def test_bytes_jobs_asyncio_and_errors(domain):
    with amlip.ComputingNode("Async", domain, plain=lambda d: d[::-1]), \
            amlip.MainNode("Main", domain) as main:
        main.wait_for_nodes(1, 30)
        assert main.request("abc", timeout=30) == b"cba"

        async def several():
            one = await main.request_async(b"xyz", timeout=30)
            batch = main.batch(timeout=30)
            for i in range(20):
                batch.submit(f"job {i}", label=i)
            got = {o.label: o.result() async for o in batch}
            return one, got

        one, got = asyncio.run(several())
        assert one == b"zyx" and got == {i: f"job {i}"[::-1].encode() for i in range(20)}
        stats = main.stats()
        assert stats["solved"] == 22 and len(stats["computing_nodes"]) == 1
        with pytest.raises(amlip.ArgumentError, match="'h'.*float16"):
            main.request_job("scale", {"h": np.zeros(2, np.float16)})
        with pytest.raises(amlip.ArgumentError):
            main.request(12)
        with pytest.raises(amlip.ArgumentError, match="seconds"):
            main.request("x", timeout=-1)
    with pytest.raises(amlip.StoppedError):
        main.request("after stop")
    with amlip.MainNode("Lonely", domain) as alone:
        t = time.monotonic()
        with pytest.raises(amlip.TimeoutError):
            alone.request_job("nobody", {"x": np.ones(3)}, timeout=0.5)
        assert time.monotonic() - t < 10
    with pytest.raises(amlip.ArgumentError, match="domain"):
        amlip.MainNode("Main", 999)
    with pytest.raises(amlip.ArgumentError, match="name"):
        amlip.MainNode("bad/name", domain)


def test_payloads_round_trip_every_dtype():
    arrays = {"u8": np.arange(5, dtype=np.uint8), "i32": np.array([[-1, 2]], np.int32),
              "i64": np.arange(3), "f32": np.ones((2, 2), np.float32), "f64": np.array([0.5]),
              "flag": np.array([True, False])}
    kind, back, params = amlip.decode(amlip.encode("k", arrays, {"a": [1, 2]}))
    assert kind == "k" and params == {"a": [1, 2]}
    for name, a in arrays.items():
        np.testing.assert_array_equal(back[name], a.astype(np.uint8) if a.dtype == bool else a)
    with pytest.raises(amlip.PayloadError):
        amlip.decode(b"not a payload")


def test_smartsim_client_matches_onnxruntime(computing_node, domain):
    from safetensors.numpy import load_file
    expected = load_file(str(ROOT / "datasets/fixtures/onnx/expected.safetensors"))
    computing_node("--serve-models")
    with amlip.Client(domain=domain, timeout=60) as client:
        # Each fixture's outputs, in the model's order (make.py ran onnxruntime on them).
        models = {"cnn": ["output"], "dense": ["output"], "kmeans": ["label", "scores"],
                  "forest": ["variable"]}
        for model, outputs in models.items():
            client.set_model_from_file(model, str(ROOT / f"datasets/fixtures/onnx/{model}.onnx"))
            client.put_tensor("in", expected[f"{model}.input"])
            assert client.tensor_exists("in")
            client.run_model(model, inputs=["in"], outputs=[f"{model}_{o}" for o in outputs])
            for o in outputs:
                got, want = client.get_tensor(f"{model}_{o}"), expected[f"{model}.{o}"]
                assert got.shape == want.shape, (model, o)
                np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"{model}.{o}")
            client.delete_tensor("in")
            assert not client.tensor_exists("in")
        with pytest.raises(KeyError):
            client.get_tensor("in")


def test_a_python_producer_feeds_main_node_online(spawn, domain, tmp_path):
    report = tmp_path / "online.json"
    trainer = spawn(binary("main-node"), "--domain", domain, "--network", "localhost", "online",
                    "--stream", "pysim", "--producers", "1", "--max-epochs", "400",
                    "--settle-epochs", "5", "--json", report)
    rng = np.random.default_rng(1)
    with amlip.Producer("pysim", rank=0, domain=domain) as producer:
        for it in range(20):
            x = rng.uniform(-math.pi, math.pi, (16, 1)).astype(np.float32)
            producer.publish(it, x, np.sin(x))
        assert producer.produced == 320
        produced, drained = producer.finish(readers=1, linger=120)
    assert (produced, drained) == (320, 1)
    assert trainer.wait(300) == 0, trainer.output()
    counts = json.loads(report.read_text())["producers"]
    assert len(counts) == 1
    c = counts[0]
    assert (c["produced"], c["received"], c["duplicates"]) == (320, 320, 0), c
    assert c["received"] == c["kept"] + c["dropped_by_cap"], c


def test_a_consumer_reads_a_python_stream(domain):
    with amlip.Consumer("local", domain=domain) as consumer:
        with amlip.Producer("local", rank=3, domain=domain) as producer:
            producer.publish(0, np.ones((4, 2)), np.zeros(4))
            producer.publish(1, np.full((4, 2), 2.0), np.ones(4))
            assert consumer.wait_for_producers(1, 30) == 1
            producer.finish(readers=1, linger=60)
        assert consumer.wait_settled(60)
        x, y = consumer.samples()
        assert x.shape == (8, 2) and y.shape == (8, 1) and sorted(set(x[:, 0])) == [1.0, 2.0]
        (c,) = consumer.counts()
        assert (c["rank"], c["received"], c["state"]) == (3, 8, "ended"), c


def test_the_cluster_as_a_list_of_dicts(computing_node, domain):
    computing_node(name="Listed")
    wait_until(lambda: any(n["id"].startswith("Listed.") and n["kind"] == "computing"
                           for n in amlip.cluster(domain, seconds=1.0)), 60,
               "the computing node in the cluster table")


def default_sigint() -> None:
    # A shell runs background jobs with SIGINT ignored (CI runs these tests beside the Docker
    # steps), and Python installs its KeyboardInterrupt handler only where SIGINT is default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(body: str, domain: int, **kw):
    return subprocess.Popen([PYTHON, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint,
                            env={**__import__("os").environ, "AMLIP_DOMAIN": str(domain)}, **kw)


def test_ctrl_c_ends_a_blocking_request_within_two_seconds(domain):
    p = run_script("""
        from amlip_py.node.MainNode import MainNode
        from amlip_py.types.JobDataType import JobDataType
        main = MainNode("Waiting")
        print("waiting", flush=True)
        main.request_job_solution(JobDataType("nobody will answer"))
    """, domain)
    assert p.stdout.readline().strip() == "waiting"
    time.sleep(0.3)  # into the blocking call
    start = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    took = time.monotonic() - start
    assert "KeyboardInterrupt" in out, out
    assert took < 2.0, f"{took:.2f} s to stop"


def test_the_interpreter_exits_cleanly_with_nodes_running(domain):
    p = run_script("""
        import amlip
        from amlip_py.node.StatusNode import StatusNode
        c = amlip.ComputingNode("Left", plain=lambda d: d)
        c.run()
        m = amlip.MainNode("LeftMain")
        m.wait_for_nodes(1, 30)
        assert m.request("x", timeout=30) == b"x"
        s = StatusNode("LeftStatus")
        s.process_status_async(callback=lambda st: None)
        batch = m.batch()
        batch.submit("pending")
        print("exiting", flush=True)
    """, domain)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "exiting" in out, out


def test_training_sessions_and_pipelines_from_python(computing_node, domain, tmp_path):
    for i in range(2):
        computing_node(name=f"Trainer{i}")
    model = tmp_path / "mlp.safetensors"
    report = amlip.train("mlp", str(ROOT / "datasets/mnist"), jobs=2, rounds=2, limit=6000,
                         wait_nodes=2, out=str(model), domain=domain, timeout=300)
    assert report["aggregate"]["accuracy"] > 0.85, report
    assert report["solved"] == 4 and report["jobs"] == 2, report
    assert model.stat().st_size > 100_000
    aml = amlip.train("aml", str(ROOT / "datasets/mnist"), jobs=2, digit="0", limit=6000,
                      wait_nodes=2, domain=domain, timeout=300)
    assert aml["aggregate"]["balanced_accuracy"] > 0.9, aml
    pipeline = tmp_path / "small.toml"
    pipeline.write_text(textwrap.dedent("""
        name = "small"
        [[task]]
        name = "prepare"
        kind = "prepare"
        data = "mnist"
        limit = 2000
        [[task]]
        name = "train"
        kind = "train"
        after = ["prepare"]
        model = "dense"
        workers = 2
        epochs = 1
        [[task]]
        name = "evaluate"
        kind = "evaluate"
        after = ["train"]
    """))
    tasks = amlip.pipeline(str(pipeline), wait_nodes=2, domain=domain)
    assert [t["name"] for t in tasks] == ["prepare", "train", "evaluate"], tasks
    assert "accuracy" in tasks[2]["summary"], tasks
    dense = amlip.train("dense", str(ROOT / "datasets/mnist"), jobs=2, epochs=1, limit=4000,
                        wait_nodes=2, domain=domain, timeout=300)
    assert dense["epochs"][-1]["score"] > 0.8 and dense["steps_checked"] > 0, dense
    with pytest.raises(amlip.Error, match="model"):
        amlip.train("forest", str(ROOT / "datasets/mnist"), limit=100, domain=domain)


def test_amlip_trust_joins_a_trusted_domain(spawn, domain, tmp_path, monkeypatch):
    """With AMLIP_TRUST=DIR/NAME a Python main is a member of a trusted domain: it gets its
    jobs done by a trusted computing node; without it, it sees no node; a bad folder is named."""
    lab = tmp_path / "lab"
    main_node = binary("main-node")
    for args in (["init", lab], ["add", lab, "worker", "--role", "computing"],
                 ["add", lab, "py", "--role", "main"]):
        subprocess.run([main_node, "trust", *map(str, args)], check=True, capture_output=True)
    node = spawn(binary("computing-node"), "--domain", domain, "--network", "localhost",
                 "--trust", lab / "worker", "--job", "uppercase")
    wait_until(lambda: "serving" in node.output(), 60, "the trusted computing node started")
    with amlip.MainNode("Stranger", domain) as stranger:
        assert stranger.wait_for_nodes(1, 3) == 0
    monkeypatch.setenv("AMLIP_TRUST", str(lab / "py"))
    with amlip.MainNode("Main", domain) as main:
        assert main.wait_for_nodes(1, 60) == 1
        assert main.request("trusted", timeout=60) == b"TRUSTED"
    monkeypatch.setenv("AMLIP_TRUST", str(lab / "nobody"))
    with pytest.raises(amlip.ArgumentError, match="AMLIP_TRUST.*nobody"):
        amlip.MainNode("Main", domain)
