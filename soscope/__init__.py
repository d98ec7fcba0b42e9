"""soscope: enhance spot-based spatial omics to subspot resolution with the soScope model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("soscope")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


def __getattr__(name: str):
    # The original's API, imported lazily so `import soscope` stays light.
    if name in ("two_step_train", "infer"):
        from soscope import compat

        return getattr(compat, name)
    raise AttributeError(f"module 'soscope' has no attribute {name!r}")


__all__ = ["__version__", "infer", "two_step_train"]
