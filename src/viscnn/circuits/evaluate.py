"""Faithfulness of circuits (the paper's Fig. 8, done properly): extract on some images, test on others.

For every (target, method, kept fraction) a circuit is extracted on the training images and run on
held-out images; its faithfulness is Pearson's r between the circuit's and the full model's target
values across all held-out images and positions (the whole map of a node target). An empty circuit
(nothing connects the input to the target at that size) reproduces nothing: r = 0, recorded as empty.
A method that cannot run for a target (ablation on a big graph) is recorded as skipped with its reason.

Summaries: the median r over targets per (method, fraction), and per method the area under that
median-r curve over the log10 kept-fraction axis, divided by the axis span (log10 max/min fraction),
so the AUC is the curve's mean height, in [-1, 1] (with a single fraction it is that fraction's median).
"""
from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from viscnn import distributed
from viscnn.circuits.build import extract_circuit
from viscnn.circuits.circuit import candidate_kernels
from viscnn.circuits.masking import Masks
from viscnn.circuits.methods import Batch, get_method
from viscnn.circuits.run import pearson, target_output
from viscnn.circuits.select import check_fraction
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.targets import Target

FORMAT = "viscnn.evaluation/1"
AUC_AXIS = "log10 kept fraction, normalised by the axis span (the curve's mean height, in [-1, 1])"
# Methods whose scores depend on the kept fraction: scored again for every fraction. Every other
# method is scored once per target and its ranking cut at each fraction.
KEEP_DEPENDENT = frozenset({"force", "learned"})
CONTROLS = ("random", "worst")  # the floors every method is drawn against (Fig. 8)

Progress = Callable[[str], None]


@dataclass
class Result:
    """One circuit: its target, method and asked fraction, what it kept, and its held-out r."""

    target: str
    method: str
    fraction: float
    r: float
    empty: bool = False
    edges: int = 0
    upstream_edges: int = 0
    seconds: float = 0.0  # scoring (shared across fractions: counted at each) + selection


@dataclass
class Skip:
    target: str
    method: str
    reason: str
    fractions: list[float] = field(default_factory=list)


