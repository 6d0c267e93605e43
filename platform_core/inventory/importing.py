"""The mechanics of a bulk key import: parse -> fingerprint + encrypt -> COPY -> insert.

Speed and memory (goal: 1,000,000 keys at >= 50,000 keys/s on 2 cores, flat memory):

* the file is streamed in chunks of :data:`CHUNK_SIZE` lines, never held whole, and
  at most a few chunks are in flight at once;
* PostgreSQL does most of the work (three index entries per key, one of them the
  unique fingerprint; the SKU reference is checked once per statement, decision
  0037), so :data:`WRITERS` connections write chunks in parallel while a helper thread
  computes the fingerprints and ciphertexts of the next ones (psycopg releases the
  GIL while it waits for the server);
* a chunk goes to the database in one ``COPY`` into a temporary table and one
  ``INSERT … SELECT … ON CONFLICT DO NOTHING``, which skips keys already in stock for
  the product (the unique fingerprint) without a round trip per key;
* each chunk commits with its counter change (``adjust_counts``) and the batch's
  progress, so the console can show progress and stock is sellable at once. If the
  import fails half-way, :func:`undo_batch` takes the batch's unsold keys back out.
* inside a caller's open transaction (tests, an API request in ``atomic``) there is
  only one writer: the caller's own connection, the only one that sees its rows.

Business rules (permissions, the low-stock alert, awaiting-stock orders) live in
:mod:`platform_core.inventory.services`; start there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection, transaction
from django.utils import timezone

from platform_core import crypto
from platform_core.inventory import parsers
from platform_core.inventory.models import CardKey, DeliveredKey, ImportBatch
from platform_core.inventory.stock import KEY_CONTEXT, KeyCipher, adjust_counts

CHUNK_SIZE = 5000
WRITERS = 2  # database connections writing one import at once
MAX_REPORTED_ERRORS = 200
_TEMP_TABLE = "pg_temp.kameng_key_import"

logger = logging.getLogger(__name__)


class KeySealer:
    """Fingerprints and encrypts many keys of one shop fast.

    Produces exactly what :class:`~platform_core.inventory.stock.KeyCipher` produces
    (tests compare them), but loads the shop's data key once instead of once per key,
    precomputes the HMAC pads and draws the nonces of a whole chunk in one call."""

    def __init__(self, shop):
        version, data_key = crypto._data_key(shop.pk, None)  # newest data key, as crypto.encrypt uses
        self._token_prefix = f"{crypto.TOKEN_PREFIX}.{version}."
        self._aead = AESGCM(data_key)
        self._aad = f"{shop.pk}:{KEY_CONTEXT}".encode()
        # HMAC-SHA256 (RFC 2104) with the inner and outer pad states computed once
        fingerprint_key = KeyCipher(shop)._fingerprint_key
        if len(fingerprint_key) > 64:
            fingerprint_key = hashlib.sha256(fingerprint_key).digest()
        padded = fingerprint_key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def fingerprint(self, secret: bytes) -> str:
        inner = self._inner.copy()
        inner.update(secret)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def seal_chunk(self, secrets: Iterable[str]) -> "SealedChunk":
        """COPY text rows ``fingerprint<TAB>ciphertext`` for the distinct keys of a chunk."""
        secrets = list(secrets)
        nonces = os.urandom(12 * len(secrets))
        encrypt, aad, prefix = self._aead.encrypt, self._aad, self._token_prefix
        fingerprint = self.fingerprint
        seen: set[str] = set()
        rows: list[str] = []
        for index, secret in enumerate(secrets):
            data = secret.encode()
            print_ = fingerprint(data)
            if print_ in seen:
                continue
            seen.add(print_)
            nonce = nonces[index * 12:index * 12 + 12]
            token = urlsafe_b64encode(nonce + encrypt(nonce, data, aad)).rstrip(b"=").decode()
            # hex and URL-safe base64 need no escaping in COPY's text format
            rows.append(f"{print_}\t{prefix}{token}\n")
        return SealedChunk(copy_data="".join(rows), distinct=len(rows), in_file_duplicates=len(secrets) - len(rows))


@dataclass
class SealedChunk:
    copy_data: str
    distinct: int
    in_file_duplicates: int


@dataclass
class Chunk:
    secrets: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    last_line: int = 0
    reported_errors: list[dict] = field(default_factory=list)  # those that still fit in the batch's list


@dataclass
class ChunkResult:
    inserted: int
    duplicates: int
    chunk: Chunk


def chunked(parsed: Iterator[parsers.Parsed], size: int | None = None) -> Iterator[Chunk]:
    """Chunks of ``size`` lines (valid or not), and the first errors to report."""
    size = size or CHUNK_SIZE
    room = MAX_REPORTED_ERRORS
    chunk = Chunk()
    for line, secret, error in parsed:
        if secret is not None:
            chunk.secrets.append(secret)
        else:
            chunk.errors.append((line, error))
            if room > 0:
                chunk.reported_errors.append({"line": line, "error": error})
                room -= 1
        chunk.last_line = line
        if len(chunk.secrets) + len(chunk.errors) >= size:
            yield chunk
            chunk = Chunk()
    if chunk.secrets or chunk.errors:
        yield chunk


@dataclass
class Source:
    """What to read: parsed lines and, if known, how many lines there are."""

    parsed: Iterator[parsers.Parsed]
    total_lines: int


def open_source(*, stream=None, lines: Iterable[str] | None = None, fmt: str = "txt",
                separator: str | None = None, pairs: bool = False) -> Source:
    """Check the whole input first where that is cheap (text: encoding, binary data),
    so an unreadable file fails before anything is imported."""
    if lines is not None:
        lines = list(lines) if not isinstance(lines, (list, tuple)) else lines
        return Source(parsers.read_text_lines(lines, separator=separator), len(lines))
    stream = _seekable_binary(stream)
    if fmt == "xlsx":
        total = parsers.xlsx_row_count(stream)
        return Source(parsers.read_xlsx(stream, pairs=pairs or separator is not None), total)
    if fmt not in ("txt", "csv"):
        raise parsers.ImportFileError(f"Unknown format {fmt!r}; use txt, csv or xlsx.")
    scan = parsers.scan_text(stream)
    if fmt == "csv":
        return Source(parsers.read_csv(stream, encoding=scan.encoding, pairs=pairs or separator is not None),
                      scan.lines)
    return Source(parsers.read_text(stream, separator=separator, encoding=scan.encoding), scan.lines)


def _seekable_binary(stream):
    """The plain binary file under a Django ``File`` / upload; a pipe is spooled to a
    temporary file first (the text check reads the input twice)."""
    stream = getattr(stream, "file", stream)
    if not (hasattr(stream, "seekable") and stream.seekable()):
        spooled = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        shutil.copyfileobj(stream, spooled)
        spooled.seek(0)
        return spooled
    return stream


class ChunkWriter:
    """Writes sealed chunks of one batch through the *current thread's* connection."""

    def __init__(self, *, sku, batch: ImportBatch, loop: bool, own_transaction: bool = False):
        self.sku, self.batch, self.loop = sku, batch, loop
        self.own_transaction = own_transaction
        quote = connection.ops.quote_name
        self._insert = (
            f"INSERT INTO {quote(CardKey._meta.db_table)} "
            "(sku_id, product_id_copy, secret, fingerprint, status, is_loop, batch_id, created_at) "
            f"SELECT %s, %s, t.secret, t.fingerprint, 'available', %s, %s, %s FROM {_TEMP_TABLE} t "
            "ON CONFLICT (product_id_copy, fingerprint) DO NOTHING"
        )
        # increments, not absolute values: several writers report into one batch row
        self._progress = (
            f"UPDATE {quote(ImportBatch._meta.db_table)} SET imported = imported + %s, "
            "duplicates = duplicates + %s, invalid = invalid + %s, errors = errors || %s::jsonb, "
            "processed_lines = GREATEST(processed_lines, %s) WHERE id = %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP_TABLE.split('.')[1]} "
                           "(fingerprint varchar(64) NOT NULL, secret text NOT NULL)")

    def write(self, chunk: Chunk, sealed: SealedChunk) -> ChunkResult:
        """One transaction: the keys, the SKU's counter and the batch's progress."""
        with transaction.atomic(), connection.cursor() as cursor:
            inserted = 0
            if sealed.distinct:
                cursor.execute(f"TRUNCATE {_TEMP_TABLE}")
                with cursor.cursor.copy(f"COPY {_TEMP_TABLE} (fingerprint, secret) FROM STDIN") as copy:
                    copy.write(sealed.copy_data)
                cursor.execute(self._insert,
                               [self.sku.pk, self.sku.product_id, self.loop, self.batch.pk, timezone.now()])
                inserted = cursor.rowcount
                if self.own_transaction:
                    # run the deferred foreign-key checks now, not at commit while the
                    # batch and SKU rows below are locked against the other writer
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            duplicates = sealed.in_file_duplicates + sealed.distinct - inserted
            # counters last: the SKU row stays locked only until this commit
            cursor.execute(self._progress, [inserted, duplicates, len(chunk.errors),
                                            json.dumps(chunk.reported_errors), chunk.last_line, self.batch.pk])
            adjust_counts(self.sku.pk, available=inserted)
        return ChunkResult(inserted=inserted, duplicates=duplicates, chunk=chunk)


