"""Inserts on the dev server's cheaper path (`Inserts`) give exactly what the library's own
insert gives: the same replies (which document of an ordered or unordered batch fails, with what
error, and that the others stay inserted), stored bytes, index entries, data size and indexed
answers.

The reference is a second server started with `--inserts library`; both get the same batches,
on each backend. With H2 both are also restarted on their files, since a restarted server checks
new keys against sorted entries it rebuilt from the file."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, CodecOptions, Decimal128, Int64, ObjectId, Regex
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure
from test_dev_server_updates import (
    Generator,
    check_same,
    collections,
    raw_docs,
    start_library_server,
)

from tools import devservers

Doc = dict[str, Any]


class Servers:
    """(cheaper path, library's path) on one backend, restartable on their files with H2."""

    def __init__(self, backend: str, tmp: Path | None) -> None:
        self.backend = backend
        self.files = (tmp / "ours.h2", tmp / "theirs.h2") if tmp else (None, None)
        self.servers: list[devservers.Server] = []
        self.clients: list[MongoClient[Doc]] = []
        self.start()

    def start(self) -> None:
        ours = devservers.start_mongo(backend=self.backend, data=self.files[0])
        self.servers = [ours]
        self.servers.append(start_library_server(self.backend, self.files[1], "--inserts"))
        self.clients = [MongoClient(f"mongodb://127.0.0.1:{s.port}/", tz_aware=True)
                        for s in self.servers]

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def pair(self) -> tuple[MongoClient[Doc], MongoClient[Doc]]:
        return self.clients[0], self.clients[1]


@pytest.fixture(scope="module", params=["memory", "h2"])
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Servers]:
    made = Servers(request.param, tmp_path_factory.mktemp("h2") if request.param == "h2" else None)
    try:
        yield made
    finally:
        made.stop()


def insert(coll: Collection[Doc], docs: list[Doc], ordered: bool) -> Any:
    """The insert command's whole reply (n, writeErrors with index, code and message)."""
    try:
        return coll.database.command("insert", coll.name, documents=docs, ordered=ordered)
    except OperationFailure as e:
        return "error", e.code, e.details


def upsert(coll: Collection[Doc], selector: Doc, update: Doc) -> Any:
    try:
        result = coll.update_one(selector, update, upsert=True)
    except OperationFailure as e:
        return "error", e.code, str(e.details.get("errmsg") if e.details else e)
    return result.matched_count, result.modified_count, result.upserted_id


def variant(gen: Generator, ids: list[Any]) -> Doc:
    """A job-like document, often with something that makes inserting it special or fail."""
    rng = gen.rng
    doc = gen.doc()
    r = rng.random()
    if r < 0.08:
        doc["_id"] = rng.choice(ids) if ids else doc["_id"]  # duplicate _id
    elif r < 0.12:
        doc["_id"] = [1, 2]  # an array _id is refused
    elif r < 0.16:
        doc["_id"] = rng.choice([{"a": 1, "b": [2]}, 7, 7.0, Int64(7), None,
                                 ObjectId(f"{gen.serial:024x}")])
    elif r < 0.22:
        # (p, s) often taken, under another number type
        doc["p"], doc["s"] = rng.randrange(4), rng.choice([0, 0.0, 1, Int64(1), -0.0])
    elif r < 0.27:
        del doc[rng.choice(["p", "s"])]  # missing keys index as null, and collide
    elif r < 0.31:
        doc["s"] = rng.choice([[1, 2], [], [rng.randrange(3)]])  # multikey unique key
    elif r < 0.35:
        doc["k"] = [1, 2]  # with array tags: parallel arrays
        doc["tags"] = ["a", "b"]
    elif r < 0.39:
        doc["p"] = rng.choice([2**62 + 1, Decimal128("1.5"), "p", True, None, {"x": 1}])
    if rng.random() < 0.3:
        doc["label"] = rng.choice(["plain", "h\u00e9llo", "\u65e5\u672c", "\U0001f600", ""])
    if rng.random() < 0.1:
        doc["blob"] = Binary(b"\x00\x01" * rng.randrange(4))
    if rng.random() < 0.05:
        doc["odd"] = rng.choice([Decimal128("2.5"), Regex("^a", "i"), Int64(5), 2**40])
    return doc


