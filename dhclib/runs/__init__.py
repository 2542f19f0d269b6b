"""Running experiments: a run's config (``config``), plans of runs (``plan``), executing a plan into the
result store (``execute``, ``store``), the drivers researchers call (``runner``) and notebook output folders
(``outputs``).
"""
