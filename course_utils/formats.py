"""Floating-point formats bit by bit: fp32, tf32, fp16, bf16, fp8 e4m3 (fn) and fp8 e5m2.

Taught in notebook 01, sections "A float is three fields" and "Six formats side by side" (imported
as ``fmt``); notebook 02 uses it in section "3. Stalled updates: when `w + lr * g == w`".

What is hand-written here is what the lesson is about: ``decode`` computes a value from its
sign, exponent and mantissa fields with the textbook formula, and ``fields`` takes a value apart.
Rounding (``encode``, ``round_to``) is done by torch's own casts, so the course shows exactly what
torch does; only tf32, which torch has no dtype for, is rounded here (a bit-mask on fp32).

Rounding rules, as torch does them (the tests check every one on the pinned torch version):

* A value is first rounded to fp32 (torch casts float64 to the 16- and 8-bit types through fp32
  too), then rounded to nearest, ties to even, into the format.
* fp16, bf16, fp8_e5m2, tf32 (IEEE-like): a value at or beyond ``max + ulp(max) / 2`` becomes
  +-inf (the tie goes to the "even" neighbour, which is inf); +-inf stays +-inf.
* fp8_e4m3 (the "fn" variant: finite, NaN only): torch *saturates*: every finite value beyond 448,
  and +-inf, becomes +-448. (ml_dtypes instead returns NaN above 464, and for +-inf.)
* NaN stays NaN; the exact NaN bit pattern is whatever torch produces (on the CPU these tests were
  written on, torch gave 0xFFFF for a bf16 NaN), so compare NaNs with ``math.isnan``, not by bits.
* tf32 is RNE on the fp32 bits, keeping 10 mantissa bits. NVIDIA GPUs may do it differently:
  PTX ``cvt.rna.tf32.f32`` rounds ties away from zero, and tensor cores given raw fp32 ignore the
  13 low bits (https://docs.nvidia.com/cuda/parallel-thread-execution/, "cvt" and "mma"). So tf32
  here is the course's model of it; it differs from a GPU only at exact ties or by truncation.
  torch's own tf32 exists only inside matmul and convolution kernels: CUDA matmuls (allowed by
  ``torch.set_float32_matmul_precision("high")``, off by default), cuDNN convolutions (allowed by
  default) and oneDNN kernels on hardware that has tf32 (``torch.backends.mkldnn``); the course
  runs none of them, so its tf32 is checked against its own rule only.

fp8 formats: "FP8 Formats for Deep Learning", Micikevicius et al. 2022,
https://arxiv.org/abs/2209.05433 (e4m3: no inf, one NaN code per sign, max 448; e5m2: IEEE-like).

Bit patterns are unsigned ints of the format's width (tf32: 19 bits, sign | 8 | 10).
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
import torch

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "FloatFormat",
    "Fields",
    "get_format",
    "decode",
    "encode",
    "round_to",
    "fields",
    "ulp",
    "next_up",
    "next_down",
    "representable_values",
    "format_bits",
    "parse_bits",
    "finfo_table",
    "finfo_table_text",
    "torch_finfo_mismatches",
]


@dataclass(frozen=True)
class FloatFormat:
    """One binary floating-point format: field widths, derived limits, specials, backends."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    has_inf: bool
    nan_encoding: str
    on_overflow: str
    torch_dtype: torch.dtype | None
    ml_dtype: Any  # a NumPy dtype (np.float32, ml_dtypes.bfloat16, ...) or None
    sign_bits: int = 1

    @property
    def total_bits(self) -> int:
        return self.sign_bits + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def exponent_all_ones(self) -> int:
        return 2**self.exponent_bits - 1

    @property
    def max_exponent(self) -> int:
        """Largest unbiased exponent of a finite value."""
        top = self.exponent_all_ones - (1 if self.has_inf else 0)
        return top - self.bias

    @property
    def min_exponent(self) -> int:
        """Unbiased exponent of the smallest normal value (subnormals share it)."""
        return 1 - self.bias

    @property
    def max(self) -> float:
        # IEEE-like: all-ones exponent is reserved, so max = (2 - 2^-m) * 2^emax. The fn
        # formats use the all-ones exponent for numbers, except mantissa all ones (NaN).
        top_mantissa = 2**self.mantissa_bits - (1 if self.has_inf else 2)
        return math.ldexp(
            2**self.mantissa_bits + top_mantissa, self.max_exponent - self.mantissa_bits
        )

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.min_exponent)

    @property
    def min_subnormal(self) -> float:
        return math.ldexp(1.0, self.min_exponent - self.mantissa_bits)

    @property
    def eps(self) -> float:
        """Gap between 1 and the next larger value."""
        return math.ldexp(1.0, -self.mantissa_bits)

    @property
    def significant_digits(self) -> float:
        """Decimal digits the significand holds: log10(2^(m+1))."""
        return (self.mantissa_bits + 1) * math.log10(2)


