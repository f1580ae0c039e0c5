"""A BERT-family encoder (Devlin et al., 2019) built from minitl's layers, configurable like ``config.json``.

    embeddings   e_t = LayerNorm(W_word[id_t] + W_pos[t] + W_type[type_t]),  then dropout
    encoder      L post-LN layers (nn.TransformerEncoderLayer): h ← LN(h + MHA(h, M)), h ← LN(h + FFN(h))
                 M: the extended attention mask, (N, 1, 1, T), 0 for real tokens and −∞ for padding
    pooling      mean:   s = Σ_t m_t h_t / Σ_t m_t          (sentence-transformers' mean pooling)
                 cls:    s = h_0                            (the [CLS] token)
                 pooler: s = tanh(W_p h_0 + b_p)            (BERT's pooler)
    encode       s / ‖s‖₂ for every text: L2-normalised sentence embeddings

Parameter names (``embeddings.word_embeddings.weight``, ``layers.0.self_attn.query.weight``,
``layers.0.norm1.weight``, ``pooler.weight`` …) are minitl's; minitl.transfer.bert maps
Hugging Face's BertModel names onto them.  No file formats here: ``BertConfig.from_dict`` takes the
parsed ``config.json``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy

from .. import backend
from .. import functional as F
from ..nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, TransformerEncoderLayer, init
from ..nn.transformer import ACTIVATIONS
from ..tensor import Tensor, no_grad

POOLINGS = ("mean", "cls", "pooler")


@dataclass(frozen=True)
class BertConfig:
    """The architecture, with the field names of a Hugging Face BERT ``config.json`` (bert-base defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BERT config: hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"BERT config: unsupported hidden_act {self.hidden_act!r}; known: {', '.join(ACTIVATIONS)}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"BERT config: {name} must be a positive integer, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, config: dict) -> BertConfig:
        """From a parsed ``config.json``: known keys are used, the rest ignored; unsupported variants refused."""
        if not isinstance(config, dict):
            raise ValueError(f"BERT config: expected a JSON object, got {type(config).__name__}")
        kind = config.get("position_embedding_type", "absolute")
        if kind != "absolute":
            raise ValueError(f"BERT config: position_embedding_type {kind!r} is not supported (only 'absolute')")
        if config.get("model_type", "bert") not in ("bert",):
            raise ValueError(f"config.json describes a {config.get('model_type')!r} model, not a BERT encoder")
        names = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in config.items() if k in names and v is not None}
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


MINILM_L6 = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


class BertEmbeddings(Module):
    """e_t = LayerNorm(W_word[id_t] + W_pos[t] + W_type[type_t]), then dropout."""

    def __init__(self, config: BertConfig, dtype=numpy.float32, device=None):
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = Embedding(config.vocab_size, d, padding_idx=config.pad_token_id, dtype=dtype, device=device)
        self.position_embeddings = Embedding(config.max_position_embeddings, d, dtype=dtype, device=device)
        self.token_type_embeddings = Embedding(config.type_vocab_size, d, dtype=dtype, device=device)
        self.norm = LayerNorm(d, eps=config.layer_norm_eps, dtype=dtype, device=device)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None) -> Tensor:
        xp = self.word_embeddings.weight.xp
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(f"BERT: sequence of {length} tokens is longer than the "
                             f"{self.position_embeddings.num_embeddings} positions the model has")
        positions = xp.arange(length)[None, :]  # (1, T): broadcast over the batch
        types = xp.zeros((1, 1), dtype=numpy.int64) if token_type_ids is None else token_type_ids
        e = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(types)
        return self.dropout(self.norm(e))


