"""Train soscope on a section and write the enhanced profiles: `python train.py --help`.

The same command as `soscope-train`; both run `soscope.cli.train_main`.
"""

from soscope.cli import train_main

if __name__ == "__main__":
    train_main()
