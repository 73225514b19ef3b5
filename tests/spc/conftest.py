"""Shared helpers for the SPC tests: the qcc example data sets, copied into ``data/``.

The files are the data sets of the R package qcc 3.0 (Scrucca; data from Montgomery,
*Introduction to Statistical Quality Control*), exactly as shipped in ``/work/shared/reference/qcc``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


def load(name: str) -> pd.DataFrame:
    """One qcc data set as a DataFrame (whitespace-separated text, header row)."""
    return pd.read_csv(DATA / f"{name}.txt", sep=r"\s+")


@pytest.fixture(scope="session")
def pistonrings() -> pd.DataFrame:
    return load("pistonrings")


@pytest.fixture(scope="session")
def orangejuice() -> pd.DataFrame:
    return load("orangejuice")


@pytest.fixture(scope="session")
def orangejuice2() -> pd.DataFrame:
    return load("orangejuice2")


@pytest.fixture(scope="session")
def circuit() -> pd.DataFrame:
    return load("circuit")


@pytest.fixture(scope="session")
def pcmanufact() -> pd.DataFrame:
    return load("pcmanufact")


@pytest.fixture(scope="session")
def viscosity() -> pd.DataFrame:
    return load("viscosity")


@pytest.fixture(scope="session")
def qcc_data():
    """The loader itself, for tests that need several data sets."""
    return load
