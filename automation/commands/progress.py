"""What the user sees while a stack changes: the engine events of ``operations.events`` rendered.

``PlainRenderer`` writes one line per finished resource operation and every diagnostic (CI logs,
pipes, ``NO_COLOR``), ``LiveRenderer`` keeps a rich live panel on a terminal. The engine calls
``on_event`` from its own threads, hence the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any

from automation.operations.events import Tracker, describe, describe_op, format_diagnostic, format_violation


class PlainRenderer:
    """One line per finished or failed resource operation, every diagnostic and policy violation."""

    def __init__(self, stream: IO[str], tracker: Tracker | None = None) -> None:
        self.stream = stream
        self.tracker = tracker or Tracker()
        self._lock = threading.Lock()

    def __enter__(self) -> PlainRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()

    def on_event(self, event: Any) -> None:
        with self._lock:
            for kind, item in self.tracker.apply(event):
                line = self._line(kind, item)
                if line:
                    self.stream.write(line + "\n")
            self.stream.flush()

    def _line(self, kind: str, item: Any) -> str | None:
        return describe(kind, item, self.tracker)


class LiveRenderer:
    """A rich live panel: counts, elapsed time, the resources in flight; messages print above it."""

    def __init__(self, console: Any, title: str, tracker: Tracker | None = None) -> None:
        from rich.live import Live

        self.console = console
        self.title = title
        self.tracker = tracker or Tracker()
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=True,
                          get_renderable=self._render)

    def __enter__(self) -> LiveRenderer:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)
        tracker = self.tracker
        self.console.print(f"{self.title}: {len(tracker.done)} done, {len(tracker.failed)} failed, "
                           f"{tracker.elapsed:.0f}s", highlight=False)

    def on_event(self, event: Any) -> None:
        with self._lock:
            for kind, item in self.tracker.apply(event):
                if kind == "diagnostic":
                    style = "red" if item.severity.startswith("error") else "yellow" if item.severity == "warning" else ""
                    self._print(format_diagnostic(item), style)
                elif kind == "policy":
                    self._print(format_violation(item), "red" if item.level == "mandatory" else "yellow")
                elif kind == "failed":
                    self._print(f"failed to {item.op} {describe_op(item)}", "red")

    def _print(self, text: str, style: str) -> None:
        from rich.text import Text

        self._live.console.print(Text(text, style=style))

    def _render(self) -> Any:
        from rich.table import Table

        tracker = self.tracker
        table = Table.grid(padding=(0, 2))
        table.add_row(f"[bold]{self.title}[/]", f"{len(tracker.in_flight)} in flight",
                      f"[green]{len(tracker.done)} done[/]", f"[red]{len(tracker.failed)} failed[/]",
                      f"{tracker.elapsed:.0f}s")
        now = tracker.clock()
        for op in sorted(tracker.in_flight.values(), key=lambda o: o.started)[:12]:
            table.add_row("", op.op, op.type, op.name, f"{now - op.started:.0f}s")
        return table


def use_live(stream: Any, env: Mapping[str, str] | None = None) -> bool:
    """A live display only on a terminal, and never when NO_COLOR or CI is set."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("CI") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def renderer(stream: IO[str], title: str | Callable[[], str], env: Mapping[str, str] | None = None,
             tracker: Tracker | None = None) -> PlainRenderer | LiveRenderer:
    """The live panel on a terminal (``title`` heads it; a callable is asked then), plain lines elsewhere."""
    if use_live(stream, env):
        from rich.console import Console

        return LiveRenderer(Console(file=stream), title() if callable(title) else title, tracker)
    return PlainRenderer(stream, tracker)


class Display:
    """A progress display that appears with the first engine event, so that what comes before the
    engine (notices, the confirmation prompt) is never drawn over; its clock starts at once."""

    def __init__(self, stream: IO[str], title: str | Callable[[], str]) -> None:
        self.stream = stream
        self.title = title
        self.tracker = Tracker()
        self._shown: PlainRenderer | LiveRenderer | None = None
        self._lock = threading.Lock()

    def on_event(self, event: Any) -> None:
        with self._lock:
            if self._shown is None:
                self._shown = renderer(self.stream, self.title, tracker=self.tracker)
                self._shown.__enter__()
            shown = self._shown
        shown.on_event(event)

    def close(self) -> None:
        with self._lock:
            if self._shown is not None:
                self._shown.__exit__(None, None, None)
