"""Training the zoo's Fashion-MNIST models: `train_fmnist` (loop) and the group-sparse prox (sparsity)."""
from viscnn.train.loop import TrainReport, evaluate, train_fmnist
from viscnn.train.sparsity import GroupLevels, layer_sparsity, penalty, prox_

__all__ = ["GroupLevels", "TrainReport", "evaluate", "layer_sparsity", "penalty", "prox_", "train_fmnist"]
