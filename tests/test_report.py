"""The run's report: loss histories of resumed stages are stitched from their attempts."""

import pandas as pd

from soscope.report import stitch_attempts


def test_a_resumed_attempt_replaces_the_steps_it_trained_again():
    first = pd.DataFrame({"step": [0, 1, 2, 3, 4], "loss": [5.0, 4, 3, 2, 1]})
    resumed = pd.DataFrame({"step": [3, 4, 5], "loss": [2.5, 1.5, 0.5]})
    history = stitch_attempts([first, resumed])
    assert history["step"].tolist() == [0, 1, 2, 3, 4, 5]
    assert history["loss"].tolist() == [5.0, 4, 3, 2.5, 1.5, 0.5]