@dataclass
class Evaluation:
    model: str
    targets: list[str]
    methods: list[str]
    fractions: list[float]
    results: list[Result] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    train_images: int = 0
    held_out_images: int = 0
    seed: int = 0
    seconds: float = 0.0

    # --- reading -----------------------------------------------------------------------------------
    def values(self, method: str, fraction: float) -> list[float]:
        """The held-out r of every target `method` ran on at `fraction` (0 for empty circuits)."""
        return [row.r for row in self.results if row.method == method and math.isclose(row.fraction, fraction)]

    def median_r(self, method: str, fraction: float) -> float | None:
        """Median r over the targets (None when the method ran on none of them)."""
        values = self.values(method, fraction)
        return float(statistics.median(values)) if values else None

    def auc(self, method: str) -> float | None:
        """Area under median r vs log10(kept fraction), divided by the axis span: the mean height, in [-1, 1]."""
        medians = sorted((f, self.median_r(method, f)) for f in self.fractions)
        points = [(f, r) for f, r in medians if r is not None]
        if not points or len(points) < len(medians):
            return None
        if len(points) == 1:
            return points[0][1]
        xs = [math.log10(f) for f, _ in points]
        area = sum((xs[i + 1] - xs[i]) * (points[i][1] + points[i + 1][1]) / 2 for i in range(len(points) - 1))
        return area / (xs[-1] - xs[0])

    def empties(self, method: str, fraction: float) -> int:
        return sum(1 for row in self.results if row.method == method and math.isclose(row.fraction, fraction) and row.empty)

    def coverage(self, method: str) -> int:
        """How many targets `method` produced results for."""
        return len({row.target for row in self.results if row.method == method})

    def mean_seconds(self, method: str) -> float:
        times = [row.seconds for row in self.results if row.method == method]
        return sum(times) / len(times) if times else 0.0

    def table(self, *, markdown: bool = True) -> str:
        """Median r per method (rows) and kept fraction (columns), then the AUC and seconds per circuit."""
        head = ["method"] + [f"{f:g}" for f in self.fractions] + ["AUC (log axis)", "s / circuit"]
        rows = []
        for method in self.methods:
            covered = self.coverage(method)
            name = method if covered == len(self.targets) else f"{method} ({covered}/{len(self.targets)} targets)"
            cells = [name]
            for f in self.fractions:
                median = self.median_r(method, f)
                empty = self.empties(method, f)
                cells.append("skipped" if median is None else f"{median:.3f}" + (f" ({empty} empty)" if empty else ""))
            auc = self.auc(method)
            cells += ["-" if auc is None else f"{auc:.3f}", f"{self.mean_seconds(method):.1f}" if covered else "-"]
            rows.append(cells)
        if markdown:
            lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        else:
            widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
            lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [head] + rows]
        notes = self.skip_notes()
        return "\n".join(lines + notes)

    def skip_notes(self) -> list[str]:
        """One line per skipped method: on how many targets, and the first reason."""
        notes: dict[str, list[Skip]] = {}
        for skip in self.skipped:
            notes.setdefault(skip.method, []).append(skip)
        return [f"skipped {method} on {len(skips)} target(s): {skips[0].reason}" for method, skips in notes.items()]

    # --- files -------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        summary = {m: {"median_r": {f"{f:g}": self.median_r(m, f) for f in self.fractions}, "auc": self.auc(m),
                       "targets": self.coverage(m)} for m in self.methods}
        return {"format": FORMAT, "model": self.model, "targets": self.targets, "methods": self.methods,
                "fractions": self.fractions, "train_images": self.train_images, "held_out_images": self.held_out_images,
                "seed": self.seed, "seconds": self.seconds, "auc_axis": AUC_AXIS,
                "r": "Pearson r between circuit and full-model target values over held-out images and positions",
                "summary": summary, "results": [asdict(row) for row in self.results],
                "skipped": [asdict(skip) for skip in self.skipped]}

    @classmethod
    def from_json(cls, data: dict) -> Evaluation:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ViscnnError(f"not a viscnn evaluation file (format {data.get('format') if isinstance(data, dict) else None!r})")
        return cls(data["model"], list(data["targets"]), list(data["methods"]), [float(f) for f in data["fractions"]],
                   [Result(**row) for row in data["results"]], [Skip(**skip) for skip in data.get("skipped", [])],
                   int(data.get("train_images", 0)), int(data.get("held_out_images", 0)), int(data.get("seed", 0)),
                   float(data.get("seconds", 0.0)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Evaluation:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ViscnnError(f"cannot read evaluation file {path}: {exc}") from exc

    def best_method(self) -> str | None:
        """The method (not random or worst) with the largest AUC among those that ran on every target."""
        ranked = [(auc, m) for m in self.methods if m not in CONTROLS and self.coverage(m) == len(self.targets)
                  and (auc := self.auc(m)) is not None]
        return max(ranked)[1] if ranked else None

    def plot_controls(self, path: str | Path, *, best: str | None = None, title: str | None = None) -> None:
        """The paper's Fig. 8: r against size for the best method's circuits and for the random and worst
        controls; one dot per target and fraction, the median as a line, the quartiles as a band; a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        best = best or self.best_method()
        shown = [m for m in (best, "random", "worst") if m is not None and m in self.methods]
        if not shown:
            raise ViscnnError("nothing to plot: the evaluation has no best method, random or worst")
        figure, axes = plt.subplots(figsize=(7.5, 5.6), dpi=120)
        colours = {best: "#1f5fbf", "random": "#7f7f7f", "worst": "#c0392b"}
        span = math.log10(max(self.fractions) / min(self.fractions)) or 1.0
        dodge = {m: (i - (len(shown) - 1) / 2) * 0.012 * span for i, m in enumerate(shown)}  # decades apart
        for method in shown:
            lines = []
            for fraction in self.fractions:
                values = sorted(self.values(method, fraction))
                if not values:
                    continue
                x = fraction * 10 ** dodge[method]
                axes.scatter([x] * len(values), values, s=16, color=colours[method], alpha=0.45, linewidths=0, zorder=2)
                quartiles = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
                lines.append((x, statistics.median(values), quartiles[0], quartiles[-1]))
            if not lines:
                continue
            xs = [x for x, *_ in lines]
            axes.fill_between(xs, [lo for *_, lo, _ in lines], [hi for *_, hi in lines], color=colours[method],
                              alpha=0.15, linewidth=0, zorder=1)
            label = f"{method} (best AUC)" if method == best else method
            axes.plot(xs, [m for _, m, *_ in lines], color=colours[method], linewidth=2.2, marker="o", markersize=4,
                      linestyle={"random": (0, (5, 3)), "worst": (0, (1.5, 2.5))}.get(method, "-"),
                      label=f"{label}, median of {self.coverage(method)}", zorder=4 if method == "random" else 3)
        axes.set_xscale("log")
        axes.set_xticks(self.fractions)
        axes.set_xticklabels([f"{100 * f:g}%" for f in self.fractions])
        axes.minorticks_off()
        axes.set_xlim(min(self.fractions) / 10 ** (0.08 * span), max(self.fractions) * 10 ** (0.08 * span))
        low = min([0.0] + [row.r for row in self.results if row.method in shown])
        axes.set_ylim(min(-0.05, low - 0.05), 1.02)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.grid(True, alpha=0.3)
        axes.set_xlabel("kernels kept (fraction of the target's upstream kernels, log scale)")
        axes.set_ylabel("Pearson r with the full model (held-out images)")
        axes.set_title(title or f"{self.model}: best circuits vs random and worst\n({len(self.targets)} targets; dots: "
                                f"one target each, band: quartiles, empty circuits at r = 0)", fontsize=10)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(shown), fontsize=8.5, frameon=False)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """Median r vs kept fraction (log x axis), one line per method, AUC in the legend; a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(9, 5.4), dpi=120)
        colours = plt.get_cmap("tab10")
        markers = "osD^vP*Xhp"
        missing = []
        for index, method in enumerate(self.methods):
            medians = [(f, self.median_r(method, f)) for f in self.fractions]
            points = [(f, r) for f, r in medians if r is not None]
            covered = self.coverage(method)
            if not points:
                missing.append(method)
                continue
            auc = self.auc(method)
            label = f"{method}  (AUC {auc:.2f})" if auc is not None else method
            if covered != len(self.targets):
                label += f" [{covered}/{len(self.targets)} targets]"
            bold = method == "learned"
            axes.plot([f for f, _ in points], [r for _, r in points], marker="o" if bold else markers[index % len(markers)],
                      markersize=6 if bold else 5, fillstyle="full" if bold else "none", linewidth=2.8 if bold else 1.5,
                      color="black" if bold else colours(index % 10), label=label, zorder=3 if bold else 2,
                      linestyle="--" if method in ("random", "worst") else "-")
        if missing:  # methods that ran on no target (ablation on a big graph): named, not drawn
            axes.plot([], [], " ", label="skipped: " + ", ".join(missing))
        axes.set_xscale("log")
        axes.set_xticks(self.fractions)
        axes.set_xticklabels([f"{100 * f:g}%" for f in self.fractions])
        axes.minorticks_off()
        axes.set_ylim(min(-0.05, axes.get_ylim()[0]), 1.02)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.grid(True, alpha=0.3)
        axes.set_xlabel("kernels kept (fraction of the target's upstream edges, log scale)")
        axes.set_ylabel("median Pearson r on held-out images")
        axes.set_title(title or f"{self.model}: circuit faithfulness over {len(self.targets)} targets "
                                f"({self.train_images} train / {self.held_out_images} held-out images)", fontsize=10)
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def check_fractions(fractions: Sequence[float]) -> list[float]:
    if not fractions:
        raise ViscnnError("give at least one kept fraction")
    for fraction in fractions:
        check_fraction(fraction, "kept fraction")
    return sorted({float(f) for f in fractions})


def _values(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, masks: Masks | None = None,
            device: str | torch.device = "cpu") -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([target_output(model, graph, x.to(device), y, target, masks=masks).detach().cpu()
                          for x, y in batches])


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, ViscnnError) else f"{type(exc).__name__}: {text}"


