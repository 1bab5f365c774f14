"""Everything a trainer does around its training loop, written once: the run scaffold.

A trainer's ``main`` keeps the algorithm and hands the rest to a ``Run``::

    with Run(args, "ppo_atari", given_flags) as run:
        args = run.args                            # a resume continues with the saved flags
        envs, agent, optimizer = ...               # the algorithm's own pieces
        run.start(agent, optimizer, envs)          # resume or warm start, tracking, progress
        for iteration in run.iterations():         # saves on schedule, stops on SIGTERM/Ctrl-C
            ...                                    # rollout, advantages, update
            run.log_iteration({"losses/...": ...})

In order, a ``Run`` owns: opening the checkpoint of ``--resume`` or ``--init-from``; the run's name
and folder, claimed and locked for this process (``common.run_folder``); seeding and the device;
the first line it prints; the checkpoint ``Saver`` and the stop request (SIGTERM or Ctrl-C saves
after the iteration and stops); TensorBoard and W&B; videos; the
progress bar; each iteration's step counters, SPS and wall time; and the teardown, in this order:
``summary.json``, the last lines it prints, closing the envs (which writes the last video),
uploading that video, closing the tracker. A run whose loss or gradient stops being finite
(``common.divergence.Diverged``) gets ``status: diverged`` and exits with code 3; its last good
checkpoint is kept.

Under ``torchrun`` each rank is a ``Run`` of its own envs (``common.distributed``): rank 0 alone
prints, logs, checkpoints and writes the summary; the others send it their episodes each iteration.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict
from typing import Any, NoReturn

import torch

from common.checkpoint import RunState, Saver, StopRequest, open_checkpoints, require_same_world
from common.cli import UsageError, default_run_name, exit_usage
from common.console import announce_end, announce_start
from common.distributed import RankLost, join_world, launched_ranks, require_same_args
from common.divergence import Diverged, stop_diverged
from common.episodes import EpisodeLog, run_summary
from common.run_folder import RunLock, claim_run_folder, lock_run_folder
from common.runtime import seed_everything
from common.tracking import Progress, SilentTracker, Tracker, VideoUploader, wandb_settings_from


class Run:
    """One training run of one trainer, from its first line printed to its summary."""

    def __init__(
        self,
        args: Any,
        trainer: str,
        given_flags: Collection[str] = (),
        summary_extra: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
        package: str | None = None,
        script: str | None = None,
        ranks_supported: bool = True,
    ) -> None:
        """``given_flags``: the flags named on the command line (a resume refuses changed ones);
        ``summary_extra(args, scores)``: a trainer's own fields for ``summary.json``; ``package``
        and ``script``: the folder of its ``evaluate.py`` (default ``trainer``) and its own path
        (default ``<package>/train.py``), for the commands printed at the end;
        ``ranks_supported``: False for a trainer that refuses to run as several ranks."""
        if not ranks_supported and launched_ranks() > 1:
            exit_usage(f"torchrun: {script or trainer} runs as one process; start it with python")
        self.args, self.resumed, self.warm_start = open_checkpoints(args, trainer, given_flags)
        self.world = join_world(self.args.cuda)  # a resume's own --cuda, not the default
        self.lock: RunLock | None = None
        try:
            require_same_args(self.world, args)
            if self.resumed:
                require_same_world(self.resumed, self.world.size)
            self.name, self.dir = self._claim_folder(self.args)
        except SystemExit:  # bad input on every rank: leave the process group before exiting
            self.world.close(together=False)
            raise
        args = self.args
        self.trainer = trainer
        self.package, self.script = package or trainer, script
        self.video_folder = (
            f"{self.dir}/videos" if args.capture_video and self.world.is_main else None
        )
        self.batch_size = args.num_envs * args.num_steps  # this rank's; minibatches split it
        self.total_envs = args.num_envs * self.world.size  # every rank's: the steps of one step
        self.steps_per_iteration = self.batch_size * self.world.size
        self.num_iterations = max(1, args.total_timesteps // self.steps_per_iteration)
        # Env i of rank r is seeded seed + r * num_envs + i: no two envs of a run share a seed.
        self.env_seed = args.seed + self.world.rank * args.num_envs
        self.log_every = getattr(args, "log_every", 1)
        self.state = RunState(kl_beta=getattr(args, "kl_beta", 1.0), episodes=EpisodeLog())
        self.summary_extra = summary_extra
        self.device = torch.device("cpu")
        self.stop = StopRequest()
        self._unsent_episodes: list[tuple[float, int, int]] = []  # a rank's, for rank 0 to log
        self._started = False

    def _claim_folder(self, args: Any) -> tuple[str, str]:
        """The run's name and folder, which rank 0 claims and locks (``common.run_folder``): a new
        run's own new folder, or a resumed run's folder unless another process still writes it."""
        claim: tuple[str, str] | str | None = None
        if self.world.is_main:
            try:
                if self.resumed:
                    folder = self.resumed.run_dir(args.runs_dir)
                    self.lock = lock_run_folder(folder, "--resume")
                    claim = (self.resumed.run_name, str(folder))
                else:  # rank 0's clock names the run
                    name = default_run_name(args.env_id, args.exp_name, args.seed)
                    folder = claim_run_folder(args.runs_dir, name)
                    self.lock = lock_run_folder(folder, "--runs-dir")
                    claim = (folder.name, f"{args.runs_dir}/{folder.name}")
            except UsageError as err:
                claim = str(err)  # every rank exits, rank 0 with this line
        claim = self.world.broadcast(claim)
        if isinstance(claim, str):
            exit_usage(claim)
        return claim

    def __enter__(self) -> Run:
        if self.world.is_main:
            announce_start(
                self.dir, self.args.total_timesteps, self.steps_per_iteration, self.video_folder,
                self.world.size,
            )  # fmt: skip
        # Each rank draws its own actions (rank 0 as a plain process would); the weights are
        # rank 0's, broadcast in ``start``.
        seed_everything(self.args.seed + self.world.rank, self.args.torch_deterministic)
        self.device = self.world.device
        return self

    def start(self, agent: torch.nn.Module, optimizer, envs, normalizers=None) -> None:
        """Restore the checkpoint (all of it on a resume, the weights on a warm start), then open
        the tracker, the video uploader and the progress bar. ``envs`` are closed at the end."""
        self.envs = envs
        self.stop.install()  # after the envs: their worker processes ignore both signals
        self.saver = Saver(
            self.dir, self.trainer, self.args, self.name, agent, optimizer, self.state,
            normalizers=normalizers, keep=self.args.keep_checkpoints, stop=self.stop,
            world=self.world,
        )  # fmt: skip
        self.saver.restore(self.resumed or self.warm_start, weights_only=self.resumed is None)
        self.world.broadcast_parameters(agent)
        if self.world.is_main:
            settings = wandb_settings_from(self.args, self.state.wandb_run_id)
            self.tracker = Tracker(self.dir, self.name, asdict(self.args), settings)
        else:
            self.tracker = SilentTracker()
        self.state.wandb_run_id = self.tracker.wandb_run_id
        self.videos = VideoUploader(f"{self.dir}/videos", self.tracker)
        self.progress = Progress(
            self.num_iterations * self.steps_per_iteration, self.state.global_step,
            shown=self.world.is_main,
        )  # fmt: skip
        self._session_start = time.time()
        self._wall_before, self._start_step = self.state.wall_time, self.state.global_step
        self._started = True

    def iterations(self) -> Iterator[int]:
        """Iteration numbers from where the run stands to the last; after each one's body, its
        bookkeeping and checkpoint. Ends early, saved, when a stop was requested."""
        for iteration in range(self.state.iteration + 1, self.num_iterations + 1):
            self._iteration_start, self._iteration = time.time(), iteration
            yield iteration
            if self.world.distributed:
                self._gather_episodes()
            # Read once, agreed by every rank: a signal arriving from here on counts next time.
            stop = self.world.any(self.stop.requested)
            self.state.iteration = iteration
            self.state.wall_time = self._wall_before + time.time() - self._session_start
            if self.saver.after_iteration(iteration, iteration == self.num_iterations, stop):
                return  # SIGTERM or Ctrl-C: saved after this iteration

    @property
    def seconds_into_iteration(self) -> float:
        return time.time() - self._iteration_start

    def log_episode(self, episode_return: float, episode_length: int) -> None:
        """A finished episode: into the run's scores and TensorBoard, at the current step (with
        several ranks, at the end of the iteration, when rank 0 has every rank's)."""
        if self.world.distributed:
            self._unsent_episodes.append((episode_return, episode_length, self.state.global_step))
            return
        self._record_episode(episode_return, episode_length, self.state.global_step)

    def _record_episode(self, episode_return: float, episode_length: int, step: int) -> None:
        self.state.episodes.add(episode_return, episode_length)
        self.tracker.log(
            {"charts/episodic_return": episode_return, "charts/episodic_length": episode_length},
            step,
        )

    def _gather_episodes(self) -> None:
        """Every rank's episodes of this iteration reach rank 0's log, in the order one process
        with all the envs would log them: by step, then by env (env i of rank r is r * N + i)."""
        gathered = self.world.gather(self._unsent_episodes)
        self._unsent_episodes = []
        if not self.world.is_main:
            return
        in_rank_order = [episode for episodes in gathered for episode in episodes]
        for episode_return, episode_length, step in sorted(in_rank_order, key=lambda e: e[2]):
            self._record_episode(float(episode_return), int(episode_length), step)

    @property
    def logs_this_iteration(self) -> bool:
        """Whether ``log_iteration`` writes this iteration (``--log-every``, and the last one)."""
        return self._iteration % self.log_every == 0 or self._iteration == self.num_iterations

    def log_iteration(self, metrics: dict[str, float]) -> None:
        """The trainer's metrics with SPS and the iteration's seconds, on the iterations that
        ``logs_this_iteration``; the progress bar and any new video follow."""
        if not self.logs_this_iteration or not self.world.is_main:
            return
        step = self.state.global_step
        sps = (step - self._start_step) / (time.time() - self._session_start)
        timing = {"charts/SPS": sps, "charts/iteration_seconds": self.seconds_into_iteration}
        self.tracker.log({**timing, **metrics}, step)
        self.progress.update(step, sps, self.state.episodes.latest_return)
        self.videos.upload_new(step)

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if not self._started:  # failed before it started: nothing to summarise
            self.stop.uninstall()
            self.world.close(together=False)
            self._unlock()
            return False
        diverged = exc if isinstance(exc, Diverged) else None
        try:
            self._finish(diverged)
        finally:
            self.stop.uninstall()
            # Every rank ends a finished, stopped or diverged run at the same point; a crash ends one.
            self.world.close(together=exc is None or diverged is not None)
            self._unlock()
        if diverged:  # no update applied, no checkpoint written: the last good one stays
            stop_diverged(diverged, self.saver.folder)
        if isinstance(exc, RankLost):  # another rank is gone: one line, not gloo's traceback
            self._stop_rank_lost(exc)
        return False

    def _stop_rank_lost(self, lost: RankLost) -> NoReturn:
        saved = self.saver.last_saved_iteration if self.world.is_main else None
        kept = f"; its last checkpoint (iteration {saved}) is kept" if saved else ""
        print(f"error: torch.distributed: another rank of this run stopped mid-iteration (killed or "
              f"crashed), so rank {self.world.rank} stops too{kept} ({lost})",
              file=sys.stderr, flush=True)  # fmt: skip
        raise SystemExit(1)

    def _unlock(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def _finish(self, diverged: Diverged | None) -> None:
        state, args = self.state, self.args
        state.wall_time = self._wall_before + time.time() - self._session_start
        summary = run_summary(
            env_id=args.env_id, exp_name=args.exp_name, seed=args.seed,
            objective=getattr(args, "objective", None),
            global_step=state.global_step, total_timesteps=self.num_iterations * self.steps_per_iteration,
            wall_time=state.wall_time, episodes=state.episodes,
            diverged_at_step=diverged.step if diverged else None,
            extra=self.summary_extra(args, state.episodes.scores()) if self.summary_extra else None,
            algorithm=getattr(args, "algorithm", "ppo"),
        )  # fmt: skip
        summary["ranks"] = self.world.size
        if hasattr(args, "env_backend"):  # which envs: the same task, another implementation
            summary["env_backend"] = args.env_backend
        self.progress.close()
        if self.world.is_main:
            self.saver.write_summary(summary)
            self.tracker.set_summary(summary)
            announce_end(summary, self.dir, self.package, self.tracker.wandb_sync_dir, self.script)
        try:
            self.envs.close()  # RecordVideo writes the episode it is still recording
            self.videos.upload_new(state.global_step)
        finally:
            self.tracker.close()
