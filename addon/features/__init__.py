"""Features: one module per feature, each a generator of backend jobs (see ``base.py``).

``settings.resolve`` turns the scene's settings, the preferences and a call's overrides into the
one typed :class:`~.settings.JobSettings`; ``generate``, ``stylize`` and ``texturing`` build a
:class:`~.base.FeatureRun` from it. ``api`` runs them blocking, ``ui.job_operator`` modally.
Imports only ``blender/`` and ``core/`` (never ``api`` or ``ui``).
"""
