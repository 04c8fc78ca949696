"""The bare-Hydra baseline: a task that imports TensorFlow once and writes one JSON per job."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for plain_tf


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    import plain_tf  # noqa: F401  (TensorFlow, once per process, imported as the runner imports it)

    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "results.json").write_text(json.dumps({"x": cfg.x, "dy/dx": 2 * cfg.x}))


if __name__ == "__main__":
    main()
