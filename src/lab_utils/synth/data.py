"""Tables for DP synthesizers: the offline Wage data, a public *schema*, validation, encodings.

Differential privacy covers what a synthesizer learns from the records, so the
*domain* (category lists, numeric bounds) must not be read from the private table
without paying for it. Here the domain is a :class:`Schema` the caller supplies from
public knowledge (:func:`wage_schema` is written from the ISLR data documentation,
not from the rows). :meth:`Schema.from_dataframe` exists for convenience but marks
the schema ``public=False``; every synthesizer then warns that the domain is outside
the privacy accounting. No budget is spent on the domain in this package.

Two encodings are shared by all synthesizers:

* ``discretize`` -> integer codes (categoricals by category index, continuous columns
  in equal-width bins over the public bounds); used by MWEM and the marginal metrics.
* ``to_unit`` -> one-hot categoricals and continuous columns scaled to [-1, 1]; used
  by the GANs and the DP classifier of QUAIL.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def check_privacy_params(epsilon: float, delta: float | None = None) -> None:
    """Refuse ε ≤ 0 (or not finite) and δ outside the open interval (0, 1)."""
    if not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}: pick a privacy budget such as 1.0")
    if delta is not None and (not isinstance(delta, (int, float)) or not 0 < delta < 1):
        raise ValueError(
            f"delta must lie strictly between 0 and 1, got {delta!r}: a common choice is 1/(10 n) for n records"
        )


@dataclass(frozen=True)
class Column:
    """One column of the public domain: ``kind`` is ``"categorical"`` or ``"continuous"``."""

    name: str
    kind: str
    categories: tuple = ()
    lower: float = 0.0
    upper: float = 1.0
    bins: int = 8
    integer: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("categorical", "continuous"):
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}, use 'categorical' or 'continuous'")
        if self.kind == "categorical" and len(self.categories) < 2:
            raise ValueError(f"column {self.name!r}: a categorical column needs at least 2 public categories")
        if self.kind == "continuous" and not (self.upper > self.lower and self.bins >= 2):
            raise ValueError(f"column {self.name!r}: need upper > lower and bins >= 2, got {self}")

    @property
    def size(self) -> int:
        """Number of discrete values after ``discretize``."""
        return len(self.categories) if self.kind == "categorical" else self.bins

    @property
    def width(self) -> int:
        """Number of features after ``to_unit``."""
        return len(self.categories) if self.kind == "categorical" else 1


@dataclass
class Schema:
    """The public domain of a table; ``public=False`` means it was read from the data."""

    columns: list[Column]
    public: bool = True
    dtypes: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sizes(self) -> list[int]:
        return [c.size for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} in the schema; columns are {self.names}")

    def subset(self, names: list[str]) -> Schema:
        return Schema([self[n] for n in names], self.public, {n: self.dtypes.get(n) for n in names})

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, bins: int = 8, max_categories: int = 50) -> Schema:
        """Read the domain from the data itself (NOT private: synthesizers will warn)."""
        _check_frame(df)
        cols = []
        for name in df.columns:
            s = df[name]
            if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == bool:
                cats = tuple(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else tuple(sorted(s.unique()))
                if len(cats) > max_categories:
                    raise ValueError(f"column {name!r} has {len(cats)} categories (> {max_categories}): bin it first")
                cols.append(Column(name, "categorical", categories=cats))
            elif pd.api.types.is_numeric_dtype(s.dtype):
                cols.append(Column(name, "continuous", lower=float(s.min()), upper=float(s.max()), bins=bins,
                                   integer=pd.api.types.is_integer_dtype(s.dtype)))
            else:
                raise ValueError(f"column {name!r} has unsupported dtype {s.dtype}: convert it to numbers or categories")
        return cls(cols, public=False, dtypes=dict(df.dtypes))

    # ---- validation -----------------------------------------------------------------
    def validate(self, df: pd.DataFrame) -> None:
        """Clear errors for empty tables, unknown or missing columns, NaNs, constant columns, bad types."""
        _check_frame(df)
        unknown = [c for c in df.columns if c not in self.names]
        missing = [n for n in self.names if n not in df.columns]
        if unknown or missing:
            raise ValueError(f"table and schema disagree: unknown columns {unknown}, missing columns {missing}")
        for c in self.columns:
            s = df[c.name]
            if c.kind == "continuous" and not pd.api.types.is_numeric_dtype(s.dtype):
                raise ValueError(f"column {c.name!r} is continuous in the schema but has dtype {s.dtype}")
            if c.kind == "categorical":
                bad = set(s.astype(object).unique()) - set(c.categories)
                if bad:
                    raise ValueError(f"column {c.name!r} has values {sorted(map(str, bad))[:5]} outside the public categories")

    # ---- encodings ------------------------------------------------------------------
    def discretize(self, df: pd.DataFrame) -> np.ndarray:
        """Integer codes, shape (n, d): category index, or equal-width bin over public bounds (clipped)."""
        out = np.empty((len(df), len(self.columns)), dtype=np.int64)
        for j, c in enumerate(self.columns):
            if c.kind == "categorical":
                lookup = {v: i for i, v in enumerate(c.categories)}
                out[:, j] = df[c.name].astype(object).map(lookup).to_numpy()
            else:
                x = (df[c.name].to_numpy(dtype=float) - c.lower) / (c.upper - c.lower)
                out[:, j] = np.clip(np.floor(x * c.bins), 0, c.bins - 1)
        return out

    def undiscretize(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Back to a table: bins become uniform draws inside the bin (rounded for integer columns)."""
        data = {}
        for j, c in enumerate(self.columns):
            if c.kind == "categorical":
                data[c.name] = np.asarray(c.categories, dtype=object)[codes[:, j]]
            else:
                w = (c.upper - c.lower) / c.bins
                data[c.name] = c.lower + (codes[:, j] + rng.random(len(codes))) * w
        return self.restore_types(pd.DataFrame(data))

    def to_unit(self, df: pd.DataFrame) -> np.ndarray:
        """Features for neural models: one-hot categoricals, continuous clipped and scaled to [-1, 1]."""
        parts = []
        for c in self.columns:
            if c.kind == "categorical":
                idx = self.subset([c.name]).discretize(df)[:, 0]
                parts.append(np.eye(c.size, dtype=np.float32)[idx])
            else:
                x = np.clip(df[c.name].to_numpy(dtype=float), c.lower, c.upper)
                parts.append((2 * (x - c.lower) / (c.upper - c.lower) - 1).astype(np.float32)[:, None])
        return np.concatenate(parts, axis=1)

    def from_unit(self, x: np.ndarray) -> pd.DataFrame:
        """Inverse of ``to_unit``: argmax over each one-hot block, rescale continuous columns."""
        data, k = {}, 0
        for c in self.columns:
            block = x[:, k:k + c.width]
            k += c.width
            if c.kind == "categorical":
                data[c.name] = np.asarray(c.categories, dtype=object)[block.argmax(1)]
            else:
                v = np.clip(block[:, 0], -1, 1)
                data[c.name] = c.lower + (v + 1) / 2 * (c.upper - c.lower)
        return self.restore_types(pd.DataFrame(data))

    @property
    def unit_blocks(self) -> list[tuple[str, int, int]]:
        """(kind, start, stop) of each column's block in the ``to_unit`` features."""
        out, k = [], 0
        for c in self.columns:
            out.append((c.kind, k, k + c.width))
            k += c.width
        return out

    def restore_types(self, df: pd.DataFrame) -> pd.DataFrame:
        """Give generated columns the schema's types back (integer continuous columns rounded)."""
        for c in self.columns:
            if c.kind == "continuous" and c.integer:
                df[c.name] = np.round(df[c.name]).astype(np.int64)
            dt = self.dtypes.get(c.name)
            if c.kind == "categorical" and isinstance(dt, pd.CategoricalDtype):
                df[c.name] = pd.Categorical(df[c.name], categories=dt.categories, ordered=dt.ordered)
        return df


