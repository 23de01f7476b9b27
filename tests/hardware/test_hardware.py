"""Tests for course_utils.hardware: the GPU table, name matching, capability parsing, the
recommendation logic (real machine, mocked CPUs, mocked CUDA/ROCm/MPS) and detect()."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import torch

from course_utils import hardware as hw
from course_utils.hardware import detection as hw_detect
from course_utils.precision import FORMATS

# (name as torch / nvidia-smi print it, compute capability or gfx target, precision, architecture)
NAMED_GPUS = [
    ("Tesla V100-SXM2-16GB", (7, 0), "fp16", "Volta"),
    ("Tesla V100S-PCIE-32GB", (7, 0), "fp16", "Volta"),
    ("NVIDIA TITAN V", (7, 0), "fp16", "Volta"),
    ("Tesla T4", (7, 5), "fp16", "Turing"),
    ("NVIDIA GeForce RTX 2080 Ti", (7, 5), "fp16", "Turing"),
    ("Quadro RTX 6000", (7, 5), "fp16", "Turing"),
    ("Tesla P100-PCIE-16GB", (6, 0), "fp16", "Pascal (GP100)"),
    ("NVIDIA GeForce GTX 1080", (6, 1), "fp32", "Pascal (GP10x)"),
    ("Tesla P40", (6, 1), "fp32", "Pascal (GP10x)"),
    ("NVIDIA GeForce RTX 3080", (8, 6), "bf16", "Ampere (GA10x)"),
    ("NVIDIA GeForce RTX 3090", (8, 6), "bf16", "Ampere (GA10x)"),
    ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16", "Ampere (GA100)"),
    ("NVIDIA A10G", (8, 6), "bf16", "Ampere (GA10x)"),
    ("NVIDIA RTX A6000", (8, 6), "bf16", "Ampere (GA10x)"),
    ("Orin", (8, 7), "bf16", "Ampere (Orin)"),
    ("NVIDIA L4", (8, 9), "bf16", "Ada Lovelace"),
    ("NVIDIA GeForce RTX 4090", (8, 9), "bf16", "Ada Lovelace"),
    ("NVIDIA RTX 6000 Ada Generation", (8, 9), "bf16", "Ada Lovelace"),
    ("NVIDIA H100 80GB HBM3", (9, 0), "bf16", "Hopper"),
    ("NVIDIA H200", (9, 0), "bf16", "Hopper"),
    ("NVIDIA GH200 480GB", (9, 0), "bf16", "Hopper"),
    ("NVIDIA B200", (10, 0), "bf16", "Blackwell (data center)"),
    ("NVIDIA GeForce RTX 5090", (12, 0), "bf16", "Blackwell (RTX / GB10)"),
    ("NVIDIA Thor", (11, 0), "bf16", "Blackwell (Thor)"),
    ("NVIDIA Tegra X2", (6, 2), "fp16", "Pascal (Tegra)"),
    ("AMD Instinct MI100", "gfx908", "bf16", "CDNA (MI100)"),
    ("AMD Instinct MI250X/MI250", "gfx90a", "bf16", "CDNA 2 (MI200)"),
    ("AMD Instinct MI300X", "gfx942", "bf16", "CDNA 3 (MI300)"),
    ("AMD Instinct MI355X", "gfx950", "bf16", "CDNA 4 (MI350)"),
    ("AMD Instinct MI50", "gfx906", "fp16", "GCN 5 (Vega)"),
    ("AMD Radeon RX 7900 XTX", "gfx1100", "bf16", "RDNA 3 / 3.5"),
    ("AMD Radeon RX 6800 XT", "gfx1030", "fp16", "RDNA 2"),
    ("AMD Radeon RX 9070 XT", "gfx1201", "bf16", "RDNA 4"),
]


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend there is no CUDA/ROCm GPU and no MPS, so CPU tests run the same on GPU machines."""
    monkeypatch.setattr(hw_detect, "_detect_gpus", lambda: ())
    monkeypatch.setattr(hw_detect, "_mps_available", lambda: False)


def fake_cpu(monkeypatch, cpuinfo: str | None, machine: str = "x86_64", caps=None) -> None:
    monkeypatch.setattr(hw_detect, "_read_proc_cpuinfo", lambda: cpuinfo)
    monkeypatch.setattr(hw_detect, "_torch_cpu_capabilities", lambda: dict(caps or {}))
    monkeypatch.setattr(hw_detect.platform, "machine", lambda: machine)


