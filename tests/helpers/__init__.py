"""Test helpers shared by every test package (imported as ``helpers``).

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so test modules import these
by package name: ``from helpers.model import schema_model``.
"""
