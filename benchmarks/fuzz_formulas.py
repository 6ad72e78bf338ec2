"""Fuzz every formula path of symloss with random text and random DEAP trees, and count what goes wrong.

Run: .venv/bin/python benchmarks/fuzz_formulas.py [--n 10000] [--trees N] [--seed 0] [--show 5]

Each random formula string (grammar tokens plus garbage: deep nesting, huge constants and exponents,
unicode, dunder names, lambda, attribute access, code-injection payloads, text up to 1,000 characters)
and each random DEAP tree (symloss's primitive sets, random depth, slot, progress and constant range)
goes through parse_formula, MirrorLoss construction, stabilise, canonical_key, compile_expr, the
slot's validity check, a call with gradients and a MirrorLoss call, and every export (LaTeX, Python,
JSON and formula round trips, to_dict/from_dict, sympy_to_tree). Printed counts:

- code executions: payloads would create a canary file in the working directory, set an attribute of
  ``builtins`` or an environment variable; all three are checked after the run;
- tracebacks: any exception other than FormulaError (CompileError is one), the documented error;
- over 1 s: inputs whose whole path took more than 1 s of CPU time (and of wall time, which a loaded
  machine inflates);
- non-finite let through: candidates that passed their check but give a non-finite value or gradient
  on 20,000 random points of u in [-1e4, -1e-8] (z in [-20, 20] for links), at t in {0, 1/2, 1}.
"""

from __future__ import annotations

import argparse
import builtins
import math
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field

import sympy as sp
import torch
from deap import gp

from symloss.expr import (
    CHECKS,
    FUNCTIONS,
    SAFETY_U_RANGE,
    SYMBOLS,
    FormulaError,
    canonical_key,
    compile_expr,
    expr_from_json,
    expr_to_json,
    make_pset,
    parse_formula,
    slot_variables,
    stabilise,
    sympy_to_tree,
    to_formula,
    to_latex,
    to_python,
    tree_to_sympy,
)
from symloss.objectives import LogpBatch, MirrorLoss

CANARY = "symloss_fuzz_canary"
MAX_LENGTH = 1000
SLOT_VARIABLE = {"mirror": "u", "link": "z", "imitation": "u_w"}
PAYLOADS = (
    f"__import__('os').system('touch {CANARY}')",
    f"__import__('pathlib').Path('{CANARY}').touch()",
    f"open('{CANARY}', 'w').write('x')",
    f"__import__('builtins').__setattr__('{CANARY}', 1)",
    f"setattr(__import__('builtins'), '{CANARY}', 1)",
    f"__import__('os').environ.__setitem__('{CANARY.upper()}', '1')",
    f"(lambda: __import__('os').system('touch {CANARY}'))()",
    f"exec(\"open('{CANARY}', 'w')\")",
    f"eval(\"__import__('os').system('touch {CANARY}')\")",
    f"u.__class__.__init__.__globals__['__builtins__']['open']('{CANARY}', 'w')",
    "exp(u).__class__.__mro__[-1].__subclasses__()",
    f"Symbol('x').subs(x, __import__('os').system('touch {CANARY}'))",
)
NUMBERS = ("0", "1", "2", "3", "0.5", ".25", "1.5e-3", "3.14159", "64", "100", "709", "710", "1e6", "1e7",
           "1e309", "1e-400", "9" * 40, "1e999999", "0.1234567890123", "000001", "65", "1e-320")
GARBAGE = ("__import__", "__class__", "__globals__", "__builtins__", "__subclasses__()", "lambda", "lambda x: x",
           ".real", ".__class__", "os.system", "eval(", "exec(", "open(", "getattr", "import os", "[", "]", "{",
           "}", "'", '"', ";", ":", "=", "==", "!", "@", "#", "$", "%", "&", "|", "~", "`", "\\", "\n", "\t",
           "\x00", "µ", "π", "∞", "é", "\u202e", "😀", "ｕ", "∑", "x", "nan", "inf", "oo", "zoo", "I", "Symbol(",
           "S(", "sympify(", "...", ",", "(", ")", "^", "**", "*", "/", "-", "+", "e", "E", "pi", "1e", "..5")


# ---------------------------------------------------------------------------------------------------------
# Random inputs.