_IEEE_NAN = "exponent all ones, mantissa non-zero"
_IEEE_OVERFLOW = "rounds to +-inf"

FORMATS: dict[str, FloatFormat] = {
    spec.name: spec
    for spec in (
        FloatFormat(
            "fp32", 8, 23, True, _IEEE_NAN, _IEEE_OVERFLOW, torch.float32, np.dtype(np.float32)
        ),
        FloatFormat("tf32", 8, 10, True, _IEEE_NAN, _IEEE_OVERFLOW, None, None),
        FloatFormat(
            "fp16", 5, 10, True, _IEEE_NAN, _IEEE_OVERFLOW, torch.float16, np.dtype(np.float16)
        ),
        FloatFormat(
            "bf16",
            8,
            7,
            True,
            _IEEE_NAN,
            _IEEE_OVERFLOW,
            torch.bfloat16,
            np.dtype(ml_dtypes.bfloat16),
        ),
        FloatFormat(
            "fp8_e4m3",
            4,
            3,
            False,
            "exponent and mantissa all ones (S.1111.111); no inf",
            "saturates to +-448 in torch (ml_dtypes: NaN)",
            torch.float8_e4m3fn,
            np.dtype(ml_dtypes.float8_e4m3fn),
        ),
        FloatFormat(
            "fp8_e5m2",
            5,
            2,
            True,
            _IEEE_NAN,
            _IEEE_OVERFLOW,
            torch.float8_e5m2,
            np.dtype(ml_dtypes.float8_e5m2),
        ),
    )
}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)

_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "tensorfloat32": "tf32",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "float8_e4m3fn": "fp8_e4m3",
    "e4m3": "fp8_e4m3",
    "float8_e5m2": "fp8_e5m2",
    "e5m2": "fp8_e5m2",
}
_BY_DTYPE = {
    spec.torch_dtype: name for name, spec in FORMATS.items() if spec.torch_dtype is not None
}
_INT_VIEW = {32: torch.int32, 16: torch.int16, 8: torch.uint8}
_TF32_DROPPED = 23 - 10  # fp32 mantissa bits tf32 drops