def _check_frame(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0 or df.shape[1] == 0:
        raise ValueError("the table is empty: a synthesizer needs at least one row and one column")
    for name in df.columns:
        s = df[name]
        if s.isna().any():
            raise ValueError(f"column {name!r} has missing values: impute or drop them first")
        if s.nunique() < 2:
            raise ValueError(f"column {name!r} is constant: drop it (a synthesizer has nothing to learn from it)")
        if not (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype in (object, bool)
                or pd.api.types.is_numeric_dtype(s.dtype)):
            raise ValueError(f"column {name!r} has unsupported dtype {s.dtype}: convert it to numbers or categories")


def fit_preamble(df: pd.DataFrame, schema: Schema | None, epsilon: float, delta: float | None) -> Schema:
    """Shared start of every ``fit``: check ε, δ and the table; warn when the domain is not public."""
    check_privacy_params(epsilon, delta)
    if schema is None:
        schema = Schema.from_dataframe(df)
    schema.validate(df)
    if not schema.public:
        warnings.warn("the schema (categories, bounds) was read from the private data and is NOT covered by "
                      "epsilon; pass a public Schema for an end-to-end guarantee", UserWarning, stacklevel=3)
    return schema


# ---- the Wage data (shipped inside the ISLP wheel) ------------------------------------------
WAGE_TARGET = "health_ins"


def load_wage() -> pd.DataFrame:
    """ISLR's ``Wage`` table (3,000 men, Mid-Atlantic US, CPS 2003-2009), from the ISLP wheel.

    ``region`` is dropped (constant: every row is Middle Atlantic) and ``logwage``
    (a function of ``wage``). ``year`` is treated as a category.
    """
    try:
        from ISLP import load_data
    except ImportError as e:
        raise RuntimeError("the Wage table ships in the ISLP package: pip install --no-deps ISLP==0.6.0") from e
    df = load_data("Wage").drop(columns=["region", "logwage"])
    df["year"] = pd.Categorical(df["year"], categories=list(range(2003, 2010)))
    return df.reset_index(drop=True)


def wage_schema(bins: int = 8) -> Schema:
    """Public domain of Wage, from the ISLR documentation (not from the rows)."""
    df = load_wage().head(0)
    cols = [Column("year", "categorical", categories=tuple(range(2003, 2010))),
            Column("age", "continuous", lower=18, upper=81, bins=bins, integer=True)]
    for name in ["maritl", "race", "education", "jobclass", "health", "health_ins"]:
        cols.append(Column(name, "categorical", categories=tuple(df[name].cat.categories)))
    cols.append(Column("wage", "continuous", lower=20, upper=320, bins=bins))
    return Schema(cols, public=True, dtypes=dict(df.dtypes))


# ---- a second table for the benchmark: ISLR's Default (also shipped inside the ISLP wheel) ----------
DEFAULT_TARGET = "default"


def load_default() -> pd.DataFrame:
    """ISLR's ``Default`` table (10,000 simulated credit-card customers: default, student, balance, income)."""
    try:
        from ISLP import load_data
    except ImportError as e:
        raise RuntimeError("the Default table ships in the ISLP package: pip install --no-deps ISLP==0.6.0") from e
    return load_data("Default").reset_index(drop=True)


def default_schema(bins: int = 16) -> Schema:
    """Public domain of Default: the two Yes/No columns, and round bounds fixed by hand for a card balance
    ($0-3,000) and a yearly income ($0-80,000), not read from the rows."""
    df = load_default().head(0)
    cols = [Column(name, "categorical", categories=tuple(df[name].cat.categories)) for name in ["default", "student"]]
    cols += [Column("balance", "continuous", lower=0, upper=3000, bins=bins),
             Column("income", "continuous", lower=0, upper=80000, bins=bins)]
    return Schema(cols, public=True, dtypes=dict(df.dtypes))


def train_test_split_frame(df: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded row split (test rows are held out from every synthesizer)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(df))
    k = int(round(len(df) * test_fraction))
    return df.iloc[idx[k:]].reset_index(drop=True), df.iloc[idx[:k]].reset_index(drop=True)
