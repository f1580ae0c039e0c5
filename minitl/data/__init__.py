"""Data: datasets, file-format readers, preprocessing, augmentation and a loader — NumPy only.

    datasets.py       ArrayDataset, Subset, stratified subsets and splits, .npz (allow_pickle=False)
    images.py         load_image, ImageFolder (a folder per class; Pillow)
    idx.py            the IDX format of MNIST / Fashion-MNIST (.gz or raw)
    cifar.py          the CIFAR-10/100 binary format
    fashion_mnist.py  finding and loading Fashion-MNIST
    digits.py         scikit-learn's 8×8 digits
    preprocessing.py  Preprocessing: what a pretrained network expects of its input (size, order, mean/std)
    transforms.py     resizing, the image pipeline, seeded augmentation
    loader.py         DataLoader: batches, shuffling, drop_last, background prefetching
    sources.py        ``--data D`` -> training and held-out splits
    text/             WordPiece tokenizer, text datasets and readers, length-bucketed batches

Nothing here knows about tensors: batches are arrays, turned into Tensors by the trainer.
"""
from .datasets import (
    ArrayDataset, Dataset, MirroredDataset, Subset, load_npz_dataset, random_subset, stratified_indices, stratified_subset,
    train_val_split,
)
from .fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_COARSE, find_fashion_mnist, load_fashion_mnist
from .idx import IDXError, read_idx, write_idx
from .loader import DataLoader
from .sources import DataSplits, open_data
from .preprocessing import CAFFE_OPENNSFW, KERAS_CAFFE, TORCHVISION_IMAGENET, Preprocessing
from .transforms import (
    Compose, ImagePipeline, RandomCrop, RandomHorizontalFlip, RandomShear, RandomZoom, augmentation, resize, to_rgb,
)

__all__ = [
    "Dataset", "ArrayDataset", "MirroredDataset", "Subset", "load_npz_dataset", "random_subset", "stratified_indices",
    "stratified_subset", "train_val_split", "FASHION_MNIST_CLASSES", "FASHION_MNIST_COARSE", "find_fashion_mnist", "load_fashion_mnist",
    "IDXError", "read_idx", "write_idx", "DataLoader", "DataSplits", "open_data", "Compose", "ImagePipeline",
    "Preprocessing", "TORCHVISION_IMAGENET", "CAFFE_OPENNSFW", "KERAS_CAFFE", "RandomCrop", "RandomHorizontalFlip",
    "RandomShear", "RandomZoom", "augmentation", "resize", "to_rgb",
]