def random_formula(rng: random.Random, var: str, depth: int) -> str:
    """A random formula in (mostly) symloss's grammar over ``var`` and t."""
    roll = rng.random()
    if depth <= 0 or roll < 0.25:
        return rng.choice([var, var, var, "t", rng.choice(NUMBERS), "pi", "E"])
    if roll < 0.35:
        return "-" + random_formula(rng, var, depth - 1)
    if roll < 0.6:
        op = rng.choice(["+", "-", "*", "/", "^", "**"])
        return f"({random_formula(rng, var, depth - 1)} {op} {random_formula(rng, var, depth - 1)})"
    if roll < 0.68:
        exponent = rng.choice(["2", "3", "-1", "0.5", "64", "-64", "65", "1e6", "(1/3)", var, "(2^64)"])
        return f"{random_formula(rng, var, depth - 1)}^{exponent}"
    name = rng.choice(sorted(FUNCTIONS))
    args = ", ".join(random_formula(rng, var, depth - 1) for _ in range(FUNCTIONS[name][0]))
    return f"{name}({args})"


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        action = rng.random()
        if action < 0.5:
            text = text[:at] + rng.choice(GARBAGE) + text[at:]
        elif action < 0.8:
            text = text[:at] + text[at + rng.randint(1, 5):]
        else:
            text = text[:at] + chr(rng.randint(1, 0x2FFF)) + text[at:]
    return text


def random_text(rng: random.Random, var: str) -> str:
    """A random formula string of at most MAX_LENGTH characters, often malformed or hostile."""
    roll = rng.random()
    if roll < 0.35:
        text = random_formula(rng, var, rng.randint(1, 7))
    elif roll < 0.5:  # deep nesting
        k = rng.randint(10, 90)
        names = [rng.choice(["exp", "log", "softplus", "tanh", "expc", "sqrt", "-", ""]) for _ in range(k)]
        text = "".join(f"{n}(" for n in names) + rng.choice([var, "100", "1e6", "1.0"]) + ")" * k
    elif roll < 0.62:  # huge constants and exponents
        inner = rng.choice(NUMBERS + (var,))
        text = rng.choice([f"exp(exp(exp({inner})))*{var}", f"softplus((sqrt(Abs({inner})))^64)",
                           f"(({inner}*{var})^64)^64", f"{inner}^{inner}^{inner}", f"exp({inner}*{var})^64",
                           f"((((999999/1000000)^64)^64)^64)^64*{var}", f"{var}*{inner}*{inner}*{inner}",
                           f"pdiv({var}, {inner})^-64", f"max({inner}, {var})^{inner}"])
    elif roll < 0.72:  # code-injection payloads, alone or inside a formula
        payload = rng.choice(PAYLOADS)
        text = payload if rng.random() < 0.5 else f"{random_formula(rng, var, 2)} + {payload}"
    elif roll < 0.9:
        text = _mutate(rng, random_formula(rng, var, rng.randint(1, 6)))
    else:  # long text
        parts = []
        while sum(len(p) + 3 for p in parts) < rng.randint(200, MAX_LENGTH):
            parts.append(random_formula(rng, var, rng.randint(1, 5)))
        text = " + ".join(parts)
    return text[:MAX_LENGTH]


def random_tree(rng: random.Random, psets: dict) -> tuple[str, bool, gp.PrimitiveTree]:
    """A random DEAP tree: slot, with or without t, depth 1-10, constants from a random range."""
    slot, uses_t = rng.choice(sorted(SLOT_VARIABLE)), rng.random() < 0.5
    key = (slot, uses_t, rng.choice([(-1.0, 1.0), (-1e3, 1e3), (-1e7, 1e7), (-1e-7, 1e-7)]))
    if key not in psets:
        psets[key] = make_pset(slot, uses_t=uses_t, constant_range=key[2])
    random.seed(rng.randrange(2**32))  # DEAP draws from the global random module
    tree = gp.PrimitiveTree(gp.genHalfAndHalf(psets[key], 1, rng.randint(1, 10)))
    return slot, uses_t, tree


# ---------------------------------------------------------------------------------------------------------
# Running one input through every path.


@dataclass
class Counts:
    """What the fuzz found, for one kind of input."""

    inputs: int = 0
    accepted: int = 0
    passed_check: int = 0
    tracebacks: int = 0
    over_1s_cpu: int = 0
    over_1s_wall: int = 0
    non_finite_let_through: int = 0
    round_trip_mismatches: int = 0
    cpu_seconds: list[float] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, what: str, text: str) -> None:
        self.examples.setdefault(what, [])
        if len(self.examples[what]) < 20:
            self.examples[what].append(text[:300])


PROGRESS = (0.0, 0.5, 1.0)
TIMEOUT_S = 30.0