def test_random_inserts_match_the_library(servers: Servers) -> None:
    gen = Generator(11)
    ours, theirs = collections(servers.pair(), "inserts")
    ids: list[Any] = []
    for batch in range(120):
        docs = [variant(gen, ids) for _ in range(gen.rng.choice([1, 2, 5, 20, 60]))]
        ordered = gen.rng.random() < 0.5
        context = f"batch={batch} ordered={ordered}"
        assert insert(ours, docs, ordered) == insert(theirs, docs, ordered), context
        ids += [d["_id"] for d in docs if isinstance(d["_id"], str)]
        if batch % 10 == 0:
            check_same(ours, theirs, context)
    check_same(ours, theirs, "end")


def test_upserts_that_insert_match_the_library(servers: Servers) -> None:
    """Upserts that insert take the insert path too (a (p, s) pinned by the filter may collide)."""
    gen = Generator(12)
    ours, theirs = collections(servers.pair(), "upserts")
    docs = [gen.doc() for _ in range(30)]
    for coll in (ours, theirs):
        coll.insert_many(docs)
    for step in range(60):
        selector = {"_id": f"up{step}", "p": gen.rng.randrange(12), "s": gen.rng.randrange(3)}
        update = {"$set": {"state": "pending", "tags": ["a"]}, "$push": {"transitions": step}}
        assert upsert(ours, selector, update) == upsert(theirs, selector, update), step
    check_same(ours, theirs, "upserts")


def masked(coll: Collection[Doc]) -> list[Any]:
    """Stored documents (fields in order), with server-made `_id`s (which differ) replaced by a
    mark; sorted, since H2 keeps documents in `_id` order."""
    out = []
    for raw in raw_docs(coll):
        doc = bson.decode(raw, CodecOptions(document_class=dict))
        if isinstance(doc.get("_id"), ObjectId):
            doc["_id"] = "generated"
        out.append(list(doc.items()))
    return sorted(out, key=repr)


def test_generated_ids_match_the_library(servers: Servers) -> None:
    """Documents sent without an `_id` get an ObjectId appended, as the library does it."""
    ours, theirs = collections(servers.pair(), "generated")
    docs = [{"state": "pending", "p": i, "s": 0} for i in range(5)] + [{"p": 1, "s": 0}]
    for ordered in (True, False):
        assert insert(ours, docs, ordered) == insert(theirs, docs, ordered)
    assert masked(ours) == masked(theirs)
    assert ours.database.command("validate", ours.name)["keysPerIndex"] == \
        theirs.database.command("validate", theirs.name)["keysPerIndex"]
    assert ours.database.command("collStats", ours.name)["size"] == \
        theirs.database.command("collStats", theirs.name)["size"]


def test_inserts_after_a_restart_match_the_library(servers: Servers) -> None:
    """H2: keys stored before a restart still collide after it (memory: a plain second round)."""
    gen = Generator(13)
    ours, theirs = collections(servers.pair(), "restart")
    docs = [gen.doc() for _ in range(80)]
    for coll in (ours, theirs):
        coll.insert_many(docs)
    if servers.backend == "h2":
        servers.restart()
    ours, theirs = (client.upd_tests["restart"] for client in servers.pair())
    again = [{**d, "_id": f"new-{i}"} for i, d in enumerate(docs[::5])]  # same (p, s)
    again += [{**d, "p": -1 - i} for i, d in enumerate(docs[1::5])]  # same _id
    again += [{"_id": f"fresh-{i}", "p": 1000 + i, "s": 0} for i in range(5)]
    random.Random(3).shuffle(again)
    for ordered in (False, True):
        assert insert(ours, again, ordered) == insert(theirs, again, ordered)
    check_same(ours, theirs, "after restart")
    raw = ours.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
    assert raw.count_documents({}) == len(docs) + 5
