"""Real engines for the tests: a standalone Apache Flink cluster and Beam's Prism runner.
(Filled in by the engines work; `__all__` lists the pytest fixtures conftest.py imports.)"""

__all__: list[str] = []
