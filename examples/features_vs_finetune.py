"""Feature extraction vs fine-tuning, step by step, on a Fashion-MNIST subset with the pretrained resnet50_1by2.

Feature extraction: run the frozen backbone Φ once, keep its output, train only the head on it.
Fine-tuning: after the head has converged, unfreeze the top stages (layer3, layer4) and train them
together with the head, at a learning rate far below pretraining's (parameter groups), BatchNorm
kept in inference mode.

    A. Φ up to layer2 once for every image (no graph), stored: the expensive part, done once
    B. pooled features g = mean_{h,w} layer4(layer3(A)) for every image
    C. the head on g: an epoch costs milliseconds
    D. layer3 + layer4 + head on A: the stages at --finetune-lr (1e-3), the head at 1e-3
    E. the two accuracies and times side by side

Runs in a few minutes on 2 cores:  python examples/features_vs_finetune.py [--per-class 100] [--input-size 96]
Needs: pip install 'minitl[app]' and Fashion-MNIST (sudo apt-get install dataset-fashion-mnist).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import minitl
from minitl import functional as F
from minitl import optim
from minitl.data import DataLoader, ImagePipeline, Preprocessing, load_fashion_mnist, stratified_subset
from minitl.train import ClassifierHead, load_backbone


def run_through(fn, arrays, batch_size=64):
    """fn over arrays in batches, without a graph; the outputs stacked (a NumPy array)."""
    out = []
    with minitl.no_grad():
        for start in range(0, len(arrays), batch_size):
            out.append(fn(minitl.Tensor(np.ascontiguousarray(arrays[start:start + batch_size]))).numpy())
    return np.concatenate(out)


def accuracy(logits_fn, inputs, labels):
    return float((run_through(logits_fn, inputs).argmax(axis=1) == labels).mean())


def train(params_or_groups, forward, inputs, labels, epochs, batch_size=32, seed=0, **sgd):
    """Mini-batch SGD (momentum 0.9, Nesterov, decay 1e-6) on cross-entropy; returns seconds taken."""
    optimizer = optim.SGD(params_or_groups, momentum=0.9, nesterov=True, decay=1e-6, **sgd)
    began = time.perf_counter()
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(labels))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(forward(minitl.Tensor(inputs[batch])), minitl.Tensor(labels[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=100, help="training images per class (default 100)")
    parser.add_argument("--test-per-class", type=int, default=100, help="test images per class (default 100)")
    parser.add_argument("--input-size", type=int, default=96, help="backbone input size (default 96)")
    parser.add_argument("--head-epochs", type=int, default=60)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--finetune-lr", type=float, default=1e-3, help="learning rate of layer3 and layer4")
    args = parser.parse_args()
    minitl.manual_seed(0)

    backbone, _, source = load_backbone("opennsfw", "resnet50_1by2")
    backbone.eval().requires_grad_(False)
    spec = Preprocessing.from_metadata(backbone.preprocessing.to_dict(), input_size=args.input_size)
    pipeline = ImagePipeline(spec)
    train_set = stratified_subset(load_fashion_mnist("train"), args.per_class, seed=0)
    test_set = stratified_subset(load_fashion_mnist("test"), args.test_per_class, seed=1)
    print(f"backbone: {source}; {len(train_set)} training / {len(test_set)} test images at "
          f"{args.input_size}x{args.input_size}")

    def images(dataset):  # decode + preprocess once (no augmentation: the features are reused)
        x, y = next(iter(DataLoader(dataset, batch_size=len(dataset), transform=pipeline)))
        return x, y

    (x_train, y_train), (x_test, y_test) = images(train_set), images(test_set)

    def trunk(x):  # A. the part that stays frozen: stem, layer1, layer2
        h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
        return backbone.layer2(backbone.layer1(h))

    def top(a):  # the stages fine-tuning will unfreeze
        return backbone.layer4(backbone.layer3(a))

    began = time.perf_counter()
    a_train, a_test = run_through(trunk, x_train), run_through(trunk, x_test)
    extract_seconds = time.perf_counter() - began
    print(f"A. layer2 activations {a_train.shape[1:]} for {len(a_train) + len(a_test)} images: {extract_seconds:.0f}s "
          f"({(len(a_train) + len(a_test)) / extract_seconds:.0f} img/s)")

    began = time.perf_counter()
    g_train = run_through(lambda a: top(a).mean(axis=(2, 3)), a_train)  # B.
    g_test = run_through(lambda a: top(a).mean(axis=(2, 3)), a_test)
    pool_seconds = time.perf_counter() - began
    print(f"B. pooled features {g_train.shape[1:]}: {pool_seconds:.0f}s")

    head = ClassifierHead(backbone.num_features, 10)  # C. feature extraction: the head alone
    head_seconds = train(head.parameters(), head, g_train, y_train, args.head_epochs, lr=1e-3)
    features_acc = accuracy(head, g_test, y_test)
    print(f"C. head on cached features, {args.head_epochs} epochs in {head_seconds:.1f}s: "
          f"test accuracy {100 * features_acc:.1f}%")

    stages = [backbone.layer3, backbone.layer4]
    for stage in stages:  # D. fine-tuning: unfreeze the top stages
        stage.requires_grad_(True)
    groups = [{"params": [p for stage in stages for p in stage.parameters()], "lr": args.finetune_lr},
              {"params": list(head.parameters()), "lr": 1e-3}]
    finetune_seconds = train(groups, lambda a: head(top(a)), a_train, y_train, args.finetune_epochs, seed=1, lr=1e-3)
    for stage in stages:
        stage.requires_grad_(False)
    finetune_acc = accuracy(lambda a: head(top(a)), a_test, y_test)
    print(f"D. layer3+layer4 (lr {args.finetune_lr:g}) + head (lr 1e-3), {args.finetune_epochs} epochs in "
          f"{finetune_seconds:.0f}s: "
          f"test accuracy {100 * finetune_acc:.1f}% (BatchNorm: folded into the convs in this network, "
          "so nothing can drift)")

    print("\nE.  method               test accuracy   time after extraction")
    print(f"    feature extraction    {100 * features_acc:10.1f}%   {pool_seconds + head_seconds:10.1f}s")
    print(f"    fine-tuning (3 + 4)   {100 * finetune_acc:10.1f}%   "
          f"{pool_seconds + head_seconds + finetune_seconds:10.1f}s")


if __name__ == "__main__":
    main()
