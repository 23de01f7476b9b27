"""``python -m course_utils.doctor``: exit status, --json, --gpu, bad input (through a real
subprocess: the command a learner types). The example scripts in tests/doctor/scripts/ are
parsed, never run."""

import json
import pathlib
import subprocess
import sys

import pytest

from course_utils.doctor import CODES
from course_utils.doctor.__main__ import main

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
REPO = pathlib.Path(__file__).resolve().parents[2]

# script -> {hardware: the codes it must produce}; every broken script names its codes in comments
EXPECTED = {
    "broken_bf16_scaler.py": {"cpu": ["scaler-with-bf16"],
                              "Tesla T4": ["bf16-emulated", "scaler-with-bf16"]},
    "broken_bf16_cpu.py": {"cpu": ["bf16-needs-use-cpu"], "A100": []},
    "broken_both_flags.py": {"A100": ["fp16-and-bf16"], "cpu": ["bf16-needs-use-cpu", "fp16-and-bf16",
                                                                "fp16-on-cpu"]},
    "broken_clip.py": {"A100": ["clip-before-unscale", "scaler-not-checkpointed"]},
    "broken_fp32_ampere.py": {"A100": ["tf32-off"], "Tesla T4": []},
    "broken_fsdp.py": {"H100": ["bf16-gradient-reduce"]},
    "broken_gemma_fp16.py": {"Tesla T4": ["fp16-on-bf16-checkpoint"]},
    "broken_half_model.py": {"Tesla T4": ["fp16-trainable-weights"]},
    "broken_legacy_amp.py": {"Tesla T4": ["backward-in-autocast", "deprecated-cuda-amp"]},
    "broken_pure_bf16.py": {"A100": ["pure-bf16"], "Tesla T4": ["bf16-emulated", "pure-bf16"]},
    "broken_qlora.py": {"A100": ["qlora-fp32-compute"]},
    "broken_trainer_cpu.py": {"cpu": ["fp16-on-cpu"], "Tesla T4": []},
    "clean_amp_loop.py": {"cpu": [], "Tesla T4": [], "A100": []},
    "clean_lora_trainer.py": {"cpu": [], "A100": []},
    "clean_sft_fp32.py": {"cpu": [], "Tesla T4": [], "A100": []},
}  # fmt: skip


def test_every_example_script_is_listed_and_every_code_is_exercised():
    assert sorted(EXPECTED) == sorted(p.name for p in SCRIPTS.glob("*.py"))
    shown = {code for by_hw in EXPECTED.values() for codes in by_hw.values() for code in codes}
    assert shown == set(CODES)


@pytest.mark.parametrize(
    ("script", "gpu"), [(s, g) for s, by_hw in EXPECTED.items() for g in by_hw]
)
def test_example_scripts(script, gpu, capsys):
    status = main([str(SCRIPTS / script), "--gpu", gpu, "--json"])
    findings = json.loads(capsys.readouterr().out)
    assert sorted({f["code"] for f in findings}) == EXPECTED[script][gpu]
    assert status == (1 if any(f["severity"] == "error" for f in findings) else 0)


def _doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "course_utils.doctor", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_cli_exit_status_json_and_gpu_what_if(tmp_path):
    broken = _doctor(str(SCRIPTS / "broken_clip.py"), "--gpu", "A100")
    assert broken.returncode == 1 and broken.stderr == ""
    assert broken.stdout.startswith("1 error, 1 warning")
    assert "[error] clip-before-unscale (line 15)" in broken.stdout

    clean = _doctor(str(SCRIPTS / "clean_amp_loop.py"), "--gpu", "A100")
    assert (clean.returncode, clean.stdout.strip()) == (0, "No precision problems found.")

    bf16 = SCRIPTS / "broken_pure_bf16.py"
    on_t4 = _doctor(str(bf16), "--gpu", "Tesla T4", "--json")
    findings = json.loads(on_t4.stdout)
    assert on_t4.returncode == 0  # warnings only
    assert {"code", "severity", "line", "message", "fix", "link"} <= set(findings[0])
    emulated = [f for f in findings if f["code"] == "bf16-emulated"]
    assert emulated and all(isinstance(f["line"], int) for f in emulated)
    assert "Tesla T4" in emulated[0]["message"]
    on_h100 = json.loads(_doctor(str(bf16), "--gpu", "H100", "--json").stdout)
    assert "bf16-emulated" not in {f["code"] for f in on_h100}


@pytest.mark.slow
def test_cli_unreadable_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("for\n")
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes(b"name = '\xe9'\n")
    for args in ([str(bad)], [str(latin1)], [str(tmp_path / "missing.py")], [str(tmp_path)],
                 [str(SCRIPTS / "clean_amp_loop.py"), "--gpu", "Voodoo 5"]):  # fmt: skip
        result = _doctor(*args)
        assert result.returncode == 2, args
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("doctor: ") and "Traceback" not in result.stderr


def test_main_in_process_for_bad_input(tmp_path, capsys):
    assert main([str(tmp_path / "nope.py")]) == 2
    assert capsys.readouterr().err.strip() == f"doctor: no such file: {tmp_path / 'nope.py'}"
