"""``minitl evaluate | predict``: a trained classifier (image or text) scored on held-out data, or asked
about new inputs; ``predict --weights`` asks a published ImageNet classifier."""
from __future__ import annotations

import json

from ._common import AT_LEAST_0, AT_LEAST_1, add_device_argument, check_arguments, resolve_device
from ._report import logger, print_result, print_top
from .training_options import data_arguments

EVALUATE_RULES = [("test_per_class", "--test-per-class", AT_LEAST_0),
                  ("eval_batch_size", "--eval-batch-size", AT_LEAST_1)]
PREDICT_RULES = [("top_k", "--top-k", AT_LEAST_1)]


def run_evaluate(args) -> int:
    check_arguments(args, EVALUATE_RULES)
    args.device = resolve_device(args)
    from ..train import text_workflow, workflow  # noqa: PLC0415 (keeps `minitl --help` fast)

    evaluate = text_workflow.text_evaluate if text_workflow.is_text_classifier(args.model) else workflow.evaluate
    report = evaluate(args.model, args.data, test_per_class=args.test_per_class, batch_size=args.eval_batch_size,
                      show_progress=not (args.quiet or args.json), log=logger(args),
                      device=None if args.device == "cpu" else args.device)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['data']}")
    print_result(report, args)
    return 0


def run_predict(args) -> int:
    check_arguments(args, PREDICT_RULES)
    args.device = resolve_device(args)
    if args.weights:  # a published classifier (ImageNet-1k): every positional argument is an image
        return _predict_pretrained(args, [args.model] + list(args.images))
    if not args.images:
        raise ValueError("give a MODEL and at least one IMAGE (or --weights efficientnet-lite0 IMAGE...)")
    from ..train import text_workflow, workflow  # noqa: PLC0415

    if text_workflow.is_text_classifier(args.model):
        results = text_workflow.text_predict(args.model, args.images, top_k=args.top_k,
                                             device=None if args.device == "cpu" else args.device)
        if args.json:
            print(json.dumps(results, indent=2))
            return 0
        for item in results:
            shown = item["text"] if len(item["text"]) <= 70 else item["text"][:67] + "..."
            print(f"{shown!r} ({item['tokens']} tokens)")
            print_top(item["top"])
        return 0
    results = workflow.predict(args.model, args.images, top_k=args.top_k,
                                  device=None if args.device == "cpu" else args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    classes = results["classes"]
    print(f"{args.model} knows {len(classes)} classes: {', '.join(map(str, classes))}"
          + (f" (trained on {results['trained_on']})" if results.get("trained_on") else "")
          + "; every image gets one of them, whatever it shows")
    if args.top_k > len(classes):
        print(f"(--top-k {args.top_k}: showing all {len(classes)})")
    for item in results["predictions"]:
        print(item["image"])
        print_top(item["top"])
    return 0


def _predict_pretrained(args, images) -> int:
    from ..train import workflow  # noqa: PLC0415

    results = workflow.predict_pretrained(args.weights, images, top_k=args.top_k,
                                             device=None if args.device == "cpu" else args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['model']}: {len(results['classes'])} classes ({results['trained_on']})")
    for item in results["predictions"]:
        print(item["image"])
        print_top(item["top"])
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="accuracy and confusion matrix of a trained model",
                              description="Evaluates a model saved by `minitl finetune` on the held-out split of "
                                          "--data (default: the full Fashion-MNIST test set).")
    p.add_argument("model", metavar="MODEL", help="a model .npz written by minitl finetune")
    data_arguments(p, with_subset=False)
    p.add_argument("--test-per-class", type=int, metavar="N", help="evaluate N images per class only")
    p.add_argument("--eval-batch-size", type=int, default=64, help="batch size (default 64)")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser("predict", help="top-k classes of image files",
                              description="Classifies image files with a model saved by `minitl finetune`.")
    p.add_argument("model", metavar="MODEL", help="a model .npz written by minitl finetune")
    p.add_argument("images", metavar="INPUT", nargs="*",
                   help="image files (PNG, JPEG, ...); for a text classifier, texts (quote each review)")
    p.add_argument("--weights", metavar="W",
                   help="predict with a published classifier instead of a MODEL (efficientnet-lite0: ImageNet-1k); "
                        "then every positional argument is an image")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show (default 3)")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_predict)
