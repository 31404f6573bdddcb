"""Recommenders with one shared contract (see :class:`Recommender`), registered by name
("bpr", "lightgcn", "neumf"; :func:`register_model` adds one)."""
from .base import Recommender, get_model, load, model_names, register_model, save
from .bpr import BPRMF
from .lightgcn import LightGCN
from .neumf import NeuMF

__all__ = ["Recommender", "BPRMF", "LightGCN", "NeuMF", "save", "load", "register_model",
           "get_model", "model_names"]
