"""Maps and images as PNG bytes, and the per-image forward passes the node and edge panels need.

Maps are coloured with `viscnn.inspection.draw.diverging`, the one blue-white-red map of the views.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

from viscnn.graph.recorder import ConvCall, Recorder
from viscnn.server.state import LRU, ImageRef, ServerState


def png(array: np.ndarray) -> bytes:
    """uint8 [H, W] or [H, W, 3] -> PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upscale(rgb: np.ndarray, minimum: int = 64) -> np.ndarray:
    """Nearest-neighbour enlarge a small map so every unit stays a crisp square."""
    factor = max(1, -(-minimum // max(rgb.shape[:2])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def image_png(pixels: torch.Tensor) -> bytes:
    """0-1 pixels [C, H, W] -> PNG."""
    array = (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return png(array[..., 0] if array.shape[2] == 1 else array)


class Maps:
    """Per (image, layer) conv calls of one forward pass, cached: the panels ask for them often."""

    def __init__(self, state: ServerState, size: int = 8) -> None:
        self.state = state
        self._cache = LRU(size)

    def call(self, ref: ImageRef, layer: str) -> ConvCall:
        key = f"{ref.id}|{layer}"
        call = self._cache.get(key)
        if call is None:
            state = self.state
            x = state.model_input(ref)[None].to(state.device)
            recorder = Recorder(state.graph, stop_at=layer, keep={layer})
            with torch.no_grad():
                recorder.run(state.loaded.module, x)
            call = recorder.calls[layer]
            self._cache.put(key, call)
        return call

    def node_map(self, ref: ImageRef, layer: str, channel: int) -> torch.Tensor:
        """The node's map for the image [H, W] (after its BatchNorm)."""
        return self.call(ref, layer).ready_map()[0, channel].detach().float().cpu()

    def input_map(self, ref: ImageRef, layer: str, inp: int) -> torch.Tensor:
        """Input channel `inp` of the conv, as the conv received it."""
        return self.call(ref, layer).input[0, inp].detach().float().cpu()

    def kernel_output(self, ref: ImageRef, layer: str, out: int, inp: int, *,
                      bn_scale: torch.Tensor | None) -> torch.Tensor:
        """What kernel (out, inp) alone adds to output channel `out` (BN scale folded in)."""
        call = self.call(ref, layer)
        spec = call.layer
        local = inp - (out // spec.out_per_group) * spec.in_per_group
        with torch.no_grad():
            result = F.conv2d(call.input[:, inp:inp + 1], call.weight[out:out + 1, local:local + 1], None, call.stride,
                              call.padding, call.dilation)[0, 0]
        result = result.cpu()
        return result * float(bn_scale[out]) if bn_scale is not None else result
