"""`viscnn plan`: the time and memory each step of `viscnn prepare` will take, for 1 process and for N.

Every step is measured on a short sample of its own work on this device (see viscnn.pipeline.plan), so
the estimate is for this machine: run it where prepare will run.
"""
from __future__ import annotations

import argparse

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_with_graph, open_set, seed_value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="estimate the time and memory of `viscnn prepare` from a measured sample")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--nproc", type=int, default=2, metavar="N",
                        help="processes to estimate for besides one (torchrun --nproc_per_node x --nnodes; default 2)")
    parser.add_argument("--projection", default="umap", choices=["umap", "mds", "weights", "grid", "featurevis"],
                        help="as for prepare (default umap)")
    parser.add_argument("--mode", default="auto", choices=["auto", "loss", "logit"], help="as for prepare")
    parser.add_argument("--examples", type=int, default=9, metavar="K", help="as for prepare (default 9)")
    parser.add_argument("--renders", type=int, default=16, metavar="N", help="as for prepare (default 16)")
    parser.add_argument("--render-steps", type=int, default=256, help="as for prepare (default 256)")
    parser.add_argument("--batch-size", type=int, help="as for prepare (default: 32 on a CPU, by memory on a GPU)")
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument("--sample-batches", type=int, default=2,
                        help="batches of images timed per step, after a warm-up batch (default 2)")
    parser.add_argument("--json", metavar="FILE", help="also write the estimates as JSON")
    parser.set_defaults(run=run)


def _age_at(moment: float) -> float:
    """Seconds from this process's start (the interpreter, torch's import) to `moment` (a perf_counter time);
    0 where /proc does not say."""
    import os
    import time

    try:
        with open("/proc/self/stat") as handle:
            started = int(handle.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started - (time.perf_counter() - moment))


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from viscnn.errors import ViscnnError
    from viscnn.pipeline.devices import batch_size
    from viscnn.pipeline.plan import Planner
    from viscnn.pipeline.prepare import Settings

    for option, least in (("nproc", 1), ("examples", 0), ("renders", 0), ("render_steps", 1), ("sample_batches", 1)):
        if getattr(args, option) < least:
            raise ViscnnError(f"--{option.replace('_', '-')} must be at least {least}, not {getattr(args, option)}")
    start = time.perf_counter()
    loaded, graph = load_with_graph(args)
    startup = _age_at(start)  # the interpreter and torch's import, before this command ran
    image_set = open_set(args, loaded, "overall")
    load_seconds = time.perf_counter() - start + startup
    if len(image_set) == 0:
        raise ViscnnError(f"image-set spec {args.images!r} holds no images")
    settings = Settings(args.projection, args.mode, batch_size(args.batch_size, graph, args.device, cpu=32), args.seed,
                        args.examples, args.renders, args.render_steps, args.device)
    print(f"viscnn plan: {loaded.name} on {args.images} ({len(image_set)} images), {args.device}, batches of "
          f"{settings.batch_size}; measuring a sample of each step ...", flush=True)
    planner = Planner(loaded, graph, image_set, settings, processes=args.nproc, sample_batches=args.sample_batches,
                      spec=args.images, say=lambda text: print(f"  {text}", flush=True))
    plan = planner.plan(load_seconds=load_seconds, launcher_seconds=startup)
    print()
    print(plan.table())
    each = "its own GPU like this one" if settings.device.startswith("cuda") else \
        f"{plan.threads_n} thread(s) on this machine's {plan.cores} cores"
    print(f"\n1 process: {plan.threads} thread(s){' and this GPU' if settings.device.startswith('cuda') else ''}; "
          f"{args.nproc} processes: each with {each} (torchrun --nproc_per_node; --nnodes spreads them over machines).")
    print(f"measured in {plan.seconds:.0f} s (reading and preprocessing an image: {plan.decode * 1e3:.3g} ms of each "
          "image step's cost):")
    for estimate in plan.estimates:
        print(f"  {estimate.step}: {estimate.sample}")
    print("peak memory is per process (resident memory on a CPU, CUDA allocations on a GPU); "
          "add the other processes' for one machine.")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(plan.to_json(), handle, indent=1)
        print(f"wrote {args.json}")
    return 0