X86_BASE = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma"
AVX2_ONLY = f"{X86_BASE} avx2"
AVX512_NO_BF16 = f"{AVX2_ONLY} avx512f avx512bw avx512vl avx512_vnni"
COOPER_LAKE = f"{AVX512_NO_BF16} avx512_bf16"
SAPPHIRE_RAPIDS = f"{COOPER_LAKE} avx512_fp16 amx_bf16 amx_tile amx_int8"


def x86_cpuinfo(flags: str, model: str = "Intel(R) Xeon(R) Platinum 8480+") -> str:
    cpu = f"processor\t: {{i}}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\nflags\t\t: {flags}\n"
    return "\n".join(cpu.format(i=i) for i in range(2))


# --- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cap,precision,arch", NAMED_GPUS)
def test_named_gpu_with_capability(name, cap, precision, arch):
    rec = hw.recommend_precision(name, cap)
    assert rec.precision == precision
    assert rec.architecture.endswith(arch)
    assert rec.notes == ()  # name and capability agree: nothing to report
    assert name in rec.reason and precision in rec.reason


@pytest.mark.parametrize("name,cap,precision,arch", NAMED_GPUS)
def test_named_gpu_by_name_alone(name, cap, precision, arch):
    rec = hw.recommend_precision(name)
    assert (rec.precision, rec.capability) == (precision, cap)
    assert rec.device_kind == ("rocm" if isinstance(cap, str) else "cuda")
    assert rec.architecture.endswith(arch)


def test_course_examples():
    assert hw.recommend_precision("Tesla V100-SXM2-16GB", (7, 0)).precision == "fp16"
    # the original tutorial listed the RTX 3080 among fp16-only cards: it is Ampere, with bf16
    rtx3080 = hw.recommend_precision("NVIDIA GeForce RTX 3080")
    assert rtx3080.precision == "bf16" and "Ampere" in rtx3080.reason


@pytest.mark.parametrize(
    "variants,cap",
    [
        (
            ["NVIDIA GeForce RTX 3080", "RTX 3080", "rtx3080", "GeForce RTX 3080 Ti Laptop GPU"],
            (8, 6),
        ),
        (["Tesla T4", "NVIDIA T4", "t4"], (7, 5)),
        (["NVIDIA H100 80GB HBM3", "H100 PCIe", "NVIDIA H100 NVL"], (9, 0)),
        (["A100-SXM4-40GB", "NVIDIA A100 80GB PCIe", "a100"], (8, 0)),
        (["NVIDIA A10", "A10G"], (8, 6)),
        (["Quadro RTX 4000"], (7, 5)),
        (["NVIDIA RTX A4000"], (8, 6)),
        (["NVIDIA RTX 4000 SFF Ada Generation"], (8, 9)),
        (["NVIDIA RTX PRO 6000 Blackwell Workstation Edition"], (12, 0)),
        (["NVIDIA GeForce GTX 1660 SUPER"], (7, 5)),
        (["NVIDIA TITAN Xp", "NVIDIA TITAN X (Pascal)"], (6, 1)),
        (["NVIDIA GB10"], (12, 1)),
    ],
)
def test_name_matching_is_robust(variants, cap):
    for name in variants:
        gpu = hw.lookup_gpu(name)
        assert gpu is not None, name
        assert gpu.capability == cap, name


def test_name_matching_does_not_confuse_neighbours():
    assert hw.lookup_gpu("NVIDIA A10").model != hw.lookup_gpu("NVIDIA A100").model
    assert hw.lookup_gpu("NVIDIA GH200 480GB").model == "GH200"
    assert hw.lookup_gpu("NVIDIA H20").model == "H20"
    # RTX 2050 is an Ampere laptop chip, not Turing: the table must not claim it
    assert hw.lookup_gpu("NVIDIA GeForce RTX 2050") is None
    # a bare "RTX 6000" could be Turing (Quadro) or Ada: refuse to guess
    assert hw.lookup_gpu("RTX 6000") is None
    assert hw.lookup_gpu("NVIDIA GeForce RTX 30800") is None
    assert hw.lookup_gpu("Intel Arc A770") is None


