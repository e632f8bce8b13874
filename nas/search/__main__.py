"""``python -m nas.search``: see :mod:`nas.commands.search`. Hydra composes and checks the
command line before the search stack is imported (a typo is named in about a second)."""

from nas.commands import hydra_app


def task(cfg, run_dir, overrides):
    from nas.commands.search import task as run

    return run(cfg, run_dir, overrides)


hydra_app("search", task)
