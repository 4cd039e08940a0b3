"""``python -m mmembed.evaluate bundle=index/NAME``: evaluate a bundle, print and write it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmembed.evaluate import EvalSettings, evaluate
from mmembed.evaluate.report import log_wandb, write_evaluation


def evaluate_cfg(cfg: DictConfig) -> dict[str, Any]:
    """Resolve ``bundle=``, evaluate, write ``eval.json``/``eval.md``, print the table."""
    from mmembed.cli.rank import resolve_bundle

    path, why = resolve_bundle(cfg.get("bundle"), cfg.paths.index_dir)
    print(f"bundle {path} ({why})")
    res = evaluate(path, EvalSettings.from_cfg(cfg))
    target = write_evaluation(res, cfg.get("out") or path)
    res["output_dir"] = str(Path(target).resolve())
    log_wandb(res)
    print((target / "eval.md").read_text(encoding="utf-8"))
    print(f"wrote {target / 'eval.json'} and {target / 'eval.md'}")
    return res


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    from mmembed.cli import run
    from mmembed.config import compose

    cfg = compose(list(sys.argv[1:] if argv is None else argv), config_name="evaluate")
    return run(evaluate_cfg, cfg)


if __name__ == "__main__":
    main()
