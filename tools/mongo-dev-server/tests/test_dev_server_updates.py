"""Operator updates on the dev server's cheaper path (`OperatorUpdates`) give exactly what the
library's own update path gives: the same results, counts, errors, stored bytes (field order
and number types included), index entries, data size and indexed answers.

The reference is a second server started with `--updates library`, which sends every update
through mongo-java-server's own code; both servers get the same documents and the same random
sequence of updates, on each backend."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, CodecOptions, ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from tools import devservers

Doc = dict[str, Any]
BASE = datetime(2026, 12, 1, 12, tzinfo=UTC)
STATES = ["pending", "staged", "running", "succeeded"]
TAGS = ["a", "b", "c", "d"]
INDEXES: list[tuple[list[tuple[str, int]], str, bool]] = [
    ([("state", ASCENDING), ("due_at", ASCENDING)], "state_due", False),
    ([("state", ASCENDING), ("_id", ASCENDING)], "list_by_state", False),
    ([("tags", ASCENDING), ("_id", ASCENDING)], "by_tag", False),
    ([("n", DESCENDING), ("state", ASCENDING)], "n_state", False),
    ([("lease.expires_at", ASCENDING)], "lease", False),
    ([("tags", ASCENDING), ("k", ASCENDING)], "tags_k", False),  # refuses parallel arrays
    ([("p", ASCENDING), ("s", ASCENDING)], "occurrence", True),
]


def start_library_server(backend: str, data: Path | None, path: str = "--updates"
                         ) -> devservers.Server:
    """Like `devservers.start_mongo`, with every update (or, with `path="--inserts"`, every
    insert) on the library's own path."""
    port = devservers.free_port()
    args = ["bash", str(devservers.MONGO_LAUNCHER), "--port", str(port), "--backend", backend,
            path, "library"]
    if data is not None:
        args += ["--data", str(data)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    devservers.wait_for_port(port, proc, 180, "mongo-dev-server")
    return devservers.Server("mongo", port, proc)


Pair = tuple[MongoClient[Doc], MongoClient[Doc]]


@pytest.fixture(scope="module", params=["memory", "h2"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    """(cheaper path, library's path) on one backend."""
    ours_data = theirs_data = None
    if request.param == "h2":
        ours_data = tmp_path_factory.mktemp("h2") / "ours.h2"
        theirs_data = tmp_path_factory.mktemp("h2") / "theirs.h2"
    ours = devservers.start_mongo(backend=request.param, data=ours_data)
    try:
        theirs = start_library_server(request.param, theirs_data)
        try:
            a: MongoClient[Doc] = MongoClient(f"mongodb://127.0.0.1:{ours.port}/", tz_aware=True)
            b: MongoClient[Doc] = MongoClient(f"mongodb://127.0.0.1:{theirs.port}/", tz_aware=True)
            with a, b:
                yield a, b
        finally:
            theirs.stop()
    finally:
        ours.stop()


def collections(pair: Pair, name: str) -> tuple[Collection[Doc], Collection[Doc]]:
    made = []
    for client in pair:
        coll: Collection[Doc] = client.upd_tests[name]
        coll.drop()
        for keys, index_name, unique in INDEXES:
            coll.create_index(keys, name=index_name, unique=unique)
        made.append(coll)
    return made[0], made[1]


class Generator:
    """Job-like documents and updates of every operator, including ones that fail."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.serial = 0

    def when(self) -> datetime:
        return BASE + timedelta(minutes=self.rng.randrange(-300, 300))

    def doc(self) -> Doc:
        rng = self.rng
        self.serial += 1
        d: Doc = {"_id": f"j{rng.randrange(10**6):06}-{self.serial}",
                  "p": self.serial // 3, "s": self.serial % 3,
                  "state": rng.choice(STATES), "due_at": self.when(), "lease_seq": 0,
                  "transitions": [{"state": "pending", "at": self.when(), "node": None}]}
        if rng.random() < 0.8:
            d["tags"] = rng.sample(TAGS, rng.randrange(0, 3))
        if rng.random() < 0.5:
            d["n"] = rng.choice([1, 2, -1, 0.5, 2.0, 10**12])
        if rng.random() < 0.5:
            d["lease"] = {"expires_at": self.when(), "owner": "x"}
        elif rng.random() < 0.5:
            d["lease"] = None
        if rng.random() < 0.3:
            d["meta"] = {"a": {"b": rng.randrange(3)}, "list": [{"x": 1}, {"x": 2}]}
        if rng.random() < 0.3:
            d["ref"] = ObjectId(f"{self.serial:024x}")
        return d

    def selector(self, ids: list[str]) -> Doc:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            listed = rng.sample(ids, min(len(ids), rng.randrange(1, 12)))
            return {"_id": {"$in": [*listed, "missing"]}, **self.condition()}
        if r < 0.5:
            return {"_id": rng.choice(ids), **self.condition()}
        if r < 0.7:
            return {"state": rng.choice(STATES), **self.condition()}
        if r < 0.8:
            return {"$or": [{"state": rng.choice(STATES)}, {"n": {"$gt": 1}}]}
        if r < 0.9:
            return {"tags": rng.choice(TAGS)}
        return {"_id": rng.choice(ids), "lease_seq": rng.randrange(3)}

    def condition(self) -> Doc:
        return self.rng.choice([{}, {}, {"state": {"$in": ["pending", "staged"]}},
                                {"due_at": {"$lte": BASE}}, {"lease_seq": {"$gte": 1}},
                                {"tags": "a"}])

    def update(self) -> tuple[Doc, dict[str, Any]]:
        """An update and its extra options (array filters)."""
        rng = self.rng
        t = self.when()
        choices: list[tuple[Doc, dict[str, Any]]] = [
            ({"$set": {"state": rng.choice(STATES), "updated_at": t},
              "$push": {"transitions": {"state": "staged", "at": t, "node": "n1"}}}, {}),
            ({"$set": {"state": "running", "lease": {"owner": "n1", "expires_at": t}},
              "$inc": {"lease_seq": 1}, "$unset": {"waiting_on": ""}}, {}),
            ({"$set": {"n": rng.choice([1, 1.0, 2, "x", [1, 2], None])}}, {}),
            ({"$set": {"lease.expires_at": t, "meta.a.b": rng.randrange(3)}}, {}),
            ({"$set": {"state": "pending"}}, {}),  # often no change at all
            ({"$set": {"new_field": rng.randrange(3), "another": {"x": [1, {"y": 2}]}}}, {}),
            # Sizes: non-ASCII text, binary data, an id (BsonSize leaves some to the encoder).
            ({"$set": {"label": rng.choice(["plain", "h\u00e9llo", "\u65e5\u672c", ""])}}, {}),
            ({"$set": {"blob": Binary(b"\x00\x01" * rng.randrange(4)), "ref": ObjectId()}}, {}),
            ({"$push": {"transitions": {"state": "x", "at": t, "note": "\u00fc" * 3}}}, {}),
            ({"$unset": {"tags": "", "lease": ""}}, {}),
            ({"$inc": {"n": rng.choice([1, 0, 0.0, 2.5])}}, {}),
            ({"$mul": {"n": 2}}, {}),
            ({"$min": {"due_at": t}, "$max": {"lease_seq": 2}}, {}),
            ({"$push": {"tags": {"$each": ["z", "a"], "$sort": 1, "$slice": 3}}}, {}),
            ({"$push": {"tags": {"$each": ["y"], "$position": 0}}}, {}),
            ({"$addToSet": {"tags": rng.choice(TAGS)}}, {}),
            ({"$pull": {"tags": rng.choice(TAGS)}}, {}),
            ({"$pullAll": {"tags": ["a", "b"]}}, {}),
            ({"$pop": {"tags": rng.choice([1, -1])}}, {}),
            ({"$rename": {"lease": "old_lease"}}, {}),
            ({"$rename": {"meta.a": "meta.c"}}, {}),
            ({"$setOnInsert": {"created": t}, "$set": {"touched": True}}, {}),
            ({"$set": {"tags.$": "Q"}}, {}),  # needs a tags condition in the filter
            ({"$set": {"meta.list.$[e].x": 9}}, {"array_filters": [{"e.x": {"$gte": 2}}]}),
            ({"$set": {"tags.$[]": "all"}}, {}),
            ({"$set": {"k": [1, 2]}}, {}),  # parallel arrays with tags
            ({"$set": {"s": rng.randrange(3), "p": rng.randrange(5)}}, {}),  # may break uniqueness
            ({"$inc": {"state": 1}}, {}),  # not a number
            ({"$set": {"_id": "other"}}, {}),  # immutable
            ({"$set": {"_id": "same"}}, {}),
            ({"$set": {"n": 1}, "$unset": {"n": ""}}, {}),  # conflicting paths
            ({"$foo": {"n": 1}}, {}),
            ({"$push": {"state": "x"}}, {}),  # not an array
            ({"$bit": {"n": {"and": 1}}}, {}),
        ]
        return rng.choice(choices)


def raw_docs(coll: Collection[Doc]) -> list[bytes]:
    raw = coll.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
    return [bytes(d.raw) for d in raw.find({"$or": [{}]})]


def outcome(coll: Collection[Doc], selector: Doc, update: Doc, extra: dict[str, Any],
            many: bool, upsert: bool) -> Any:
    try:
        write = coll.update_many if many else coll.update_one
        result = write(selector, update, upsert=upsert, **extra)
    except OperationFailure as e:
        return "error", e.code, str(e.details.get("errmsg") if e.details else e)
    return result.matched_count, result.modified_count, result.upserted_id


def check_same(ours: Collection[Doc], theirs: Collection[Doc], context: str) -> None:
    assert raw_docs(ours) == raw_docs(theirs), context
    db_ours, db_theirs = ours.database, theirs.database
    assert db_ours.command("validate", ours.name)["keysPerIndex"] == \
        db_theirs.command("validate", theirs.name)["keysPerIndex"], context
    assert db_ours.command("collStats", ours.name)["size"] == \
        db_theirs.command("collStats", theirs.name)["size"], context
    for query in ({"state": "staged"}, {"tags": "a"}, {"n": {"$gte": 1}},
                  {"lease.expires_at": {"$lte": BASE}}, {"p": {"$in": [1, 2, 3]}},
                  {"p": 1, "s": 1}, {"p": 2.0, "s": 0}, {"p": 3, "s": 2, "state": "staged"}):
        def ids(coll: Collection[Doc], q: Doc = query) -> list[Any]:
            return [d["_id"] for d in coll.find(q, {"_id": 1}).sort("_id", 1)]
        assert ids(ours) == ids(theirs), (context, query)
        # A one-branch $or is served by no index: the indexed answer against a scan.
        assert ids(ours) == ids(ours, {"$or": [query]}), (context, query)


def test_random_updates_match_the_library(pair: Pair) -> None:
    gen = Generator(7)
    ours, theirs = collections(pair, "random")
    docs = [gen.doc() for _ in range(150)]
    ours.insert_many(docs)
    theirs.insert_many(docs)
    ids = [d["_id"] for d in docs]
    check_same(ours, theirs, "inserted")
    for step in range(500):
        selector = gen.selector(ids)
        update, extra = gen.update()
        many = gen.rng.random() < 0.6
        upsert = gen.rng.random() < 0.1
        if upsert and "_id" not in selector:
            selector = {**selector, "_id": f"up{step}"}
        context = f"step={step} selector={selector} update={update} many={many} upsert={upsert}"
        assert outcome(ours, selector, update, extra, many, upsert) == \
            outcome(theirs, selector, update, extra, many, upsert), context
        if step % 25 == 0:
            check_same(ours, theirs, context)
    check_same(ours, theirs, "end")


def test_herald_batches_match_the_library(pair: Pair) -> None:
    """Staging, claims and fenced outcomes as Herald sends them, with some jobs already moved
    (a batch that matches fewer than it names)."""
    gen = Generator(8)
    ours, theirs = collections(pair, "batches")
    docs = [{**gen.doc(), "state": "pending", "lease_seq": 0} for _ in range(300)]
    for coll in (ours, theirs):
        coll.insert_many(docs)
        coll.update_many({"_id": {"$in": [d["_id"] for d in docs[::7]]}},
                         {"$set": {"state": "staged"}})
    ids = [d["_id"] for d in docs]
    t = BASE
    writes: list[tuple[Doc, Doc, bool]] = [
        ({"_id": {"$in": ids[:200]}, "state": "pending"},
         {"$set": {"state": "staged", "updated_at": t},
          "$push": {"transitions": {"state": "staged", "at": t, "node": "n1", "reason": "w"}}},
         True),
        ({"_id": {"$in": ids[:50]}, "state": {"$in": ["staged"]}, "due_at": {"$lte": BASE}},
         {"$set": {"state": "running", "lease": {"owner": "n1", "token": "tk"}, "claimed_at": t},
          "$push": {"transitions": {"state": "running", "at": t}},
          "$unset": {"waiting_on": ""}, "$inc": {"lease_seq": 1}}, True),
    ]
    for selector, update, many in writes:
        assert outcome(ours, selector, update, {}, many, False) == \
            outcome(theirs, selector, update, {}, many, False)
        check_same(ours, theirs, str(selector))
    running = [d["_id"] for d in ours.find({"state": "running"}, {"_id": 1})]
    for job_id in running + ids[250:260]:
        selector = {"_id": job_id, "state": {"$in": ["running"]}, "lease_seq": 1}
        update = {"$set": {"state": "succeeded", "result": {"url": "u"}, "write_token": "w"},
                  "$push": {"transitions": {"state": "succeeded", "at": t}}}
        assert outcome(ours, selector, update, {}, False, False) == \
            outcome(theirs, selector, update, {}, False, False)
    check_same(ours, theirs, "outcomes")


EDGE_CASES: list[tuple[Doc, Doc, Doc, bool]] = [
    # (document, selector beyond its _id, update, many)
    ({"n": 1}, {}, {"$inc": {"n": 0.0}}, False),  # stored as 1.0, counted as not modified
    ({"n": 1}, {}, {"$set": {"n": 1.0}}, False),  # equal: nothing written
    ({"n": 10**12}, {}, {"$set": {"n": float(10**12)}}, True),
    ({"state": "pending"}, {}, {"$set": {"state": "pending"}}, True),
    ({"state": "pending"}, {}, {"$unset": {"missing": ""}, "$pull": {"tags": "x"}}, True),
    ({"state": "pending"}, {}, {"$rename": {"missing": "other"}}, False),
    ({"state": "pending", "z": 1}, {}, {"$set": {"b": 1, "a": 2, "state": "x"}}, True),
    ({"lease": {"o": 1}, "z": 1}, {}, {"$rename": {"lease": "a_lease"}, "$set": {"y": 1}}, False),
    ({"tags": ["a", "b", "a"]}, {"tags": "a"}, {"$set": {"tags.$": "Q"}}, False),
    ({"tags": ["a", "b"]}, {"tags": "b"}, {"$unset": {"tags.$": ""}}, True),
    ({"tags": ["a", "b"]}, {}, {"$set": {"tags.$": "Q"}}, False),  # no match position: error
    ({"meta": {"a": {"b": 1}}}, {}, {"$set": {"meta.a.c": 2}, "$inc": {"meta.a.b": 1}}, True),
    ({"meta": {"a": {"b": 1}}}, {}, {"$set": {"meta.a": 5, "meta.a.b": 1}}, True),  # conflict
    ({"tags": ["a"]}, {}, {"$set": {"k": [1]}}, True),  # parallel arrays
    ({"p": 0, "s": 0}, {}, {"$set": {"s": 1}}, True),  # duplicate key with the second document
    # The top-level operators applied without the library's path handling (TopLevelOperators),
    # and the updates that must still go its way.
    ({"n": None, "tags": None}, {}, {"$inc": {"n": 1}, "$push": {"tags": "a"}}, True),
    ({"n": 2**31 - 1}, {}, {"$inc": {"n": 1, "m": 2**40}}, True),  # an int grows into a long
    ({"n": 1.5}, {}, {"$inc": {"n": 1}, "$unset": {"missing": "", "n2": ""}}, False),
    ({"tags": ["a"]}, {}, {"$push": {"tags": {"$slice": 1}}}, True),  # a document, not modifiers
    ({"state": "pending"}, {}, {"$set": {"state": None, "added": None}}, True),
    ({"state": None}, {}, {"$set": {"state": None}}, True),
    ({"n": 1}, {}, {"$inc": {"n": "x"}}, True),  # refused
    ({"n": 1}, {}, {"$set": {"n": 2}, "$inc": {"n": 1}}, True),  # conflict
    ({"n": 1}, {}, {"$unset": {"_id": ""}}, True),  # immutable
    ({"n": 1}, {}, {"$set": {"$x": 1}}, True),
    ({"n": 1}, {}, {"$set": {"": 1}}, True),
]


def test_edge_cases_match_the_library(pair: Pair) -> None:
    """Number types, no-op updates, field order, positional paths and refused updates, each
    on fresh documents (`{p: 0, s: 1}` beside them, for the unique index)."""
    for i, (doc, rest, update, many) in enumerate(EDGE_CASES):
        ours, theirs = collections(pair, "edges")
        for coll in (ours, theirs):
            coll.insert_many([{"_id": f"e{i}", **doc}, {"_id": f"f{i}", "p": 0, "s": 1}])
            coll.insert_one({"_id": f"g{i}", "x": 1, **doc, "p": -1, "s": -1})
        for selector in ({"_id": f"e{i}", **rest}, {"_id": {"$in": [f"e{i}", f"g{i}"]}, **rest},
                         {"$or": [{"_id": f"g{i}"}], **rest}):
            context = f"doc={doc} selector={selector} update={update}"
            assert outcome(ours, selector, update, {}, many, False) == \
                outcome(theirs, selector, update, {}, many, False), context
            check_same(ours, theirs, context)

