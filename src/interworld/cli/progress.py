"""The progress bar of the training commands: steps done, one live metric, time elapsed."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def step_bar(label: str, total: int, metric: str, quiet: bool = False):
    """Yields update(step, value)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(f"{metric} {{task.fields[value]}}"), TimeElapsedColumn(), disable=quiet) as bar:
        task = bar.add_task("steps", total=total, value="")
        yield lambda step, value: bar.update(task, completed=step, value=f"{value:.4f}")
