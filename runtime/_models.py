"""The model table (names, aliases, context windows) and the price table (USD per million tokens).

    models = ModelTable.default()                  # or ModelTable.default().with_file(path)
    info = models.resolve("sonnet")                 # ModelInfo; UnknownModel for a name not known
    prices = PriceTable.default()
    cost = prices.cost(info.id, usage)              # USD of one response, cache buckets apart

A user file (JSON, or TOML when its name ends in `.toml`) adds or overrides
models and prices; both tables read the same file::

    [[models]]
    id = "claude-opus-9"
    aliases = ["opus"]            # an alias moves to the last model that claims it
    context_window = 1000000
    max_output = 128000
    system_messages = true        # accepts role "system" messages inside `messages`
    sampling = false              # refuses temperature, top_p and top_k

    [[prices]]
    model = "claude-opus-9"
    effective = 2027-01-01        # the date this price took effect (TOML date or "YYYY-MM-DD")
    input = 4.0                   # USD per million tokens
    output = 20.0
    cache_write_5m = 5.0
    cache_write_1h = 8.0
    cache_read = 0.2
    # optional: a higher band for long prompts (input + cache reads + cache writes)
    # above_tokens = 200000
    # [prices.above]
    # input = 8.0
    # output = 30.0               # (cache rates default to 1.25x, 2x and 0.1x of input)

Notes (do not fix without reading this):
1. Prices are data, not code: each entry is (model, effective date, rates). A
   response is priced by the latest entry effective on or before its date, so a
   recorded run keeps the price it had when it ran.
2. The built-in entries were taken from Anthropic's model and pricing pages
   (platform.claude.com) as they stood in November 2026. Where a launch date
   was not found, the date is the earliest day the price is known to apply.
   Override with a user file rather than editing this module for a new model.
3. Context windows are the standard ones, without beta headers.
4. `system_messages`: the models released after Claude Opus 4.8 (which
   introduced mid-conversation `role: "system"` messages) accept them; older
   ones refuse them. `sampling`: Claude Opus 4.7 and later refuse
   `temperature`, `top_p` and `top_k` ("deprecated for this model"). Both
   from Anthropic's model pages as they stood in November 2026; the simulator
   refuses what each model refuses.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events import Usage

from .errors import ModelTableInvalid, UnknownModel

__all__ = ["ModelInfo", "ModelTable", "PriceEntry", "PriceTable", "Rates"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model: its API id, the other names it answers to, its context window and output limit.

    `system_messages`: it accepts `role: "system"` messages inside `messages`;
    `sampling`: it accepts `temperature`, `top_p` and `top_k` (note 4).
    """

    id: str
    context_window: int = 200_000
    max_output: int = 64_000
    aliases: tuple[str, ...] = ()
    system_messages: bool = False
    sampling: bool = True


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens, one rate per usage bucket."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def cost(self, usage: Usage) -> float:
        """USD for `usage`; cache writes without a 5m/1h split are priced as 5-minute writes."""
        split = usage.cache_creation_5m_input_tokens + usage.cache_creation_1h_input_tokens
        unsplit = max(usage.cache_creation_input_tokens - split, 0)
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + (usage.cache_creation_5m_input_tokens + unsplit) * self.cache_write_5m
            + usage.cache_creation_1h_input_tokens * self.cache_write_1h
            + usage.cache_read_input_tokens * self.cache_read
        )
        return total / 1_000_000


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """The rates of one model from one date on (a higher band for prompts over `above_tokens`)."""

    model: str
    effective: date
    rates: Rates
    above_tokens: int | None = None
    above: Rates | None = None

    def cost(self, usage: Usage) -> float:
        """USD for one response's `usage` (a long prompt pays the higher band on every token)."""
        above, limit = self.above, self.above_tokens
        if above is not None and limit is not None and usage.context_tokens > limit:
            return above.cost(usage)
        return self.rates.cost(usage)


def _r(i: float, o: float, w5: float, w1: float, cr: float) -> Rates:
    return Rates(input=i, output=o, cache_write_5m=w5, cache_write_1h=w1, cache_read=cr)


def _new(model_id: str, aliases: tuple[str, ...] = ()) -> ModelInfo:
    # A model released after Claude Opus 4.8 (note 4): 1M context, 128k output.
    return ModelInfo(model_id, 1_000_000, 128_000, aliases, system_messages=True, sampling=False)


