"""``key=value`` command-line arguments (Hydra style) parsed into a typed dataclass by OmegaConf.

The tools run on machines without the training configs, so they do not compose the Hydra tree:
each tool declares its options as a dataclass (defaults, types, ``help`` metadata) and OmegaConf
merges the command line into it, rejecting unknown keys and values of the wrong type.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lifelong_monodepth.data.errors import ConfigError, LifelongDepthError

T = TypeVar("T")


def usage(cls: type, prog: str, summary: str) -> str:
    lines = [f"usage: python -m {prog} key=value ...", "", summary, "", "options:"]
    for item in dataclasses.fields(cls):
        default = "(required)" if item.metadata.get("required") else item.default
        lines.append(f"  {item.name}={default}".ljust(34) + f" {item.metadata.get('help', '')}")
    return "\n".join(lines)


def parse_options(cls: type[T], argv: Sequence[str], prog: str, positional: str | None = None) -> T:
    """``["ckpt=a.ckpt", "batch_size=4"]`` → ``cls(ckpt="a.ckpt", batch_size=4)``.

    ``positional`` names the option a bare first argument stands for (``inspect NKS.ckpt``).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    dotlist = []
    for i, arg in enumerate(argv):
        if "=" not in arg:
            if positional is not None and i == 0:
                arg = f"{positional}={arg}"
            else:
                raise ConfigError(f"{prog}: expected key=value, got {arg!r} (see --help).")
        dotlist.append(arg)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.from_dotlist(dotlist))
        options = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        message = str(err).splitlines()[0]
        raise ConfigError(f"{prog}: {message} (see --help for the options).") from err
    missing = [
        item.name
        for item in dataclasses.fields(cls)
        if getattr(options, item.name) in (None, "???") and item.metadata.get("required")
    ]
    if missing:
        raise ConfigError(f"{prog}: missing {', '.join(f'{m}=...' for m in missing)} (see --help).")
    return options  # type: ignore[return-value]


def run_cli(
    run: Callable[[Any], Any],
    cls: type,
    prog: str,
    summary: str,
    argv: Sequence[str] | None = None,
    positional: str | None = None,
) -> None:
    """Parse, run, and turn user errors into one line and exit code 2 (no traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help", "help") for arg in argv):
        print(usage(cls, prog, summary))
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("lifelong_monodepth").setLevel(logging.INFO)  # ours; libraries stay at warnings
    try:
        run(parse_options(cls, argv, prog, positional))
    except LifelongDepthError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def option(default: Any, help: str, required: bool = False) -> Any:  # noqa: A002 (mirrors argparse)
    """A dataclass field with help text for ``--help``."""
    return dataclasses.field(default=default, metadata={"help": help, "required": required})