def verification_grids(seed: int, points: int = 20_000) -> dict[str, torch.Tensor]:
    """Random points (log-uniform in |u|, uniform in z) plus round numbers, independent of the checks' grids."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = SAFETY_U_RANGE
    logs = torch.empty(points, dtype=torch.float64).uniform_(math.log10(-hi), math.log10(-lo), generator=gen)
    round_u = [k / d for k in range(1, 101) for d in (1, 2, 10)] + [10.0**j for j in range(-8, 5)]
    u = torch.cat([-(10**logs), -torch.tensor(round_u, dtype=torch.float64), torch.tensor([lo, hi])])
    z = torch.empty(points, dtype=torch.float64).uniform_(-20.0, 20.0, generator=gen)
    z = torch.cat([z, torch.arange(-40, 41, dtype=torch.float64) / 2])
    return {"u": u.sort().values, "z": z.sort().values}


def _non_finite(fn, grid: torch.Tensor, uses_t: bool) -> bool:
    """Whether fn or its derivative in the main variable is non-finite anywhere on grid x progress."""
    for t in PROGRESS if uses_t else (None,):
        x = grid.clone().requires_grad_(True)
        values = fn(x, torch.tensor(t, dtype=grid.dtype)) if uses_t else fn(x)
        grad = torch.autograd.grad(values.sum(), x, allow_unused=True)[0] if values.requires_grad else None
        if not torch.isfinite(values).all() or (grad is not None and not torch.isfinite(grad).all()):
            return True
    return False


def _batch() -> LogpBatch:
    gen = torch.Generator().manual_seed(0)
    logps = [-torch.rand(8, 3, generator=gen, dtype=torch.float64) * 40 for _ in range(4)]
    return LogpBatch(logps[0], logps[1], ref_chosen_logps=logps[2], ref_rejected_logps=logps[3], progress=0.5)


class Runner:
    """Runs inputs through every public path and updates :class:`Counts`."""

    def __init__(self, seed: int) -> None:
        self.grids = verification_grids(seed)
        self.batch = _batch()
        self.psets: dict = {}
        self.small = -torch.logspace(-8, 4, 64, dtype=torch.float64)

    def step(self, counts: Counts, label: str, what: str, fn, *args):
        """One path after the core; FormulaError is a documented refusal, anything else a traceback."""
        try:
            return fn(*args)
        except FormulaError:
            return None
        except Exception as exc:  # noqa: BLE001 - counting every undocumented failure is the point
            counts.tracebacks += 1
            counts.note("traceback", f"{what}: {type(exc).__name__}: {exc} | {label}")
            return None

    def core(self, source: str | sp.Expr, slot: str):
        """parse -> MirrorLoss -> stabilise -> canonical_key -> compile -> check; FormulaError propagates."""
        variables = (SLOT_VARIABLE[slot], "t")
        expr = parse_formula(source, variables, field=slot) if isinstance(source, str) else source
        loss = MirrorLoss(**{slot: source})
        expr = stabilise(expr)
        canonical_key(expr)
        uses_t = SYMBOLS["t"] in expr.free_symbols
        names = slot_variables(slot, uses_t)
        fn = compile_expr(expr, names)
        result = CHECKS[slot](source if isinstance(source, str) else expr, uses_t=uses_t)
        return expr, loss, uses_t, names, fn, result

    def exports(self, counts: Counts, label: str, expr: sp.Expr, loss: MirrorLoss, names, fn, uses_t) -> None:
        def call():
            x = self.small.clone().requires_grad_(True)
            out = fn(x, torch.tensor(0.5, dtype=x.dtype)) if uses_t else fn(x)
            if out.requires_grad:
                torch.autograd.grad(out.sum(), x, allow_unused=True)

        def loss_call():
            out = loss(self.batch)
            if out.loss.requires_grad:
                out.loss.sum().backward()

        def round_trips():
            back, _ = expr_from_json(expr_to_json(expr, names))
            again = parse_formula(to_formula(expr), names)
            if back != expr or again != expr or MirrorLoss.from_dict(loss.to_dict()) != loss:
                counts.round_trip_mismatches += 1
                counts.note("round trip", f"{to_formula(expr)} | {label}")

        def tree():
            slot = {"u": "mirror", "z": "link", "u_w": "imitation"}[names[0]]
            if (slot, uses_t) not in self.psets:
                self.psets[(slot, uses_t)] = make_pset(slot, uses_t=uses_t)
            tree_to_sympy(sympy_to_tree(expr, self.psets[(slot, uses_t)]))

        for what, fn_ in (("call", call), ("MirrorLoss call", loss_call), ("to_latex", lambda: to_latex(expr)),
                          ("to_python", lambda: to_python(expr, names)), ("latex", loss.latex),
                          ("MirrorLoss.to_python", loss.to_python), ("round trips", round_trips),
                          ("sympy_to_tree", tree)):
            self.step(counts, label, what, fn_)

    def run(self, counts: Counts, source: str | sp.Expr, slot: str, label: str) -> None:
        counts.inputs += 1
        cpu, wall = time.process_time(), time.perf_counter()
        verify = None
        try:
            with _deadline(TIMEOUT_S):
                try:
                    expr, loss, uses_t, names, fn, result = self.core(source, slot)
                except FormulaError:
                    return
                counts.accepted += 1
                self.exports(counts, label, expr, loss, names, fn, uses_t)
                if result.ok:
                    counts.passed_check += 1
                    verify = (fn, uses_t)
        except Exception as exc:  # noqa: BLE001
            counts.tracebacks += 1
            counts.note("traceback", f"core: {type(exc).__name__}: {exc} | {label}")
        finally:
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            counts.cpu_seconds.append(cpu)
            counts.over_1s_cpu += cpu > 1.0
            counts.over_1s_wall += wall > 1.0
            if max(cpu, wall) > 1.0:
                counts.note("over 1 s", f"{cpu:.2f} s CPU, {wall:.2f} s wall | {label}")
        if verify is not None and _non_finite(verify[0], self.grids["z" if slot == "link" else "u"], verify[1]):
            counts.non_finite_let_through += 1
            counts.note("non-finite let through", label)


class _deadline:  # noqa: N801 - used as a context manager
    """SIGALRM after ``seconds`` (main thread, POSIX): a hung input becomes a TimeoutError, not a hung fuzz."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False

    def __enter__(self) -> None:
        import signal
        import threading
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True

    @staticmethod
    def _fire(signum, frame):
        raise TimeoutError(f"input still running after {TIMEOUT_S:g} s")

    def __exit__(self, *exc) -> None:
        if self.armed:
            import signal
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


