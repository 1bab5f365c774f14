"""The sweep benchmark runs Table 1's group shape: its 11 settings, the preset's flags, the backend."""

from __future__ import annotations

import tyro
from bench_sweep_backends import group_command  # noqa: E402
from presets import TABLE1_VARIANTS  # noqa: E402

from ppo_continuous import batched  # noqa: E402


def test_a_group_is_table1s_eleven_settings_on_the_chosen_backend(tmp_path):
    command = group_command("Hopper-v5", "envpool", 4096, tmp_path)
    args = tyro.cli(batched.Args, args=command[2:])
    assert args.env_id == "Hopper-v5" and args.env_backend == "envpool"
    assert args.num_runs == len(TABLE1_VARIANTS) == 11
    assert set(args.exp_names) == set(TABLE1_VARIANTS)
    assert args.total_timesteps == 4096
    assert not args.clip_vloss  # Table 1's preset runs --no-clip-vloss
    settings = dict(zip(args.exp_names, zip(args.objectives, args.clip_coefs, args.kl_targets,
                                             args.kl_betas, strict=True), strict=True))  # fmt: skip
    assert settings["clip_0.3"][:2] == ("clip", 0.3)
    assert (
        settings["adaptive_kl_0.03"][0] == "adaptive_kl" and settings["adaptive_kl_0.03"][2] == 0.03
    )
    assert settings["fixed_kl_10"][0] == "fixed_kl" and settings["fixed_kl_10"][3] == 10.0
    assert args.seeds == (1,) * 11


def test_env_floor_times_every_task_on_both_backends_and_projects_table1(monkeypatch, capsys):
    import bench_sweep_backends

    monkeypatch.setattr(bench_sweep_backends, "FLOOR_STEPS", 20)
    bench_sweep_backends.print_env_floor(("envpool", "gymnasium"))
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| ") and "-v5" in line]
    assert len(rows) == 7
    for row in rows:
        micros = [float(cell) for cell in row.strip("| ").split(" | ")[1:]]
        assert len(micros) == 2 and all(0 < m < 10_000 for m in micros), row
    floors = [line for line in out if "M env steps alone take" in line]
    assert [line.split(":")[0] for line in floors] == ["envpool", "gymnasium"]
    assert all(float(line.split("take ")[1].split(" h")[0]) > 0 for line in floors)
