"""The precompute pipeline: everything the browser shows, computed as resumable steps into the store.

It sits after layout, scoring and feature visualisation in the data flow and is the only place that
joins them; `viscnn prepare` and the server's background preparation run it.
"""
from viscnn.pipeline.prepare import PROJECTIONS, Preparer, Settings, Step, manifest_key, measure_quality

__all__ = ["PROJECTIONS", "Preparer", "Settings", "Step", "manifest_key", "measure_quality"]
