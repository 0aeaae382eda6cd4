"""Progress on stderr, for the command line and ``nmf_batch(progress=True)``.

On a terminal a line is redrawn in place (``\\r``); anywhere else (a log file, a pipe)
nothing is redrawn and only a handful of lines is written: a batch writes one line per
quarter of its items, a factorization of the command line nothing when it is short, else
a line after 10 s, 20 s, 40 s, ... and one at the end.
"""

import shutil
import sys
import threading
import time

__all__ = ["isatty", "run_with_progress", "BatchProgress"]

# The command line's spinner: shown once a run has lasted this long (seconds), then
# refreshed every _INTERVAL seconds.
_DELAY = 1.0
_INTERVAL = 0.1
# Elsewhere: a first line once a run has lasted this long (seconds), then one each time
# the elapsed time doubles.
_LOG_DELAY = 10.0
# A batch's bar on a terminal: redrawn every this many seconds.
_BAR_INTERVAL = 0.2
# A batch's lines elsewhere: one each time this fraction more of the items is done.
_LOG_STEP = 0.25


def isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _write(stream, text):
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def run_with_progress(fn, label, stream=None, status=None):
    """Call ``fn()`` in the calling thread and return its result (or raise its exception,
    a KeyboardInterrupt included: ``fastnmf.nmf`` stops itself on Ctrl-C).

    Meanwhile a background thread reports on ``stream`` (default: stderr), with the elapsed
    time and ``status()``, if given. On a terminal, once the call has lasted ``_DELAY``
    seconds, a spinner is redrawn in place every ``_INTERVAL`` seconds and erased at the
    end. Elsewhere (a log file, a pipe) nothing is redrawn and short calls write nothing: a
    line once the call has lasted ``_LOG_DELAY`` seconds, another each time the elapsed
    time doubles, and, if any was written, a last one when it ends (a handful of lines
    even for a long run).
    """
    stream = sys.stderr if stream is None else stream
    done = threading.Event()
    reporter = threading.Thread(
        target=_spinner if isatty(stream) else _log_lines,
        args=(done, stream, label, status, time.perf_counter()), daemon=True)
    reporter.start()
    try:
        return fn()
    finally:
        done.set()
        reporter.join()


def _spinner(done, stream, label, status, t0):
    if done.wait(_DELAY):
        return
    width, columns = 0, max(shutil.get_terminal_size().columns - 1, 20)
    try:
        for frame in _spin():
            text = f"{label} {frame} {time.perf_counter() - t0:.1f} s"
            if status is not None:
                text += status()
            if len(text) > columns:  # a wrapped line could not be redrawn with \r
                text = "..." + text[len(text) - columns + 3:]
            width = max(width, len(text))
            _write(stream, "\r" + text.ljust(width))
            if done.wait(_INTERVAL):
                break
    finally:
        _write(stream, "\r" + " " * width + "\r")


def _log_lines(done, stream, label, status, t0):
    wait, written = _LOG_DELAY, False
    while not done.wait(max(t0 + wait - time.perf_counter(), 0.0)):
        text = f"{label}: {time.perf_counter() - t0:.1f} s"
        _write(stream, text + (status() if status is not None else "") + "\n")
        wait, written = 2 * wait, True
    if written:
        _write(stream, f"{label}: ended after {time.perf_counter() - t0:.1f} s\n")


def _spin():
    while True:
        yield from "|/-\\"


class BatchProgress:
    """Items done of ``total``, with rate and time left, on ``stream`` (default: stderr),
    from a background thread. Counts come from ``add`` and from watched counter arrays
    (the compiled batch's per-thread counts, read as it runs)."""

    def __init__(self, total, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.tty = isatty(self.stream)
        self.total, self.base, self.counters = total, 0, None
        self.logged, self.logged_done = 0, None  # quarters and count written (no terminal)
        self.start = time.perf_counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def watch(self, counters):
        self.counters = counters

    def add(self, count):
        self.base += count

    def _done(self):
        counters = self.counters
        return self.base + (int(counters.sum()) if counters is not None else 0)

    def _text(self):
        done, elapsed = self._done(), time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(width * done / self.total) if self.total else width
        return done, (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                      f"{rate:.1f}/s, {elapsed:.1f} s elapsed, {left:.1f} s left")

    def _draw(self, final=False):
        done, text = self._text()
        if self.tty:
            _write(self.stream, "\r" + text + " " + ("\n" if final else ""))
            return
        quarter = int(done / self.total / _LOG_STEP) if self.total else 4
        if quarter > self.logged or (final and done != self.logged_done):
            self.logged, self.logged_done = quarter, done
            _write(self.stream, text + "\n")

    def _loop(self):
        while not self.stop.wait(_BAR_INTERVAL):
            self._draw()

    def close(self):
        self.stop.set()
        self.thread.join()
        self._draw(final=True)
