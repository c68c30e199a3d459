"""``python run.py mode=test ckpt=<path>``: evaluate every domain a checkpoint knows.

The checkpoint alone rebuilds the model (domains, depth ranges, normalisation, selector state);
the configuration only says where each domain's test data lives (``domains.<letter>``). A command,
like the training sequence: it sits above both the trained module (``training/``) and the
evaluation it runs (``evaluation/``), which knows nothing of training.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lifelong_monodepth.data.domain import domains_from_config
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.evaluation.evaluate import evaluate_domains, evaluation_options, protocol_label
from lifelong_monodepth.evaluation.results import ResultsTable
from lifelong_monodepth.models.selection import SELECTORS, DomainSelector, SelectorOptions
from lifelong_monodepth.training.loading import load_module
from lifelong_monodepth.utils.run_info import run_metadata, write_run_info

log = logging.getLogger(__name__)


def test_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    if not cfg.get("ckpt"):
        raise ConfigError(
            "mode=test needs ckpt=<path to a stage checkpoint, e.g. outputs/.../checkpoints/NKS.ckpt>."
        )
    path = Path(cfg.ckpt)
    module = load_module(path)
    write_run_info(cfg.paths.output_dir, cfg)
    letters = module.net.domains
    configured = domains_from_config(cfg.domains)
    missing = [letter for letter in letters if letter not in configured]
    if missing:
        raise ConfigError(
            f"Checkpoint {path} knows domains {letters} but the config has no `domains.{missing[0]}`: "
            "choose the benchmark the model was trained on (e.g. benchmark=synthetic)."
        )
    datamodule = instantiate(
        cfg.data, domains={letter: configured[letter] for letter in letters}, _convert_="all"
    )
    if not module.selector_state.get("letters"):
        from lifelong_monodepth.evaluation.selector_fit import fit_selector_from_data

        log.info("%s holds no selector state (a converted checkpoint?): fitting it on replay images", path)
        options = SelectorOptions.from_config(OmegaConf.to_container(cfg.get("selector") or {}, resolve=True))
        module.selector_state = fit_selector_from_data(
            module, datamodule, letters, options, seed=int(cfg.get("seed", 0))
        )
    evaluation = cfg.get("evaluation") or {}
    datamodule.check_index_files(letters, [evaluation_options(evaluation)["split"]])
    chosen = str((cfg.get("selector") or {}).get("name", "mahalanobis"))
    margin = (cfg.get("selector") or {}).get("margin")
    table = ResultsTable(order=letters, strategy=f"test:{path.stem}", protocol=protocol_label(evaluation))
    table.meta = run_metadata(cfg)
    selector_accuracy: dict[str, Any] = {}
    for name in [chosen] + [s for s in SELECTORS if s != chosen]:
        try:
            selector = DomainSelector(name, module.selector_state, margin=margin)
        except ValueError:
            if name == chosen:
                raise
            continue  # e.g. an older checkpoint without the Gaussian: compare the others
        results = evaluate_domains(module, datamodule, letters, selector, **evaluation_options(evaluation))
        if name == chosen:
            table.add_stage(path.stem, results)
        selector_accuracy[name] = {letter: r.selection_accuracy for letter, r in results.items()}
    results_dir = Path(cfg.paths.output_dir) / "results"
    summary = table.finalise(results_dir)
    summary["checkpoint"] = str(path)
    summary["selector"] = chosen
    summary["selector_comparison"] = selector_accuracy
    from lifelong_monodepth.utils.io import write_json

    write_json(results_dir / "summary.json", summary)
    table.print()
    log.info("Selection accuracy by selector: %s", selector_accuracy)
    return summary
