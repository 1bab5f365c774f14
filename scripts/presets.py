"""The sweeps the launcher knows: env ids x seeds x named variants (flag sets), and their labels.

Shared by ``benchmark.py`` (which runs them) and ``report.py`` (which labels their rows as the paper
does); a module, not a script.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MUJOCO_TABLE1 = (
    "HalfCheetah-v5", "Hopper-v5", "InvertedDoublePendulum-v5", "InvertedPendulum-v5",
    "Reacher-v5", "Swimmer-v5", "Walker2d-v5",
)  # fmt: skip

# The paper's Table 1 settings: variant name -> (trainer flags, the row label in the paper).
TABLE1_VARIANTS: dict[str, tuple[list[str], str]] = {
    "no_clip": (["--objective", "none"], "No clipping or penalty"),
    "clip_0.1": (["--objective", "clip", "--clip-coef", "0.1"], "Clipping, epsilon = 0.1"),
    "clip_0.2": (["--objective", "clip", "--clip-coef", "0.2"], "Clipping, epsilon = 0.2"),
    "clip_0.3": (["--objective", "clip", "--clip-coef", "0.3"], "Clipping, epsilon = 0.3"),
    "adaptive_kl_0.003": (
        ["--objective", "adaptive_kl", "--kl-target", "0.003"],
        "Adaptive KL d_targ = 0.003",
    ),
    "adaptive_kl_0.01": (
        ["--objective", "adaptive_kl", "--kl-target", "0.01"],
        "Adaptive KL d_targ = 0.01",
    ),
    "adaptive_kl_0.03": (
        ["--objective", "adaptive_kl", "--kl-target", "0.03"],
        "Adaptive KL d_targ = 0.03",
    ),
    "fixed_kl_0.3": (["--objective", "fixed_kl", "--kl-beta", "0.3"], "Fixed KL, beta = 0.3"),
    "fixed_kl_1": (["--objective", "fixed_kl", "--kl-beta", "1"], "Fixed KL, beta = 1."),
    "fixed_kl_3": (["--objective", "fixed_kl", "--kl-beta", "3"], "Fixed KL, beta = 3."),
    "fixed_kl_10": (["--objective", "fixed_kl", "--kl-beta", "10"], "Fixed KL, beta = 10."),
}


# The 2017 code's choices around PPO where today's codes differ (docs/results/setup-2017.md): one
# flag group per choice, so the ablation can turn them on one at a time.
SETUP_2017: dict[str, list[str]] = {
    "no_norm_reward": ["--no-norm-reward"],
    "obs_clip_5": ["--obs-clip", "5"],
    "adv_norm_batch": ["--adv-norm-scope", "batch"],
    "no_grad_clip": ["--max-grad-norm", "0"],
    "constant_lr": ["--no-anneal-lr"],
    "adam_eps_1e-8": ["--optimizer-eps", "1e-8"],
    "normc_init": ["--init", "normc"],
}
SETUP_2017_FLAGS = [flag for flags in SETUP_2017.values() for flag in flags]
# TRPO's share of them: it standardises its advantages over the batch, clips no gradient and keeps
# its value function's step size constant already, so four flags make its 2017 setup.
TRPO_SETUP_2017_FLAGS = [*SETUP_2017["no_norm_reward"], *SETUP_2017["obs_clip_5"],
                         *SETUP_2017["adam_eps_1e-8"], *SETUP_2017["normc_init"]]  # fmt: skip
# The ablation's objectives, in priority order: no clipping (0.10 here, -0.39 in the paper) first.
ABLATION_OBJECTIVES = ("no_clip", "clip_0.2")


def ablation_variants() -> dict[str, list[str]]:
    """Today's setup for each ablated objective (shared with paper-table1), then the objective with
    one 2017 choice at a time: ``{objective}+{choice}``."""
    variants = {objective: TABLE1_VARIANTS[objective][0] for objective in ABLATION_OBJECTIVES}
    for objective in ABLATION_OBJECTIVES:
        for choice, flags in SETUP_2017.items():
            variants[f"{objective}+{choice}"] = [*TABLE1_VARIANTS[objective][0], *flags]
    return variants


# Without return normalisation alone, no clipping learns the two pendulums; under the whole 2017
# setup, which lacks it too, it does not. The pairs add one more 2017 choice at a time to that first
# one, on those two tasks, to find which choice (or choices) holds no clipping down there.
PAIRS_FIRST_CHOICE = "no_norm_reward"
PAIRS_ENVS = ("InvertedDoublePendulum-v5", "InvertedPendulum-v5")
PAIRS_BASE = f"no_clip+{PAIRS_FIRST_CHOICE}"  # the ablation's variant the pairs start from


def pair_variants() -> dict[str, list[str]]:
    """No clipping without return normalisation (shared with the ablation), then with one more 2017
    choice at a time: ``no_clip+no_norm_reward+{choice}``."""
    base = [*TABLE1_VARIANTS["no_clip"][0], *SETUP_2017[PAIRS_FIRST_CHOICE]]
    variants = {PAIRS_BASE: base}
    for choice, flags in SETUP_2017.items():
        if choice != PAIRS_FIRST_CHOICE:
            variants[f"{PAIRS_BASE}+{choice}"] = [*base, *flags]
    return variants


def atari49_ids() -> tuple[str, ...]:
    """The 49 games of the paper's Table 6, as NoFrameskip-v4 ids (baselines/ppo_paper_atari.csv)."""
    with open(REPO / "baselines" / "ppo_paper_atari.csv") as handle:
        return tuple(row["gym_id"] for row in csv.DictReader(handle))


