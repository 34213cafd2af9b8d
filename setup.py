"""trackpipe: Open edX tracking logs -> deduplicated warehouse partitions and research packages.

Installable with `pip install .`; Dataflow and Flink workers install it through
`--setup_file ./setup.py`, so every runtime dependency is declared here (read from
requirements.txt, where the versions are pinned).
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def _requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


setup(
    name="trackpipe",
    version="0.1.0",
    description="Open edX tracking logs to clean, deduplicated warehouse data and research packages",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["trackpipe", "trackpipe.*", "transforms", "transforms.*", "pipelines", "pipelines.*"]),
    package_data={"trackpipe.report": ["templates/*"]},  # the report page's Jinja2 templates and CSS
    install_requires=_requirements(),
    entry_points={"console_scripts": ["trackpipe=trackpipe.cli:main"]},
)
