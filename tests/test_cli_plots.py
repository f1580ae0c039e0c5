"""Every PNG a run writes, rendered at 2 and at 10 classes: big enough, every title and label inside the
figure (matplotlib's tight bounding box), phase labels and value labels inside their frame, whole-number
epoch ticks, and the time legend's colours those of the bars."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from minitl.train import metrics  # noqa: E402

CLASS_SETS = {2: ["sfw-like", "other"], 10: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                              "Shirt", "Sneaker", "Bag", "Ankle boot"]}
TITLE = "fashion-mnist, finetune: test accuracy 80.4% (all 1000 test images)"


@pytest.fixture
def figures(monkeypatch):
    """Each figure as it is saved (after its layout), to look inside."""
    saved = []
    original = metrics._save

    def keep(fig, path):
        result = original(fig, path)
        saved.append(fig)
        return result

    monkeypatch.setattr(metrics, "_save", keep)
    return saved


def _inside(inner, outer, slack=1.0):
    return (inner.x0 >= outer.x0 - slack and inner.y0 >= outer.y0 - slack and inner.x1 <= outer.x1 + slack
            and inner.y1 <= outer.y1 + slack)


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)  # closed by pyplot
    canvas.draw()
    return canvas.get_renderer()


def _check_fits(fig, path, min_size):
    renderer = _renderer(fig)
    tight = fig.get_tightbbox(renderer)  # inches
    box = fig.bbox_inches
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01 and tight.x1 <= box.x1 + 0.01 and tight.y1 <= box.y1 + 0.01, \
        f"{path}: something drawn outside the figure: {tight} vs {box}"
    # titles, axis labels, labels placed in the plot, legends (tick labels: in the tight box above, which
    # counts only what is drawn)
    texts = [fig._suptitle] if fig._suptitle is not None else []  # noqa: SLF001
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        texts += list(ax.get_legend().get_texts()) if ax.get_legend() else []
    texts = [t for t in texts if t.get_visible() and t.get_text()]
    for text in texts:
        assert _inside(text.get_window_extent(renderer), fig.bbox), f"{path}: {text.get_text()!r} is cut"
    width, height = Image.open(path).size
    assert width >= min_size[0] and height >= min_size[1], (path, width, height)


def _history(phases):
    return [{"phase": p, "epoch": i + 1, "train_loss": 1.0 / (i + 1), "val_loss": 1.1 / (i + 1),
             "train_acc": 0.5 + 0.05 * i, "val_acc": 0.45 + 0.05 * i} for i, p in enumerate(phases)]


@pytest.mark.parametrize("phases", [["head"] * 2 + ["finetune"], ["head"] * 30 + ["finetune"] * 6])
def test_curves_have_a_title_integer_epochs_and_phase_labels_in_the_frame(tmp_path, figures, phases):
    path = metrics.plot_learning_curves(_history(phases), tmp_path / "curves.png", title=TITLE)
    (fig,) = figures
    assert fig._suptitle.get_text() == TITLE  # noqa: SLF001
    _check_fits(fig, path, (900, 380))
    renderer = _renderer(fig)
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        labels = [t for t in ax.texts if t.get_text() in ("head", "finetune")]
        assert sorted(t.get_text() for t in labels) == ["finetune", "head"]
        for label in labels:
            assert _inside(label.get_window_extent(renderer), ax.bbox), f"phase label {label.get_text()} leaves its frame"


@pytest.mark.parametrize("n", sorted(CLASS_SETS))
def test_confusion_plot_is_big_enough_and_its_title_fits(tmp_path, figures, n):
    rng = np.random.default_rng(n)
    matrix = rng.integers(0, 100, (n, n))
    path = metrics.plot_confusion(matrix, CLASS_SETS[n], tmp_path / "confusion.png", title=TITLE)
    (fig,) = figures
    _check_fits(fig, path, (440, 390))


@pytest.mark.parametrize("n", sorted(CLASS_SETS))
def test_compare_plot_labels_in_frame_and_legend_colours_match_the_bars(tmp_path, figures, n):
    rows = [{"mode": "features", "accuracy": 0.999, "train_seconds": 2.0, "extract_seconds": 30.0},
            {"mode": "finetune", "accuracy": 0.85, "train_seconds": 40.0, "extract_seconds": 30.0},
            {"mode": "scratch", "accuracy": 1.0 / n, "train_seconds": 70.0, "extract_seconds": 0.0}]
    path = metrics.plot_comparison(rows, tmp_path / "compare.png", title=f"{n} classes: same split")
    (fig,) = figures
    _check_fits(fig, path, (850, 350))
    renderer = _renderer(fig)
    ax_acc, ax_time = fig.axes
    for ax in (ax_acc, ax_time):
        assert len(ax.texts) == 3
        for text in ax.texts:  # value labels: inside the frame, not on it
            assert _inside(text.get_window_extent(renderer), ax.bbox, slack=-1.0), text.get_text()
    legend = ax_time.get_legend()
    handles = dict(zip([t.get_text() for t in legend.get_texts()], legend.legend_handles))
    import matplotlib.colors as mcolors  # noqa: PLC0415

    bars = {container.get_label(): container for container in ax_time.containers}
    for label, handle in handles.items():
        colours = {mcolors.to_hex(patch.get_facecolor()) for patch in bars[label]}
        assert colours == {mcolors.to_hex(handle.get_facecolor())}, (label, colours)