@dataclass(frozen=True)
class Preset:
    trainer: str
    env_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: dict[str, list[str]]
    common_flags: list[str] = field(default_factory=list)
    recorded: bool = False
    """finished runs go into the committed results record (docs/results/records/<preset>/)"""
    scripts: dict[str, str] = field(default_factory=dict)
    """a variant's script in the trainer's folder when it is not ``train.py`` (TRPO: ``trpo.py``)"""
    reported_with: str | None = None
    """the preset whose results page also shows this preset's record (it has no page of its own)"""
    shared: dict[str, str] = field(default_factory=dict)
    """variant -> the recorded preset that runs it with the same flags: a run of it in either
    record is done for both sweeps, and this preset's page shows that preset's runs of it too"""

    def script(self, variant: str) -> Path:
        return REPO / self.trainer / self.scripts.get(variant, "train.py")

    @property
    def batchable(self) -> bool:
        """Every variant is PPO with other flags, which the batched runner can run."""
        return not self.scripts and not any("--algorithm" in f for f in self.variants.values())


# The paper's Figure 3 algorithms on the same tasks; PPO's setting is Table 1's clip_0.2. A2C with
# a trust region (ACKTR's "A2C + Trust Region") is not implemented.
FIGURE3_VARIANTS: dict[str, tuple[list[str], str]] = {
    "clip_0.2": (["--objective", "clip", "--clip-coef", "0.2", "--no-clip-vloss"], "PPO (Clip)"),
    "trpo": ([], "TRPO"),
    "a2c": (["--algorithm", "a2c"], "A2C"),
    "vpg_adaptive": (["--algorithm", "vpg"], "Vanilla PG, Adaptive"),
    "cem": ([], "CEM"),
}
FIGURE3_SCRIPTS = {"trpo": "trpo.py", "cem": "cem.py"}
# smoke-figure3's flags on top of Figure 3's, so that each algorithm does several updates in 4,000
# steps: smaller PPO, TRPO and VPG batches, CEM's population of 10 playing one Pendulum episode each.
SMOKE_FIGURE3_FLAGS: dict[str, list[str]] = {
    "clip_0.2": ["--num-steps", "1000", "--num-minibatches", "4", "--update-epochs", "2"],
    "trpo": ["--num-steps", "1000"],
    "a2c": [],
    "vpg_adaptive": ["--num-steps", "1000"],
    "cem": ["--num-steps", "2000", "--population", "10"],
}


def presets() -> dict[str, Preset]:
    return check_shared(all_presets())


