"""Resuming from the run folder alone: a Ctrl-C prints the command, which continues the run with
its saved config, keeps Hydra's record of the run as written and every attempt's metrics."""

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from soscope.resume import attempt_version

ROOT = Path(__file__).resolve().parents[1]


def test_ctrl_c_prints_the_command_that_resumes_the_run(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["data.n_rows=4", "data.n_cols=4", "model.z_dim=8", "model.hidden=16"]
    overrides += ["epochs.vgae=100", "epochs.soscope=100", "checkpoint_every=10"]
    overrides += ["predictive_sd_samples=0", "trainer.enable_progress_bar=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "vgae" / "last.ckpt").is_file():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-2000:]
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130
    hint = err.strip().splitlines()[-1]
    expected = f"python train.py hydra.run.dir={run_dir} resume=true"
    assert hint == f"soscope: interrupted; resume with: {expected}"
    record = {path.name: path.read_bytes() for path in (run_dir / ".hydra").iterdir()}

    _, *arguments = shlex.split(expected)
    done = subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert {path.name: path.read_bytes() for path in (run_dir / ".hydra").iterdir()} == record
    assert (run_dir / "enhanced.h5ad").is_file() and (run_dir / "loss_curves.png").is_file()
    assert (run_dir / "csv" / "vgae" / "metrics.csv").is_file()
    assert (run_dir / "csv" / "vgae" / "attempt_2" / "metrics.csv").is_file()


def test_each_attempt_gets_a_log_folder_of_its_own(tmp_path):
    assert attempt_version(tmp_path / "vgae") == ""
    (tmp_path / "vgae").mkdir()
    assert attempt_version(tmp_path / "vgae") == ""
    (tmp_path / "vgae" / "metrics.csv").write_text("step\n")
    assert attempt_version(tmp_path / "vgae") == "attempt_2"
    (tmp_path / "vgae" / "attempt_2").mkdir()
    assert attempt_version(tmp_path / "vgae") == "attempt_3"
