"""Progress bars for long work, on stderr and only when stderr is a terminal (pipes, logs
and agents see nothing). Long library calls take a callback `progress(done, total)`;
`bar()` gives one, or None when no bar should be drawn (the library then skips calls)."""

import sys
import time


class Bar:
    def __init__(self, label: str, stream=None, min_interval: float = 0.1):
        self.label = label
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval and not (total and done >= total):
            return
        self._last = now
        if total:
            frac = min(1.0, done / total)
            fill = int(frac * 30)
            text = f"\r{self.label} [{'#' * fill}{' ' * (30 - fill)}] {frac * 100:5.1f}% {done}/{total}"
        else:
            text = f"\r{self.label} {done}"
        self.stream.write(text + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def bar(label: str, stream=None) -> Bar | None:
    """A Bar when `stream` (default stderr) is a terminal, else None."""
    s = stream or sys.stderr
    try:
        tty = s.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Bar(label, s) if tty else None