def all_presets() -> dict[str, Preset]:
    table1 = {name: flags for name, (flags, _) in TABLE1_VARIANTS.items()}
    figure3 = {name: flags for name, (flags, _) in FIGURE3_VARIANTS.items()}
    figure3_smoke = {name: [*flags, *SMOKE_FIGURE3_FLAGS[name]] for name, flags in figure3.items()}
    return {
        "paper-table1": Preset("ppo_continuous", MUJOCO_TABLE1, (1, 2, 3), table1,
                               ["--total-timesteps", "1000000", "--no-clip-vloss"], recorded=True),
        # Table 1 under the 2017 code's setup (docs/results/setup-2017.md): its own record.
        "paper-table1-2017": Preset("ppo_continuous", MUJOCO_TABLE1, (1, 2, 3), table1,
                                    ["--total-timesteps", "1000000", "--no-clip-vloss",
                                     *SETUP_2017_FLAGS], recorded=True),
        # From today's setup, one 2017 choice at a time; today's runs are paper-table1's.
        "paper-table1-ablation": Preset(
            "ppo_continuous", MUJOCO_TABLE1, (1, 2, 3), ablation_variants(),
            ["--total-timesteps", "1000000", "--no-clip-vloss"], recorded=True,
            shared={objective: "paper-table1" for objective in ABLATION_OBJECTIVES},
        ),
        # The ablation's follow-up on the pendulums (pair_variants), shown on the ablation's page.
        "paper-table1-ablation-pairs": Preset(
            "ppo_continuous", PAIRS_ENVS, (1, 2, 3), pair_variants(),
            ["--total-timesteps", "1000000", "--no-clip-vloss"], recorded=True,
            reported_with="paper-table1-ablation",
            shared={PAIRS_BASE: "paper-table1-ablation"},
        ),
        # Figure 3's PPO and TRPO under the 2017 setup: does the paper's ordering come back? PPO's
        # runs are paper-table1-2017's clip_0.2.
        "paper-figure3-2017": Preset(
            "ppo_continuous", MUJOCO_TABLE1, (1, 2, 3),
            {"clip_0.2": [*figure3["clip_0.2"], *SETUP_2017_FLAGS],
             "trpo": [*figure3["trpo"], *TRPO_SETUP_2017_FLAGS]},
            ["--total-timesteps", "1000000"], recorded=True, scripts={"trpo": "trpo.py"},
            shared={"clip_0.2": "paper-table1-2017"},
        ),
        # Figure 3's PPO (Clip) is Table 1's clip_0.2, run once for both (21 runs fewer to run).
        "paper-figure3": Preset("ppo_continuous", MUJOCO_TABLE1, (1, 2, 3), figure3,
                                ["--total-timesteps", "1000000"], recorded=True,
                                scripts=FIGURE3_SCRIPTS, shared={"clip_0.2": "paper-table1"}),
        "paper-atari49": Preset(
            "ppo_atari", atari49_ids(), (1, 2, 3),
            {"ppo_table5": ["--update-epochs", "3", "--vf-coef", "2", "--anneal-clip", "--no-clip-vloss"]},
            ["--total-timesteps", "10000000"], recorded=True,
        ),
        # Our A2C on the same games, seeds and steps, for Table 2's count on both metrics (the paper
        # publishes per-game A2C values for one only). Its own preset, so paper-atari49 stays 147 PPO
        # runs; report.py shows its record on paper-atari49's page.
        "paper-atari49-a2c": Preset(
            "ppo_atari", atari49_ids(), (1, 2, 3), {"a2c": ["--algorithm", "a2c"]},
            ["--total-timesteps", "10000000"], recorded=True, reported_with="paper-atari49",
        ),
        "smoke": Preset(
            "ppo_continuous", ("Pendulum-v1", "InvertedPendulum-v5"), (1, 2),
            {"clip_0.2": ["--objective", "clip", "--clip-coef", "0.2"]},
            ["--total-timesteps", "2048", "--num-steps", "512", "--num-minibatches", "4",
             "--update-epochs", "2", "--save-every", "1"],
        ),
        # One short run of each Figure 3 algorithm, for report.py's Figure 3 (tests, try-outs).
        "smoke-figure3": Preset("ppo_continuous", ("Pendulum-v1",), (1,), figure3_smoke,
                                ["--total-timesteps", "4000"], scripts=FIGURE3_SCRIPTS),
    }  # fmt: skip


def flag_groups(flags: list[str]) -> list[tuple[str, ...]]:
    """The flags as (flag, its values...) groups in sorted order: equal for the same run settings."""
    groups: list[list[str]] = []
    for token in flags:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return sorted(tuple(group) for group in groups)


def run_flags(preset: Preset, variant: str) -> list[tuple[str, ...]]:
    """What a run of ``variant`` is given besides its env, seed and folder (see ``flag_groups``)."""
    return flag_groups([*preset.common_flags, *preset.variants[variant]])


def check_shared(known: dict[str, Preset]) -> dict[str, Preset]:
    """The presets, once every shared variant is known to run the same way in both presets."""
    for name, preset in known.items():
        for variant, source in preset.shared.items():
            mine, theirs = (
                (p.script(variant).relative_to(REPO), run_flags(p, variant))
                for p in (preset, known[source])
            )
            if mine != theirs:
                raise ValueError(
                    f"{name}'s {variant} is shared with {source} but does not run the same: "
                    f"{mine} against {theirs}"
                )
    return known


def variant_label(variant: str) -> str:
    """The paper's row label of a Table 1 variant, or the variant's own name."""
    return TABLE1_VARIANTS.get(variant, (None, variant))[1]


def variant_order(variant: str) -> int:
    """Table 1's row order; other variants after it."""
    return (
        list(TABLE1_VARIANTS).index(variant) if variant in TABLE1_VARIANTS else len(TABLE1_VARIANTS)
    )


def run_prefix(env_id: str, variant: str, seed: int) -> str:
    """The start of a sweep run's folder name, ``{env}__{variant}__{seed}__`` (the trainer adds the time)."""
    return f"{env_id.replace('/', '-')}__{variant}__{seed}__"
