"""TensorBoard always, Weights & Biases when asked, and a progress bar; tracking never stops a run.

Metric names are CleanRL's (``charts/episodic_return``, ``losses/approx_kl``, ...) so dashboards and
tools written for CleanRL read these runs unchanged.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

# W&B's init waits this long for its server before the run falls back to offline (wandb's own
# default is 90 s). Online, a reachable server answers in a few seconds; offline init starts only a
# local process, which on a loaded machine can take longer, so it keeps the long timeout.
WANDB_ONLINE_INIT_TIMEOUT_S = 8.0
WANDB_OFFLINE_INIT_TIMEOUT_S = 60.0


@dataclass
class WandbSettings:
    """What ``--track`` and the ``--wandb-*`` flags ask of W&B."""

    project: str
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    resume_id: str | None = None


def wandb_has_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc (where ``wandb login`` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class Tracker:
    """Writes scalars to TensorBoard under ``run_dir`` and, with W&B on, mirrors them there.

    W&B syncs the TensorBoard event files (``sync_tensorboard``), so every scalar has the same name in
    both. Any W&B error is reported once as a warning and the run goes on with TensorBoard alone.
    """

    def __init__(
        self,
        run_dir: str | Path,
        run_name: str,
        config: dict[str, Any],
        wandb_settings: WandbSettings | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.wandb_run = None
        self.wandb_sync_dir: str | None = None  # an offline W&B run's folder, for `wandb sync`
        if wandb_settings is not None:
            self.wandb_run = self._guard(self._start_wandb, run_name, config, wandb_settings)
        try:
            self.writer = SummaryWriter(str(self.run_dir))
        except Exception as err:  # noqa: BLE001 - W&B's sync_tensorboard hook runs in here
            if self.wandb_run is None:
                raise
            self._drop_wandb(err)  # unpatches TensorBoard, so the writer opens without W&B
            self.writer = SummaryWriter(str(self.run_dir))
        rows = "\n".join(f"|{key}|{value}|" for key, value in config.items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")

    @property
    def wandb_run_id(self) -> str | None:
        return None if self.wandb_run is None else self.wandb_run.id

    def _start_wandb(self, run_name: str, config: dict[str, Any], settings: WandbSettings):
        """Online when W&B has credentials and answers; otherwise offline, to sync later."""
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
        try:
            run = self._init_wandb(run_name, config, settings, mode)
        except Exception as err:  # noqa: BLE001 - no network, server down, bad key...
            if mode == "offline":
                raise
            warnings.warn(
                f"W&B could not start online ({err}); running offline", RuntimeWarning, stacklevel=2
            )
            run = self._init_wandb(run_name, config, settings, "offline")
        if run is not None and run.settings.mode == "offline":
            self.wandb_sync_dir = run.settings.sync_dir
            print(
                f"W&B is offline; upload the run later with: wandb sync {run.settings.sync_dir}",
                file=sys.stderr,
            )
        return run

    def _init_wandb(
        self, run_name: str, config: dict[str, Any], settings: WandbSettings, mode: str
    ):
        import wandb

        return wandb.init(
            mode=mode,
            project=settings.project,
            entity=settings.entity,
            group=settings.group,
            tags=settings.tags or None,
            name=run_name,
            config=config,
            dir=str(self.run_dir),
            sync_tensorboard=True,
            save_code=True,
            id=settings.resume_id,
            resume="allow" if settings.resume_id else None,
            settings=wandb.Settings(
                init_timeout=WANDB_ONLINE_INIT_TIMEOUT_S
                if mode == "online"
                else WANDB_OFFLINE_INIT_TIMEOUT_S,
                silent=True,
            ),
        )

    def _guard(self, fn, *args):
        """Call a W&B function; on any error warn once, drop W&B and carry on."""
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            self._drop_wandb(err)
            return None

    def _drop_wandb(self, err: BaseException) -> None:
        warnings.warn(
            f"W&B failed ({type(err).__name__}: {err}); continuing with TensorBoard only",
            RuntimeWarning,
            stacklevel=3,
        )
        run, self.wandb_run = self.wandb_run, None
        self.wandb_sync_dir = None  # what it wrote offline may be partial
        try:
            import wandb

            wandb.tensorboard.unpatch()
            if run is not None:
                run.finish(exit_code=1, quiet=True)
        except Exception:  # noqa: BLE001
            pass

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Write each scalar at ``step`` (the global environment step, as CleanRL does)."""
        try:
            for name, value in metrics.items():
                self.writer.add_scalar(name, value, step)
        except Exception as err:  # noqa: BLE001
            if self.wandb_run is None:
                warnings.warn(f"TensorBoard write failed: {err}", RuntimeWarning, stacklevel=2)
                return
            self._drop_wandb(err)
            self.log(metrics, step)

    def log_video(self, path: str | Path, step: int, fps: int = 30) -> None:
        """Upload one recorded episode to W&B explicitly (TensorBoard keeps only the file path)."""
        if self.wandb_run is None:
            return

        def upload():
            import wandb

            self.wandb_run.log({"videos": wandb.Video(str(path), format="mp4")}, commit=False)

        self._guard(upload)

    def set_summary(self, summary: dict[str, Any]) -> None:
        """Make the run summary W&B's summary for the run, so the runs table shows it."""
        if self.wandb_run is None:
            return
        self._guard(self.wandb_run.summary.update, summary)

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            if self.wandb_run is not None:
                self._guard(self.wandb_run.finish)
                self.wandb_run = None


class SilentTracker:
    """What ranks other than 0 of a multi-rank run log to: nothing (rank 0 logs for all)."""

    wandb_run_id = None
    wandb_sync_dir = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_video(self, path: str | Path, step: int, fps: int = 30) -> None:
        pass

    def set_summary(self, summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """A terminal progress bar over environment steps showing SPS and the latest return."""

    def __init__(self, total_steps: int, initial: int = 0, shown: bool = True) -> None:
        self.bar = tqdm(
            total=total_steps, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
            disable=not shown,
        )  # fmt: skip

    def update(self, global_step: int, sps: float, last_return: float | None) -> None:
        self.bar.update(global_step - self.bar.n)
        ret = "n/a" if last_return is None else f"{last_return:.1f}"
        self.bar.set_postfix_str(f"SPS {sps:.0f}  return {ret}", refresh=False)

    def close(self) -> None:
        self.bar.close()


class VideoUploader:
    """Uploads each mp4 that gymnasium's RecordVideo (or RecordEnvZero) has finished, once."""

    def __init__(self, folder: str | Path, tracker: Tracker) -> None:
        self.folder = Path(folder)
        self.tracker = tracker
        self.seen: set[Path] = set()

    def upload_new(self, step: int) -> None:
        """Call after env steps and once more after ``envs.close()``, which writes the last video."""
        if not self.folder.is_dir():
            return
        for path in sorted(p for p in self.folder.glob("*.mp4") if p not in self.seen):
            self.seen.add(path)
            self.tracker.log_video(path, step)


def wandb_settings_from(args: Any, resume_id: str | None = None) -> WandbSettings | None:
    """The W&B settings a trainer's ``--track`` and ``--wandb-*`` flags ask for (None: W&B off)."""
    if not args.track:
        return None
    return WandbSettings(
        project=args.wandb_project_name,
        entity=args.wandb_entity,
        group=args.wandb_group,
        tags=list(args.wandb_tags),
        resume_id=resume_id,
    )