def test_capability_alone():
    cases = {
        (7, 0): "fp16",
        "7.5": "fp16",
        "8.0": "bf16",
        "sm_86": "bf16",
        (8, 9): "bf16",
        "9.0": "bf16",
        "sm_100a": "bf16",
        (10, 1): "bf16",
        "12.0": "bf16",
        (6, 1): "fp32",
        (6, 0): "fp16",
        (5, 2): "fp32",
        (5, 3): "fp16",
        (3, 7): "fp32",
        "gfx90a": "bf16",
        "gfx942:sramecc+:xnack-": "bf16",
        "gfx906": "fp16",
    }
    for cap, precision in cases.items():
        rec = hw.recommend_precision(capability=cap)
        assert rec.precision == precision, cap
        assert rec.gpu_name is None


def test_unlisted_capability_is_decided_by_major_version():
    assert hw.recommend_precision(capability=(13, 0)).precision == "bf16"
    assert hw.recommend_precision(capability=(8, 8)).precision == "bf16"
    assert hw.recommend_precision(capability=(7, 9)).precision == "fp16"
    old = hw.recommend_precision(capability=(2, 1))
    assert old.precision == "fp32" and "not in the table" in old.reason


def test_name_and_capability_disagree_capability_wins():
    rec = hw.recommend_precision("NVIDIA GeForce RTX 3080", (7, 5))
    assert rec.precision == "fp16" and rec.capability == (7, 5)
    assert any("trusting the capability" in n and "8.6" in n for n in rec.notes)
    assert "trusting the capability" in rec.reason
    rec = hw.recommend_precision("Tesla V100-SXM2-16GB", "9.0")
    assert rec.precision == "bf16" and "Hopper" in rec.architecture and rec.notes


def test_amd_name_with_torch_capability_pair_uses_the_name():
    # torch on ROCm reports (9, 0) for gfx90a: that is not CUDA's Hopper
    rec = hw.recommend_precision("AMD Instinct MI250X/MI250", (9, 0))
    assert rec.precision == "bf16" and rec.capability == "gfx90a" and rec.device_kind == "rocm"
    assert any("not a CUDA compute capability" in n for n in rec.notes)
    rec = hw.recommend_precision("AMD Instinct MI300X", "gfx906")  # gfx target given wins
    assert rec.precision == "fp16" and rec.notes


def test_unknown_name_needs_capability():
    with pytest.raises(ValueError) as err:
        hw.recommend_precision("Imaginary GPU 9000")
    msg = str(err.value)
    for needle in (
        "do not know",
        "Imaginary GPU 9000",
        "compute capability",
        "torch.cuda.get_device_capability()",
        "nvidia-smi --query-gpu",
    ):
        assert needle in msg
    rec = hw.recommend_precision("Imaginary GPU 9000", (8, 6))
    assert rec.precision == "bf16" and any("not in the name table" in n for n in rec.notes)


@pytest.mark.parametrize(
    "bad",
    [
        "eight",
        (8,),
        (-1, 0),
        "8.x",
        (8, 10),
        (8.0, 6),
        (True, 0),
        (8, 6, 0),
        86,
        "",
        "8.",
        "gfx",
        [8, "6"],
        (0, 5),
        (31, 0),
    ],
)
def test_malformed_capability_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="compute capability") as err:
        hw.recommend_precision(capability=bad)
    assert "(8, 6)" in str(err.value)  # says what a good one looks like
    with pytest.raises(ValueError):
        hw.recommend_precision("NVIDIA A100-SXM4-40GB", bad)
    with pytest.raises(ValueError):
        hw.explain_capability(bad)


def test_bad_names_and_unknown_gfx():
    with pytest.raises(TypeError, match="name must be a str"):
        hw.recommend_precision(("A100",))
    with pytest.raises(ValueError, match="empty"):
        hw.recommend_precision("  ")
    with pytest.raises(ValueError, match="unknown AMD gfx target 'gfx1010'"):
        hw.recommend_precision(capability="gfx1010")


def test_parse_capability_forms():
    assert hw.parse_capability((8, 6)) == (8, 6)
    assert hw.parse_capability([9, 0]) == (9, 0)
    assert hw.parse_capability(" 8.9 ") == (8, 9)
    assert hw.parse_capability("sm_120") == (12, 0)
    assert hw.parse_capability("compute_75") == (7, 5)
    assert hw.parse_capability("GFX90A:sramecc+:xnack-") == "gfx90a"


