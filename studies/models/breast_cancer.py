"""A data loader: scikit-learn's bundled breast-cancer table (569 rows, 30 features, no
download), split into the four arrays noise-search expects."""

import numpy as np
from sklearn.datasets import load_breast_cancer


def load():
    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))  # the file is sorted by nothing useful
    x, y = x[order], y[order]
    n_train = 100  # few training rows: the regime where noise can help
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
