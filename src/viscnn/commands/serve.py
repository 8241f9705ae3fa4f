"""`viscnn serve`: the microscope in the browser, for one model and one image-set spec."""
from __future__ import annotations

import argparse
import os

from viscnn.commands.common import add_images_arguments, add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="start the browser view (JSON API + page) and print its URL")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", default=os.environ.get("VISCNN_TOKEN") or None,
                        help="required for a non-local --host: every request must carry it (default $VISCNN_TOKEN, "
                             "which keeps it out of the process list)")
    parser.add_argument("--store", metavar="DIR", help="cache folder (default $VISCNN_STORE or the user cache)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached results")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--prepare", default="umap", choices=["umap", "mds", "weights", "none"],
                        help="layout to precompute in the background at start, with the dataset examples (default umap; "
                             "the page works at once on the grid layout meanwhile)")
    parser.add_argument("--render-steps", type=int, default=256, help="optimisation steps of a feature visualization")
    parser.add_argument("--web", metavar="DIR", help="the built page to serve (default web/dist of the source tree)")
    parser.add_argument("--max-body", type=float, default=None, metavar="MB",
                        help="the largest request body any route takes, in MB (default 12: an image upload of up to "
                             "10 MiB and its form); larger ones get 413 before they are read")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from viscnn.errors import ViscnnError
    from viscnn.server.app import create_app
    from viscnn.server.launch import build_state, check_port, url
    from viscnn.server.middleware import DEFAULT_MAX_BODY_MB
    from viscnn.server.security import check_host

    check_host(args.host, args.token)  # before loading anything: a refusal should be instant
    check_port(args.host, args.port)
    if args.render_steps < 1:
        raise ViscnnError(f"--render-steps must be at least 1, not {args.render_steps}")
    max_body = DEFAULT_MAX_BODY_MB if args.max_body is None else args.max_body
    if not 0 < max_body <= 100_000:
        raise ViscnnError(f"--max-body must be a number of MB between 0 and 100000, not {args.max_body}")
    state = build_state(args.model, args.images, weights=args.weights, device=args.device, store=args.store,
                        no_cache=args.no_cache, token=args.token, batch_size=args.batch_size,
                        pretrained=args.pretrained, resize=args.resize)
    prepare = None if args.prepare == "none" or state.store is None else args.prepare
    app = create_app(state, Path(args.web) if args.web else None, args.render_steps, prepare, max_body_mb=max_body)
    print(f"viscnn: {state.loaded.name} on {state.images_spec} ({len(state.image_sets['overall'])} images, "
          f"{state.graph.num_nodes:,} nodes, {state.graph.num_edges:,} edges)", flush=True)
    if prepare:
        print(f"viscnn: preparing the {prepare} layout and dataset examples in the background (see /api/jobs)", flush=True)
    print(f"viscnn: open {url(args.host, args.port, args.token)}  (Ctrl-C stops the server)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    return 0