def test_table_integrity():
    seen_caps, seen_gfx, keys = set(), set(), set()
    for arch in hw.ARCHITECTURES:
        assert arch.key not in keys
        keys.add(arch.key)
        assert arch.precision in FORMATS
        assert arch.sources and all(s.startswith("https://") for s in arch.sources)
        assert arch.why and arch.examples
        for cap in arch.capabilities:
            assert cap not in seen_caps, cap
            seen_caps.add(cap)
        for gfx in arch.gfx:
            assert gfx not in seen_gfx, gfx
            seen_gfx.add(gfx)
        if arch.vendor == "NVIDIA":
            # bf16 tensor cores exist exactly from compute capability 8.0 on
            assert arch.native_bf16 == all(c >= (8, 0) for c in arch.capabilities)
        if arch.precision == "bf16":
            assert arch.native_bf16
        if arch.precision == "fp16":
            assert arch.fast_fp16
    for gpu in hw.KNOWN_GPUS:
        re.compile(gpu.pattern)
        assert (gpu.capability is None) != (gpu.gfx is None) or gpu.apple
        assert gpu.architecture.precision in FORMATS
        if gpu.capability:  # every named NVIDIA GPU sits in a real row, not the generic fallback
            assert gpu.capability in seen_caps, gpu.model
    assert len(hw.architecture_table()) == len(hw.ARCHITECTURES)
    rows = hw.known_gpu_table()
    assert len(rows) == len(hw.KNOWN_GPUS)
    assert {r["recommended"] for r in rows} == set(FORMATS)


def test_fp16_only_list_matches_the_course():
    # the cards that are fast in fp16 but not bf16: V100, T4, RTX 20xx, P100
    for name in ("Tesla V100-SXM2-16GB", "Tesla T4", "NVIDIA GeForce RTX 2070", "Tesla P100"):
        assert hw.recommend_precision(name).precision == "fp16", name
    for name in ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 PCIe", "NVIDIA GeForce RTX 4090"):
        assert hw.recommend_precision(name).precision == "bf16", name


def test_explain_capability():
    text = hw.explain_capability((8, 6))
    assert "Ampere" in text and "bf16" in text and "https://developer.nvidia.com/cuda-gpus" in text
    assert "Recommended: fp32" in hw.explain_capability("6.1")
    assert "Recommended: fp16" in hw.explain_capability("sm_70")
    assert "CDNA 3" in hw.explain_capability("gfx942")


def test_recommendation_helpers():
    bf16 = hw.recommend_precision(capability=(8, 0))
    fp16 = hw.recommend_precision(capability=(7, 5))
    assert bf16.dtype is torch.bfloat16 and not bf16.use_grad_scaler
    assert fp16.dtype is torch.float16 and fp16.use_grad_scaler
    assert bf16.trainer_kwargs() == {"bf16": True} and fp16.trainer_kwargs() == {"fp16": True}
    fp32 = hw.recommend_precision(capability=(6, 1))
    assert fp32.dtype is torch.float32 and fp32.trainer_kwargs() == {}
    assert str(fp16).startswith("fp16: ")


def test_apple_by_name():
    rec = hw.recommend_precision("Apple M2 Pro")
    assert rec.precision == "fp16" and rec.device_kind == "mps"


# --- mocked CPUs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags,native,precision",
    [
        (SAPPHIRE_RAPIDS, True, "bf16"),
        (COOPER_LAKE, True, "bf16"),
        (f"{AVX2_ONLY} amx_bf16 amx_tile", True, "bf16"),
        (AVX512_NO_BF16, False, "fp32"),
        (AVX2_ONLY, False, "fp32"),
        (X86_BASE, False, "fp32"),
    ],
)
def test_cpu_recommendation_follows_bf16_flags(
    monkeypatch, no_accelerator, flags, native, precision
):
    fake_cpu(monkeypatch, x86_cpuinfo(flags))
    report = hw.detect()
    assert report.cpu.flags_source == "/proc/cpuinfo"
    assert report.cpu.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert report.cpu.native_bf16 is native and hw.cpu_has_native_bf16() is native
    assert hw.supports_native_bf16("cpu") is native
    rec = hw.recommend_precision()
    assert (rec.precision, rec.device_kind) == (precision, "cpu")
    if report.cpu.native_fp16:  # Sapphire Rapids has AVX512-FP16: fp16 is fast, still not picked
        assert "native fp16 instructions" in rec.reason
    else:
        assert "fp16 is not the pick on this CPU" in rec.reason
    assert "never" not in rec.reason
    if precision == "fp32":
        assert "bf16 autocast still works" in rec.reason
        # the same format as a GPU, not the same numerics: op lists and kernels differ
        assert "not bit for bit" in rec.reason and "same numerics" not in rec.reason
    line = report.one_line()
    assert f"avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}" in line
    assert f"AMX {'yes' if 'amx' in flags else 'no'}" in line
    assert line.endswith("| no GPU")


