"""Graph layout: where each node sits, so that circuits show as places (docs/layout.md).

Layers walk along one axis by depth (parallel branches side by side); within a layer, nodes are
projected from their class-wise importance (UMAP or MDS), smoothed into a disc of uniform density and
rotated to shorten the important edges to the layer before.
"""
from viscnn.layout.build import PROJECTIONS, assemble, grid_projections, project_layers
from viscnn.layout.classwise import ClassScores, choose_mode, classwise_scores
from viscnn.layout.placement import LayerLayout, Layout, depth_slots
from viscnn.layout.projection import normalise_rows, project
from viscnn.layout.rotation import best_rotation, rotate_layers
from viscnn.layout.smoothing import smooth_to_disc, sunflower
from viscnn.layout.vectors import featurevis_vectors, layer_activations, weight_vectors

__all__ = ["PROJECTIONS", "ClassScores", "LayerLayout", "Layout", "assemble", "best_rotation", "choose_mode",
           "classwise_scores", "depth_slots", "featurevis_vectors", "grid_projections", "layer_activations",
           "normalise_rows", "project", "project_layers", "rotate_layers", "smooth_to_disc", "sunflower",
           "weight_vectors"]
