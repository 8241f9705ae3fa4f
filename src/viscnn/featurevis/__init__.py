"""Feature visualisation: renders that maximise a node, neuron, direction, edge or class logit (Lucid's recipe).

Inspection views of what a model does with real images (dataset examples, kernels, activation maps) live
in `viscnn.inspection`.
"""
from viscnn.featurevis.objectives import check_objective
from viscnn.featurevis.param import FFTImage, image_param
from viscnn.featurevis.render import RenderResult, RenderSettings, measure, render
from viscnn.featurevis.transforms import standard_transforms

__all__ = ["FFTImage", "RenderResult", "RenderSettings", "check_objective", "image_param", "measure", "render",
           "standard_transforms"]
