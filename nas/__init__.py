"""nas: neural architecture search producing accuracy-versus-cost Pareto fronts.

The library's modules are imported by name (``from nas.export import load``); ``import nas``
itself loads nothing else.
"""
