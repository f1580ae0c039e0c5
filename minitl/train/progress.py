"""Progress bars on long steps: tqdm when installed (the ``progress`` extra), else a small one of our own."""
from __future__ import annotations

import sys
import time


class SimpleBar:
    """``desc  37/120 [=====>     ] 12.3 it/s  eta 7s  loss 0.41`` on stderr, redrawn in place on a
    terminal; elsewhere (logs, CI) a line every 15 s so output stays short."""

    def __init__(self, total: int, desc: str = "", stream=None, unit: str = "it"):
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.stream = stream or sys.stderr
        self.count, self.start, self.postfix = 0, time.perf_counter(), ""
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_draw = self.start

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw > 0.1 or self.count >= self.total:
                self._draw(now, end="")
        elif now - self._last_draw > 15 or (self.count >= self.total and now - self.start > 5):
            # not a terminal (a log file, CI): a line every 15 s, and a last one for steps over 5 s
            self._draw(now, end="\n")

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def _draw(self, now, end) -> None:
        self._last_draw = now
        elapsed = now - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        width = 20
        filled = int(width * self.count / self.total) if self.total else width
        bar = "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)
        text = (f"{self.desc}  {self.count}/{self.total} [{bar}] {rate:.1f} {self.unit}/s  "
                f"{'eta' if self.count < self.total else 'took'} {eta if self.count < self.total else elapsed:.0f}s")
        if self.postfix:
            text += f"  {self.postfix}"
        prefix = "\r" if self.tty else ""
        self.stream.write(prefix + text + end)
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._draw(time.perf_counter(), end="\n")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str = "", enabled: bool = True, unit: str = "it"):
    """A bar with ``update(n)``, ``set_postfix_str(s)``, ``close()`` — tqdm's if installed."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return SimpleBar(total, desc, unit=unit)
    return tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True, file=sys.stderr)