# ---------------------------------------------------------------------------------------------------------
# The fuzz.


def code_executions(directory: str) -> int:
    """Canaries found: files written in ``directory``, the builtins attribute, the environment variable."""
    found = len(os.listdir(directory))
    found += hasattr(builtins, CANARY)
    found += CANARY.upper() in os.environ
    return found


def fuzz(n_strings: int, n_trees: int, seed: int = 0) -> tuple[dict[str, Counts], int]:
    """Run ``n_strings`` random strings and ``n_trees`` random trees; (counts per kind, code executions)."""
    rng = random.Random(seed)
    runner = Runner(seed)
    counts = {"strings": Counts(), "trees": Counts()}
    state = random.getstate()
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="symloss-fuzz-") as directory:
        os.chdir(directory)
        try:
            for i in range(n_strings):
                slot = rng.choice(sorted(SLOT_VARIABLE))
                text = random_text(rng, SLOT_VARIABLE[slot])
                runner.run(counts["strings"], text, slot, f"string {i} {slot}: {text[:200]!r}")
            for i in range(n_trees):
                slot, uses_t, tree = random_tree(rng, runner.psets)
                label = f"tree {i} {slot} t={uses_t}: {str(tree)[:200]}"
                try:
                    expr = tree_to_sympy(tree)
                except FormulaError:
                    counts["trees"].inputs += 1
                    continue
                except Exception as exc:  # noqa: BLE001
                    counts["trees"].inputs += 1
                    counts["trees"].tracebacks += 1
                    counts["trees"].note("traceback", f"tree_to_sympy: {type(exc).__name__}: {exc} | {label}")
                    continue
                runner.run(counts["trees"], expr, slot, label)
        finally:
            os.chdir(here)
            random.setstate(state)
            executions = code_executions(directory)
    return counts, executions


def table(counts: dict[str, Counts], executions: int) -> str:
    rows = [("inputs", "inputs"), ("accepted (parsed, compiled)", "accepted"), ("passed the slot's check", "passed_check"),
            ("tracebacks", "tracebacks"), ("over 1 s (CPU)", "over_1s_cpu"), ("over 1 s (wall)", "over_1s_wall"),
            ("non-finite let through", "non_finite_let_through"), ("round-trip mismatches", "round_trip_mismatches")]
    lines = [f"{'':34}{'strings':>10}{'trees':>10}"]
    for label, attr in rows:
        lines.append(f"{label:34}" + "".join(f"{getattr(c, attr):>10}" for c in counts.values()))
    for label, fn in (("median ms per input (CPU)", statistics.median), ("max s per input (CPU)", max)):
        lines.append(f"{label:34}" + "".join(
            f"{(fn(c.cpu_seconds) * (1000 if 'ms' in label else 1) if c.cpu_seconds else 0):>10.3f}"
            for c in counts.values()))
    lines.append(f"{'code executions (canaries)':34}{executions:>10}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="random formula strings (default 10000)")
    parser.add_argument("--trees", type=int, default=None, help="random DEAP trees (default: --n)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--show", type=int, default=5, help="examples printed per kind of failure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    counts, executions = fuzz(args.n, args.n if args.trees is None else args.trees, args.seed)
    print(f"fuzz_formulas: seed {args.seed}, {time.perf_counter() - start:.0f} s, torch {torch.__version__}, "
          f"sympy {sp.__version__}")
    print(table(counts, executions))
    for kind, c in counts.items():
        for what, examples in c.examples.items():
            print(f"\n{kind}, {what} ({len(examples)} shown of at most 20 kept):")
            for text in examples[: args.show]:
                print("  " + text)


if __name__ == "__main__":
    main()