def get_format(fmt: str | torch.dtype | FloatFormat) -> FloatFormat:
    """The spec for ``fmt``: a name in ``FORMAT_NAMES`` (or an alias like "bfloat16"), a torch
    dtype, or a spec. Unknown names raise ValueError listing the known ones."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if isinstance(fmt, torch.dtype):
        if fmt not in _BY_DTYPE:
            raise ValueError(
                f"no course format for {fmt}; known formats: {', '.join(FORMAT_NAMES)}"
            )
        return FORMATS[_BY_DTYPE[fmt]]
    if not isinstance(fmt, str):
        raise TypeError(f"format must be a name such as 'bf16', got {type(fmt).__name__} {fmt!r}")
    key = fmt.strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(FORMAT_NAMES)}")
    return FORMATS[key]


# ----------------------------------------------------------------------------- input checking


def _as_real(x: Any) -> float:
    """``x`` as a Python float, or a TypeError naming what was passed."""
    complex_number = isinstance(x, numbers.Complex) and not isinstance(x, numbers.Real)
    if isinstance(x, (bool, str, bytes)) or complex_number:
        raise TypeError(f"expected a real number, got {type(x).__name__} {x!r}")
    if isinstance(x, torch.Tensor):
        if x.numel() != 1 or x.is_complex():
            raise TypeError(f"expected a real number, got a tensor of shape {tuple(x.shape)}")
        x = x.item()
    if isinstance(x, numbers.Integral):
        try:
            return float(x)
        except OverflowError:  # beyond float64: rounds to inf in every format below
            return math.inf if x > 0 else -math.inf
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"expected a real number, got {type(x).__name__} {x!r}") from None


def _as_bits(bits: Any, spec: FloatFormat) -> int:
    """``bits`` as an int in [0, 2**total_bits); a bit string like "0 | 01111 | 0000000000" is
    parsed. Raises TypeError for non-integers, ValueError when out of range."""
    if isinstance(bits, str):
        return parse_bits(bits, spec)
    if isinstance(bits, bool):
        raise TypeError(f"bits must be an int, got bool {bits!r}")
    try:
        value = operator.index(bits)
    except TypeError:
        raise TypeError(
            f"bits must be an int (e.g. 0x3C00), got {type(bits).__name__} {bits!r}"
        ) from None
    top = 2**spec.total_bits - 1
    if not 0 <= value <= top:
        raise ValueError(
            f"bits {value} out of range for {spec.name}: a {spec.total_bits}-bit pattern is in "
            f"[0, {top}] (0x{top:X}); for a signed view such as torch's int16, pass bits & 0x{top:X}"
        )
    return value


def parse_bits(text: str, fmt: str | FloatFormat) -> int:
    """A bit string such as "0 | 01111 | 0000000000" (spaces, '|' and '_' ignored) as an int."""
    spec = get_format(fmt)
    digits = "".join(ch for ch in text if ch not in " |_\t")
    if digits.startswith("0b"):
        digits = digits[2:]
    if not digits or set(digits) - {"0", "1"}:
        raise ValueError(f"bit string must contain only 0 and 1 (and ' ', '|', '_'), got {text!r}")
    if len(digits) != spec.total_bits:
        raise ValueError(
            f"{spec.name} has {spec.total_bits} bits, the string {text!r} has {len(digits)}"
        )
    return int(digits, 2)


def _split(bits: int, spec: FloatFormat) -> tuple[int, int, int]:
    mantissa = bits & (2**spec.mantissa_bits - 1)
    exponent = (bits >> spec.mantissa_bits) & spec.exponent_all_ones
    sign = bits >> (spec.total_bits - 1)
    return sign, exponent, mantissa


# ------------------------------------------------------------------------------ decode / encode


@dataclass(frozen=True)
class Fields:
    """A bit pattern taken apart. ``exponent`` is unbiased (subnormals: the minimum exponent;
    zero, inf and NaN: None); ``significand`` is 1.m for normals, 0.m for subnormals."""

    fmt: str
    bits: int
    sign: int
    exponent_field: int
    mantissa_field: int
    exponent: int | None
    significand: float | None
    kind: str  # "normal", "subnormal", "zero", "inf" or "nan"
    value: float

    def formula(self) -> str:
        """The value as the lesson writes it, e.g. "(-1)^0 x 2^(1) x 1.5 = 3.0"."""
        if self.kind in ("zero", "inf", "nan"):
            return f"{self.kind} ({'-' if self.sign else '+'})"
        return f"(-1)^{self.sign} x 2^({self.exponent}) x {self.significand!r} = {self.value!r}"


def _kind_and_value(
    sign: int, exponent: int, mantissa: int, spec: FloatFormat
) -> tuple[str, float]:
    """The textbook decoding of one (sign, exponent, mantissa) triple."""
    m_bits, all_ones = spec.mantissa_bits, spec.exponent_all_ones
    if spec.has_inf and exponent == all_ones:
        kind, magnitude = ("inf", math.inf) if mantissa == 0 else ("nan", math.nan)
    elif not spec.has_inf and exponent == all_ones and mantissa == 2**m_bits - 1:
        kind, magnitude = "nan", math.nan
    elif exponent == 0:
        # subnormal: 0.mantissa x 2^(1 - bias); mantissa 0 is zero
        kind = "zero" if mantissa == 0 else "subnormal"
        magnitude = math.ldexp(mantissa, spec.min_exponent - m_bits)
    else:
        # normal: 1.mantissa x 2^(exponent - bias), the implicit leading 1 made explicit
        kind = "normal"
        magnitude = math.ldexp(2**m_bits + mantissa, exponent - spec.bias - m_bits)
    if kind == "nan":
        return kind, math.nan
    return kind, -magnitude if sign else magnitude


def decode(bits: int | str, fmt: str) -> float:
    """The value of a bit pattern: (-1)^sign x 2^(exponent - bias) x 1.mantissa for normals,
    (-1)^sign x 2^(1 - bias) x 0.mantissa for subnormals, plus the format's inf/NaN codes."""
    spec = get_format(fmt)
    bits = _as_bits(bits, spec)
    return _kind_and_value(*_split(bits, spec), spec)[1]


