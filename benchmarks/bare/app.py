"""The bare-Hydra baseline: a task that imports TensorFlow once and writes one JSON per job."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    import tensorflow  # noqa: F401  (once per process, as the runner pays it)

    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "results.json").write_text(json.dumps({"x": cfg.x, "dy/dx": 2 * cfg.x}))


if __name__ == "__main__":
    main()
