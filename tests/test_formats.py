"""course_utils.formats against torch: every 8- and 16-bit pattern, random fp32, tf32 vs an
independent reference, properties (hypothesis), the lesson's rounding surprises, bad input."""

import math

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import formats as F

TORCH_SMALL = ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"]  # every pattern is checked
INT_VIEW = {8: torch.uint8, 16: torch.int16, 32: torch.int32}


def torch_values(fmt: str) -> torch.Tensor:
    """torch's value of every bit pattern of ``fmt`` (index = pattern), as float64."""
    spec = F.FORMATS[fmt]
    patterns = torch.arange(2**spec.total_bits, dtype=torch.int64)
    view = INT_VIEW[spec.total_bits]
    return patterns.to(view).view(spec.torch_dtype).to(torch.float64)


def same_floats(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, same sign of zero, NaN at the same places."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    nan = torch.isnan(a)
    if not torch.equal(nan, torch.isnan(b)):
        return False
    return torch.equal(a[~nan], b[~nan]) and torch.equal(a[~nan].signbit(), b[~nan].signbit())


# ---------------------------------------------------------------------------- exhaustive vs torch


@pytest.mark.parametrize("fmt", TORCH_SMALL)
def test_decode_matches_torch_on_every_pattern(fmt):
    expected = torch_values(fmt)
    ours = torch.tensor([F.decode(b, fmt) for b in range(len(expected))], dtype=torch.float64)
    assert same_floats(ours, expected)
    # the kinds agree with the values torch gives
    kinds = [F.fields(bits=b, fmt=fmt).kind for b in range(len(expected))]
    spec = F.FORMATS[fmt]
    for b, (kind, value) in enumerate(zip(kinds, expected.tolist(), strict=True)):
        want = (
            "nan"
            if math.isnan(value)
            else "inf"
            if math.isinf(value)
            else "zero"
            if value == 0
            else "subnormal"
            if abs(value) < spec.min_normal
            else "normal"
        )
        assert kind == want, (fmt, hex(b))


@pytest.mark.parametrize("fmt", TORCH_SMALL)
def test_encode_round_trips_every_pattern(fmt):
    """round_to keeps every value; encode gives back its pattern (one value at a time: every
    8-bit pattern, and for 16 bits every 8th pattern plus all zeros, subnormals, infs and NaNs)."""
    spec = F.FORMATS[fmt]
    values = torch_values(fmt)
    assert same_floats(F.round_to(values, fmt), values)
    step = 1 if spec.total_bits == 8 else 8
    special = torch.nonzero(~(values.abs() >= spec.min_normal) | values.isinf()).flatten().tolist()
    for b in sorted(set(range(0, len(values), step)) | set(special)):
        v = values[b].item()
        if math.isnan(v):
            assert math.isnan(F.decode(F.encode(v, fmt), fmt))
        else:
            assert F.encode(v, fmt) == b, (fmt, hex(b), v)


@pytest.mark.parametrize("fmt", TORCH_SMALL + ["tf32"])
def test_ties_round_to_even_at_every_midpoint(fmt):
    """Each midpoint between neighbours goes to the one with an even mantissa; a hair above or
    below goes to the nearer one. Checked for every positive and negative neighbour pair."""
    spec = F.FORMATS[fmt]
    if fmt == "tf32":  # 2^19 patterns: take every neighbour pair in a few binades
        low = [*range(0, 2**10 + 2), *range(0x1FC00, 0x20400), *range(0x3FB00, 0x3FC00)]
        bits = torch.tensor(low)
    else:
        bits = torch.arange(2 ** (spec.total_bits - 1))  # positive patterns, increasing values
    values = torch.tensor([F.decode(int(b), fmt) for b in bits], dtype=torch.float64)
    finite = torch.isfinite(values)
    bits, values = bits[finite], values[finite]
    consecutive = bits[1:] == bits[:-1] + 1
    lo_bits, lo, hi = bits[:-1][consecutive], values[:-1][consecutive], values[1:][consecutive]
    mid = ((lo + hi) / 2).to(torch.float32)  # exact: both have far fewer bits than fp32
    assert torch.equal(mid.to(torch.float64), (lo + hi) / 2)
    even = torch.where(lo_bits % 2 == 0, lo, hi)
    for sign in (1.0, -1.0):
        assert torch.equal(F.round_to(sign * mid, fmt).double(), sign * even)
        below = torch.nextafter(mid, torch.zeros_like(mid))
        above = torch.nextafter(mid, torch.full_like(mid, math.inf))
        assert torch.equal(F.round_to(sign * below, fmt).double(), sign * lo)
        assert torch.equal(F.round_to(sign * above, fmt).double(), sign * hi)
    if fmt.startswith("fp8"):  # encode too, one value at a time
        for m, e in zip(mid.tolist(), even.tolist(), strict=True):
            assert F.decode(F.encode(m, fmt), fmt) == e


def test_random_fp32_patterns_round_trip_bit_for_bit():
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 2**32, size=20_000, dtype=np.uint64)
    expected = torch.from_numpy(patterns.astype(np.uint32).view(np.float32)).double()
    ours = torch.tensor([F.decode(int(b), "fp32") for b in patterns], dtype=torch.float64)
    assert same_floats(ours, expected)
    for b, v in zip(patterns.tolist(), expected.tolist(), strict=True):
        if not math.isnan(v):
            assert F.encode(v, "fp32") == b