def _round_fp32_to_tf32(t32: torch.Tensor) -> torch.Tensor:
    """RNE of fp32 values to 10 mantissa bits, by integer arithmetic on the bits."""
    bits = t32.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    dropped = 2**_TF32_DROPPED
    keep_lsb = (bits >> _TF32_DROPPED) & 1
    # add just under half of the dropped range, plus one more if the kept LSB is odd (ties to even);
    # a carry runs into the exponent, so the largest values round up to inf as they should
    rounded = (bits + (dropped // 2 - 1) + keep_lsb) & ~(dropped - 1)
    quiet_nan = (bits & ~(dropped - 1)) | 0x00400000  # keep NaNs NaN (and quiet), keep their sign
    rounded = torch.where(torch.isnan(t32), quiet_nan, rounded)
    signed = torch.where(rounded >= 2**31, rounded - 2**32, rounded)
    return signed.to(torch.int32).view(torch.float32)


def _to_float32_tensor(t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        if isinstance(t, (str, bytes)):
            raise TypeError(f"expected a tensor or numbers, got {type(t).__name__} {t!r}")
        try:
            t = torch.as_tensor(t, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"expected a tensor or numbers, got {type(t).__name__}: {exc}"
            ) from None
    if t.is_complex() or t.dtype is torch.bool:
        raise TypeError(f"expected a real tensor, got dtype {t.dtype}")
    return t.to(torch.float32)


def round_to(t: Any, fmt: str) -> torch.Tensor:
    """A new fp32 tensor holding ``t`` rounded (to nearest, ties to even) into ``fmt``, with
    torch's own overflow rules (see the module docstring). Accepts a tensor or numbers."""
    spec = get_format(fmt)
    t32 = _to_float32_tensor(t)
    if spec.name == "fp32":
        return t32.clone()
    if spec.name == "tf32":
        return _round_fp32_to_tf32(t32)
    return t32.to(spec.torch_dtype).to(torch.float32)


def encode(x: float, fmt: str) -> int:
    """The bit pattern of the value in ``fmt`` nearest to ``x`` (ties to even), as torch casts it
    (``x`` is first rounded to fp32, as torch does). Returns an unsigned int of the format's width."""
    spec = get_format(fmt)
    t32 = torch.tensor([_as_real(x)], dtype=torch.float32)
    if spec.name == "tf32":
        return (
            int(_round_fp32_to_tf32(t32).view(torch.int32).item()) & 0xFFFFFFFF
        ) >> _TF32_DROPPED
    cast = t32 if spec.name == "fp32" else t32.to(spec.torch_dtype)
    return int(cast.view(_INT_VIEW[spec.total_bits]).item()) & (2**spec.total_bits - 1)


def fields(x: Any = None, fmt: str = "fp32", *, bits: int | None = None) -> Fields:
    """Sign, exponent and mantissa of ``x`` rounded into ``fmt`` (or of the pattern ``bits``):
    ``fields(3.0, "bf16")``, ``fields(bits=0x3C00, fmt="fp16")``, ``fields("0|01111|0000000000", "fp16")``."""
    spec = get_format(fmt)
    if (x is None) == (bits is None):
        raise TypeError("pass exactly one of a value x or bits=...")
    if bits is not None or isinstance(x, str):
        pattern = _as_bits(bits if bits is not None else x, spec)
    else:
        pattern = encode(x, spec.name)
    sign, exponent_field, mantissa_field = _split(pattern, spec)
    kind, value = _kind_and_value(sign, exponent_field, mantissa_field, spec)
    exponent = significand = None
    if kind == "normal":
        exponent = exponent_field - spec.bias
        significand = 1 + math.ldexp(mantissa_field, -spec.mantissa_bits)
    elif kind == "subnormal":
        exponent = spec.min_exponent
        significand = math.ldexp(mantissa_field, -spec.mantissa_bits)
    return Fields(
        spec.name, pattern, sign, exponent_field, mantissa_field, exponent, significand, kind, value
    )


# ----------------------------------------------------------------------------- spacing


def ulp(x: float, fmt: str) -> float:
    """Unit in the last place of ``x`` rounded into ``fmt``: the spacing of the format's values in
    that binade, 2^(max(e, emin) - mantissa_bits), like ``math.ulp`` (ulp(0) is the smallest
    subnormal; ulp(+-inf) is inf; ulp(NaN) is NaN)."""
    spec = get_format(fmt)
    value = _as_real(x)
    if math.isinf(value):  # before rounding: fp8_e4m3 has no inf, and torch saturates it to 448
        return math.inf
    info = fields(value, spec.name)
    if info.kind == "nan":
        return math.nan
    if info.kind == "inf":
        return math.inf
    exponent = spec.min_exponent if info.kind == "zero" else info.exponent
    return math.ldexp(1.0, exponent - spec.mantissa_bits)


def next_up(x: float, fmt: str) -> float:
    """The smallest value of ``fmt`` greater than ``x``. Beyond the largest finite value it is inf
    in the IEEE-like formats and NaN in fp8_e4m3 (no larger value exists there)."""
    spec = get_format(fmt)
    x = _as_real(x)
    if math.isnan(x) or x == math.inf:  # nothing above +inf; fp8_e4m3 has no inf at all
        return math.inf if x == math.inf and spec.has_inf else math.nan
    nearest = decode(encode(x, spec.name), spec.name)
    if nearest > x:
        return nearest
    if nearest == 0:
        return spec.min_subnormal
    if nearest == -math.inf:
        return -spec.max
    if nearest < 0:  # one step towards zero: the magnitude's pattern minus one
        return decode(encode(nearest, spec.name) - 1, spec.name)
    if nearest == spec.max:
        return math.inf if spec.has_inf else math.nan
    return decode(encode(nearest, spec.name) + 1, spec.name)


def next_down(x: float, fmt: str) -> float:
    """The largest value of ``fmt`` less than ``x`` (``-next_up(-x)``)."""
    return -next_up(-_as_real(x), fmt)


def representable_values(fmt: str) -> torch.Tensor:
    """Every finite non-negative value of ``fmt``, ascending, as float64 (fp32 is refused: 2^31
    values). Made by torch's view-casts of every bit pattern (tf32: the top 19 bits of fp32)."""
    spec = get_format(fmt)
    if spec.total_bits > 19:
        raise ValueError(
            f"{spec.name} has too many values to list; use a format of 19 bits or fewer"
        )
    patterns = torch.arange(2 ** (spec.total_bits - 1), dtype=torch.int64)  # sign bit 0
    if spec.name == "tf32":
        values = (patterns << _TF32_DROPPED).to(torch.int32).view(torch.float32)
    else:
        values = patterns.to(_INT_VIEW[spec.total_bits]).view(spec.torch_dtype)
    values = values.to(torch.float64)
    return values[torch.isfinite(values)]


# ----------------------------------------------------------------------------- display


def format_bits(bits: int | str, fmt: str, sep: str = " | ") -> str:
    """The pattern as sign | exponent | mantissa, e.g. "0 | 01111 | 0000000000" for 1.0 in fp16."""
    spec = get_format(fmt)
    digits = format(_as_bits(bits, spec), f"0{spec.total_bits}b")
    return sep.join(
        (digits[:1], digits[1 : 1 + spec.exponent_bits], digits[1 + spec.exponent_bits :])
    )


def finfo_table() -> list[dict[str, Any]]:
    """One row per format, computed from ``FORMATS``; ``finfo_agrees`` says whether torch.finfo
    gives the same bits, max, smallest normal and eps (None for tf32, which torch has no dtype for)."""
    mismatches = torch_finfo_mismatches()
    rows = []
    for name, spec in FORMATS.items():
        rows.append(
            {
                "format": name,
                "bits": spec.total_bits,
                "sign": spec.sign_bits,
                "exponent": spec.exponent_bits,
                "mantissa": spec.mantissa_bits,
                "bias": spec.bias,
                "max": spec.max,
                "min_normal": spec.min_normal,
                "min_subnormal": spec.min_subnormal,
                "eps": spec.eps,
                "digits": round(spec.significant_digits, 2),
                "inf": spec.has_inf,
                "overflow": spec.on_overflow,
                "torch_dtype": str(spec.torch_dtype).removeprefix("torch.")
                if spec.torch_dtype
                else None,
                "finfo_agrees": None if spec.torch_dtype is None else not mismatches.get(name),
            }
        )
    return rows


def finfo_table_text() -> str:
    """``finfo_table()`` as a fixed-width text table (deterministic, for printed outputs). The
    ``finfo_agrees`` column is left out: notebook 01 compares with ``torch.finfo`` in the next cell."""
    columns = ["format", "bits", "exponent", "mantissa", "bias", "max", "min_normal"]
    columns += ["min_subnormal", "eps", "digits", "inf"]
    cells = [columns]
    for row in finfo_table():
        cells.append([_cell(row[c]) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def torch_finfo_mismatches() -> dict[str, list[str]]:
    """For each torch-backed format, the fields where ``FORMATS`` and ``torch.finfo`` disagree."""
    out = {}
    for name, spec in FORMATS.items():
        if spec.torch_dtype is None:
            continue
        info = torch.finfo(spec.torch_dtype)
        pairs = {
            "bits": (spec.total_bits, info.bits),
            "max": (spec.max, info.max),
            "min": (-spec.max, info.min),
            "min_normal": (spec.min_normal, info.smallest_normal),
            "eps": (spec.eps, info.eps),
        }
        out[name] = [f"{k}: ours {a!r}, torch {b!r}" for k, (a, b) in pairs.items() if a != b]
    return out