def undo_batch(*, sku, batch: ImportBatch) -> int:
    """Take back what a batch added that is still unsold (a failed import imports nothing).
    Keys sold in the meantime, or loop keys already delivered, stay."""
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {quote(CardKey._meta.db_table)} k WHERE k.batch_id = %s AND k.status = 'available' "
            f"AND NOT EXISTS (SELECT 1 FROM {quote(DeliveredKey._meta.db_table)} d WHERE d.card_key_id = k.id)",
            [batch.pk])
        removed = cursor.rowcount
        adjust_counts(sku.pk, available=-removed)
    return removed


class InlineWriters:
    """Writes on the caller's own connection, one chunk behind the sealing thread.

    Used when the caller has a transaction open: other connections could not see its
    uncommitted rows (the SKU, the batch), and the keys must stay in that transaction."""

    def __init__(self, *, shop, sku, batch: ImportBatch, loop: bool):
        self._writer = ChunkWriter(sku=sku, batch=batch, loop=loop)
        self._pending: tuple[Chunk, Future] | None = None
        self._done: list[ChunkResult] = []

    def submit(self, chunk: Chunk, sealing: Future) -> None:
        self._write_pending()
        self._pending = (chunk, sealing)

    def results(self) -> list[ChunkResult]:
        done, self._done = self._done, []
        return done

    def finish(self) -> None:
        self._write_pending()

    def abort(self) -> None:
        self._pending = None

    def _write_pending(self) -> None:
        if self._pending is not None:
            chunk, sealing = self._pending
            self._pending = None
            self._done.append(self._writer.write(chunk, sealing.result()))


