"""The package list, found rather than listed: every package under src/ (each room, and any
room added later) is installed as coord.<name>. The rest of the metadata is in
pyproject.toml; tests/tools/test_wheel.py checks an installed wheel imports every room."""

from setuptools import find_packages, setup

setup(packages=["coord"] + [f"coord.{p}" for p in find_packages("src")])
