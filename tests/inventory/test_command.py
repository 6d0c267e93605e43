"""``kameng importkeys`` (the ``importkeys`` management command)."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from platform_core.inventory.models import CardKey, ImportBatch
from tests.inventory.conftest import counters


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("importkeys", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_a_file_with_a_progress_bar_and_a_summary(tmp_path, product, sku):
    keys = tmp_path / "keys.txt"
    keys.write_text("C1----P1\nC2----P2\n\nC1----P1\nLONELY\n" + "X" * 600 + "----P\n", encoding="utf-8")
    out, err = run("--shop", "alpha", "--product", product.pk, keys, "--separator=----")
    assert "Imported 2 key(s); skipped 1 duplicate(s) and 2 invalid line(s)." in out
    assert "line 5: missing password (expected card----password)" in out
    assert "line 6: longer than 500 characters" in out
    assert "lines" in err and "100%" in err  # tqdm on stderr
    assert counters(sku)["available"] == 2
    assert sorted(CardKey.objects.values_list("is_loop", flat=True)) == [False, False]
    again, _ = run("--shop", "alpha", "--product", product.pk, keys, "--separator", "dashes", "--no-progress")
    assert "Imported 0 key(s); skipped 3 duplicate(s)" in again


def test_csv_xlsx_by_extension_and_loop(tmp_path, product, sku):
    from tests.inventory.test_parsers import xlsx_bytes

    sheet = tmp_path / "keys.xlsx"
    sheet.write_bytes(xlsx_bytes([["card"], ["X1"], ["X2"]]))
    run("--shop", "alpha", "--product", product.pk, "--sku", sku.pk, sheet, "--loop", "--no-progress")
    assert ImportBatch.objects.get().source == "xlsx"
    assert list(CardKey.objects.values_list("is_loop", flat=True)) == [True, True]


def test_several_skus_need_sku(tmp_path, product, sku):
    from platform_core.catalog.models import SKU

    other = SKU.objects.create(product=product, name="90 days", price=2000)
    keys = tmp_path / "keys.txt"
    keys.write_text("K1\n")
    with pytest.raises(CommandError, match="several SKUs"):
        run("--shop", "alpha", "--product", product.pk, keys)
    run("--shop", "alpha", "--product", product.pk, "--sku", other.pk, keys, "--no-progress")
    assert counters(other)["available"] == 1 and counters(sku)["available"] == 0


def test_unreadable_file_fails_with_a_clear_message_and_imports_nothing(tmp_path, product, sku):
    binary = tmp_path / "keys.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CommandError, match="not a text file|not readable text"):
        run("--shop", "alpha", "--product", product.pk, binary, "--no-progress")
    fake = tmp_path / "keys.xlsx"
    fake.write_text("K1\n")
    with pytest.raises(CommandError, match="not an XLSX workbook"):
        run("--shop", "alpha", "--product", product.pk, fake, "--no-progress")
    assert not CardKey.objects.exists() and counters(sku)["available"] == 0
    assert set(ImportBatch.objects.values_list("status", flat=True)) == {"failed"}


@pytest.mark.parametrize("args, message", [
    (["--shop", "nope", "--product", 1], "No shop"),
    (["--shop", "alpha", "--product", 999999], "does not exist"),
])
def test_bad_arguments(tmp_path, sku, args, message):
    keys = tmp_path / "keys.txt"
    keys.write_text("K1\n")
    with pytest.raises(CommandError, match=message):
        run(*args, keys)


def test_missing_file(in_alpha):
    with pytest.raises(CommandError, match="No such file"):
        run("--shop", "alpha", "--product", 1, "/nonexistent/keys.txt")


def test_exit_status_from_the_shell_is_non_zero(tmp_path, product, sku):
    """What `kameng importkeys` returns: CommandError exits 1."""
    from django.core.management import load_command_class

    binary = tmp_path / "keys.txt"
    binary.write_bytes(b"\x00\x01\x02" * 50)
    command = load_command_class("platform_core", "importkeys")
    with pytest.raises(SystemExit) as exited:
        command.run_from_argv(["kameng", "importkeys", "--shop", "alpha", "--product", str(product.pk),
                               str(binary), "--no-progress"])
    assert exited.value.code == 1
