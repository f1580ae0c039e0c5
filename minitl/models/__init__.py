"""Image models with torchvision's names: the ResNet family, VGG-16, and their preprocessing metadata
(``Preprocessing`` itself lives in ``minitl.data.preprocessing``; re-exported here).

    resnet.py         ResNet builder, resnet18/34/50/101/152, resnet50_1by2 (open_nsfw), keras_resnet50
    vgg.py            VGG builder, vgg16
    bert.py           BERT-family text encoder (BertModel, BertConfig), minilm_l6, bert_base; pooling, encode
    registry.py       architecture names -> builders (``create``), ``infer_arch``
    rnn_classifier.py RNNClassifier: word embeddings -> BiLSTM/GRU -> pooled states -> head (text)
"""
from .base import ImageModel
from .bert import MINILM_L6, BertConfig, BertModel, bert, bert_base, minilm_l6
from ..data.preprocessing import CAFFE_OPENNSFW, KERAS_CAFFE, TORCHVISION_IMAGENET, Preprocessing
from .registry import ARCHS, ArchSpec, create, describe_state, get_spec, head_name, infer_arch
from .resnet import (
    BasicBlock, Bottleneck, ResNet, fold_batchnorm, keras_resnet50, resnet18, resnet34, resnet50, resnet50_1by2,
    resnet101, resnet152,
)
from .rnn_classifier import RNNClassifier, RNNEncoder
from .vgg import VGG, vgg16

__all__ = [
    "ImageModel", "Preprocessing", "TORCHVISION_IMAGENET", "CAFFE_OPENNSFW", "KERAS_CAFFE",
    "ARCHS", "ArchSpec", "create", "get_spec", "head_name", "infer_arch", "describe_state",
    "ResNet", "BasicBlock", "Bottleneck", "fold_batchnorm",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_1by2", "keras_resnet50",
    "VGG", "vgg16", "RNNClassifier", "RNNEncoder",
    "BertModel", "BertConfig", "MINILM_L6", "bert", "bert_base", "minilm_l6",
]
