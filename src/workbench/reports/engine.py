"""The papermill engine report runs use: papermill's nbclient engine with throttled progress saves.

Papermill writes the whole output notebook at the start and at the end of every cell so that a
long run can be watched. A report notebook carries plotly.js (≈ 5 MB) in its first figure, and
twenty-odd cells meant twenty-odd serialisations and validations of it — most of a short
notebook's run time. This engine saves when the run starts, when it ends (also when it fails or
times out, so the partial notebook shows where it stopped) and otherwise at most every
``save_every_s`` seconds when a cell starts or finishes.

Registered with papermill as ``workbench`` (also through the ``papermill.engine`` entry point, so
``papermill --engine workbench`` works on the command line).
"""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE_NAME = "workbench"

#: Least time between two progress saves of the output notebook.
SAVE_EVERY_S = 10.0


class ThrottledExecutionManager(NotebookExecutionManager):
    """Papermill's execution manager, saving on cell start/end at most every ``save_every_s``."""

    save_every_s = SAVE_EVERY_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forced = False

    def save(self, **kwargs: Any) -> None:
        """Save when forced (run start / end) or when the last save is old enough."""
        due = (self.now() - self.last_save_time).total_seconds() >= self.save_every_s
        if self._forced or due:
            super().save(**kwargs)

    def _forced_save(self, method: Any, **kwargs: Any) -> None:
        self._forced = True
        try:
            method(**kwargs)
        finally:
            self._forced = False

    def notebook_start(self, **kwargs: Any) -> None:
        """Initialise the run's metadata and save."""
        self._forced_save(super().notebook_start, **kwargs)

    def notebook_complete(self, **kwargs: Any) -> None:
        """Finalise the run's metadata and save (also after a failure)."""
        self._forced_save(super().notebook_complete, **kwargs)


class WorkbenchEngine(NBClientEngine):
    """:class:`papermill.engines.NBClientEngine` with :class:`ThrottledExecutionManager`."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None,
                         progress_bar: bool = True, log_output: bool = False, autosave_cell_every: int = 30,
                         **kwargs: Any) -> Any:
        """Same contract as :meth:`papermill.engines.Engine.execute_notebook`."""
        nb_man = ThrottledExecutionManager(nb, output_path=output_path, progress_bar=progress_bar,
                                           log_output=log_output, autosave_cell_every=autosave_cell_every)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


def register() -> str:
    """Make the engine known to papermill (idempotent); returns its name."""
    papermill_engines.register(ENGINE_NAME, WorkbenchEngine)
    return ENGINE_NAME
