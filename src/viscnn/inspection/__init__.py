"""Inspection: what a model does with real images: dataset examples, kernels, activation maps, receptive fields."""
from viscnn.inspection.examples import (
                                        LayerExamples,
                                        PixelCache,
                                        compute_examples,
                                        dataset_examples,
                                        examples_png,
                                        layer_sheet,
)
from viscnn.inspection.views import activation_grid, activation_maps, kernel_grid, kernel_heatmap, receptive_box

__all__ = ["LayerExamples", "PixelCache", "activation_grid", "activation_maps", "compute_examples", "dataset_examples",
           "examples_png", "kernel_grid", "kernel_heatmap", "layer_sheet", "receptive_box"]
