"""Settings: the one source of truth for paths, connections and plant facts.

Values come, highest priority first, from ``WORKBENCH_*`` environment variables, a ``.env`` file
in the project directory, and built-in defaults. No secret (database password, SMTP password,
API token) has a default: it is absent unless the environment or ``.env`` provides it.
``.env.example`` documents every key.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workbench.errors import ConfigError

#: Set to ``1`` in the kernel of a report run (:func:`workbench.reports.run_section`): figures
#: leave plotly.js to the report page, and :func:`workbench.notebook.record` keeps results for
#: the pipeline. Unset (an analyst's kernel): the first figure embeds plotly.js, nothing is kept.
REPORT_RUN_ENV = "WORKBENCH_REPORT_RUN"
#: MIME type of the results a report-run notebook keeps for its pipeline
#: (:func:`workbench.notebook.record` writes them, :func:`workbench.reports.read_records` reads).
RECORD_MIME = "application/vnd.workbench.record+json"


def report_run() -> bool:
    """Whether this process is the kernel of a report run (see :data:`REPORT_RUN_ENV`)."""
    return os.environ.get(REPORT_RUN_ENV, "").strip().lower() in ("1", "true", "yes")


def project_dir() -> Path:
    """The project directory: ``WORKBENCH_HOME`` if set, else the checkout this package lives in,
    else the current directory (an installed, non-editable package)."""
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "workbench").is_dir():
            return parent
    return Path.cwd()


class Settings(BaseSettings):
    """Workbench settings (environment variables are the field names, upper-cased, with the
    ``WORKBENCH_`` prefix, e.g. ``WORKBENCH_DATABASE_URL``)."""

    model_config = SettingsConfigDict(
        env_prefix="WORKBENCH_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        env_ignore_empty=True,
    )

    home: Path = Field(default_factory=project_dir, description="project directory")
    data_dir: Path | None = Field(default=None, description="generated data; default <home>/data")
    reports_dir: Path | None = Field(default=None, description="reports; default <home>/reports")
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:5432/db — unset: embedded DuckDB file",
    )
    duckdb_path: Path | None = Field(default=None, description="default <data_dir>/warehouse.duckdb")
    plant_timezone: str = Field(default="America/Chicago", description="IANA zone of the plant")
    site: str = Field(default="PLANT1", description="site id used by the demo and defaults")
    micro_stop_threshold_s: float = Field(default=120.0, gt=0)
    timescale: str = Field(default="auto", description="auto / on / off: use TimescaleDB features")
    # DuckDB lets one process hold the file read-write, or several read-only: openers wait this long
    # for a holder to let go before saying who it is (see workbench.store.locks).
    lock_timeout_s: float = Field(default=120.0, gt=0, description="seconds to wait for the DuckDB "
                                  "warehouse while another process holds it")
    # Shop-floor collection (workbench collect).
    tags_file: Path | None = Field(default=None, description="tag dictionary; default "
                                   "<home>/pipelines/plant/tags.yaml")
    spool_path: Path | None = Field(default=None, description="collector spool (SQLite); default "
                                    "<data_dir>/spool/collector.sqlite")
    spool_max_mb: float = Field(default=2048.0, gt=0, description="bound of the collector spool, MB")
    # MachineMetrics and ERP syncs (workbench sync, pipelines/machinemetrics_sync.yaml, erp_sync.yaml).
    mm_base_url: str | None = Field(default=None, description="MachineMetrics API, e.g. "
                                    "https://api.machinemetrics.com")
    mm_api_key: SecretStr | None = Field(default=None, description="MachineMetrics API key (bearer)")
    erp_adapter: str = Field(default="sql", description="sql (read-only PostgreSQL) or rest")
    erp_database_url: SecretStr | None = Field(default=None, description="the ERP's PostgreSQL, read-only "
                                               "role: postgresql://reader:PASSWORD@erp-host/erp")
    erp_base_url: str | None = Field(default=None, description="the ERP's REST API")
    erp_api_key: SecretStr | None = Field(default=None, description="the ERP REST API key (bearer)")
    erp_mapping_file: Path | None = Field(default=None, description="ERP tables and columns; default "
                                          "<home>/pipelines/plant/erp.yaml")
    # A source without a successful sync or heartbeat for this long is stale: an alert, and a
    # warning at the top of the daily report.
    source_stale_min: float = Field(default=15.0, gt=0, description="minutes before a silent source is stale")
    # Mail: with no SMTP host, messages are written to <reports>/outbox/*.eml instead of sent.
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: write .eml files")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = Field(default=True, description="upgrade the connection with STARTTLS")
    smtp_user: str | None = Field(default=None)
    smtp_password: SecretStr | None = Field(default=None)
    mail_from: str = Field(default="workbench@localhost", description="sender address")
    report_base_url: str | None = Field(default=None, description="URL where reports/ is served")
    fork_kernels: bool = Field(default=True, description="report kernels are forked from a process that "
                               "has the libraries imported; false: a new interpreter per notebook")

    @field_validator("plant_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')") from None
        return value

    @field_validator("erp_adapter")
    @classmethod
    def _erp_adapter(cls, value: str) -> str:
        if value not in ("sql", "rest"):
            raise ValueError("must be sql or rest")
        return value

    @field_validator("timescale")
    @classmethod
    def _timescale_mode(cls, value: str) -> str:
        if value not in ("auto", "on", "off"):
            raise ValueError("must be auto, on or off")
        return value

    # Resolved paths --------------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        """Directory of generated data (warehouse, extracts, spool, ground truth)."""
        return (self.data_dir or self.home / "data").resolve()

    @property
    def reports_path(self) -> Path:
        """Directory of executed notebooks and HTML reports."""
        return (self.reports_dir or self.home / "reports").resolve()

    @property
    def warehouse_path(self) -> Path:
        """The embedded DuckDB warehouse file."""
        return (self.duckdb_path or self.data_path / "warehouse.duckdb").resolve()

    @property
    def tags_path(self) -> Path:
        """The tag dictionary of the shop-floor collector."""
        return (self.tags_file or self.home / "pipelines" / "plant" / "tags.yaml").resolve()

    @property
    def erp_mapping_path(self) -> Path:
        """Which ERP tables and columns the ERP sync reads."""
        return (self.erp_mapping_file or self.home / "pipelines" / "plant" / "erp.yaml").resolve()

    @property
    def spool_file(self) -> Path:
        """The collector's store-and-forward spool."""
        return (self.spool_path or self.data_path / "spool" / "collector.sqlite").resolve()

    @property
    def tz(self) -> ZoneInfo:
        """The plant time zone."""
        return ZoneInfo(self.plant_timezone)

    @property
    def engine(self) -> str:
        """``postgres`` when a database URL is set, else ``duckdb``."""
        return "postgres" if self.database_url else "duckdb"


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return load()


def load(**overrides: object) -> Settings:
    """Read the settings now (environment, ``.env``), with explicit ``overrides`` on top.

    Raises
    ------
    ConfigError
        When a value is malformed; the message names the variable.
    """
    from pydantic import ValidationError as PydanticValidationError

    env_file = Path(os.environ.get("WORKBENCH_ENV_FILE", project_dir() / ".env"))
    try:
        return Settings(_env_file=env_file if env_file.is_file() else None, **overrides)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"WORKBENCH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def settings() -> Settings:
    """The process-wide settings (read once; call :func:`reset` after changing the environment)."""
    return _cached()


def reset() -> None:
    """Forget the cached settings so the next :func:`settings` call re-reads the environment."""
    _cached.cache_clear()
