"""Scoring: every node's and edge's importance for a target, over an image set (or an expression of sets)."""
from viscnn.scoring.criteria import CRITERIA
from viscnn.scoring.engine import score_batches
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target, check_scorable, parse_target

__all__ = ["CRITERIA", "Scores", "Target", "check_scorable", "parse_target", "score_batches"]