@settings(deadline=None)
@given(st.floats(width=32, allow_nan=False))
def test_fp32_encode_is_the_ieee_bit_pattern(x):
    assert F.encode(x, "fp32") == int(np.float32(x).view(np.uint32))
    assert F.decode(F.encode(x, "fp32"), "fp32") == x


# ---------------------------------------------------------------------------- tf32


def reference_round(x: float, mantissa_bits: int, min_exponent: int, max_finite: float) -> float:
    """Round-to-nearest-even by exact scaling and Python's round() (which ties to even);
    written independently of course_utils.formats."""
    if not math.isfinite(x) or x == 0:
        return x
    exponent = math.frexp(abs(x))[1] - 1
    quantum = math.ldexp(1.0, max(exponent, min_exponent) - mantissa_bits)
    rounded = round(x / quantum) * quantum
    return math.copysign(math.inf if abs(rounded) > max_finite else abs(rounded), x)


def interesting_fp32(n: int) -> np.ndarray:
    """Random fp32 values: uniform bit patterns, exact tf32 ties, near the top, subnormals."""
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    ties = (bits[: n // 4] & ~np.uint32(0x1FFF)) | np.uint32(0x1000)
    top = np.uint32(0x7F7FFFFF) - rng.integers(0, 2**14, size=n // 8).astype(np.uint32)
    subnormal = rng.integers(0, 2**23, size=n // 8).astype(np.uint32)
    all_bits = np.concatenate([bits, ties, top, subnormal, top | 0x80000000])
    return all_bits.view(np.float32)


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_reference_rounding_agrees_with_torch(fmt):
    """The reference used for tf32 is first checked against torch on formats torch has."""
    spec = F.FORMATS[fmt]
    x = interesting_fp32(4_000)
    x = x[np.isfinite(x)]
    ours = F.round_to(torch.from_numpy(x), fmt).double()
    ref = [reference_round(float(v), spec.mantissa_bits, spec.min_exponent, spec.max) for v in x]
    assert same_floats(ours, torch.tensor(ref, dtype=torch.float64))


def test_tf32_matches_reference_rounding():
    # (torch's own tf32 is a matmul mode on NVIDIA GPUs; it cannot be observed on a CPU)
    spec = F.FORMATS["tf32"]
    x = interesting_fp32(20_000)
    ours = F.round_to(torch.from_numpy(x), "tf32").double()
    ref = [reference_round(float(v), spec.mantissa_bits, spec.min_exponent, spec.max) for v in x]
    assert same_floats(ours, torch.tensor(ref, dtype=torch.float64))
    # every result has the 13 dropped bits clear, i.e. is a tf32 value stored in fp32
    finite = torch.isfinite(ours)
    low = F.round_to(torch.from_numpy(x), "tf32").view(torch.int32) & 0x1FFF
    assert not low[finite].any()


@settings(deadline=None)
@given(st.integers(0, 2**19 - 1))
def test_tf32_bits_are_the_top_19_bits_of_fp32(b):
    as_fp32 = np.uint32(b << 13).view(np.float32)
    v = F.decode(b, "tf32")
    if math.isnan(as_fp32):
        assert math.isnan(v)
    else:
        assert v == float(as_fp32)
        assert F.encode(v, "tf32") == b


def test_tf32_edges():
    assert F.encode(F.FORMATS["fp32"].max, "tf32") == 0x3FC00  # rounds up to +inf
    assert F.decode(0x3FBFF, "tf32") == F.FORMATS["tf32"].max
    nan_like = np.uint32(0x7F800001).view(np.float32)  # payload only in the dropped bits
    assert math.isnan(F.round_to(torch.tensor([nan_like]), "tf32").item())
    assert math.isnan(F.decode(F.encode(float("nan"), "tf32"), "tf32"))


@pytest.mark.parametrize("fmt", ["tf32", *TORCH_SMALL])
def test_representable_values_are_the_decoded_patterns(fmt):
    values = F.representable_values(fmt)
    spec = F.FORMATS[fmt]
    assert values[0] == 0 and values[1] == spec.min_subnormal and values[-1] == spec.max
    assert torch.all(values[1:] > values[:-1])
    sample = range(0, len(values), max(1, len(values) // 500))
    assert [values[i].item() for i in sample] == [F.decode(i, fmt) for i in sample]
    with pytest.raises(ValueError, match="too many values"):
        F.representable_values("fp32")


# ---------------------------------------------------------------------------- specs vs torch.finfo


def test_specs_match_torch_finfo():
    assert F.torch_finfo_mismatches() == {n: [] for n in TORCH_SMALL + ["fp32"]}
    rows = {r["format"]: r for r in F.finfo_table()}
    assert [r for r in rows] == list(F.FORMAT_NAMES)
    assert all(rows[n]["finfo_agrees"] for n in TORCH_SMALL + ["fp32"])
    assert rows["tf32"]["finfo_agrees"] is None


def test_finfo_check_can_fail(monkeypatch):
    wrong = F.FloatFormat("fp16", 5, 9, True, "", "", torch.float16, None)
    monkeypatch.setitem(F.FORMATS, "fp16", wrong)
    assert F.torch_finfo_mismatches()["fp16"]  # max and eps disagree
    assert {r["format"]: r["finfo_agrees"] for r in F.finfo_table()}["fp16"] is False


@pytest.mark.parametrize("fmt", TORCH_SMALL + ["fp32"])
def test_min_subnormal_and_ml_dtypes_agree(fmt):
    spec = F.FORMATS[fmt]
    view = INT_VIEW[spec.total_bits]
    assert spec.min_subnormal == torch.tensor([1]).to(view).view(spec.torch_dtype).item()
    info = ml_dtypes.finfo(spec.ml_dtype)
    assert (float(info.max), float(info.smallest_normal), float(info.eps)) == (
        spec.max,
        spec.min_normal,
        spec.eps,
    )
    assert float(info.smallest_subnormal) == spec.min_subnormal


def test_max_rule_depends_on_the_reserved_patterns():
    """Notebook 01: (2 - 2^-m) 2^emax with emax = 2^e - 2 - bias holds for the formats that keep
    their all-ones exponent for inf/NaN; e4m3fn keeps it for numbers (only S.1111.111 is NaN), so
    its max is 1.75 x 2^8 = 448, while the IEEE rule gives 240, ml_dtypes' IEEE-style float8_e4m3."""
    for spec in F.FORMATS.values():
        ieee_rule = (2 - 2.0**-spec.mantissa_bits) * 2.0 ** (2**spec.exponent_bits - 2 - spec.bias)
        if spec.has_inf:
            assert spec.max == ieee_rule, spec.name
        else:
            assert spec.name == "fp8_e4m3" and ieee_rule == 240 and spec.max == 448
    assert float(ml_dtypes.finfo(ml_dtypes.float8_e4m3).max) == 240
    assert float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max) == 448


def test_spec_values_from_the_literature():
    # IEEE 754 binary16; OCP 8-bit floating point spec (e4m3 max 448, e5m2 max 57344)
    assert F.FORMATS["fp16"].max == 65504
    assert F.FORMATS["fp8_e4m3"].max == 448 and not F.FORMATS["fp8_e4m3"].has_inf
    assert F.FORMATS["fp8_e5m2"].max == 57344
    assert F.FORMATS["tf32"].eps == 2**-10 and F.FORMATS["tf32"].total_bits == 19
    assert (
        F.FORMATS["tf32"].min_normal == F.FORMATS["bf16"].min_normal == F.FORMATS["fp32"].min_normal
    )
    assert F.FORMATS["tf32"].ml_dtype is None and F.FORMATS["tf32"].torch_dtype is None
    assert F.FORMATS["bf16"].bias == 127 and F.FORMATS["fp8_e4m3"].bias == 7


def test_finfo_table_text_is_a_table():
    lines = F.finfo_table_text().splitlines()
    assert len(lines) == 1 + len(F.FORMATS)
    assert lines[0].split()[:3] == ["format", "bits", "exponent"]
    assert lines[4].split()[:2] == ["bf16", "16"] and lines[4].split()[-1] == "True"  # inf
    assert lines[0].split()[-1] == "inf" and lines[5].split()[-1] == "False"  # e4m3fn: no inf


# ---------------------------------------------------------------------------- overflow, NaN, lesson


def test_overflow_follows_torch():
    e4m3 = F.FORMATS["fp8_e4m3"]
    # torch saturates e4m3fn (ml_dtypes does not: it returns NaN), including for inf
    for x in (464.0, 465.0, 1e6, math.inf):
        assert F.encode(x, "fp8_e4m3") == F.encode(-x, "fp8_e4m3") - 0x80 == 0x7E
        assert F.decode(F.encode(x, "fp8_e4m3"), "fp8_e4m3") == e4m3.max
    assert torch.tensor([1e6, -math.inf]).to(torch.float8_e4m3fn).float().tolist() == [448, -448]
    assert np.isnan(np.float32(465).astype(ml_dtypes.float8_e4m3fn).astype(np.float32))
    # IEEE-like formats: the midpoint above max is a tie that goes to inf
    assert F.decode(F.encode(61439.0, "fp8_e5m2"), "fp8_e5m2") == 57344
    assert F.decode(F.encode(61440.0, "fp8_e5m2"), "fp8_e5m2") == math.inf
    assert F.decode(F.encode(65519.0, "fp16"), "fp16") == 65504
    assert F.decode(F.encode(65520.0, "fp16"), "fp16") == math.inf
    assert F.decode(F.encode(-1e300, "bf16"), "bf16") == -math.inf
    assert F.encode(10**400, "fp16") == 0x7C00  # beyond float64 still rounds to inf


@pytest.mark.parametrize("fmt", F.FORMAT_NAMES)
def test_nan_and_inf_handling(fmt):
    assert math.isnan(F.decode(F.encode(math.nan, fmt), fmt))
    assert F.fields(math.nan, fmt).kind == "nan"
    assert math.isnan(F.round_to(torch.tensor([math.nan]), fmt).item())
    assert math.isnan(F.ulp(math.nan, fmt)) and math.isnan(F.next_up(math.nan, fmt))
    expected_inf = math.inf if F.FORMATS[fmt].has_inf else F.FORMATS[fmt].max
    assert F.decode(F.encode(math.inf, fmt), fmt) == expected_inf
    assert F.decode(F.encode(-0.0, fmt), fmt) == 0 and F.fields(-0.0, fmt).sign == 1


def test_the_lessons_rounding_surprises():
    def r(x, fmt):
        return F.decode(F.encode(x, fmt), fmt)

    assert r(1 + 1e-4, "fp16") == 1.0
    assert r(257, "bf16") == 256.0
    assert r(70000, "fp16") == math.inf
    assert r(1e-8, "fp16") == 0.0
    assert r(1e-8, "bf16") != 0.0  # bf16 has fp32's range
    assert F.format_bits(F.encode(1.0, "fp16"), "fp16") == "0 | 01111 | 0000000000"
    assert F.decode("0 | 01111 | 0000000000", "fp16") == 1.0
    assert F.format_bits(F.encode(-2.0, "bf16"), "bf16", sep="") == "1100000000000000"


def test_fields_of_a_value():
    f = F.fields(3.0, "bf16")
    assert (f.sign, f.exponent_field, f.mantissa_field, f.exponent) == (0, 128, 64, 1)
    assert (f.significand, f.kind, f.value, f.bits) == (1.5, "normal", 3.0, 0x4040)
    assert f.formula() == "(-1)^0 x 2^(1) x 1.5 = 3.0"
    sub = F.fields(bits=1, fmt="fp16")
    assert (sub.kind, sub.exponent, sub.value) == ("subnormal", -14, 2**-24)
    assert F.fields("1 | 1111 | 111", "fp8_e4m3").kind == "nan"
    assert F.fields("0 | 1111 | 110", "fp8_e4m3").value == 448


def test_ulp_and_next_up():
    assert F.ulp(1.0, "bf16") == 2**-7 and F.ulp(1.0, "fp16") == 2**-10
    assert F.ulp(0.0, "fp16") == 2**-24 and F.ulp(math.inf, "fp16") == math.inf
    assert F.ulp(256.0, "bf16") == 2.0  # why 257 is not a bf16 number
    assert F.next_up(1.0, "bf16") == 1 + 2**-7 and F.next_down(1.0, "bf16") == 1 - 2**-8
    assert F.next_up(0.0, "fp8_e4m3") == 2**-9 and F.next_up(-(2**-9), "fp8_e4m3") == 0
    assert F.next_up(65504, "fp16") == math.inf and math.isnan(F.next_up(448, "fp8_e4m3"))
    assert F.next_up(-math.inf, "fp16") == -65504 and F.next_up(1.00001, "fp16") == 1 + 2**-10


# ---------------------------------------------------------------------------- properties

SMALL_FORMATS = st.sampled_from(["tf32", *TORCH_SMALL])
FP32_FLOATS = st.floats(width=32)


@settings(deadline=None)
@given(SMALL_FORMATS, st.lists(FP32_FLOATS, min_size=1, max_size=20))
def test_round_to_is_idempotent_and_agrees_with_encode(fmt, xs):
    once = F.round_to(torch.tensor(xs), fmt)
    assert same_floats(F.round_to(once, fmt), once)
    by_encode = torch.tensor([F.decode(F.encode(x, fmt), fmt) for x in xs])
    assert same_floats(once, by_encode)


@settings(deadline=None)
@given(SMALL_FORMATS, st.floats(width=32, allow_nan=False), st.floats(width=32, allow_nan=False))
def test_round_to_is_monotone(fmt, a, b):
    lo, hi = min(a, b), max(a, b)
    r = F.round_to(torch.tensor([lo, hi]), fmt)
    assert r[0] <= r[1]


@settings(deadline=None)
@given(SMALL_FORMATS, st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_rounding_picks_a_nearest_neighbour(fmt, x):
    spec = F.FORMATS[fmt]
    r = F.decode(F.encode(x, fmt), fmt)
    if abs(x) > spec.max:
        return  # overflow rules are tested above
    for neighbour in (F.next_up(r, fmt), F.next_down(r, fmt)):
        if math.isfinite(neighbour):
            assert abs(x - r) <= abs(x - neighbour)


@settings(deadline=None)
@given(SMALL_FORMATS, st.data())
def test_ties_go_to_the_even_pattern(fmt, data):
    spec = F.FORMATS[fmt]
    top = F.encode(spec.max, fmt)
    b = data.draw(st.integers(0, top - 1))
    lo, hi = F.decode(b, fmt), F.decode(b + 1, fmt)
    sign = data.draw(st.sampled_from([1.0, -1.0]))
    assert F.encode(sign * (lo + hi) / 2, fmt) == F.encode(sign * (lo if b % 2 == 0 else hi), fmt)


@settings(deadline=None)
@given(st.sampled_from(list(F.FORMAT_NAMES)), st.floats(allow_nan=False, allow_infinity=False))
def test_fields_rebuild_the_value(fmt, x):
    f = F.fields(x, fmt)
    if f.kind in ("normal", "subnormal"):
        assert (-1) ** f.sign * math.ldexp(f.significand, f.exponent) == f.value
        assert F.ulp(f.value, fmt) == math.ldexp(1.0, f.exponent - F.FORMATS[fmt].mantissa_bits)
        if abs(f.value) != F.FORMATS[fmt].max:
            assert F.next_down(F.next_up(f.value, fmt), fmt) == f.value


@settings(deadline=None)
@given(st.sampled_from(["fp16", "fp32"]), st.floats(min_value=0, allow_infinity=False))
def test_ulp_matches_numpy_spacing(fmt, x):
    dtype = {"fp16": np.float16, "fp32": np.float32}[fmt]
    v = F.decode(F.encode(x, fmt), fmt)
    if math.isfinite(v) and v != F.FORMATS[fmt].max:
        assert F.ulp(v, fmt) == float(np.spacing(dtype(v)))


# ---------------------------------------------------------------------------- bad input


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="known formats: fp32, tf32, fp16, bf16, fp8_e4m3, fp8_e5m2"
    ):
        F.encode(1.0, "fp12")
    with pytest.raises(ValueError, match="no course format for torch.float8_e4m3fnuz"):
        F.get_format(torch.float8_e4m3fnuz)
    with pytest.raises(TypeError, match="format must be a name"):
        F.decode(0, 16)
    assert F.get_format("bfloat16") is F.get_format(torch.bfloat16) is F.FORMATS["bf16"]
    assert F.get_format("torch.float8_e4m3fn").name == "fp8_e4m3"


def test_bits_out_of_range_or_not_ints():
    with pytest.raises(
        ValueError, match=r"out of range for fp8_e5m2: a 8-bit pattern is in \[0, 255\]"
    ):
        F.decode(256, "fp8_e5m2")
    with pytest.raises(ValueError, match="pass bits & 0xFFFF"):
        F.decode(-1, "fp16")
    with pytest.raises(TypeError, match="bits must be an int"):
        F.decode(1.0, "fp16")
    with pytest.raises(TypeError, match="bits must be an int"):
        F.decode(True, "fp16")
    with pytest.raises(ValueError, match="fp16 has 16 bits"):
        F.decode("0101", "fp16")
    with pytest.raises(ValueError, match="only 0 and 1"):
        F.format_bits("0 | 2", "fp8_e4m3")
    assert F.decode(np.int16(0x3C00), "fp16") == 1.0  # NumPy ints are ints


def test_non_numbers_are_rejected():
    for bad in ("1.0", None, 1j, True, [1.0], torch.ones(2)):
        with pytest.raises(TypeError, match="expected a real number"):
            F.encode(bad, "bf16")
    with pytest.raises(TypeError, match="expected a tensor or numbers"):
        F.round_to("abc", "fp16")
    with pytest.raises(TypeError, match="expected a real tensor"):
        F.round_to(torch.ones(2, dtype=torch.complex64), "fp16")
    with pytest.raises(TypeError, match="exactly one"):
        F.fields(1.0, "fp16", bits=0)
    assert F.encode(torch.tensor(0.5), "fp16") == F.encode(np.float32(0.5), "fp16") == 0x3800


def test_round_to_returns_a_new_fp32_tensor():
    t = torch.tensor([0.1, 257.0], dtype=torch.float64)
    out = F.round_to(t, "fp32")
    assert out.dtype is torch.float32 and out.tolist() == [np.float32(0.1), 257.0]
    same = torch.tensor([1.0])
    assert F.round_to(same, "fp32").data_ptr() != same.data_ptr()
    assert F.round_to([257.0, 0.1], "bf16").tolist() == [256.0, 0.10009765625]


@pytest.mark.parametrize("fmt", ["fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2"])
def test_ulp_of_infinity_and_nan_in_every_format(fmt):
    """Issue 13 (lesser): ulp(inf, "fp8_e4m3") was 32 (torch saturates inf to 448 there)."""
    assert F.ulp(math.inf, fmt) == math.inf and F.ulp(-math.inf, fmt) == math.inf
    assert math.isnan(F.ulp(math.nan, fmt))


def test_next_up_of_infinity_is_nan_where_the_format_has_no_infinity():
    """fp8_e4m3 has no inf: nothing lies above +inf there (it said inf, not a value of the format)."""
    assert math.isnan(F.next_up(math.inf, "fp8_e4m3"))
    assert math.isnan(F.next_down(-math.inf, "fp8_e4m3"))
    assert F.next_up(math.inf, "fp16") == math.inf
    assert F.next_up(-math.inf, "fp8_e4m3") == -F.FORMATS["fp8_e4m3"].max