def test_cpu_with_native_fp16_still_not_fp16(monkeypatch, no_accelerator):
    fake_cpu(monkeypatch, x86_cpuinfo(SAPPHIRE_RAPIDS + " amx_fp16"))
    report = hw.detect()
    assert report.cpu.native_fp16
    rec = hw.recommend_precision()
    assert rec.precision == "bf16"
    # the reason admits fp16 is fast here, and says why bf16 is still the pick
    assert "native fp16 instructions (AVX512-FP16, AMX-FP16)" in rec.reason
    assert "GradScaler" in rec.reason and "not the pick on this CPU" not in rec.reason


def test_pre_ampere_reason_says_bf16_is_accepted_but_emulated():
    for name, cap in (("Tesla T4", (7, 5)), ("Tesla V100-SXM2-16GB", (7, 0))):
        rec = hw.recommend_precision(name, cap)
        assert rec.precision == "fp16"
        assert "including_emulation=False" in rec.reason and "does not raise" in rec.reason
    assert "including_emulation" not in hw.recommend_precision("NVIDIA A100-SXM4-80GB").reason


def test_load_advice_keeps_fp32_master_weights():
    for rec in (
        hw.recommend_precision(capability=(8, 0)),
        hw.recommend_precision(capability=(7, 0)),
    ):
        assert rec.from_pretrained_kwargs() == {"dtype": torch.float32}
        assert 'dtype="auto"' in rec.load_advice and "master weights" in rec.load_advice


@pytest.mark.parametrize(
    "features,precision",
    [("fp asimd fphp asimdhp bf16 i8mm", "bf16"), ("fp asimd fphp asimdhp", "fp32")],
)
def test_arm_cpu(monkeypatch, no_accelerator, features, precision):
    cpuinfo = f"processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: {features}\nCPU part\t: 0xd40\n"
    fake_cpu(monkeypatch, cpuinfo, machine="aarch64", caps={"cpu_name": "Neoverse-V1"})
    report = hw.detect()
    assert report.cpu.model == "Neoverse-V1"
    assert hw.recommend_precision().precision == precision
    assert f"bf16 {'yes' if precision == 'bf16' else 'no'}" in report.one_line()


def test_flags_fall_back_to_torch_when_no_proc_cpuinfo(monkeypatch, no_accelerator):
    caps = {
        "architecture": "x86_64",
        "cpu_name": "Some CPU",
        "avx2": True,
        "avx512_f": True,
        "avx512_bf16": True,
        "amx_bf16": False,
    }
    fake_cpu(monkeypatch, None, caps=caps)
    cpu = hw.detect().cpu
    assert cpu.flags_source == "torch.cpu.get_capabilities"
    assert cpu.flags["avx512f"] and cpu.flags["avx512_bf16"] and not cpu.flags["amx_bf16"]
    assert hw.recommend_precision().precision == "bf16"


def test_odd_machine_without_any_cpu_information(monkeypatch, no_accelerator):
    fake_cpu(monkeypatch, None, machine="")
    monkeypatch.setattr(hw_detect.platform, "processor", lambda: "")
    report = hw.detect()
    assert report.cpu.flags_source == "unknown" and report.cpu.model
    assert "bf16 flags unknown" in report.one_line()
    rec = hw.recommend_precision()
    assert rec.precision == "fp32" and "could not be detected" in rec.reason
    json.dumps(report.to_dict())
    assert "CPU" in str(report)


