"""htdviz: see and reproduce topology distillation for recommender systems.

Kang et al., "Topology Distillation for Recommender System", KDD 2021.
"""
__version__ = "0.1.0"
