"""`viscnn visualize`: feature visualisations of nodes, neurons, edges and class logits (optionally through a circuit).

Renders are cached in the store (PNG + metadata) keyed by the model's fingerprint, the objective, the
circuit file's contents and every render setting, so the same render is never computed twice.
Under torchrun (`torchrun --nproc_per_node=N -m viscnn visualize ...`) the objectives are dealt across the
processes and rank 0 alone reads and writes the store and the output folder (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viscnn.commands.common import add_model_arguments, load_with_graph, output_folder, seed_value

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from viscnn.graph import Graph
    from viscnn.scoring.targets import Target


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("visualize", help="render images that maximise nodes, edges or class logits")
    add_model_arguments(parser)
    parser.add_argument("--target", action="append", required=True, metavar="OBJECTIVE",
                        help="LAYER:C[:neuron|:Y,X], LAYER:A-B (channels A..B), LAYER:OUT<-IN[:neuron] (an edge), "
                             "LAYER:dir(C=W,...), logit:K or class:NAME; repeat for more (rendered together)")
    parser.add_argument("--negative", action="store_true", help="minimise instead (what inhibits the objective)")
    parser.add_argument("--circuit", metavar="FILE", help="render through this circuit's model (only its kernels)")
    parser.add_argument("--steps", type=int, default=256, help="optimisation steps (default 256)")
    parser.add_argument("--size", type=int, help="image size in px (default: the model's input size)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    parser.add_argument("--batch", type=int, help="objectives optimised together (default: 32 on a GPU; on a CPU "
                                                  "2 at 224 px, more for smaller images); renders do not depend on it")
    parser.add_argument("--workers", type=int, help="passes optimised at once (default: on a CPU, one per torch "
                                                    "thread, each on one thread); renders do not depend on it")
    parser.add_argument("--sharpen", type=float, default=0.125,
                        help="the last fraction of the steps sees the image untransformed (default 0.125)")
    parser.add_argument("--copies", type=int, default=1, help="images per objective (default 1)")
    parser.add_argument("--diversity", type=float, default=0.0, help="weight of the diversity term between copies")
    parser.add_argument("--param", choices=["fft", "pixel"], default="fft", help="image parametrisation (default fft)")
    parser.add_argument("--transforms", choices=["standard", "strong", "none"], default="standard",
                        help="random jitter/scale/rotation each step (strong: for class logits)")
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument("--out", required=True, metavar="DIR", help="writes one PNG per image and visualize.json")
    parser.add_argument("--store", metavar="DIR", help="cache folder (default $VISCNN_STORE or the user cache)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached renders")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def parse_objectives(texts: list[str], graph: Graph, *, negative: bool = False,
                     class_names: list[str] | None = None) -> list[Target]:
    """The render objectives (Targets) of the --target options: `LAYER:A-B` gives LAYER:A ... LAYER:B."""
    from viscnn.featurevis.objectives import check_objective
    from viscnn.graph.ids import is_node_range, parse_node_range
    from viscnn.scoring.targets import Target, parse_target

    out: list[Target] = []
    for text in texts:
        spec = text.strip()
        flip = spec.startswith("-")
        if is_node_range(spec.removeprefix("-")):
            out.extend(Target("node", n.layer, n.channel, negative=flip != negative)
                       for n in parse_node_range(spec.removeprefix("-"), graph, what="target"))
        else:
            target = check_objective(parse_target(text, graph, class_names))
            out.append(target.negated() if negative else target)
    return out


def file_name(text: str, copy: int, copies: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9._=,-]+", "_", text.replace("<-", "_from_")).rstrip("_")
    return f"{safe}{f'_{copy}' if copies > 1 else ''}.png"


def run(args: argparse.Namespace) -> int:
    from viscnn import distributed

    with distributed.session(args.device) as device:
        args.device = device
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from viscnn import distributed
    from viscnn.circuits.circuit import Circuit
    from viscnn.errors import ViscnnError
    from viscnn.featurevis.keys import KIND, render_key, render_meta, render_parts, render_setup
    from viscnn.featurevis.render import RenderSettings, check_settings, render_split
    from viscnn.pipeline.devices import batch_size
    from viscnn.store import Store
    from viscnn.store.cache import cached_image

    settings = RenderSettings(steps=args.steps, size=args.size, lr=args.lr, seed=args.seed, batch=args.batch,
                              param=args.param, copies=args.copies, diversity=args.diversity,
                              transforms=args.transforms, workers=args.workers, sharpen=args.sharpen)
    check_settings(settings)  # before the model loads
    loaded, graph = load_with_graph(args)
    objectives = parse_objectives(args.target, graph, negative=args.negative, class_names=loaded.class_names)
    module, circuit_hash = loaded.module, None
    if args.circuit:
        circuit = Circuit.load(args.circuit, graph, loaded.fingerprint(), class_names=loaded.class_names)
        module = circuit.module(loaded.module, graph)
        circuit_hash = hashlib.sha256(Path(args.circuit).read_bytes()).hexdigest()[:16]
        for objective in objectives:
            if objective.is_edge:
                mask = circuit.masks.get(objective.edge.layer)
                row, local = graph.kernel_index(objective.edge)
                if mask is None or not bool(mask[row, local]):
                    raise ViscnnError(f"edge {objective} is not in circuit {args.circuit}: its kernel is zeroed there")
    out = distributed.on_main(lambda: output_folder(args.out))
    if settings.batch is None and args.device.startswith("cuda"):  # objectives per pass: by the GPU's memory
        settings.batch = batch_size(None, graph, args.device, cpu=1, size=settings.size, limit=64) // settings.copies or 1

    store = None if args.no_cache else distributed.on_main(lambda: Store(args.store))
    fingerprint = loaded.fingerprint()
    base = render_setup(loaded, settings, fingerprint=fingerprint, circuit=circuit_hash)
    parts = [render_parts(base, o) for o in objectives]
    missing = distributed.from_main(
        lambda: [k for k, p in enumerate(parts) if store is None or store.get_path(KIND, render_key(p)) is None])
    rendered = {}
    if missing:
        result = render_split(module, graph, loaded.preprocess, [objectives[k] for k in missing], settings,
                              device=args.device, progress=not args.quiet)
        if out is None:  # not rank 0: the store and the output are rank 0's to write
            return 0
        for j, k in enumerate(missing):
            images = [result.images[i] for i, owner in enumerate(result.owners) if owner == j]
            values = [float(result.values[i]) for i, owner in enumerate(result.owners) if owner == j]
            rendered[k] = (images, values, float(result.initial_values[result.owners.index(j)]))
    if out is None:
        return 0
    summary = []
    for k, objective in enumerate(objectives):
        def make(k: int = k, objective: Target = objective) -> tuple[np.ndarray, dict[str, Any]]:
            images, values, initial = rendered[k]
            strip = np.concatenate([im.permute(1, 2, 0).numpy() for im in images], axis=1)
            return strip, render_meta(objective, values, initial, settings)

        if store is not None:
            path, meta = cached_image(store, KIND, parts[k], make)
            strip = np.asarray(_read(path))
        else:
            strip, meta = make()
            strip = (np.clip(strip, 0, 1) * 255).round().astype(np.uint8)
        files = []
        width = strip.shape[1] // settings.copies
        for c in range(settings.copies):
            name = file_name(str(objective), c, settings.copies)
            _write(strip[:, c * width:(c + 1) * width], out / name)
            files.append(name)
        summary.append({"objective": str(objective), "files": files, "values": meta["values"],
                        "initial": meta["initial"], "cached": k not in rendered})
        print(f"{objective}: {' '.join(f'{v:.3f}' for v in meta['values'])} (start {meta['initial']:.3f})"
              f"{' [cached]' if k not in rendered else ''}  -> {out / files[0]}")
    (out / "visualize.json").write_text(json.dumps({**base, "circuit_file": args.circuit, "renders": summary}, indent=1))
    return 0


def _read(path: Path) -> Image.Image:
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()


def _write(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array if array.ndim == 3 and array.shape[2] == 3 else array.reshape(array.shape[:2])).save(path)
