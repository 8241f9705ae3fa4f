"""Feature visualisation: renders of nodes, edges and circuits, dataset examples and inspection views."""
from viscnn.featurevis.objectives import Objective, parse_objective
from viscnn.featurevis.param import FFTImage, image_param
from viscnn.featurevis.render import RenderResult, RenderSettings, measure, render
from viscnn.featurevis.transforms import standard_transforms
from viscnn.featurevis.cache import cached_arrays, cached_image, cached_json
from viscnn.featurevis.examples import (LayerExamples, PixelCache, compute_examples, dataset_examples, examples_png,
                                       layer_sheet)
from viscnn.featurevis.views import activation_grid, activation_maps, kernel_grid, kernel_heatmap, receptive_box
