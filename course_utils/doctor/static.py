"""Static checks: read a training script (``.py``) or a notebook's code cells (``.ipynb``) with
Python's ``ast`` -- never executing it -- and find the precision mistakes the course teaches.

Names are followed through simple assignments (``scaler = torch.amp.GradScaler("cuda")``,
``args = SFTConfig(fp16=True)``, ``model = AutoModelForCausalLM.from_pretrained(..., dtype=...)``,
``model.half()``), keywords are read from literals, from names bound to literals and from
``**dict`` literals. Anything computed at run time (``fp16=args.fp16``) is unknown and never raises
a finding: the doctor prefers a missed problem to a false alarm. A notebook's cells are read in
order as one program.

Blind spots (what it cannot see): values computed at run time or read from a config file or the
command line; models, arguments and scalers made inside helper functions of other modules (the
course's own ``finetune.sft_config(precision=...)`` included); branches (both sides of an ``if``
count, and an ``unscale_`` under an ``if`` counts as called); a checkpoint's real dtype (only
``dtype=``/``.half()``-style casts and the names of bf16-pretrained families, T5 and Gemma).

Taught in notebook 09.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
from dataclasses import dataclass, field

from course_utils.doctor.checkpoint import saved_dtype, short_name
from course_utils.doctor.machine import Machine
from course_utils.doctor.report import Finding, make_finding

UNKNOWN = object()  # a value the doctor cannot know without running the code
UNREAD = "**"  # the key kwargs() gives a **mapping it cannot read
# torch.cuda.amp / torch.cpu.amp names that warn (torch.cuda.amp.common does not)
DEPRECATED_AMP = {"autocast", "GradScaler", "custom_fwd", "custom_bwd"}

TRL_CONFIGS = {
    "SFTConfig", "DPOConfig", "GRPOConfig", "KTOConfig", "ORPOConfig", "CPOConfig", "RewardConfig",
    "PPOConfig", "RLOOConfig", "OnlineDPOConfig", "GKDConfig", "PRMConfig", "BCOConfig",
    "NashMDConfig", "XPOConfig",
}  # fmt: skip
ARGS_CLASSES = {"TrainingArguments", "Seq2SeqTrainingArguments"} | TRL_CONFIGS
OPTIMIZERS = {"SGD", "Adam", "AdamW", "Adafactor", "RMSprop", "Adagrad", "Adamax", "NAdam",
              "RAdam", "Lion", "LBFGS", "SparseAdam", "ASGD", "Rprop"}  # fmt: skip
NOT_MODELS = re.compile(r"Tokenizer|Config|Processor|Extractor|Arguments|Scaler|Dataset|Collator")
# tokenizers' trainers (tokenizers.trainers.BpeTrainer...) train vocabularies, not models
TOKENIZER_TRAINERS = re.compile(r"(^|\.)trainers\.|(Bpe|WordPiece|Unigram|WordLevel)Trainer$")
# Checkpoints pretrained in bf16 whose activations outgrow fp16 (huggingface/transformers#5651: T5,
# #36822: Gemma 3). A name says how a family was pretrained, not the dtype its checkpoint is saved in.
BF16_PRETRAINED = re.compile(r"(^|[/_-])(t5|mt5|byt5|flan-t5|t5-v1_1|ul2|gemma[\w.-]*)", re.I)


class DoctorInputError(ValueError):
    """A file the doctor cannot read or parse (the command line exits with status 2)."""


# --------------------------------------------------------------------------- reading files
@dataclass
class Source:
    """The program to analyse: one module, and for a notebook the line range of each cell."""

    path: pathlib.Path
    tree: ast.Module
    cells: list[tuple[int, int, int]] = field(default_factory=list)  # (cell no., first, last)

    def where(self, line: int) -> tuple[str, int, int | None]:
        """("line 12", 12, None) for a script; ("cell 4, line 3", 3, 4) for a notebook."""
        for number, first, last in self.cells:
            if first <= line <= last:
                local = line - first + 1
                return f"cell {number}, line {local}", local, number
        return f"line {line}", line, None


def _blank_magics(code: str) -> str | None:
    """IPython magics and shell escapes become blank lines (line numbers stay); a cell magic other
    than %%time / %%timeit / %%capture makes the whole cell non-Python (None)."""
    lines = code.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        if not re.match(r"\s*%%(time|timeit|capture)\b", lines[0]):
            return None
        lines[0] = ""
    out = []
    for text in lines:
        stripped = text.lstrip()
        if stripped.startswith(("%", "!")):
            indent = text[: len(text) - len(stripped)]
            out.append(indent + "pass" if indent else "")
        else:
            out.append(text)
    return "\n".join(out)


def _parse(code: str, label: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        raise DoctorInputError(
            f"cannot parse {label}: {exc.msg} (line {exc.lineno}); the doctor reads Python source"
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise DoctorInputError(f"cannot parse {label}: {exc}") from None
    except (RecursionError, MemoryError):
        raise DoctorInputError(f"cannot parse {label}: it is nested too deeply") from None


def read_source(path) -> Source:
    """Read and parse a ``.py`` file or a notebook's code cells. DoctorInputError on a missing
    file, a directory, non-UTF-8 text, invalid notebook JSON or a syntax error."""
    if not isinstance(path, (str, pathlib.Path)):
        raise TypeError(f"script must be a path (str or pathlib.Path), got {type(path).__name__}")
    p = pathlib.Path(path)
    if not p.exists():
        raise DoctorInputError(f"no such file: {p}")
    if p.is_dir():
        raise DoctorInputError(f"{p} is a directory: give a .py script or a .ipynb notebook")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DoctorInputError(
            f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise DoctorInputError(f"cannot read {p}: {exc.strerror}") from None
    if p.suffix != ".ipynb":
        return Source(p, _parse(text, str(p)))
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DoctorInputError(f"{p} is not a valid notebook (JSON with 'cells'): {exc}") from None
    body: list[ast.stmt] = []
    ranges = []
    offset = 0
    for number, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        code = "".join(src) if isinstance(src, list) else str(src)
        python = _blank_magics(code)
        if python is None:
            continue
        tree = _parse(python, f"{p} cell {number}")
        n_lines = python.count("\n") + 1
        ast.increment_lineno(tree, offset)
        body.extend(tree.body)
        ranges.append((number, offset + 1, offset + n_lines))
        offset += n_lines
    return Source(p, ast.Module(body=body, type_ignores=[]), ranges)


# --------------------------------------------------------------------------- small AST helpers
def dotted(node) -> str | None:
    """``torch.cuda.amp.autocast`` -> "torch.cuda.amp.autocast"; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


