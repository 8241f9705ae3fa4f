"""On a GPU the heavy commands give the CPU's results (skipped where CUDA is not present).

TF32 is switched off so that the GPU computes in full float32 like the CPU; what remains is the order of
float additions, so values agree to ~1e-4 and top-k images wherever no two are that close.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from viscnn.cli import main
from viscnn.pipeline.devices import batch_size
from viscnn.scoring import Scores

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
SPEC = "fashion-mnist:test:4"
MODEL = ["--model", "fmnist-convnet"]


@pytest.fixture(autouse=True)
def full_float32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def scores(folder, device):
    out = folder / f"{device}.safetensors"
    assert main(["score", *MODEL, "--images", SPEC, "--device", device, "--no-cache", "--quiet", "--criterion", "taylor",
                 "--criterion", "taylor_signed", "--batch-size", "16", "--out", str(out)]) == 0
    return {c: Scores.load(folder / f"{device}.{c}.safetensors") for c in ("taylor", "taylor_signed")}


def test_score_on_cuda_equals_cpu(tmp_path):
    cpu, gpu = scores(tmp_path, "cpu"), scores(tmp_path, "cuda")
    for criterion in cpu:
        for table in ("nodes", "edges"):
            for layer, value in getattr(cpu[criterion], table).items():
                other = getattr(gpu[criterion], table)[layer]
                assert other.device.type == "cpu"
                assert torch.allclose(value, other, rtol=1e-3, atol=1e-6), (criterion, table, layer)


def test_examples_on_cuda_equal_cpu(tmp_path):
    found = {}
    for device in ("cpu", "cuda"):
        assert main(["examples", *MODEL, "--images", SPEC, "--device", device, "--no-cache", "--quiet", "--no-png",
                     "--nodes", "all", "--k", "5", "--out", str(tmp_path / device)]) == 0
        found[device] = {path.parent.name: json.loads(path.read_text())
                         for path in (tmp_path / device).glob("*/examples.json")}
    same = total = 0
    for layer, data in found["cpu"].items():
        for a, b in zip(data["nodes"], found["cuda"][layer]["nodes"]):
            for side in ("excite", "inhibit"):
                values = np.array([[e["value"] for e in a[side]], [e["value"] for e in b[side]]])
                assert np.allclose(values[0], values[1], rtol=1e-3, atol=1e-4), (layer, a["node"], side)
                same += sum(x["image"] == y["image"] for x, y in zip(a[side], b[side]))
                total += len(a[side])
    assert same >= 0.95 * total  # the rest: near ties


def test_prepare_evaluate_and_visualize_run_on_cuda(tmp_path):
    assert main(["prepare", *MODEL, "--images", SPEC, "--device", "cuda", "--projection", "mds", "--examples", "3",
                 "--renders", "2", "--render-steps", "4", "--quiet", "--store", str(tmp_path / "store")]) == 0
    assert main(["evaluate", *MODEL, "--images", SPEC, "--device", "cuda", "--targets", "features.6:1",
                 "--methods", "actgrad,random", "--fractions", "0.1", "--quiet", "--out", str(tmp_path / "eval")]) == 0
    assert main(["visualize", *MODEL, "--device", "cuda", "--target", "features.6:0-2", "--steps", "4", "--no-cache",
                 "--quiet", "--out", str(tmp_path / "vis")]) == 0
    assert main(["plan", *MODEL, "--images", SPEC, "--device", "cuda", "--projection", "grid", "--renders", "1",
                 "--render-steps", "2", "--sample-batches", "1"]) == 0


def test_batch_size_follows_the_gpu_memory(fmnist):
    _, graph = fmnist
    size = batch_size(None, graph, "cuda", cpu=32)
    assert size >= 1 and size & (size - 1) == 0 and size <= 256


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_under_torchrun_equal_one(tmp_path):
    one = scores(tmp_path, "cuda")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                           "viscnn", "score", *MODEL, "--images", SPEC, "--device", "cuda", "--no-cache", "--quiet",
                           "--criterion", "taylor", "--criterion", "taylor_signed", "--batch-size", "16",
                           "--out", str(tmp_path / "two.safetensors")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    for criterion, a in one.items():
        b = Scores.load(tmp_path / f"two.{criterion}.safetensors")
        for layer, value in a.nodes.items():
            assert torch.allclose(value, b.nodes[layer], rtol=1e-3, atol=1e-6), (criterion, layer)
