"""The report of a weight transfer: what a file held, where each array went, and its rendering.

    report.rows           one :class:`MappingRow` per array of the file (source name -> minitl name)
    report.describe()     a summary: counts, then missing / unused / mis-shaped / skipped names, notes
    report.table()        the audit table (``minitl weights audit``): row by row, then the summary
    report.to_dict()      JSON-able (``--json``)

``transfer/api.py`` fills it while loading and mapping; this file only holds and shows it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy


@dataclass
class MappingRow:
    """One entry of the audit table: a name in the file and where it went."""

    source: str
    target: str | None  # minitl name; None: not used
    source_shape: tuple
    shape: tuple  # after the layout conversion
    dtype: str = ""
    conversion: str = ""
    status: str = "ok"  # ok | unused | mismatch


@dataclass
class TransferReport:
    """What a weight file held and how it maps onto a minitl architecture."""

    source: str
    format: str
    arch: str | None = None
    inferred_arch: str | None = None
    rows: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # the architecture's names the file lacks
    unused: list = field(default_factory=list)  # the file's names the architecture has no place for
    mismatched: list = field(default_factory=list)  # (name, expected shape, file's shape)
    skipped: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)  # convs whose stride/padding/kernel differ from the model's
    metadata: dict = field(default_factory=dict)
    preprocessing: dict | None = None
    class_names: list | None = None
    head: str | None = None  # what the file's last layer classifies (e.g. not ImageNet: opennsfw's 2 classes)
    structure: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unused or self.mismatched or self.conflicts)

    def as_metadata(self) -> dict:
        """The file's metadata completed with what the mapping found (arch, preprocessing, class names)."""
        return {**self.metadata, "arch": self.arch, "preprocessing": self.preprocessing,
                "class_names": self.class_names, "head": self.head}

    def get(self, key, default=None):
        """Dict-style access to :meth:`as_metadata` (``report.get("arch")``)."""
        value = self.as_metadata().get(key)
        return default if value is None else value

    def __contains__(self, key) -> bool:
        return self.as_metadata().get(key) is not None

    @property
    def num_parameters(self) -> int:
        return int(sum(numpy.prod(r.shape, dtype=numpy.int64) for r in self.rows if r.target))

    @property
    def reshaped(self) -> list:
        return [r for r in self.rows if r.target and tuple(r.source_shape) != tuple(r.shape)]

    def describe(self) -> str:
        lines = [f"{self.source} ({self.format}): {sum(1 for r in self.rows if r.target)} arrays, "
                 f"{self.num_parameters:,} values; architecture {self.arch or 'unknown'}"]
        if self.missing:
            lines.append(f"missing ({len(self.missing)}): " + ", ".join(self.missing[:20]) + (" ..." if len(self.missing) > 20 else ""))
        if self.unused:
            lines.append(f"unused ({len(self.unused)}): " + ", ".join(self.unused[:20]) + (" ..." if len(self.unused) > 20 else ""))
        if self.mismatched:
            lines.append(f"shape mismatch ({len(self.mismatched)}): " + ", ".join(
                f"{n} expects {tuple(e)}, file has {tuple(g)}" for n, e, g in self.mismatched[:20]))
        if self.skipped:
            lines.append(f"skipped on request: {', '.join(self.skipped)}")
        if self.conflicts:
            lines.append(f"conv geometry differs ({len(self.conflicts)}): " + "; ".join(self.conflicts[:8])
                         + (" ..." if len(self.conflicts) > 8 else ""))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def table(self) -> str:
        """The mapping table: source name -> minitl name, shapes, conversion, and what is missing."""
        width_s = max([len(r.source) for r in self.rows] + [11])
        width_t = max([len(r.target or "-") for r in self.rows] + [11])
        out = [f"{'source name':<{width_s}}  {'minitl name':<{width_t}}  {'source shape':<18}  {'shape':<18}  conversion"]
        for r in self.rows:
            shape = "" if r.target is None else str(tuple(r.shape))
            note = r.conversion if r.status == "ok" else f"{r.status.upper()}: {r.conversion}".rstrip(": ")
            out.append(f"{r.source:<{width_s}}  {r.target or '-':<{width_t}}  {str(tuple(r.source_shape)):<18}  {shape:<18}  {note}")
        for name in self.missing:
            out.append(f"{'-':<{width_s}}  {name:<{width_t}}  {'':<18}  {'':<18}  MISSING from the file")
        out.append("")
        out.append(self.describe())
        return "\n".join(out)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = [asdict(r) for r in self.rows]
        data["ok"], data["num_parameters"] = self.ok, self.num_parameters
        data["reshaped"] = [r.target for r in self.reshaped]
        return jsonable(data)


def jsonable(value):
    """dicts, lists and NumPy scalars made plain JSON types (keys as strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, numpy.generic):
        return value.item()
    return value
