"""Every use of faust-streaming, aiokafka and mode internals, and nothing else.

Each module names the internal it replaces and why; `internals.py` pins them all (versions,
names, source), and tests/unit/test_faust_internals.py fails loudly when one moves.
"""