# Rough relative cost of one (target, method) unit (per fraction for the keep-dependent ones), for dealing
# units across processes under torchrun; a wrong guess costs balance, never correctness.
UNIT_COSTS = {"ablation": 20.0, "learned": 8.0, "force": 3.0}
Outcome = tuple[float, Result | None, str | None]  # (fraction, its result, or why the method could not run)


def evaluate(model: nn.Module, graph: Graph, train_batches: Sequence[Batch], held_out_batches: Sequence[Batch],
             targets: Sequence[Target], methods: Sequence[str], fractions: Sequence[float], *, seed: int = 0,
             device: str | torch.device = "cpu", progress: Progress | None = None, model_name: str = "",
             split: bool = False, counted: Callable[[int, int, str], None] | None = None,
             options: Mapping[str, Mapping[str, Any]] | None = None) -> Evaluation:
    """Extract a circuit for every (target, method, fraction) on `train_batches`; measure r on `held_out_batches`.
    `progress(message)` hears of each circuit as it ends; `counted(done, total, next_one)` before each starts
    (this process's circuits); `options` gives a method its keyword options (`{"learned": {"steps": 60}}`).

    `split`: under torchrun (call it in every process, with the same arguments), the (target, method) units,
    and the fractions of the methods scored per fraction, are dealt across the processes; every process
    gets the whole evaluation, as one process would have made it."""
    fractions = check_fractions(fractions)
    methods = list(dict.fromkeys(methods))
    for method in methods:
        get_method(method)  # unknown names fail before any work
    for method, given in (options or {}).items():
        unknown = sorted(set(given) - set(get_method(method).options()))
        if unknown:
            raise ViscnnError(f"circuit method {method} takes no option {', '.join(unknown)}")
    if not targets:
        raise ViscnnError("give at least one target")
    train, held = list(train_batches), list(held_out_batches)
    if not train or not held:
        raise ViscnnError("need both training and held-out images")
    say = progress or (lambda message: None)
    evaluation = Evaluation(model_name or getattr(graph, "model_name", "") or type(model).__name__, [str(t) for t in targets],
                            methods, fractions, train_images=sum(len(x) for x, _ in train),
                            held_out_images=sum(len(x) for x, _ in held), seed=seed)
    start = time.perf_counter()
    split = split and distributed.active()
    units: list[tuple[int, str, list[float]]] = []  # (target index, method, fractions): what one process does at once
    for t_index in range(len(targets)):
        for method in methods:
            if split and method in KEEP_DEPENDENT:
                units.extend((t_index, method, [f]) for f in fractions)
            else:
                units.append((t_index, method, fractions))
    full: dict[int, torch.Tensor] = {}
    total = sum(len(f) for _, _, f in units)
    finished = [0]

    def run(t_index: int, method: str, unit_fractions: list[float]) -> list[Outcome]:
        target = targets[t_index]
        if t_index not in full:
            full[t_index] = _values(model, graph, held, target, device=device)
        upstream = int(sum(int(m.sum()) for m in candidate_kernels(graph, target).values()))
        head = f"[{t_index + 1}/{len(targets)}] {target} {method}"
        scores, score_seconds, reason = None, 0.0, None
        extra = dict((options or {}).get(method, {}))
        if method not in KEEP_DEPENDENT:
            begin = time.perf_counter()
            try:
                scores = get_method(method)(model, graph, train, target, fractions[0], seed=seed, device=device,
                                            **extra)
            except (ViscnnError, RuntimeError) as exc:  # RuntimeError: torch (out of memory ...)
                reason = _reason(exc)
            score_seconds = time.perf_counter() - begin
        out: list[Outcome] = []
        for fraction in unit_fractions:
            if counted is not None:
                counted(finished[0], total, f"{target} {method} keep {fraction:g}")
            finished[0] += 1
            if reason is not None:
                out.append((fraction, None, reason))
                continue
            begin = time.perf_counter()
            try:
                if method in KEEP_DEPENDENT and extra:
                    scores = get_method(method)(model, graph, train, target, fraction, seed=seed, device=device, **extra)
                circuit = extract_circuit(model, graph, train, target, fraction, method, seed=seed, device=device,
                                          scores=scores)
            except (ViscnnError, RuntimeError) as exc:
                seconds = time.perf_counter() - begin + score_seconds
                if isinstance(exc, ViscnnError) and str(exc).startswith("empty circuit"):
                    out.append((fraction, Result(str(target), method, fraction, 0.0, True, 0, upstream, seconds), None))
                    say(f"{head} keep {fraction:g}: empty circuit, r = 0")
                    continue
                reason = _reason(exc)
                out.append((fraction, None, reason))
                continue
            seconds = time.perf_counter() - begin + score_seconds
            masks = {k: v.float().to(device) for k, v in circuit.masks.items()}
            r = pearson(full[t_index], _values(model, graph, held, target, masks, device))
            out.append((fraction, Result(str(target), method, fraction, r, False, circuit.num_edges,
                                         circuit.upstream_edges, seconds), None))
            say(f"{head} keep {fraction:g}: {circuit.num_edges} edges, r = {r:.3f} ({seconds:.1f} s)")
        if reason is not None:
            say(f"{head}: skipped ({reason})")
        return out

    if split:
        mine = distributed.assign([UNIT_COSTS.get(m, 1.0) * len(f) for _, m, f in units])
        total = sum(len(units[i][2]) for i in mine)
        done = {i: outcomes for part in distributed.gather(lambda: [(i, run(*units[i])) for i in mine])
                for i, outcomes in part}
    else:
        done = {i: run(*unit) for i, unit in enumerate(units)}
    by_unit: dict[tuple[int, str], dict[float, Outcome]] = {}
    for i, (t_index, method, _) in enumerate(units):
        by_unit.setdefault((t_index, method), {}).update({o[0]: o for o in done[i]})
    for t_index, target in enumerate(targets):
        for method in methods:
            # as one process goes: after a fraction the method could not run for, the larger ones are not tried
            reason, failed = None, []
            for fraction in fractions:
                _, result, why = by_unit[(t_index, method)][fraction]
                if reason is not None or why is not None:
                    reason = reason or why
                    failed.append(fraction)
                elif result is not None:
                    evaluation.results.append(result)
            if failed:
                evaluation.skipped.append(Skip(str(target), method, reason or "", failed))
    evaluation.seconds = time.perf_counter() - start
    if counted is not None:
        counted(total, total, "")
    return evaluation
