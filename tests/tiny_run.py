"""Run a tiny sequence in a separate process (for kill / SIGTERM tests).

Usage: python tests/tiny_run.py OUTPUT_DIR DATA_DIR OVERRIDE...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import compose_config, tiny_domains_at  # noqa: E402
from lifelong_monodepth.training.sequence import run_sequence  # noqa: E402

if __name__ == "__main__":
    output_dir, data_dir, *overrides = sys.argv[1:]
    run_sequence(compose_config(Path(output_dir), overrides, tiny_domains_at(Path(data_dir))))
