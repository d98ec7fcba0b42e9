"""Raw spatial data and its H&E image → a soscope dataset folder: `python scripts/preprocess.py --help`.

The same command as `soscope-preprocess`; see soscope/conf_preprocess/preprocess.yaml and the
documentation's "Preparing your data".
"""

from soscope.preprocess.cli import main

if __name__ == "__main__":
    main()
