"""Feature visualisation: renders of nodes, edges and circuits, dataset examples and inspection views."""
from viscnn.featurevis.objectives import Objective, parse_objective
from viscnn.featurevis.param import FFTImage, image_param
from viscnn.featurevis.render import RenderResult, RenderSettings, measure, render
from viscnn.featurevis.transforms import standard_transforms