_BUILTIN_MODELS: tuple[ModelInfo, ...] = (
    _new("claude-fable-5-1"),
    _new("claude-opus-5-5", ("opus",)),
    _new("claude-opus-5"),
    _new("claude-sonnet-5-5", ("sonnet",)),
    _new("claude-sonnet-5"),
    _new("claude-haiku-5-5", ("haiku",)),
    ModelInfo("claude-opus-4-6", 1_000_000, 128_000),
    ModelInfo("claude-sonnet-4-6", 1_000_000, 64_000),
    ModelInfo("claude-opus-4-5", 200_000, 64_000, ("claude-opus-4-5-20251101",)),
    ModelInfo("claude-sonnet-4-5", 200_000, 64_000, ("claude-sonnet-4-5-20250929",)),
    ModelInfo("claude-haiku-4-5", 200_000, 64_000, ("claude-haiku-4-5-20251001",)),
    ModelInfo("claude-opus-4-1", 200_000, 32_000, ("claude-opus-4-1-20250805",)),
    ModelInfo("claude-opus-4-0", 200_000, 32_000, ("claude-opus-4", "claude-opus-4-20250514")),
    ModelInfo(
        "claude-sonnet-4-0", 200_000, 64_000, ("claude-sonnet-4", "claude-sonnet-4-20250514")
    ),
)

_BUILTIN_PRICES: tuple[PriceEntry, ...] = (
    PriceEntry("claude-fable-5-1", date(2026, 9, 24), _r(10, 50, 12.5, 20, 0.25)),
    PriceEntry("claude-opus-5-5", date(2026, 9, 24), _r(4, 20, 5, 8, 0.20)),
    PriceEntry("claude-opus-5", date(2026, 7, 24), _r(5, 25, 6.25, 10, 0.50)),
    PriceEntry("claude-sonnet-5-5", date(2026, 9, 24), _r(2, 10, 2.5, 4, 0.20)),
    # Sonnet 5.5 cache reads were cut from 0.10x to 0.05x of input on 2026-10-07.
    PriceEntry("claude-sonnet-5-5", date(2026, 10, 7), _r(2, 10, 2.5, 4, 0.10)),
    PriceEntry("claude-sonnet-5", date(2026, 6, 30), _r(2, 10, 2.5, 4, 0.20)),
    # Haiku 5.5 is priced by prompt length: over 100k tokens every token pays the higher band.
    PriceEntry(
        "claude-haiku-5-5",
        date(2026, 10, 7),
        _r(0.10, 0.50, 0.125, 0.20, 0.01),
        above_tokens=100_000,
        above=_r(0.50, 2.50, 0.625, 1.00, 0.05),
    ),
    PriceEntry("claude-opus-4-6", date(2026, 2, 5), _r(5, 25, 6.25, 10, 0.50)),
    PriceEntry("claude-sonnet-4-6", date(2026, 2, 17), _r(3, 15, 3.75, 6, 0.30)),
    PriceEntry("claude-opus-4-5", date(2025, 11, 24), _r(5, 25, 6.25, 10, 0.50)),
    PriceEntry(
        "claude-sonnet-4-5",
        date(2025, 9, 29),
        _r(3, 15, 3.75, 6, 0.30),
        above_tokens=200_000,
        above=_r(6, 22.5, 7.5, 12, 0.60),
    ),
    PriceEntry("claude-haiku-4-5", date(2025, 10, 15), _r(1, 5, 1.25, 2, 0.10)),
    PriceEntry("claude-opus-4-1", date(2025, 8, 5), _r(15, 75, 18.75, 30, 1.50)),
    PriceEntry("claude-opus-4-0", date(2025, 5, 22), _r(15, 75, 18.75, 30, 1.50)),
    PriceEntry("claude-sonnet-4-0", date(2025, 5, 22), _r(3, 15, 3.75, 6, 0.30)),
)


class ModelTable:
    """The models fleet may call, by id and alias. Immutable: `with_*` return new tables."""

    __slots__ = ("_by_name", "_models")

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self._models: dict[str, ModelInfo] = {}
        for info in models:
            self._models[info.id] = info
        self._by_name: dict[str, ModelInfo] = {}
        for info in self._models.values():
            self._by_name[info.id] = info
        for info in self._models.values():
            for alias in info.aliases:
                if alias not in self._models:  # an id always wins over an alias
                    self._by_name[alias] = info

    @classmethod
    def default(cls) -> ModelTable:
        """The built-in table (see the module's notes for its source and date)."""
        return cls(_BUILTIN_MODELS)

    def with_models(self, models: Iterable[ModelInfo]) -> ModelTable:
        """A new table with `models` added or replacing those of the same id.

        An alias claimed by a new model is taken from the model that had it.
        """
        added = list(models)
        claimed = {alias for info in added for alias in info.aliases}
        kept = [
            replace(info, aliases=tuple(a for a in info.aliases if a not in claimed))
            for info in self._models.values()
        ]
        return ModelTable([*kept, *added])

    def with_file(self, path: str | Path) -> ModelTable:
        """A new table with the `models` of a user file. Raises `ModelTableInvalid`."""
        return self.with_models(_load_file(path).models)

    def resolve(self, name: str) -> ModelInfo:
        """The model `name` (an id or an alias) names. Raises `UnknownModel`."""
        info = self._by_name.get(name)
        if info is None:
            raise UnknownModel(name, sorted(self._by_name))
        return info

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        """Every id and alias, sorted."""
        return sorted(self._by_name)

    def __iter__(self) -> Any:
        return iter(self._models.values())


