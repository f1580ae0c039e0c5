"""Datasets as NumPy arrays (no tensors here): readers for image folders, IDX, CIFAR, scikit-learn digits."""
