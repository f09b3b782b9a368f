"""Keys a config node gives its ``_target_``: each must be a parameter the target accepts
(``+model.foo=1`` is refused naming the key), checked before any data is read."""

import inspect
from collections.abc import Iterator

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
SHOWN = 12  # the accepted names a message lists at most


class UnknownKeyError(ValueError):
    """A config key that its node's ``_target_`` does not accept (one-line message)."""


def targets(node: DictConfig, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node with a ``_target_`` under ``node`` (interpolations not followed, ``hydra``
    skipped), with its dotted path."""
    if "_target_" in node:
        yield path, node
    for key in node:
        if key == "hydra" or OmegaConf.is_interpolation(node, key):
            continue
        child = node[key]
        if isinstance(child, DictConfig):
            yield from targets(child, f"{path}.{key}" if path else str(key))


def accepted(target: str) -> set[str] | None:
    """The keyword parameters ``target`` takes (None: any, it has ``**kwargs``, or unknown)."""
    try:
        params = inspect.signature(get_object(target)).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return None  # instantiation reports a target that cannot be found
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_keys(cfg: DictConfig) -> None:
    """UnknownKeyError naming the first key a ``_target_`` does not accept."""
    for path, node in targets(cfg):
        names = accepted(str(node._target_))
        if names is None:
            continue
        for key in node:
            if key not in HYDRA_KEYS and key not in names:
                listed = ", ".join(sorted(names)[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
                value = OmegaConf.to_container(node, resolve=False)[key]
                raise UnknownKeyError(
                    f"{path}.{key}={value!r}: not an option of {node._target_} (it takes {listed})"
                )
