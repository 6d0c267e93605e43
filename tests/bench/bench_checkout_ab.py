"""checkout_ab: this checkout against another revision, paid order by paid order, in one run.

The machines drift by tens of percent within minutes (see ``machine_probe_ms``), more
than most changes to the checkout path are worth; two separate ``flash_sale`` runs
cannot tell a 10 % gain from noise. Here both revisions serve the same shop on the same
PostgreSQL, Redis and sandbox gateway — this checkout's web server and one for the
revision ``BENCH_BASE`` (default ``HEAD``: the working tree's uncommitted change; on a
clean tree an A/A run, which shows the noise). Batches of paid orders (order with
payment, then the signed webhook) alternate between the two, ABBA, and each batch
measures the CPU its web server tree and PostgreSQL spent per paid order.

Figures (medians over the rounds): ``checkout_ab.{base,this}_web_cpu_ms_per_order``,
``.{base,this}_db_cpu_ms_per_order``, ``.{base,this}_orders_per_s`` and
``.web_cpu_change_pct`` / ``.db_cpu_change_pct`` (negative: this checkout costs less).

``BENCH_AB_ROUNDS`` (default 6), ``BENCH_AB_BATCH`` paid orders per batch (300),
``BENCH_AB_BUYERS`` concurrent buyers (12). ``BENCH_BASE_ENV`` / ``BENCH_THIS_ENV``
(``"NAME=value NAME=value"``) set variables for one side's web server: on a clean tree,
``BENCH_BASE_ENV=KAMENG_WEB_SERVER=gunicorn`` compares the two web servers on the same
code, ``BENCH_BASE_ENV=KAMENG_DB_PREPARED_STATEMENTS=0`` a switch. The database is
migrated once, by this checkout: the base may lack migrations this checkout adds, but
not have others.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from tests.bench._harness import devstack, emit, migrate_everything, progress, setup_django, tree_cpu_seconds
from tests.bench._shop import buyers_of, create_shop, product_with_stock, sandbox_gateway, web_server

SHOP = "flash"

ROOT = Path(__file__).resolve().parent.parent.parent


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def _base_worktree(revision: str, stack: ExitStack) -> tuple[str, str]:
    """A detached worktree of ``revision`` (removed afterwards) and its short id."""
    try:
        commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"checkout_ab: BENCH_BASE={revision!r} is not a revision of this repository") from None
    # migrations this checkout adds are fine (the base ignores tables it does not know);
    # one changed or removed since the base is not
    changed = _git("diff", "--name-only", "--diff-filter=a", commit, "--", "*/migrations/*.py")
    if changed:
        raise SystemExit(f"checkout_ab: {revision} has other migrations than this checkout ({changed.split()[0]} …); "
                         "compare revisions with the same migrations, or a base that only lacks new ones")
    path = tempfile.mkdtemp(prefix="kameng-ab-base-")
    shutil.rmtree(path)
    _git("worktree", "add", "--detach", "--quiet", path, commit)
    stack.callback(lambda: _git("worktree", "remove", "--force", path))
    return path, commit[:9]


def _side_env(name: str) -> dict[str, str]:
    """``NAME=value NAME=value`` from the variable ``name``, for one side's web server."""
    pairs = [item.partition("=") for item in os.environ.get(name, "").split()]
    if any(not key or not sep for key, sep, _ in pairs):
        raise SystemExit(f"checkout_ab: {name} is NAME=value pairs separated by spaces")
    return {key: value for key, _, value in pairs}


def _batch(base: str, token: str, sku_id: int, orders: int, buyers: int, tag: str) -> int:
    """``orders`` paid orders by ``buyers`` concurrent buyers; returns how many failed."""
    outcomes = buyers_of(base, token, sku_id, SHOP).run([f"{tag}x{n}@example.com" for n in range(buyers)],
                                                       repeat=True, budget=orders)
    if outcomes.first_error:
        print(f"first failure: {outcomes.first_error}", file=sys.stderr)
    return orders - outcomes.paid


def main() -> None:
    rounds = int(os.environ.get("BENCH_AB_ROUNDS", "6"))
    batch = int(os.environ.get("BENCH_AB_BATCH", "300"))
    buyers = int(os.environ.get("BENCH_AB_BUYERS", "12"))
    with ExitStack() as stack:
        base_dir, base_commit = _base_worktree(os.environ.get("BENCH_BASE", "HEAD"), stack)
        stack.enter_context(devstack())
        setup_django()
        migrate_everything()
        from platform_core import devstack as ds

        shop, token = create_shop(SHOP)
        sku = product_with_stock(shop, "A/B card", {"ab": 2 * rounds * batch + 200})["ab"]
        stack.enter_context(sandbox_gateway(shop))
        postmaster = ds._read_postmaster(Path(os.environ["KAMENG_DEVSTACK_DIR"]) / "pg")[0]
        servers = {"base": stack.enter_context(web_server(ds.free_port(), workers=3, code_dir=base_dir,
                                                          environment=_side_env("BENCH_BASE_ENV"))),
                   "this": stack.enter_context(web_server(ds.free_port(), workers=3,
                                                          environment=_side_env("BENCH_THIS_ENV")))}
        progress(f"base = {base_commit} ({base_dir}), this = the working tree")
        for side, url in servers.items():  # warm both: imports, prepared statements, caches
            _batch(url, token, sku.pk, 50, buyers, f"warm-{side}")
        measured: dict[str, list[tuple[float, float, float]]] = {"base": [], "this": []}
        for round_number in range(rounds):
            for side in ("base", "this") if round_number % 2 == 0 else ("this", "base"):
                url = servers[side]
                web, db, started = tree_cpu_seconds(url.pid), tree_cpu_seconds(postmaster), time.monotonic()
                failed = _batch(url, token, sku.pk, batch, buyers, f"r{round_number}-{side}")
                elapsed = time.monotonic() - started
                paid = batch - failed
                if paid <= 0:
                    raise SystemExit(f"checkout_ab: no order was paid on {side}")
                measured[side].append((1000 * (tree_cpu_seconds(url.pid) - web) / paid,
                                       1000 * (tree_cpu_seconds(postmaster) - db) / paid, paid / elapsed))
                progress(f"round {round_number} {side}: web {measured[side][-1][0]:.2f} ms/order, "
                         f"db {measured[side][-1][1]:.2f} ms/order, {measured[side][-1][2]:.1f} orders/s"
                         + (f", {failed} failed" if failed else ""))
        medians = {side: [statistics.median(run[i] for run in runs) for i in range(3)]
                   for side, runs in measured.items()}
        for side in ("base", "this"):
            emit(f"checkout_ab.{side}_web_cpu_ms_per_order", medians[side][0], "ms")
            emit(f"checkout_ab.{side}_db_cpu_ms_per_order", medians[side][1], "ms")
            emit(f"checkout_ab.{side}_orders_per_s", medians[side][2], "orders/s")
        emit("checkout_ab.web_cpu_change_pct", 100 * (medians["this"][0] / medians["base"][0] - 1), "%")
        emit("checkout_ab.db_cpu_change_pct", 100 * (medians["this"][1] / medians["base"][1] - 1), "%")


if __name__ == "__main__":
    main()
