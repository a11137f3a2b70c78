"""The model table and the price table: names, aliases, prices over time, user files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from events import Usage
from runtime import ModelTable, ModelTableInvalid, PriceTable, UnknownModel


def test_aliases_resolve_to_model_ids() -> None:
    models = ModelTable.default()
    assert models.resolve("opus").id.startswith("claude-opus")
    assert models.resolve("sonnet").id.startswith("claude-sonnet")
    assert models.resolve("haiku").id.startswith("claude-haiku")
    assert models.resolve("claude-haiku-4-5-20251001").id == "claude-haiku-4-5"


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownModel) as info:
        ModelTable.default().resolve("gpt-4")
    assert info.value.model == "gpt-4"
    assert "claude-haiku-4-5" in str(info.value)


def test_cost_prices_each_cache_bucket_apart() -> None:
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=2_000_000,
        cache_creation_5m_input_tokens=1_000_000,
        cache_creation_1h_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    cost = PriceTable.default().cost("claude-haiku-4-5", usage, date(2026, 11, 1))
    assert cost == pytest.approx(1 + 5 + 1.25 + 2 + 0.10)


def test_unsplit_cache_writes_are_priced_as_five_minute_writes() -> None:
    usage = Usage(cache_creation_input_tokens=1_000_000)
    assert PriceTable.default().cost("claude-opus-4-1", usage, date(2026, 1, 1)) == pytest.approx(
        18.75
    )


def test_a_price_applies_from_the_day_it_took_effect() -> None:
    prices = PriceTable.default()
    reads = Usage(cache_read_input_tokens=1_000_000)
    assert prices.cost("claude-sonnet-5-5", reads, date(2026, 10, 6)) == pytest.approx(0.20)
    assert prices.cost("claude-sonnet-5-5", reads, date(2026, 10, 7)) == pytest.approx(0.10)
    with pytest.raises(UnknownModel):
        prices.cost("claude-sonnet-5-5", reads, date(2020, 1, 1))


def test_a_long_prompt_pays_the_higher_band_on_every_token() -> None:
    prices = PriceTable.default()
    short = Usage(input_tokens=100_000, output_tokens=1_000_000)
    long = Usage(input_tokens=100_001, output_tokens=1_000_000)
    on = date(2026, 11, 1)
    assert prices.cost("claude-haiku-5-5", short, on) == pytest.approx(0.01 + 0.50)
    assert prices.cost("claude-haiku-5-5", long, on) == pytest.approx(100_001 * 0.5 / 1e6 + 2.50)


def test_a_user_toml_file_adds_a_model_and_takes_an_alias(tmp_path: Path) -> None:
    file = tmp_path / "models.toml"
    file.write_text(
        """
[[models]]
id = "claude-test-1"
aliases = ["haiku"]
context_window = 5000

[[prices]]
model = "claude-test-1"
effective = 2026-01-01
input = 2.0
output = 4.0
""",
        encoding="utf-8",
    )
    models = ModelTable.default().with_file(file)
    prices = PriceTable.default(models).with_file(file)
    assert models.resolve("haiku").id == "claude-test-1"
    assert models.resolve("haiku").context_window == 5000
    entry = prices.entry("haiku", date(2026, 6, 1))
    assert entry.rates.cache_write_5m == pytest.approx(2.5)  # Anthropic's 1.25x default
    assert entry.rates.cache_read == pytest.approx(0.2)


def test_a_user_json_file_overrides_a_price(tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    file.write_text(
        '{"prices": [{"model": "claude-haiku-4-5", "effective": "2027-01-01", '
        '"input": 9, "output": 9}]}',
        encoding="utf-8",
    )
    prices = PriceTable.default().with_file(file)
    assert prices.entry("claude-haiku-4-5", date(2027, 2, 1)).rates.input == 9
    assert prices.entry("claude-haiku-4-5", date(2026, 2, 1)).rates.input == 1


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.json", "{nope", "not valid JSON"),
        ("bad.toml", "x = ", "not valid TOML"),
        (
            "neg.json",
            '{"prices": [{"model": "m", "effective": "2026-01-01", "input": -1, "output": 1}]}',
            "prices.0.input",
        ),
        ("extra.json", '{"modles": []}', "modles"),
    ],
)
def test_an_invalid_user_file_is_refused_with_the_problem(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ModelTableInvalid) as info:
        PriceTable.default().with_file(file)
    assert problem in str(info.value)
    assert str(file) in str(info.value)


def test_a_missing_user_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelTableInvalid, match="cannot read"):
        ModelTable.default().with_file(tmp_path / "nope.json")
