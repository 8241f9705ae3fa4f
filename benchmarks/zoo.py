"""The zoo: torchvision and timm CNNs (random weights) through graph + replay, score, circuit and extraction.

    .venv/bin/python benchmarks/zoo.py [--models tv:resnet18,timm:resnet26d] [--images 8] [--out docs/zoo.md]

Each step runs as the user would run it, `viscnn graph --replay`, `viscnn score`, `viscnn circuit --extract`,
in its own process, so a crash is seen as the user sees it (a traceback on stderr) and each step's peak
memory is its own (os.wait4's rusage of that process). The circuit is written before extraction starts, so
`viscnn circuit --extract` reports both: a circuit written and an extraction refused in one line count as
circuit ok, extract refused. A step counts as:
  ok        exit 0
  refused   exit 2 with one line naming the fault (viscnn's contract for what it cannot do)
  TRACEBACK anything else: a crash the user should never see
Times are wall seconds on this machine and move with its load: compare rows of one run, not runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TORCHVISION = [
    "alexnet", "vgg11_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "googlenet", "inception_v3",
    "densenet121", "squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "efficientnet_b0", "efficientnet_v2_s", "regnet_x_400mf",
    "regnet_y_400mf", "convnext_tiny",
]
TIMM = [
    "resnet10t", "resnet26d", "seresnext26d_32x4d", "skresnet18", "resnest14d", "res2net50_14w_8s", "cspresnet50",
    "cspdarknet53", "cs3darknet_s", "dpn68b", "hrnet_w18_small", "ghostnet_100", "mobileone_s0", "repvgg_a0",
    "rexnet_100", "dla34", "tf_efficientnet_lite0", "mixnet_s", "lcnet_050", "regnety_002", "ese_vovnet19b_dw",
    "tinynet_a", "fbnetc_100", "selecsls42b", "gernet_s", "densenet121", "convnext_atto",
]
MODELS = [f"tv:{name}" for name in TORCHVISION] + [f"timm:{name}" for name in TIMM]


@dataclass
class Step:
    status: str  # ok | refused | TRACEBACK | timeout
    seconds: float
    peak_mb: float
    message: str = ""


def run_step(args: list[str], timeout: float) -> Step:
    """One viscnn command in its own process: its status, wall time and peak resident memory."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([sys.executable, "-m", "viscnn", *args], stdout=subprocess.DEVNULL, stderr=err,
                                   text=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                return Step("timeout", time.perf_counter() - start, usage.ru_maxrss / 1024, f"over {timeout:.0f} s")
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    code = os.waitstatus_to_exitcode(status)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("viscnn: note:")]
    if code == 0:
        return Step("ok", seconds, usage.ru_maxrss / 1024)
    if code == 2 and "Traceback" not in stderr and len(lines) == 1:
        return Step("refused", seconds, usage.ru_maxrss / 1024, lines[0])
    last = next((line for line in reversed(lines) if line.strip()), f"exit {code}")
    return Step("TRACEBACK", seconds, usage.ru_maxrss / 1024, last.strip())


def photo_folder(count: int, where: Path) -> Path:
    """`count` of the demo photos in a folder (loose images): a real, small image set for every model."""
    from viscnn.data import open_image_sets

    folder = where / "photos"
    folder.mkdir()
    for item in open_image_sets("demo")["overall"].items[:count]:
        shutil.copy(item.source, folder / Path(item.source).name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--images", type=int, default=8, help="demo photos scored per model")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per step")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = str(photo_folder(args.images, Path(tmp)))
        header = ("| model | graph + replay | score (loss, taylor) | circuit (actgrad, 5%) | extract | peak MB | "
                  "first fault |\n|---|---|---|---|---|---:|---|")
        rows, tally = [header], {"ok": 0, "refused": 0, "TRACEBACK": 0, "timeout": 0}
        extracted: dict[str, int] = {}
        print(header, flush=True)
        end_to_end = 0
        for model in args.models.split(","):
            common = ["--model", model, "--device", "cpu"]
            circuit_file = Path(tmp) / "circuit.json"
            circuit_file.unlink(missing_ok=True)
            steps = [
                run_step(["graph", *common, "--replay"], args.timeout),
                run_step(["score", *common, "--images", photos, "--input", "photos", "--target", "loss",
                          "--no-cache", "--quiet"], args.timeout),
            ]
            both = run_step(["circuit", *common, "--images", photos, "--input", "photos", "--target", "logit:1",
                             "--keep", "0.05", "--method", "actgrad", "--out", str(circuit_file), "--extract"],
                            args.timeout)
            if both.status == "refused" and circuit_file.is_file() and "cannot extract" in both.message:
                steps += [Step("ok", both.seconds, both.peak_mb), both]
            else:
                steps += [both, Step(both.status, 0.0, both.peak_mb, both.message)]
            for step in steps[:3]:
                tally[step.status] += 1
            extracted[steps[3].status] = extracted.get(steps[3].status, 0) + 1
            end_to_end += all(step.status == "ok" for step in steps[:3])
            fault = next((f"{s.status}: {s.message}" for s in steps if s.status != "ok"), "")
            cells = [f"{s.status} {s.seconds:.1f} s" for s in steps[:3]] + [steps[3].status]
            row = (f"| {model} | {' | '.join(cells)} | {max(s.peak_mb for s in steps):,.0f} | "
                   f"{fault.replace('|', '/')[:160]} |")
            rows.append(row)
            print(row, flush=True)
        count = len(rows) - 1
        summary = (f"\n{count} models; {end_to_end} ran graph, score and circuit end to end "
                   f"({100 * end_to_end / max(count, 1):.0f}%); graph/score/circuit steps: {tally['ok']} ok, "
                   f"{tally['refused']} refused with one line, {tally['TRACEBACK']} tracebacks, {tally['timeout']} "
                   f"timeouts; extraction: " + ", ".join(f"{n} {s}" for s, n in sorted(extracted.items())))
        print(summary)
        if args.out:
            Path(args.out).write_text("\n".join(rows) + "\n" + summary + "\n")


if __name__ == "__main__":
    main()