class ThreadedWriters:
    """``count`` threads, each with its own database connection in the shop's schema,
    writing chunks as they come. PostgreSQL spends most of an import's time (index
    entries), so two connections keep two cores busy."""

    _STOP = object()

    def __init__(self, *, shop, sku, batch: ImportBatch, loop: bool, count: int):
        self._shop, self._sku, self._batch, self._loop = shop, sku, batch, loop
        self._queue: queue.Queue = queue.Queue(maxsize=count * 2)  # bounded: memory stays flat
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._aborted = False
        self._threads = [threading.Thread(target=self._work, name=f"key-writer-{n}", daemon=True)
                         for n in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, chunk: Chunk, sealing: Future) -> None:
        while True:
            self._raise_failure()
            try:
                self._queue.put((chunk, sealing), timeout=0.2)
                return
            except queue.Full:
                continue

    def results(self) -> list[ChunkResult]:
        done = []
        while not self._done.empty():
            done.append(self._done.get())
        return done

    def finish(self) -> None:
        self._stop()
        self._raise_failure()

    def abort(self) -> None:
        self._aborted = True
        self._stop()

    def _stop(self) -> None:
        for _ in self._threads:
            self._queue.put(self._STOP)
        for thread in self._threads:
            thread.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _work(self) -> None:
        from django.db import connections

        try:
            connection.set_tenant(self._shop)
            writer = None
            while (item := self._queue.get()) is not self._STOP:
                if self._failure is not None or self._aborted:
                    continue  # drain, so submit() never waits for a dead writer
                try:
                    writer = writer or ChunkWriter(sku=self._sku, batch=self._batch, loop=self._loop,
                                                   own_transaction=True)
                    chunk, sealing = item
                    self._done.put(writer.write(chunk, sealing.result()))
                except BaseException as exc:  # noqa: BLE001 - handed to the importing thread
                    self._failure = self._failure or exc
        finally:
            connections.close_all()


def run_import(*, shop, sku, batch: ImportBatch, source: Source, loop: bool,
               progress: Callable[[ImportBatch], None] | None = None, writers: int | None = None) -> ImportBatch:
    """Import every chunk of ``source`` into ``sku``, updating ``batch`` as chunks commit.
    On any failure, take the batch's keys back out and re-raise; the caller sets the
    batch's final status."""
    if writers is None:
        writers = 1 if connection.in_atomic_block else WRITERS
    sealer = KeySealer(shop)
    sink = (InlineWriters(shop=shop, sku=sku, batch=batch, loop=loop) if writers == 1
            else ThreadedWriters(shop=shop, sku=sku, batch=batch, loop=loop, count=writers))

    def tally(results: list[ChunkResult]) -> None:
        for result in results:
            batch.imported += result.inserted
            batch.duplicates += result.duplicates
            batch.invalid += len(result.chunk.errors)
            batch.errors.extend(result.chunk.reported_errors)
            batch.processed_lines = max(batch.processed_lines, result.chunk.last_line)
            if progress is not None:
                progress(batch)

    try:
        # the sealing thread encrypts chunk n+1 while chunk n is being written
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="key-seal") as sealing_pool:
            for chunk in chunked(source.parsed):
                sink.submit(chunk, sealing_pool.submit(sealer.seal_chunk, chunk.secrets))
                tally(sink.results())
            sink.finish()
            tally(sink.results())
    except BaseException:
        sink.abort()
        try:
            undo_batch(sku=sku, batch=batch)
        except Exception:  # noqa: BLE001 - report the original failure, not the clean-up's
            logger.exception("could not take back the keys of failed import batch %s", batch.pk)
        raise
    finally:
        source.parsed.close()  # release the file reader now, not whenever it is collected
    batch.errors.sort(key=lambda error: error["line"])  # writers may finish chunks out of order
    return batch
