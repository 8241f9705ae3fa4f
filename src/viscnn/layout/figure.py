"""A picture of a layout: each layer's disc along the depth axis, nodes coloured by the class they serve most."""
from __future__ import annotations

import numpy as np

from viscnn.graph import Graph
from viscnn.layout.edges import layer_edges
from viscnn.layout.placement import Layout


def plot_layout(layout: Layout, graph: Graph, path: str, *, colours: dict[str, np.ndarray] | None = None,
                sizes: dict[str, np.ndarray] | None = None, edge_weights: dict[str, np.ndarray] | None = None,
                top_edges: int = 300, columns: int = 12, title: str = "") -> None:
    """Draw every layer's disc in call order (a grid of panels, depth and lateral in each title).

    `colours[layer]` [C] is a class index per node (e.g. the argmax of its class-wise vector), `sizes`
    [C] a score per node (marker area follows it); the `top_edges` heaviest edges of each layer are
    drawn as lines from the previous panel's places (the source end) inside the layer's panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(layout.layers)
    columns = max(1, min(columns, len(names)))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    cmap = plt.get_cmap("tab20")
    for k, name in enumerate(names):
        ax = axes.ravel()[k]
        layer = layout[name]
        points = layer.positions
        ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, lw=0.5, color="0.6"))
        if edge_weights and name in edge_weights and graph[name].kind == "conv":
            edges = layer_edges(graph, name, edge_weights[name])
            for source, (out, src, w) in edges.by_source.items():
                if source not in layout.layers or len(w) == 0:
                    continue
                keep = np.argsort(w)[-top_edges:]
                ends = layout[source].world()[src[keep]] - layer.centre
                alpha = 0.05 + 0.4 * w[keep] / w[keep].max()
                for (x0, y0), (x1, y1), a in zip(ends, points[out[keep]], alpha):
                    ax.plot([x0, x1], [y0, y1], color="0.3", lw=0.3, alpha=float(a))
        colour = cmap(np.asarray(colours[name]) % 20) if colours and name in colours else "tab:blue"
        area = 6.0
        if sizes and name in sizes:
            values = np.abs(np.asarray(sizes[name], dtype=float))
            area = 2 + 30 * values / values.max() if values.max() > 0 else 6.0
        ax.scatter(points[:, 0], points[:, 1], s=area, c=colour, linewidths=0)
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_aspect("equal")
        ax.set_title(f"{name[-18:]}\nd{layer.depth} n{len(points)}", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
