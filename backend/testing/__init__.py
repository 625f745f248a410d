"""Test-only helpers that live in the backend because tests drive a real server process.

Nothing here runs in production: the server installs it only with ``serve --test-gates DIR``, which
``cli.py`` refuses unless the environment says ``SCENECAST_TEST_GATES=1`` (the test suite sets both).
"""
