"""Settings come from WORKBENCH_* variables and .env; secrets have no defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import config
from workbench.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("WORKBENCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WORKBENCH_ENV_FILE", str(tmp_path / "absent.env"))


def test_defaults_are_embedded_and_secret_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    s = config.load()
    assert s.database_url is None
    assert s.engine == "duckdb"
    assert s.warehouse_path == (tmp_path / "data" / "warehouse.duckdb").resolve()
    assert s.reports_path == (tmp_path / "reports").resolve()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "postgresql://u:pw@db:5432/plant")
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "Europe/Berlin")
    s = config.load()
    assert s.engine == "postgres"
    assert "pw" not in repr(s)          # the URL is a secret: never printed
    assert s.tz.key == "Europe/Berlin"


def test_env_file_is_read_and_empty_values_are_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("WORKBENCH_DATABASE_URL=\nWORKBENCH_SITE=NORTH\n")
    monkeypatch.setenv("WORKBENCH_ENV_FILE", str(env))
    s = config.load()
    assert s.site == "NORTH"
    assert s.database_url is None       # copying .env.example as is keeps the embedded default


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="WORKBENCH_PLANT_TIMEZONE.*unknown time zone 'Mars/Olympus'"):
        config.load()
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "UTC")
    monkeypatch.setenv("WORKBENCH_MICRO_STOP_THRESHOLD_S", "-5")
    with pytest.raises(ConfigError, match="WORKBENCH_MICRO_STOP_THRESHOLD_S"):
        config.load()