class PriceTable:
    """Prices per model over time. Immutable: `with_*` return new tables."""

    __slots__ = ("_entries", "_models")

    def __init__(self, entries: Iterable[PriceEntry], models: ModelTable | None = None) -> None:
        by_model: dict[str, list[PriceEntry]] = {}
        for entry in entries:
            by_model.setdefault(entry.model, []).append(entry)
        for items in by_model.values():
            items.sort(key=lambda e: e.effective)
        self._entries = by_model
        self._models = models or ModelTable.default()

    @classmethod
    def default(cls, models: ModelTable | None = None) -> PriceTable:
        """The built-in prices; `models` resolves aliases (default: the built-in model table)."""
        return cls(_BUILTIN_PRICES, models)

    def with_entries(self, entries: Iterable[PriceEntry]) -> PriceTable:
        """A new table with `entries` added; one of the same model and date replaces the old."""
        merged = {(e.model, e.effective): e for items in self._entries.values() for e in items}
        for entry in entries:
            merged[(entry.model, entry.effective)] = entry
        return PriceTable(merged.values(), self._models)

    def with_models(self, models: ModelTable) -> PriceTable:
        """The same prices, resolving names through `models`."""
        return PriceTable([e for items in self._entries.values() for e in items], models)

    def with_file(self, path: str | Path) -> PriceTable:
        """A new table with the models and `prices` of a user file. Raises `ModelTableInvalid`."""
        loaded = _load_file(path)
        existing = [e for items in self._entries.values() for e in items]
        return PriceTable(existing, self._models.with_models(loaded.models)).with_entries(
            loaded.prices
        )

    def entry(self, model: str, at: date | None = None) -> PriceEntry:
        """The price of `model` (id or alias) in effect on `at` (default: today, UTC).

        Raises `UnknownModel` for a name not in the model table, or a model with no
        price on or before `at`.
        """
        info = self._models.resolve(model)
        on = at or datetime.now(UTC).date()
        candidates = [e for e in self._entries.get(info.id, ()) if e.effective <= on]
        if not candidates:
            raise UnknownModel(model, sorted(m for m in self._entries))
        return candidates[-1]

    def cost(self, model: str, usage: Usage, at: date | None = None) -> float:
        """USD for one response of `model` with `usage`, at the price in effect on `at`."""
        return self.entry(model, at).cost(usage)

    def first_priced(self, model: str) -> date | None:
        """The date of `model`'s first price (about its release), or None when it has none.

        Raises `UnknownModel` for a name not in the model table.
        """
        entries = self._entries.get(self._models.resolve(model).id)
        return entries[0].effective if entries else None


# -- user files -------------------------------------------------------------------------


class _RatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float | None = Field(default=None, ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)
    cache_read: float | None = Field(default=None, ge=0)

    def rates(self) -> Rates:
        # Anthropic's cache multipliers, for a file that gives only input and output.
        return Rates(
            input=self.input,
            output=self.output,
            cache_write_5m=self.cache_write_5m
            if self.cache_write_5m is not None
            else self.input * 1.25,
            cache_write_1h=self.cache_write_1h
            if self.cache_write_1h is not None
            else self.input * 2,
            cache_read=self.cache_read if self.cache_read is not None else self.input * 0.1,
        )


class _PriceIn(_RatesIn):
    model: str = Field(min_length=1)
    effective: date
    above_tokens: int | None = Field(default=None, gt=0)
    above: _RatesIn | None = None


class _ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    context_window: int = Field(default=200_000, gt=0)
    max_output: int = Field(default=64_000, gt=0)
    system_messages: bool = False
    sampling: bool = True


class _FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[_ModelIn] = Field(default_factory=list)
    prices: list[_PriceIn] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Loaded:
    models: list[ModelInfo] = field(default_factory=list)
    prices: list[PriceEntry] = field(default_factory=list)


def _parse_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ModelTableInvalid(str(path), f"cannot read it: {e.strerror or e}") from e
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        data = json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ModelTableInvalid(str(path), f"not valid {kind}: {e}") from e
    if not isinstance(data, dict):
        raise ModelTableInvalid(str(path), "the top level must be an object")
    return data


def _load_file(path: str | Path) -> _Loaded:
    file = Path(path)
    try:
        parsed = _FileIn.model_validate(_parse_file(file))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in e.errors()
        )
        raise ModelTableInvalid(str(file), problems) from e
    if any((p.above is None) != (p.above_tokens is None) for p in parsed.prices):
        raise ModelTableInvalid(str(file), "`above` and `above_tokens` go together")
    models = [
        ModelInfo(
            m.id, m.context_window, m.max_output, tuple(m.aliases), m.system_messages, m.sampling
        )
        for m in parsed.models
    ]
    prices = [
        PriceEntry(
            p.model,
            p.effective,
            p.rates(),
            above_tokens=p.above_tokens,
            above=p.above.rates() if p.above is not None else None,
        )
        for p in parsed.prices
    ]
    return _Loaded(models, prices)