class BertModel(Module):
    """Embeddings, L post-LN encoder layers and BERT's pooler; ``forward`` -> hidden states (N, T, D)."""

    def __init__(self, config: BertConfig | dict | None = None, add_pooling_layer: bool = True,
                 dtype=numpy.float32, device=None):
        super().__init__()
        config = BertConfig.from_dict(config) if isinstance(config, dict) else (config or BertConfig())
        self.config = config
        self.embeddings = BertEmbeddings(config, dtype=dtype, device=device)
        self.layers = ModuleList(TransformerEncoderLayer(
            config.hidden_size, config.num_attention_heads, config.intermediate_size, config.hidden_dropout_prob,
            config.hidden_act, config.layer_norm_eps, config.attention_probs_dropout_prob, dtype=dtype, device=device,
        ) for _ in range(config.num_hidden_layers))
        self.pooler = Linear(config.hidden_size, config.hidden_size, dtype=dtype, device=device) if add_pooling_layer else None
        self.init_weights()

    @property
    def embedding_dim(self) -> int:
        return self.config.hidden_size

    def init_weights(self) -> None:
        """BERT's initialisation: every weight matrix and embedding ~ N(0, initializer_range²), biases 0,
        LayerNorm γ = 1, β = 0, the padding row 0 (a model trained from scratch starts here)."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                init.normal_(module.weight, 0.0, std)
            if isinstance(module, Linear) and module.bias is not None:
                init.zeros_(module.bias)
            if isinstance(module, Embedding) and module.padding_idx is not None:
                module.weight.data[module.padding_idx] = 0

    def extended_attention_mask(self, attention_mask, dtype=numpy.float32):
        """(N, T) 1/0 mask -> additive (N, 1, 1, T): 0 where attended, −∞ for padding keys."""
        if attention_mask is None:
            return None
        return F.additive_mask(attention_mask, dtype)[:, None, None, :]

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> Tensor:
        input_ids = self._on_device(input_ids)
        attention_mask = self._on_device(attention_mask)
        token_type_ids = self._on_device(token_type_ids)
        if input_ids.ndim != 2:
            raise ValueError(f"BERT: input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(f"BERT: attention_mask shape {tuple(attention_mask.shape)} differs from "
                             f"input_ids shape {tuple(input_ids.shape)}")
        h = self.embeddings(input_ids, token_type_ids)
        mask = self.extended_attention_mask(attention_mask, h.dtype)
        for layer in self.layers:
            h = layer(h, mask=mask)
        return h

    def pool(self, hidden: Tensor, attention_mask=None, mode: str = "mean") -> Tensor:
        """Sentence vectors (N, D) from hidden states (N, T, D): ``mean`` over real tokens, ``cls``, ``pooler``."""
        if mode == "mean":
            if attention_mask is None:
                return hidden.mean(axis=1)
            m = self._on_device(attention_mask).astype(hidden.dtype)[:, :, None]  # (N, T, 1)
            count = backend.get_array_module(m).maximum(m.sum(axis=1), 1e-9)  # (N, 1)
            return (hidden * Tensor(m)).sum(axis=1) / Tensor(count)
        if mode == "cls":
            return hidden[:, 0]
        if mode == "pooler":
            if self.pooler is None:
                raise ValueError("BERT: pooling='pooler' needs the pooling layer (add_pooling_layer=True)")
            return F.tanh(self.pooler(hidden[:, 0]))
        raise ValueError(f"unknown pooling {mode!r}; choose from {', '.join(POOLINGS)}")

    def encode(self, input_ids=None, attention_mask=None, *, texts=None, tokenizer=None, max_length: int = 128,
               batch_size: int = 32, pooling: str = "mean", normalize: bool = True) -> numpy.ndarray:
        """L2-normalised sentence embeddings (N, D) as a host array, in inference mode, no graph.

        Either token arrays (``input_ids``, ``attention_mask``: (N, T) integers) or ``texts`` with a
        ``tokenizer`` whose ``encode_batch(texts, max_length)`` returns those two arrays.  Batches are
        formed in order of length and trimmed to their longest member (padding costs nothing then).
        """
        if texts is not None:
            if tokenizer is None:
                raise ValueError("encode(texts=...) needs a tokenizer with encode_batch(texts, max_length)")
            input_ids, attention_mask = tokenizer.encode_batch(list(texts), max_length)
        if input_ids is None:
            raise ValueError("encode: give input_ids (and attention_mask) or texts with a tokenizer")
        ids = numpy.asarray(backend.to_numpy(input_ids))
        mask = numpy.ones_like(ids) if attention_mask is None else numpy.asarray(backend.to_numpy(attention_mask))
        lengths = mask.sum(axis=1)
        order = numpy.argsort(-lengths, kind="stable")
        out = numpy.empty((ids.shape[0], self.config.hidden_size), dtype=numpy.float32)
        with self.evaluating(), no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                width = max(int(lengths[rows].max()), 1)
                hidden = self(ids[rows, :width], mask[rows, :width])
                vectors = self.pool(hidden, mask[rows, :width], pooling).numpy()
                out[rows] = vectors
        if normalize:
            out /= numpy.maximum(numpy.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _on_device(self, array):
        if array is None:
            return None
        data = array.data if isinstance(array, Tensor) else array
        return backend.to_device(numpy.asarray(data) if backend.backend_of(data) is backend.NUMPY else data,
                                 self.embeddings.word_embeddings.weight.device)

    def extra_repr(self) -> str:
        c = self.config
        return (f"layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, "
                f"ffn={c.intermediate_size}, vocab={c.vocab_size}")


def bert(config: BertConfig | dict | None = None, num_classes=None, **options) -> BertModel:
    """A BERT encoder (no classification head: ``num_classes`` must be None or 0)."""
    if num_classes:
        raise ValueError("a BERT encoder carries no classification head; put one on its pooled output "
                         f"(asked for {num_classes} classes)")
    return BertModel(config, **options)


def minilm_l6(num_classes=None, **options) -> BertModel:
    """all-MiniLM-L6-v2's shape: 6 layers, hidden 384, 12 heads, FFN 1536, vocab 30,522, 512 positions."""
    return bert(MINILM_L6, num_classes, **options)


def bert_base(num_classes=None, **options) -> BertModel:
    """bert-base-uncased's shape: 12 layers, hidden 768, 12 heads, FFN 3072."""
    return bert(BertConfig(), num_classes, **options)
