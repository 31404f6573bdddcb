"""Recommenders with one shared contract (see :class:`Recommender`)."""
from .base import Recommender, load, save
from .bpr import BPRMF
from .lightgcn import LightGCN

__all__ = ["Recommender", "BPRMF", "LightGCN", "save", "load"]
