"""nas: neural architecture search producing accuracy-vs-cost Pareto fronts.

``import nas`` stays cheap (no torch); ``nas.load`` is imported on first use.
"""


def __getattr__(name: str):
    # PEP 562 lazy attribute: nas.load lives in nas.export, which imports torch.
    if name == "load":
        from nas.export import load

        return load
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