@dataclass
class Info:
    """What a name is bound to."""

    kind: str  # args, scaler, model, optimizer, dict, const, scaled, derived, param
    line: int
    data: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the walker
class _Walker(ast.NodeVisitor):
    def __init__(self, base_dir: pathlib.Path | None = None) -> None:
        self.base_dir = base_dir  # where relative checkpoint folders are looked up
        self.scopes: list[dict[str, Info]] = [{}]
        self.infos: dict[int, Info | None] = {}  # id(call node) -> its classification
        self.autocast: list[dict] = []  # the enclosing autocast blocks (this scope)
        self.no_grad = 0
        self.events: list[tuple[str, int]] = []  # clip analysis events of this scope
        self.last_forward: Info | None = None
        self.last_autocast: str | None = None  # dtype of the last autocast block (this scope)
        # facts
        self.args_sites: list[Info] = []
        self.scalers: list[Info] = []
        self.model_sites: list[Info] = []  # 16-bit model loads and casts
        self.autocast_sites: list[dict] = []
        self.forwards: list[tuple[int, Info, str | None]] = []  # (line, model, autocast dtype)
        self.scale_calls: list[tuple[int, Info | None, Info | None, str | None]] = []
        self.trainers: list[tuple[int, Info | None, Info | None]] = []
        self.unknown_precision = False  # a Trainer whose arguments the doctor cannot read
        self.deprecated: list[tuple[int, str]] = []
        self.backward_in_autocast: list[int] = []
        self.clip_unscaled: list[int] = []
        self.policies: list[tuple[int, str]] = []
        self.bnb: list[tuple[int, Info]] = []  # (config line, the model loaded with it)
        self.optimizer_saves: list[int] = []
        self.scaler_saved = False
        self.tf32_on = False
        self.training: list[int] = []
        self.both_flags: list[tuple[int, str]] = []
        self.attrs: dict[str, Info] = {}  # self.scaler, trainer.args...: not scoped
        self.script_like = False  # trains at module level or has `if __name__ == "__main__":`

    # ---------------------------------------------------------------- scopes and names
    def lookup(self, name: str) -> Info | None:
        for scope in reversed(self.scopes):
            if name in scope:
                info = scope[name]
                return None if info.kind == "param" else info
        return None

    def bind(self, target, info: Info | None) -> None:
        if isinstance(target, ast.Name):
            if info is None:
                self.scopes[-1][target.id] = Info("param", getattr(target, "lineno", 0))
            else:
                self.scopes[-1][target.id] = info
        elif isinstance(target, ast.Attribute) and dotted(target):
            if info is None:
                self.attrs.pop(dotted(target), None)
            else:
                self.attrs[dotted(target)] = info
        elif isinstance(target, (ast.Tuple, ast.List)) and target.elts:
            # model, tokenizer = load_model_and_tokenizer(...): the model is the first element
            if info is not None and info.kind == "derived":  # logits, loss = model(x, y)
                for elt in target.elts:
                    self.bind(elt, info)
                return
            self.bind(target.elts[0], info if info and info.kind == "model" else None)
            for elt in target.elts[1:]:
                self.bind(elt, None)

    def info_of(self, node) -> Info | None:
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Call):
            return self.infos.get(id(node))
        if isinstance(node, ast.Attribute) and dotted(node) in self.attrs:
            return self.attrs[dotted(node)]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # out.loss where out came from a forward
            base = self.lookup(node.value.id)
            if base is not None and base.kind == "derived":
                return base
        return None

    def value(self, node):
        """A literal the code gives (True, "fp16", "bf16" for torch.bfloat16), else UNKNOWN."""
        if node is None:
            return UNKNOWN
        if isinstance(node, ast.Constant):
            return node.value
        name = dotted(node)
        if name:
            if name.startswith("torch.") and short_name(name) is not None:
                return short_name(name)  # torch.bfloat16 -> "bf16"
            if isinstance(node, ast.Name):
                info = self.lookup(node.id)
                if info is not None and info.kind == "const":
                    return info.data["value"]
        return UNKNOWN

    def dtype(self, node) -> str | None:
        v = self.value(node)
        if v == "auto":
            return "auto"
        return short_name(v) if isinstance(v, str) else None

    def kwargs(self, call: ast.Call) -> dict[str, ast.AST]:
        out: dict[str, ast.AST] = {}
        for kw in call.keywords:
            if kw.arg is not None:
                out[kw.arg] = kw.value
                continue
            src = kw.value
            info = self.lookup(src.id) if isinstance(src, ast.Name) else None
            if info is not None and info.kind == "dict":
                out.update(info.data["items"])
            elif isinstance(src, ast.Dict):
                out.update(self._dict_items(src))
            elif isinstance(src, ast.Call) and call_name(src) == "dict" and not src.args:
                out.update({k.arg: k.value for k in src.keywords if k.arg})
            else:  # **something the doctor cannot read: any keyword may be in it
                out[UNREAD] = src
        return out

    def _kw(self, kw: dict, name: str, default):
        """A keyword's literal value; its default when absent, UNKNOWN when absent but a
        ``**mapping`` the doctor cannot read may hold it."""
        if name in kw:
            return self.value(kw[name])
        return UNKNOWN if UNREAD in kw else default

    @staticmethod
    def _dict_items(node: ast.Dict) -> dict[str, ast.AST]:
        items: dict[str, ast.AST] = {}
        for k, v in zip(node.keys, node.values, strict=False):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                items[k.value] = v
            elif k is None or not isinstance(k, ast.Constant):  # {**other} or a computed key
                items[UNREAD] = v
        return items

    # ---------------------------------------------------------------- statements
    def _scoped(self, node, params: list[str], body) -> None:
        saved = (self.autocast, self.no_grad, self.events, self.last_forward, self.last_autocast)
        self.scopes.append({name: Info("param", node.lineno) for name in params})
        self.autocast, self.no_grad, self.events, self.last_forward = [], 0, [], None
        self.last_autocast = None
        for stmt in body:
            self.visit(stmt)
        self._close_scope()
        self.scopes.pop()
        (self.autocast, self.no_grad, self.events, self.last_forward, self.last_autocast) = saved

    def visit_FunctionDef(self, node) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d]:
            self.visit(default)
        a = node.args
        params = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
        params += [x.arg for x in (a.vararg, a.kwarg) if x]
        self._scoped(node, params, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node) -> None:
        self._scoped(node, [x.arg for x in node.args.args], [ast.Expr(node.body)])

    def visit_ClassDef(self, node) -> None:
        for item in node.bases + node.keywords + node.decorator_list:
            self.visit(item)
        self._scoped(node, [], node.body)

    def visit_Assign(self, node) -> None:
        self.visit(node.value)
        info = self._info_for_value(node.value)
        for target in node.targets:
            if isinstance(target, ast.Attribute):
                self._assign_attribute(target, node.value)
                self.visit(target.value)
                self.bind(target, info)
            elif isinstance(target, ast.Subscript):
                self.visit(target)
            else:
                self.bind(target, info)

    def visit_AnnAssign(self, node) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.bind(node.target, self._info_for_value(node.value))

    def _info_for_value(self, value) -> Info | None:
        if isinstance(value, ast.Constant) or (dotted(value) or "").startswith("torch."):
            v = self.value(value)
            if v is not UNKNOWN:
                return Info("const", value.lineno, {"value": v})
        if isinstance(value, ast.Dict):
            return Info("dict", value.lineno, {"items": self._dict_items(value)})
        if isinstance(value, ast.Call) and call_name(value) == "dict" and not value.args:
            return Info("dict", value.lineno, {"items": self.kwargs(value)})
        info = self.info_of(value)
        if info is not None:
            return info
        if isinstance(value, ast.IfExp):  # ctx = nullcontext() if cpu else torch.autocast(...)
            for branch in (value.body, value.orelse):
                info = self.info_of(branch)
                if info is not None and info.kind == "autocast":
                    return info
        forward = self._forward_in(value)
        if forward is not None:
            return forward
        return None

    def _forward_in(self, value) -> Info | None:
        """A value computed from a model's forward (``loss = model(**batch).loss``)."""
        for sub in ast.walk(value):
            if isinstance(sub, ast.Call):
                info = self.infos.get(id(sub))
                if info is not None and info.kind in ("derived", "scaled"):
                    return info
        return None

    def _assign_attribute(self, target: ast.Attribute, value) -> None:
        name = dotted(target)
        v = self.value(value)
        if name in ("torch.backends.cuda.matmul.allow_tf32",) and v is True:
            self.tf32_on = True
        if name and name.endswith("fp32_precision") and v == "tf32":
            self.tf32_on = True
        if isinstance(target.value, ast.Name):
            info = self.lookup(target.value.id)
            if info is not None and info.kind == "args" and target.attr in ("fp16", "bf16"):
                info.data[target.attr] = v if v is not UNKNOWN else UNKNOWN
                if info.data.get("fp16") is True and info.data.get("bf16") is True:
                    self.both_flags.append((target.lineno, info.data["name"]))

    def visit_If(self, node) -> None:
        test = node.test
        if (
            isinstance(test, ast.Compare)
            and dotted(test.left) == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
        ):
            self.script_like = True
        self.generic_visit(node)

    def visit_With(self, node) -> None:
        pushed = 0
        grad_off = 0
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.bind(item.optional_vars, None)
            ctx = item.context_expr
            bound = self.info_of(ctx)
            if bound is not None and bound.kind == "autocast":
                site = bound.data
                if site["enabled"] is not False:
                    self.autocast.append(site)
                    self.autocast_sites.append(site)
                    pushed += 1
            if isinstance(ctx, ast.Call) and call_name(ctx) in ("no_grad", "inference_mode"):
                grad_off += 1
        self.no_grad += grad_off
        for stmt in node.body:
            self.visit(stmt)
        self.no_grad -= grad_off
        for _ in range(pushed):
            self.last_autocast = self.autocast.pop()["dtype"]

    visit_AsyncWith = visit_With

    def _autocast_site(self, call: ast.Call) -> dict:
        name = dotted(call.func) or ""
        kw = self.kwargs(call)
        legacy = (
            name.startswith(("torch.cuda.amp", "torch.cpu.amp"))
            or name == "autocast"
            and ("device_type" not in kw and not call.args)
        )
        if name.startswith("torch.cpu.amp"):
            device = "cpu"
        elif name.startswith("torch.cuda.amp"):
            device = "cuda"
        else:
            device = self.value(kw.get("device_type", call.args[0] if call.args else None))
        dtype_node = kw.get("dtype")
        if dtype_node is None and not legacy and len(call.args) > 1:
            dtype_node = call.args[1]
        dtype = self.dtype(dtype_node) if dtype_node is not None else None
        if dtype_node is None:
            dtype = {"cuda": "fp16", "cpu": "bf16"}.get(device) if isinstance(device, str) else None
        enabled = self._kw(kw, "enabled", True)
        return {"line": call.lineno, "device": device, "dtype": dtype, "enabled": enabled}

    # ---------------------------------------------------------------- expressions
    def visit_ImportFrom(self, node) -> None:
        if node.module in ("torch.cuda.amp", "torch.cpu.amp"):
            names = [a.name for a in node.names if a.name in DEPRECATED_AMP]
            if names:
                self.deprecated.append(
                    (node.lineno, f"from {node.module} import {', '.join(names)}")
                )

    def visit_Attribute(self, node) -> None:
        base = dotted(node.value)
        if base in ("torch.cuda.amp", "torch.cpu.amp") and node.attr in DEPRECATED_AMP:
            self.deprecated.append((node.lineno, f"{base}.{node.attr}"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        self.infos[id(node)] = self._classify(node)

    def _classify(self, call: ast.Call) -> Info | None:  # noqa: C901 -- one dispatch table
        name = call_name(call)
        full = dotted(call.func) or ""
        line = call.lineno
        kw = self.kwargs(call)
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        recv_info = self.info_of(receiver) if receiver is not None else None

        if name == "autocast":
            return Info("autocast", line, self._autocast_site(call))
        if name in ARGS_CLASSES or name == "Accelerator":
            return self._args_site(call, name, kw)
        if name in ("GradScaler", "ShardedGradScaler"):
            enabled = self._kw(kw, "enabled", True)
            info = Info("scaler", line, {"enabled": enabled})
            self.scalers.append(info)
            return info
        if name == "BitsAndBytesConfig":
            four_bit = self.value(kw.get("load_in_4bit")) is True
            compute = kw.get("bnb_4bit_compute_dtype")
            if (
                four_bit
                and UNREAD not in kw
                and (
                    compute is None or self.value(compute) is None or self.dtype(compute) == "fp32"
                )
            ):
                return Info("bnb", line)  # judged where a model is loaded with it
            return None
        if name in ("MixedPrecisionPolicy", "MixedPrecision"):
            param = self.dtype(kw.get("param_dtype", call.args[0] if call.args else None))
            reduce_node = kw.get("reduce_dtype", call.args[1] if len(call.args) > 1 else None)
            reduce = None if reduce_node is None else self.value(reduce_node)
            if param == "bf16" and (reduce is None or self.dtype(reduce_node) == "bf16"):
                what = (
                    "not given" if reduce_node is None else ("None" if reduce is None else "bf16")
                )
                self.policies.append((line, f"{name}(param_dtype=bf16) with reduce_dtype {what}"))
            if param == "bf16":
                self.model_sites.append(Info("policy", line, {"dtype": "bf16"}))
            return None
        if name == "set_float32_matmul_precision":
            if self.value(call.args[0] if call.args else kw.get("precision")) in ("high", "medium"):
                self.tf32_on = True
            return None
        if name.endswith("Trainer") and name[:1].isupper() and not TOKENIZER_TRAINERS.search(full):
            model = kw.get("model", call.args[0] if call.args else None)
            args = kw.get("args", call.args[1] if len(call.args) > 1 else None)
            m = self._model_from(model)
            if m is not None and "peft_config" in kw:
                m = Info("model", m.line, {**m.data, "peft": True})
            a = self.info_of(args) if args is not None else None
            a = a if a is not None and a.kind == "args" else None
            self.trainers.append((line, m, a))
            if a is None and (args is not None or name != "Trainer"):
                # args built elsewhere (a parser, a helper), or a TRL trainer's own default config
                self.unknown_precision = True
            self.training.append(line)
            self.script_like = True
            return None
        if name in ("get_peft_model", "prepare_model_for_kbit_training") or (
            name == "from_pretrained" and "Peft" in full
        ):
            base = self.info_of(call.args[0]) if call.args else None
            data = dict(base.data) if base is not None and base.kind == "model" else {"dtype": None}
            if base is not None and base.kind == "model":
                base.data["peft"] = True
            return Info("model", line, {**data, "peft": True})
        if name in ("from_pretrained", "from_config") or name.startswith("load_model"):
            if NOT_MODELS.search(full):
                return None
            dtype = self.dtype(kw.get("dtype", kw.get("torch_dtype")))
            ident = self.value(call.args[0]) if call.args else UNKNOWN
            if "pretrained_model_name_or_path" in kw:
                ident = self.value(kw["pretrained_model_name_or_path"])
            ident = ident if isinstance(ident, str) else None
            search = [self.base_dir] if self.base_dir else []
            ckpt = saved_dtype(ident, search) if ident else None
            info = Info("model", line, {"dtype": dtype, "id": ident, "ckpt": ckpt})
            if dtype in ("bf16", "fp16"):
                self.model_sites.append(info)
            bnb = self.info_of(kw["quantization_config"]) if "quantization_config" in kw else None
            if bnb is not None and bnb.kind == "bnb":
                self.bnb.append((bnb.line, info))
            return info
        if name == "deepcopy" and call.args:  # copy.deepcopy(model): a model with the same dtype
            base = self.info_of(call.args[0])
            if base is not None and base.kind == "model":
                return Info("model", line, dict(base.data))
            return None
        if (
            name in ("half", "bfloat16", "float", "to")
            and recv_info is not None
            and (recv_info.kind == "model")
        ):
            dtype = {"half": "fp16", "bfloat16": "bf16", "float": "fp32"}.get(name)
            if name == "to":
                for arg in list(call.args) + list(kw.values()):
                    dtype = self.dtype(arg) or dtype
            if dtype is None:
                return recv_info
            info = Info("model", line, {**recv_info.data, "dtype": dtype, "cast": True})
            if dtype in ("bf16", "fp16"):
                self.model_sites.append(info)
            if isinstance(receiver, ast.Name):  # nn.Module casts are in place
                self.scopes[-1][receiver.id] = info
            elif dotted(receiver) in self.attrs:
                self.attrs[dotted(receiver)] = info
            return info
        if name in ("cuda", "cpu", "train", "eval", "requires_grad_", "to_empty") and (
            recv_info is not None and recv_info.kind == "model"
        ):
            return recv_info  # the same module, same dtype
        if name == "Parameter":
            for sub in ast.walk(call):
                if isinstance(sub, ast.Call) and sub is not call:
                    dtype = self.dtype(self.kwargs(sub).get("dtype"))
                    if dtype:
                        return Info("model", line, {"dtype": dtype, "param": True})
            return Info("model", line, {"dtype": None, "param": True})
        if full.startswith("torch.optim.") and name[:1].isupper() or name in OPTIMIZERS:
            return Info("optimizer", line)
        if name == "scale" and receiver is not None:
            scaler = recv_info if recv_info is not None and recv_info.kind == "scaler" else None
            if scaler is not None and scaler.data["enabled"] is False:
                return None
            linked = None
            for sub in ast.walk(call):
                info = self.info_of(sub) if isinstance(sub, ast.Name) else None
                if info is not None and info.kind in ("derived", "model"):
                    linked = info
            linked = linked or self.last_forward
            ac = self._current_autocast() or self.last_autocast
            self.scale_calls.append((line, scaler, linked, ac))
            return Info("scaled", line, {"scaler": scaler})
        if name == "backward":
            self.training.append(line)
            self.script_like = self.script_like or len(self.scopes) == 1
            if self.autocast:
                self.backward_in_autocast.append(line)
            scaled = recv_info is not None and recv_info.kind == "scaled"
            if scaled:
                self.events.append(("scaled_backward", line))
            return None
        if name == "unscale_":
            self.events.append(("unscale", line))
            return None
        if name == "update" and recv_info is not None and recv_info.kind == "scaler":
            self.events.append(("update", line))  # a new step: gradients start again
            return None
        if name in ("clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_") and (
            full in (name, f"utils.{name}") or full.endswith(f"nn.utils.{name}")
        ):
            self.events.append(("clip", line))
            return None
        if name == "state_dict" and dotted(receiver):
            who = recv_info
            last = dotted(receiver).rsplit(".", 1)[-1].lower()
            if (who is not None and who.kind == "scaler") or "scaler" in last:
                self.scaler_saved = True
            elif (who is not None and who.kind == "optimizer") or "optim" in last:
                self.optimizer_saves.append(line)
            return None
        if name == "train" and recv_info is None and receiver is not None:
            return None
        # a forward pass of a model the doctor follows
        if isinstance(call.func, (ast.Name, ast.Attribute)):
            info = self.info_of(call.func)
            if info is not None and info.kind == "model":
                return self._forward(line, info)
        if name and name[:1].isupper() and not NOT_MODELS.search(name):
            dtype = self.dtype(kw.get("dtype"))
            info = Info("model", line, {"dtype": dtype, "constructed": True})
            if dtype in ("bf16", "fp16"):
                self.model_sites.append(info)
            return info
        return None

    def _forward(self, line: int, model: Info) -> Info:
        dtype = self._current_autocast()
        if not self.no_grad:
            self.forwards.append((line, model, dtype))
        derived = Info("derived", line, {"model": model, "autocast": dtype})
        self.last_forward = derived
        return derived

    def _current_autocast(self) -> str | None:
        return self.autocast[-1]["dtype"] if self.autocast else None

    def _model_from(self, node) -> Info | None:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return Info("model", node.lineno, {"dtype": None, "id": node.value})
        info = self.info_of(node)
        return info if info is not None and info.kind == "model" else None

    def _args_site(self, call: ast.Call, name: str, kw: dict) -> Info:
        line = call.lineno
        if name == "Accelerator":
            mp = self.value(kw.get("mixed_precision"))
            fp16 = mp == "fp16" if mp is not UNKNOWN else UNKNOWN
            bf16 = mp == "bf16" if mp is not UNKNOWN else UNKNOWN
            data = {"name": name, "fp16": fp16, "bf16": bf16, "bf16_default": False,
                    "use_cpu": self.value(kw.get("cpu")) is True, "tf32": None, "fsdp": False}  # fmt: skip
        else:
            fp16 = self._kw(kw, "fp16", False)
            bf16 = self._kw(kw, "bf16", False)
            default = False
            if name in TRL_CONFIGS and "bf16" not in kw and UNREAD not in kw:
                default = True
                bf16 = (not fp16) if fp16 is not UNKNOWN else UNKNOWN
            fsdp = self._kw(kw, "fsdp", False)
            data = {
                "name": name,
                "fp16": fp16,
                "bf16": bf16,
                "bf16_default": default,
                "use_cpu": any(self.value(kw.get(k)) is True for k in ("use_cpu", "no_cuda")),
                # False only when the code says so (absent, or a literal False)
                "use_cpu_off": all(
                    self._kw(kw, k, False) is False or self._kw(kw, k, False) is None
                    for k in ("use_cpu", "no_cuda")
                ),
                "tf32": self._kw(kw, "tf32", None),
                "fsdp": fsdp is not UNKNOWN and fsdp not in (False, None, ""),
            }
            if data["tf32"] is True:
                self.tf32_on = True
            if fp16 is True and bf16 is True and not default:
                self.both_flags.append((line, name))
        info = Info("args", line, data)
        self.args_sites.append(info)
        return info

    # ---------------------------------------------------------------- clip order
    def _close_scope(self) -> None:
        last = None
        for kind, line in self.events:
            if kind in ("scaled_backward", "unscale", "update"):
                last = kind
            elif kind == "clip" and last == "scaled_backward":
                self.clip_unscaled.append(line)

    def run(self, tree: ast.Module) -> _Walker:
        for stmt in tree.body:
            self.visit(stmt)
        self._close_scope()
        return self


# --------------------------------------------------------------------------- rules
def _dtype(model: Info | None) -> str | None:
    """The weights' dtype: given, or the dtype of a checkpoint found on this machine when it is
    loaded with transformers 5's default dtype="auto". A family's name says how it was pretrained
    (bf16 for T5 and Gemma), not how a checkpoint was saved (google/gemma-2-2b's config says
    float32), so a name alone never makes the weights bf16: unknown (None)."""
    if model is None:
        return None
    dtype = model.data.get("dtype")
    if dtype in (None, "auto") and model.data.get("ckpt"):
        return model.data["ckpt"]
    return None if dtype == "auto" else dtype


def _model_words(model: Info, at=lambda line: f"line {line}") -> str:
    ident = model.data.get("id")
    dtype = model.data.get("dtype")
    if model.data.get("ckpt") == "bf16" and not model.data.get("cast"):
        if dtype in (None, "auto"):
            return f"{ident!r} (saved in bf16, so loaded in bf16 by transformers 5's dtype='auto')"
        return f"{ident!r} (a checkpoint saved in bf16)"
    how = "cast to" if model.data.get("cast") else "loaded in"
    if ident and BF16_PRETRAINED.search(ident):
        if dtype in (None, "auto"):
            return f"{ident!r} (pretrained in bf16)"
        return f"{ident!r} (pretrained in bf16, {how} {dtype} at {at(model.line)})"
    return f"the model {how} {dtype} ({at(model.line)})"


def _bf16_model(model: Info | None) -> bool:
    """A model whose checkpoint (or weights) are bf16."""
    if model is None:
        return False
    ident = model.data.get("id")
    return (
        _dtype(model) == "bf16"
        or model.data.get("ckpt") == "bf16"
        or bool(ident and BF16_PRETRAINED.search(ident))
    )


def analyse(source: Source, machine: Machine) -> list[Finding]:  # noqa: C901 -- one rule per block
    """All static findings for one parsed file."""
    w = _Walker(source.path.resolve().parent).run(source.tree)
    out: list[Finding] = []

    def add(code: str, line: int, message: str) -> None:
        where, local, cell = source.where(line)
        out.append(make_finding(code, message, where, line=local, cell=cell))

    def at(line: int) -> str:
        return source.where(line)[0]

    for line, name in w.both_flags:
        add("fp16-and-bf16", line, f"{name} gets fp16=True and bf16=True: it raises ValueError "
            "(At most one of fp16 and bf16 can be True).")  # fmt: skip

    for site in w.args_sites:
        d = site.data
        if d["fp16"] is True and (d["use_cpu"] or not (machine.has_cuda or machine.mps)):
            why = "use_cpu=True" if d["use_cpu"] else f"{machine.label}"
            add("fp16-on-cpu", site.line, f"{d['name']}(fp16=True) without a CUDA device "
                f"({why}): the run trains in fp32, silently (no autocast, no GradScaler).")  # fmt: skip
        if d["bf16"] is True and d.get("use_cpu_off") and not (machine.has_cuda or machine.mps):
            how = " (TRL's default: neither bf16 nor fp16 given)" if d["bf16_default"] else ""
            add("bf16-needs-use-cpu", site.line, f"{d['name']}(bf16=True){how} without "
                f"use_cpu=True on {machine.label}: building it raises ValueError (Your setup "
                "doesn't support bf16/gpu).")  # fmt: skip
        if d["fsdp"] and d["bf16"] is True:
            w.policies.append((site.line, f"{d['name']}(fsdp=..., bf16=True): accelerate's FSDP "
                               "default policy reduces gradients in bf16"))  # fmt: skip

    if machine.bf16_emulated:
        sites = []
        for site in w.args_sites:
            if site.data["bf16"] is True and not site.data["use_cpu"]:
                how = (
                    " (TRL's default: neither bf16 nor fp16 given)"
                    if site.data["bf16_default"]
                    else ""
                )
                sites.append((site.line, f"{site.data['name']} asks for bf16{how}"))
        for site in w.autocast_sites:
            if site["dtype"] == "bf16" and site["device"] != "cpu":
                sites.append((site["line"], "bf16 autocast"))
        for model in w.model_sites:
            if model.data.get("dtype") == "bf16" and not model.data.get("param"):
                sites.append((model.line, "bf16 weights"))
        for line, what in sites:
            add("bf16-emulated", line, f"{what} on {machine.label}, which has no native bf16: "
                "accepted, but it runs on CUDA's bf16 emulation, without bf16 tensor cores (at a "
                "speed the course has not measured).")  # fmt: skip

    # model + precision, linked through a Trainer call
    for line, model, args in w.trainers:
        if model is None or args is None:
            continue
        d = args.data
        if d["fp16"] is True and _bf16_model(model):
            add("fp16-on-bf16-checkpoint", line, f"fp16=True trains {_model_words(model, at)} in "
                "fp16: its activations may outgrow fp16's 65504 and become inf/NaN.")  # fmt: skip
        if d["fp16"] is True and model.data.get("dtype") == "fp16" and not model.data.get("peft"):
            add("fp16-trainable-weights", model.line, f"{_model_words(model, at)} is trained with "
                f"fp16=True ({at(line)}): the GradScaler refuses fp16 gradients (ValueError: "
                "Attempting to unscale FP16 gradients).")  # fmt: skip
        if d["bf16"] is True and _dtype(model) == "bf16" and not model.data.get("peft"):
            add("pure-bf16", model.line, f"{_model_words(model, at)} is trained with bf16=True "
                f"({at(line)}): the weights stay bf16, with no fp32 master copy.")  # fmt: skip

    # model + precision, linked through the forward passes of your own loop
    seen: set[tuple[str, int]] = set()
    for line, model, dtype in w.forwards if w.training else ():  # forwards of code that trains
        if dtype == "fp16" and _bf16_model(model) and ("a", model.line) not in seen:
            seen.add(("a", model.line))
            add("fp16-on-bf16-checkpoint", line, f"fp16 autocast runs {_model_words(model, at)}: its "
                "activations may outgrow fp16's 65504 and become inf/NaN.")  # fmt: skip
        if dtype == "bf16" and _dtype(model) == "bf16" and not model.data.get("peft"):
            if ("p", model.line) not in seen:
                seen.add(("p", model.line))
                add("pure-bf16", model.line, f"{_model_words(model, at)} is trained under bf16 "
                    f"autocast ({at(line)}): no fp32 master weights.")  # fmt: skip
    for line, scaler, linked, dtype in w.scale_calls:
        model = linked.data.get("model") if linked and linked.kind == "derived" else linked
        ac = linked.data.get("autocast") if linked and linked.kind == "derived" else dtype
        enabled = scaler is not None and scaler.data["enabled"] is True
        if model is not None and model.data.get("dtype") == "fp16" and not model.data.get("peft"):
            if ("w", model.line) not in seen:
                seen.add(("w", model.line))
                add("fp16-trainable-weights", model.line, f"{_model_words(model, at)} has fp16 "
                    f"trainable weights and a GradScaler scales its loss ({at(line)}): unscale_ "
                    "raises ValueError: Attempting to unscale FP16 gradients.")  # fmt: skip
        bf16_params = _dtype(model) == "bf16"
        if enabled and (ac == "bf16" or bf16_params) and ("s", scaler.line) not in seen:
            seen.add(("s", scaler.line))
            if bf16_params:
                what = (f"bf16 parameters (from {at(model.line)}), so bf16 gradients: bf16 needs "
                        "no loss scaling, and on CUDA unscaling bf16 gradients is reported to "
                        "fail (NotImplementedError; not run by the course).")  # fmt: skip
            elif model is not None and (
                _dtype(model) == "fp32"
                or (model.data.get("constructed") and model.data.get("dtype") is None)
            ):  # fp32 given, or an nn.Module built in the script (fp32 by default)
                what = ("bf16 autocast over fp32 weights, so fp32 gradients: the scaler is "
                        "needless (bf16 has fp32's range) but harmless (the failure on CUDA "
                        "reported in pytorch#127176 needs bf16 parameters).")  # fmt: skip
            else:
                what = ("bf16 autocast: bf16 needs no loss scaling. Over fp32 weights the "
                        "gradients are fp32 and the scaler is needless but harmless; with bf16 "
                        "parameters, unscaling their bf16 gradients on CUDA is reported to fail "
                        "(NotImplementedError).")  # fmt: skip
            add("scaler-with-bf16", scaler.line, f"this GradScaler scales, at {at(line)}, a loss "
                f"from {what}")  # fmt: skip

    for line in w.clip_unscaled:
        add("clip-before-unscale", line, "gradient clipping after scaler.scale(loss).backward() "
            "with no scaler.unscale_(optimizer) before it: it clips the scaled gradients, S times "
            "too large, so after unscale_ the norm is at most max_norm / S.")  # fmt: skip
    for line, what in w.deprecated:
        add(
            "deprecated-cuda-amp",
            line,
            f"{what} is deprecated: it emits a FutureWarning (PyTorch 2.13).",
        )
    for line in w.backward_in_autocast:
        add("backward-in-autocast", line, ".backward() runs inside an autocast block.")
    for line, what in w.policies:
        add("bf16-gradient-reduce", line, f"{what}: gradients are reduced across ranks in bf16 "
            "(8 significant bits), not fp32.")  # fmt: skip
    for line, model in w.bnb:
        # bitsandbytes' Linear4bit computes in its input's dtype when that is fp32 or bf16, and in
        # bnb_4bit_compute_dtype (default fp32) when it is fp16: the other weights' dtype decides
        other = _dtype(model)
        if other == "fp16":
            add("qlora-fp32-compute", line, "BitsAndBytesConfig(load_in_4bit=True) without "
                f"bnb_4bit_compute_dtype, on {_model_words(model, at)}: the 4-bit layers get fp16 "
                "inputs and compute in fp32, the default (bitsandbytes warns: slow).")  # fmt: skip
        elif other == "fp32":
            add("qlora-fp32-compute", line, "BitsAndBytesConfig(load_in_4bit=True) without "
                f"bnb_4bit_compute_dtype, on {_model_words(model, at)}: the 4-bit layers get fp32 "
                "inputs and compute in fp32.")  # fmt: skip
    scalers = [s for s in w.scalers if s.data["enabled"] is not False]
    if scalers and w.optimizer_saves and not w.scaler_saved:
        add("scaler-not-checkpointed", w.optimizer_saves[0], "the optimizer state is saved "
            f"(a GradScaler is made at {at(scalers[0].line)}) but scaler.state_dict() never is: "
            "a resumed run starts the loss scale again at the default 65536.")  # fmt: skip

    if machine.ampere_plus and w.training and w.script_like and not w.tf32_on:
        sixteen = any(
            s.data["fp16"] is not False or s.data["bf16"] is not False for s in w.args_sites
        )
        sixteen = sixteen or any(s["dtype"] != "fp32" for s in w.autocast_sites)
        sixteen = sixteen or bool(w.model_sites) or bool(scalers) or w.unknown_precision
        if not sixteen:
            add("tf32-off", w.training[0], f"this trains in fp32 on {machine.label}, with TF32 "
                "matmuls off (PyTorch's default): fp32 matmuls run at fp32 speed.")  # fmt: skip
    return out


def check_script(path, machine: Machine) -> list[Finding]:
    """Read ``path`` (a ``.py`` or ``.ipynb``) and return its findings."""
    source = read_source(path)
    try:
        return analyse(source, machine)
    except RecursionError:
        raise DoctorInputError(f"cannot analyse {source.path}: it is nested too deeply") from None
