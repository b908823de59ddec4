"""noise-search: where to inject noise while training a neural network, and how much."""

__version__ = "0.1.0"
