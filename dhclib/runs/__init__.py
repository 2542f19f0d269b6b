"""Running experiments: a run's config (``config``), plans of runs (``plan``), where and how they train (``engine``),
building a run from its config (``build``), the claimed unit of work (``unit``, ``claims``), executing a plan on
an engine into the result store (``execute``, ``executors``, ``store``), the drivers researchers call (``runner``)
and notebook output folders (``outputs``).
"""
