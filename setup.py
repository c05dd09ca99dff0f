"""Package layout only (metadata lives in pyproject.toml).

The demos live in ``demos/`` at the repository root but install as ``mnemovision.demos``, so the
only top-level import name the distribution installs is ``mnemovision``.
"""

from setuptools import find_packages, setup

demo_packages = ["mnemovision.demos" + ("." + p if p else "") for p in [""] + find_packages("demos")]

setup(
    packages=find_packages("src") + demo_packages,
    package_dir={"": "src", "mnemovision.demos": "demos"},
)
