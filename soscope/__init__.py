"""soscope: enhance spot-based spatial omics to subspot resolution with the soScope model.

The Python API: `read_visium` / `read_anndata` / `prepare` (raw inputs → a dataset AnnData),
`SoScope` (fit, enhance, save, load), `to_spatialdata` (enhanced subspots over the H&E image),
and the original soScope's `two_step_train` and `infer`. They are imported on first use, so
`import soscope` stays light.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("soscope")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Public name → (module, name in that module).
API = {
    "SoScope": ("soscope.api", "SoScope"),
    "read_visium": ("soscope.preprocess.prepare", "read_visium"),
    "read_anndata": ("soscope.preprocess.prepare", "read_anndata"),
    "prepare": ("soscope.preprocess.prepare", "prepare"),
    "to_spatialdata": ("soscope.data.spatialdata_io", "enhanced_spatialdata"),
    "two_step_train": ("soscope.compat", "two_step_train"),
    "infer": ("soscope.compat", "infer"),
}


def __getattr__(name: str):
    if name in API:
        module, attribute = API[name]
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'soscope' has no attribute {name!r}")


__all__ = ["__version__", *sorted(API)]