# --- mocked GPUs -------------------------------------------------------------------------------
def fake_cuda(monkeypatch, devices, hip=None, bf16_native=None):
    """Make torch.cuda look like it has ``devices`` (SimpleNamespace device properties)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(devices))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: devices[i])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: devices[i].name)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    native = devices[0].major >= 8 if bf16_native is None else bf16_native
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(hw_detect, "_nvidia_driver_version", lambda: "550.54.15")
    monkeypatch.setattr(hw_detect, "_mps_available", lambda: False)


def props(name, major, minor, gib, **extra):
    return SimpleNamespace(name=name, major=major, minor=minor, total_memory=gib * 2**30, **extra)


def test_mocked_cuda_a100(monkeypatch):
    fake_cuda(monkeypatch, [props("NVIDIA A100-SXM4-40GB", 8, 0, 40)] * 2)
    report = hw.detect()
    assert len(report.gpus) == 2 and report.gpus[0].native_bf16 is True
    assert report.driver_version == "550.54.15"
    assert "2x NVIDIA A100-SXM4-40GB (cc 8.0, 40.0 GiB, native bf16 yes)" in report.one_line()
    rec = hw.recommend_precision()
    assert (rec.precision, rec.device_kind, rec.capability) == ("bf16", "cuda", (8, 0))
    assert rec.gpu_name == "NVIDIA A100-SXM4-40GB"
    assert hw.supports_native_bf16() and hw.supports_native_bf16("cuda:1")
    assert not hw.supports_native_bf16("cuda:7")
    json.dumps(report.to_dict())


def test_mocked_cuda_v100_and_t4(monkeypatch):
    fake_cuda(monkeypatch, [props("Tesla V100-SXM2-16GB", 7, 0, 16), props("Tesla T4", 7, 5, 15)])
    report = hw.detect()
    assert [g.native_bf16 for g in report.gpus] == [False, False]
    rec = hw.recommend_precision()
    assert rec.precision == "fp16" and rec.use_grad_scaler
    assert any("mixes GPU models" in n for n in rec.notes)
    assert "native bf16 no" in report.one_line()


def test_mocked_rocm(monkeypatch):
    mi250 = props("AMD Instinct MI250X/MI250", 9, 0, 64, gcnArchName="gfx90a:sramecc+:xnack-")
    fake_cuda(monkeypatch, [mi250], hip="6.2.41133")
    report = hw.detect()
    assert report.gpus[0].vendor == "AMD" and report.gpus[0].gfx == "gfx90a"
    assert report.driver_version is None and report.hip_version == "6.2.41133"
    assert "gfx90a" in report.one_line()
    rec = hw.recommend_precision()
    # torch's (9, 0) would read as Hopper; the gfx target says CDNA 2
    assert (rec.precision, rec.device_kind, rec.capability) == ("bf16", "rocm", "gfx90a")
    assert "CDNA 2" in rec.architecture


def test_mocked_rocm_rdna2_by_name_without_gfx(monkeypatch):
    fake_cuda(monkeypatch, [props("AMD Radeon RX 6900 XT", 10, 3, 16)], hip="6.2")
    rec = hw.recommend_precision()
    assert (rec.precision, rec.device_kind) == ("fp16", "rocm")


def test_mocked_mps(monkeypatch, no_accelerator):
    monkeypatch.setattr(hw_detect, "_mps_available", lambda: True)
    report = hw.detect()
    assert report.one_line().endswith("| Apple MPS")
    rec = hw.recommend_precision()
    assert (rec.precision, rec.device_kind) == ("fp16", "mps")
    assert not hw.supports_native_bf16("mps")


def test_detect_survives_broken_cuda(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", boom)
    assert hw.detect().gpus == ()
    fake_cuda(monkeypatch, [props("NVIDIA L4", 8, 9, 22)])
    monkeypatch.setattr(torch.cuda, "get_device_properties", boom)
    assert hw.detect().gpus == ()


def test_one_line_stays_one_line(monkeypatch):
    fake_cuda(monkeypatch, [props("NVIDIA\nL4\r", 8, 9, 22)])
    line = hw.detect().one_line()
    assert "\n" not in line and "\r" not in line and "NVIDIA L4" in line


# --- this machine ------------------------------------------------------------------------------
def test_detect_on_this_machine():
    report = hw.detect()
    cpu = report.cpu
    assert isinstance(cpu.model, str) and cpu.model.strip()
    assert cpu.logical_cores is None or cpu.logical_cores >= 1
    assert cpu.usable_cores is None or 1 <= cpu.usable_cores <= (cpu.logical_cores or 10**6)
    assert cpu.torch_capability == torch.backends.cpu.get_cpu_capability()
    assert report.torch_version == torch.__version__
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert len(report.gpus) == n_gpus
    for gpu in report.gpus:
        assert gpu.name and gpu.capability and gpu.total_memory_gib and gpu.total_memory_gib > 0
    if cpu.is_x86 and cpu.flags_source == "/proc/cpuinfo":
        # every x86-64 CPU torch runs on has SSE4.2-era flags; AVX2 agrees with torch's own check
        caps = torch.cpu.get_capabilities()
        assert cpu.flags["avx2"] == bool(caps.get("avx2"))
    line = report.one_line()
    assert line.startswith("CPU: ") and "\n" not in line
    assert ("no GPU" in line) == (n_gpus == 0 and not report.mps_available)
    assert len(str(report).splitlines()) >= 10
    json.dumps(report.to_dict())


def test_recommendation_on_this_machine():
    rec = hw.recommend_precision()
    assert rec.precision in FORMATS and rec.reason
    if torch.cuda.is_available():
        assert rec.device_kind in ("cuda", "rocm")
        if rec.device_kind == "cuda":
            major, minor = torch.cuda.get_device_capability(0)
            assert rec.capability == (major, minor)
            expected = hw.recommend_precision(capability=(major, minor)).precision
            assert rec.precision == expected
            assert (rec.precision == "bf16") == torch.cuda.is_bf16_supported(
                including_emulation=False
            )
    elif hw.detect().mps_available:
        assert rec.device_kind == "mps"
    else:
        assert rec.device_kind == "cpu"
        assert rec.precision == ("bf16" if hw.cpu_has_native_bf16() else "fp32")


def test_supports_native_bf16_rejects_bad_device():
    with pytest.raises(ValueError, match="unknown device"):
        hw.supports_native_bf16("tpu:0")
    assert hw.supports_native_bf16("cpu") == hw.cpu_has_native_bf16()


# --- the recommendation for the device the code runs on ---------------------------------------
T4 = hw.GpuInfo(0, "Tesla T4", "NVIDIA", (7, 5), None, 15.0, False)


def test_a_cpu_run_on_a_gpu_machine_gets_the_cpu_answer(monkeypatch):
    """The recipe in notebook 00 must not turn on fp16 + a loss scaler on a CPU because the
    machine's GPU (a T4, or a Mac's MPS) would want fp16."""
    fake_cpu(monkeypatch, x86_cpuinfo(COOPER_LAKE))
    monkeypatch.setattr(hw_detect, "_detect_gpus", lambda: (T4,))
    monkeypatch.setattr(hw_detect, "_mps_available", lambda: False)
    assert hw.recommend_precision().precision == "fp16"  # the machine's best device: the T4
    assert hw.recommend_for_device("cuda:0").precision == "fp16"
    cpu = hw.recommend_for_device("cpu")
    assert cpu.precision == "bf16" and cpu.device_kind == "cpu"


def test_a_mac_runs_the_course_on_its_cpu_and_gets_the_cpu_answer(monkeypatch):
    fake_cpu(monkeypatch, None, machine="arm64")
    monkeypatch.setattr(hw_detect, "_detect_gpus", lambda: ())
    monkeypatch.setattr(hw_detect, "_mps_available", lambda: True)
    assert hw.recommend_precision().device_kind == "mps"
    assert hw.recommend_for_device("cpu").device_kind == "cpu"
    assert hw.recommend_for_device("mps").device_kind == "mps"


def test_recommend_for_device_refuses_a_device_that_is_not_there(no_accelerator):
    with pytest.raises(ValueError, match="no CUDA/ROCm GPU 1 on this machine"):
        hw.recommend_for_device("cuda:1")
    with pytest.raises(ValueError, match="no mps device on this machine"):
        hw.recommend_for_device("mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        hw.recommend_for_device("tpu")


def test_setup_reports_the_answer_for_the_device_it_picked_and_the_gpu_it_did_not(
    monkeypatch, capsys
):
    from course_utils import setup

    fake_cpu(monkeypatch, x86_cpuinfo(COOPER_LAKE))
    monkeypatch.setattr(hw_detect, "_detect_gpus", lambda: (T4,))
    monkeypatch.setattr(hw_detect, "_mps_available", lambda: False)
    setup(seed=0, device="cpu")
    assert capsys.readouterr().out.rstrip().endswith("recommended: bf16 (on its GPU: fp16)")
