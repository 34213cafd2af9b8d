"""A real GCS API server for the tests (fake-gcs-server). (Filled in by the object-store work;
`__all__` lists the pytest fixtures conftest.py imports.)"""

__all__: list[str] = []
