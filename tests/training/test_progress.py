"""A stage's progress: one bar over all its steps, and the time left in the log."""

import logging

import lightning as L

from soscope.data.datamodule import SpotDataModule
from soscope.training.progress import (
    ProgressLog,
    StageProgressBar,
    format_duration,
    progress_line,
)
from soscope.training.vgae import VGAEModule
from tests.training.test_modules import module_args


def test_durations_read_as_a_person_would_say_them():
    assert format_duration(42) == "42 s"
    assert format_duration(720) == "12 min"
    assert format_duration(3.2 * 3600) == "3.2 h"
    line = progress_line("soscope", 50, 500, 1.2)
    assert line == "soscope: step 50/500 (10%), 1.20 s a step, about 9 min left"


def test_the_bar_spans_the_stage_and_the_log_says_the_time_left(tiny_tissue, caplog):
    section = tiny_tissue.to_section()
    bar = StageProgressBar()
    trainer = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[bar, ProgressLog()],
    )
    with caplog.at_level(logging.INFO, logger="soscope.training.progress"):
        trainer.fit(VGAEModule(**module_args(section)), datamodule=SpotDataModule(section))
    assert (bar.train_progress_bar.total, bar.train_progress_bar.n) == (4, 4)
    lines = [r.getMessage() for r in caplog.records if r.name == "soscope.training.progress"]
    assert [line.split(" (")[0] for line in lines] == [f"vgae: step {i}/4" for i in (1, 2, 3, 4)]
    assert lines[-1].endswith("about 0 s left")
