"""The dev server answers from secondary (compound, non-unique, multikey) indexes exactly what
a full scan answers, and keeps those indexes current through every kind of write.

The reference for each query is the same filter wrapped in a one-branch `$or`, which no index
serves (neither the dev server's planner nor the library's own lookup), so the library scans
the collection and sorts in memory."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from tools import devservers

Doc = dict[str, Any]
Client = MongoClient[Doc]

BASE = datetime(2026, 12, 1, 12, tzinfo=UTC)
STATES = ["pending", "staged", "running", "succeeded"]
ACCOUNTS = [f"A{i}" for i in range(6)]
INDEXES: list[tuple[list[tuple[str, int]], str, bool]] = [
    ([("state", ASCENDING), ("due_at", ASCENDING)], "state_due", False),
    ([("state", ASCENDING), ("_id", ASCENDING)], "list_by_state", False),
    ([("account_ids", ASCENDING), ("_id", ASCENDING)], "list_by_account", False),
    ([("n", DESCENDING), ("state", ASCENDING)], "n_state", False),
    ([("lease.expires_at", ASCENDING)], "lease", False),
    ([("due_at", DESCENDING)], "due_desc", False),
    ([("p", ASCENDING), ("s", ASCENDING), ("state", ASCENDING)], "occurrence", True),
]
# Not the fields that hold arrays: the library's sort compares an array with a scalar
# inconsistently (not transitively), so its result then depends on the order it was given.
SORTABLE = ["state", "due_at", "lease.expires_at", "p", "s"]


def indexed(db: Any, name: str) -> Collection[Doc]:
    coll: Collection[Doc] = db[name]
    coll.drop()
    for keys, index_name, unique in INDEXES:
        coll.create_index(keys, name=index_name, unique=unique)
    return coll


class Generator:
    """Documents with every shape an index must cope with: missing fields, nulls, mixed
    types, arrays (empty, repeated elements, nested), embedded documents."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.serial = 0

    def when(self) -> datetime:
        return BASE + timedelta(minutes=self.rng.randrange(-300, 300))

    def doc(self) -> Doc:
        rng = self.rng
        self.serial += 1
        # Random ids, so that insertion (natural) order differs from every index order.
        d: Doc = {"_id": f"d{rng.randrange(10**6):06}-{self.serial}",
                  "p": self.serial // 3, "s": self.serial % 3}
        self.set_state(d)
        self.set_due(d)
        self.set_accounts(d)
        r = rng.random()
        if r < 0.4:
            d["n"] = rng.randrange(-3, 4)
        elif r < 0.7:
            d["n"] = rng.choice([-0.0, 0.5, 1.0, 2.0, -2.5, 3.25])
        elif r < 0.8:
            d["n"] = [rng.randrange(-3, 4), rng.randrange(-3, 4)]
        if rng.random() < 0.5:
            d["lease"] = {"expires_at": self.when(), "owner": "x"}
        return d

    def set_state(self, d: Doc) -> None:
        r = self.rng.random()
        if r < 0.85:
            d["state"] = self.rng.choice(STATES)
        elif r < 0.93:
            d["state"] = None
        else:
            d.pop("state", None)

    def set_due(self, d: Doc) -> None:
        r = self.rng.random()
        if r < 0.8:
            d["due_at"] = self.when()
        elif r < 0.85:
            d["due_at"] = None
        elif r < 0.9:
            d["due_at"] = self.rng.randrange(100)
        elif r < 0.95:
            d["due_at"] = "soon"
        else:
            d.pop("due_at", None)

    def set_accounts(self, d: Doc) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            d["account_ids"] = [rng.choice(ACCOUNTS) for _ in range(rng.randrange(1, 4))]
        elif r < 0.7:
            d["account_ids"] = []
        elif r < 0.8:
            d["account_ids"] = rng.choice(ACCOUNTS)
        elif r < 0.85:
            d["account_ids"] = [[rng.choice(ACCOUNTS)]]
        elif r < 0.9:
            d["account_ids"] = None
        else:
            d.pop("account_ids", None)

    def condition(self, field: str, known: list[Doc]) -> Any:
        rng = self.rng
        r = rng.random()
        if field == "state":
            return rng.choice([
                rng.choice(STATES), {"$in": rng.sample(STATES, rng.randrange(0, 4))},
                {"$eq": rng.choice(STATES)}, {"$ne": rng.choice(STATES)}, None,
                {"$gt": "q"}, {"$gte": "running", "$lt": "succeeded"}, {"$in": ["staged", None]},
            ])
        if field == "due_at":
            t, u = sorted([self.when(), self.when()])
            existing = [d["due_at"] for d in known if isinstance(d.get("due_at"), datetime)]
            return rng.choice([
                {"$lte": t}, {"$gt": t}, {"$gte": t, "$lt": u}, {"$lt": 50},
                {"$in": rng.sample(existing, min(2, len(existing)))},
                existing[0] if existing and r < 0.5 else {"$gt": u},
            ])
        if field == "account_ids":
            return rng.choice([
                rng.choice(ACCOUNTS), {"$in": rng.sample(ACCOUNTS, 2)}, {"$gte": "A3"},
                {"$gt": "A1", "$lt": "A3"}, {"$eq": "A2"}, [rng.choice(ACCOUNTS)],
            ])
        if field == "n":
            return rng.choice([2, 2.0, 0, {"$gt": 0}, {"$lt": 0}, {"$gte": -1, "$lte": 1},
                               {"$in": [1, 3.25, -2.5]}, {"$gt": 1, "$lt": 2}])
        if field == "lease.expires_at":
            return rng.choice([{"$lt": self.when()}, {"$gte": self.when()}])
        if field == "p":
            return rng.choice([rng.randrange(60), {"$in": [rng.randrange(60) for _ in range(5)]},
                               {"$lt": rng.randrange(60)}])
        if field == "s":
            return rng.randrange(3)
        assert field == "_id"
        ids = sorted(d["_id"] for d in known)
        return rng.choice([{"$gt": rng.choice(ids)}, {"$in": rng.sample(ids, 3)},
                           {"$lte": rng.choice(ids)}])

    def query(self, known: list[Doc]) -> tuple[Doc, list[tuple[str, int]], int, int]:
        rng = self.rng
        fields = rng.sample(["state", "due_at", "account_ids", "n", "lease.expires_at", "p", "s",
                             "_id"], rng.choice([1, 1, 2, 2, 3]))
        query: Doc = {f: self.condition(f, known) for f in fields}
        if len(query) > 1 and rng.random() < 0.2:
            first = next(iter(query))
            query = {"$and": [{first: query.pop(first)}, query]}
        if rng.random() < 0.1:
            query["$or"] = [{"s": 0}, {"s": 2}]
        sort: list[tuple[str, int]] = []
        if rng.random() < 0.8:
            sort = [(f, rng.choice([1, -1])) for f in rng.sample(SORTABLE, rng.randrange(0, 3))]
            sort.append(("_id", rng.choice([1, -1])))  # a total order: results compare exactly
        limit = rng.choice([0, 0, 1, 3, 10])
        skip = rng.choice([0, 0, 0, 2])
        return query, sort, limit, skip


def ids(coll: Collection[Doc], query: Doc, sort: list[tuple[str, int]], limit: int = 0,
        skip: int = 0) -> list[str]:
    return [d["_id"] for d in found(coll, query, sort, limit, skip)]


def found(coll: Collection[Doc], query: Doc, sort: list[tuple[str, int]], limit: int = 0,
          skip: int = 0) -> list[Doc]:
    cursor = coll.find(query, limit=limit, skip=skip)
    if sort:
        cursor = cursor.sort(sort)
    return list(cursor)


def sort_key(doc: Doc, sort: list[tuple[str, int]]) -> tuple[Any, ...]:
    """A document's sort values; missing and null sort as equals."""
    values = []
    for field, _ in sort:
        value: Any = doc
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return tuple(values)


def check_query(coll: Collection[Doc], query: Doc, sort: list[tuple[str, int]], limit: int,
                skip: int) -> None:
    scan = {"$or": [query]}
    context = f"query={query} sort={sort} limit={limit} skip={skip}"
    every = {d["_id"]: d for d in found(coll, scan, [])}
    assert coll.count_documents(query) == len(every), context
    if sort and sort[-1][0] == "_id":
        assert ids(coll, query, sort, limit, skip) == ids(coll, scan, sort, limit, skip), context
        return
    got = found(coll, query, sort, limit, skip)
    want = found(coll, scan, sort, limit, skip)
    got_ids = [d["_id"] for d in got]
    assert len(got) == len(want) and len(set(got_ids)) == len(got), context
    assert set(got_ids) <= set(every), context
    if not sort:
        if not limit and not skip:
            assert set(got_ids) == set(every), context
        return
    # Equal sort values may come in either order (MongoDB leaves ties unordered too): the
    # sequence of sort values must be the same, and each run of ties the same documents,
    # except that a limit may cut the last run at a different member.
    assert [sort_key(d, sort) for d in got] == [sort_key(d, sort) for d in want], context
    runs: dict[tuple[Any, ...], tuple[set[str], set[str]]] = {}
    for mine, theirs in zip(got, want, strict=True):
        run = runs.setdefault(sort_key(mine, sort), (set(), set()))
        run[0].add(mine["_id"])
        run[1].add(theirs["_id"])
    last = sort_key(got[-1], sort) if got else None
    for key, (mine_ids, their_ids) in runs.items():
        if key != last or not (limit or skip):
            assert mine_ids == their_ids, context


def check_many(coll: Collection[Doc], gen: Generator, rounds: int) -> None:
    known = list(coll.find())
    for _ in range(rounds):
        check_query(coll, *gen.query(known))


def mutate(coll: Collection[Doc], gen: Generator) -> None:
    """Writes of every kind, changing indexed fields: the indexes must follow each one."""
    rng = gen.rng
    docs = list(coll.find({}, {"_id": 1}))
    for d in rng.sample(docs, 40):
        change = gen.doc()
        op = rng.randrange(6)
        if op == 0:
            target: Doc = {}
            gen.set_state(target)
            coll.update_one({"_id": d["_id"]}, {"$set": target} if "state" in target
                            else {"$unset": {"state": ""}})
        elif op == 1:
            coll.update_one({"_id": d["_id"]}, {"$set": {"due_at": change.get("due_at"),
                                                         "n": change.get("n")}})
        elif op == 2:
            if isinstance((coll.find_one({"_id": d["_id"]}) or {}).get("account_ids"), list):
                coll.update_one({"_id": d["_id"]},
                                {"$push": {"account_ids": rng.choice(ACCOUNTS)}})
        elif op == 3:
            coll.update_one({"_id": d["_id"]}, {"$unset": {"account_ids": "", "lease": ""}})
        elif op == 4:
            keep = coll.find_one({"_id": d["_id"]}) or {}
            change.update({"_id": d["_id"], "p": keep.get("p"), "s": keep.get("s")})
            coll.replace_one({"_id": d["_id"]}, change)
        else:
            coll.delete_one({"_id": d["_id"]})
    coll.update_many({"state": "staged", "due_at": {"$lte": BASE}}, {"$set": {"state": "running"}})
    holding = [d["_id"] for d in coll.find({"account_ids": "A5"})
               if isinstance(d["account_ids"], list)]
    coll.update_many({"_id": {"$in": holding}}, {"$pull": {"account_ids": "A5"}})
    coll.delete_many({"state": "succeeded", "n": {"$gt": 2}})
    for _ in range(5):
        coll.find_one_and_update({"state": "pending"}, {"$set": {"state": "staged"}},
                                 sort=[("due_at", 1), ("_id", 1)])
    coll.insert_many([gen.doc() for _ in range(60)])


def test_indexed_answers_equal_full_scans(client: Client) -> None:
    gen = Generator(1)
    coll = indexed(client.idx_tests, "random")
    coll.insert_many([gen.doc() for _ in range(400)])
    check_many(coll, gen, 400)
    for _ in range(3):
        mutate(coll, gen)
        check_many(coll, gen, 150)


def test_herald_shapes(client: Client) -> None:
    """The queries bench/scale measures and the window check's, against the scan."""
    gen = Generator(2)
    coll = indexed(client.idx_tests, "shapes")
    coll.insert_many([gen.doc() for _ in range(500)])
    middle = sorted(d["_id"] for d in coll.find({}, {"_id": 1}))[250]
    shapes: list[tuple[Doc, list[tuple[str, int]], int]] = [
        ({"state": "staged"}, [("_id", 1)], 51),
        ({"state": "succeeded", "_id": {"$gt": middle}}, [("_id", 1)], 51),
        ({}, [("_id", 1)], 51),
        ({"_id": {"$gt": middle}}, [("_id", 1)], 51),
        ({"account_ids": "A1"}, [("_id", 1)], 51),
        ({"account_ids": "A1", "state": "running"}, [("_id", 1)], 5),
        ({"$and": [{"state": "pending"}, {"_id": {"$lt": middle}}]}, [("_id", -1)], 51),
        ({"state": {"$in": ["pending", "staged"]}, "due_at": {"$lte": BASE}}, [("due_at", 1)], 0),
        ({"state": {"$in": ["pending", "staged"]}, "due_at": {"$lte": BASE}}, [("due_at", 1)], 7),
        ({"state": "pending", "due_at": {"$lte": BASE}}, [("due_at", -1)], 7),
        ({"p": {"$in": [3, 4, 5, 9]}, "state": {"$in": ["pending", "staged"]}}, [], 0),
        ({"p": 10}, [("s", 1)], 0),
        ({"n": {"$lt": 3}}, [("p", -1)], 0),
        ({"n": {"$gte": 1}}, [("state", 1)], 9),
    ]
    for query, sort, limit in shapes:
        check_query(coll, query, sort, limit, 0)


def test_a_field_of_many_values_answers_as_one_of_few(client: Client) -> None:
    """An index shares one instance per value of a field with few values (KeyStrings); past
    4,096 values it keeps the documents' own. Entries made on either side of that switch are
    found, moved and dropped alike."""
    coll = indexed(client.idx_tests, "many")
    for first, (prefix, count) in ((0, ("f", 40)), (100, ("m", 4200)), (5000, ("l", 40))):
        # `p` differs for each document: the unique index `occurrence` holds `state` too.
        coll.insert_many([{"_id": f"{prefix}{i:04}", "p": first + i, "due_at": BASE,
                           "state": f"v{i:04}" if prefix == "m" else STATES[i % 4]}
                          for i in range(count)])
    coll.update_many({"_id": {"$in": ["f0000", "l0001", "m0002"]}}, {"$set": {"state": "v0003"}})
    coll.delete_many({"_id": {"$in": ["f0004", "l0004", "m0005"]}})
    assert [d["_id"] for d in coll.find({"state": "v0003"}).sort("_id", 1)] == [
        "f0000", "l0001", "m0002", "m0003"]
    for query, sort, limit in [
        ({"state": "pending"}, [("_id", 1)], 0),
        ({"state": {"$in": ["staged", "v0005", "v4100"]}}, [("_id", 1)], 0),
        ({"state": {"$gte": "v0100", "$lt": "v0110"}}, [("_id", -1)], 0),
        ({"state": {"$in": ["pending", "running"]}, "due_at": {"$lte": BASE}}, [("due_at", 1)], 0),
        ({"state": {"$lt": "succeeded"}}, [("state", 1)], 30),
    ]:
        check_query(coll, query, sort, limit, 0)


def test_plans_read_the_index(client: Client) -> None:
    """Without a sort, a query answered from an index returns its documents in index order,
    and a scan in the collection's own order (insertion order in memory, here descending
    `_id`): the two differ, which shows each shape is served by an index."""
    coll = indexed(client.idx_tests, "plans")
    coll.insert_many([{"_id": f"k{i:03}", "state": STATES[i % 2], "account_ids": [f"A{i % 3}"],
                       "due_at": BASE + timedelta(minutes=i % 7), "p": i % 5, "s": i}
                      for i in reversed(range(60))])

    def served(query: Doc) -> list[str]:
        return [d["_id"] for d in coll.find(query, {"_id": 1})]

    def scanned(query: Doc) -> list[str]:
        return served({"$or": [query]})

    shapes: list[Doc] = [{"state": "staged"}, {"p": {"$in": [1, 3]}}, {"due_at": {"$gt": BASE}}]
    if scanned({}) != sorted(scanned({})):
        # The memory backend scans in insertion order; H2 scans in _id order, like these.
        shapes += [{"account_ids": "A2"}, {"_id": {"$lt": "k030"}}]
    for query in shapes:
        got, scan = served(query), scanned(query)
        assert sorted(got) == sorted(scan) and got != scan, query
    until = BASE + timedelta(minutes=3)
    window = {"state": "pending", "due_at": {"$lte": until}}
    assert served(window) == sorted(scanned(window), key=lambda k: (int(k[1:]) % 7, k))
    assert served({"p": 3}) == sorted(scanned({"p": 3}), key=lambda k: int(k[1:]))
    assert served({"_id": {"$gte": "k050"}}) == [f"k{i:03}" for i in range(50, 60)]


def test_index_entries_follow_writes(client: Client) -> None:
    """One entry per document, one per distinct array element, a missing field or null as
    null and an empty array as itself; updates and deletes move and drop them."""
    coll = indexed(client.idx_tests, "entries")

    def keys() -> dict[str, int]:
        counts: dict[str, int] = client.idx_tests.command("validate", "entries")["keysPerIndex"]
        return counts

    coll.insert_many([
        {"_id": 1, "p": 1, "state": "pending", "account_ids": ["A1", "A2", "A3"]},
        {"_id": 2, "p": 2, "account_ids": []},
        {"_id": 3, "p": 3, "state": None},
    ])
    assert keys()["list_by_account"] == 5
    assert keys()["list_by_state"] == 3
    assert [d["_id"] for d in coll.find({"account_ids": "A2"})] == [1]
    coll.update_one({"_id": 1}, {"$pull": {"account_ids": "A2"}})
    assert keys()["list_by_account"] == 4
    assert list(coll.find({"account_ids": "A2"})) == []
    coll.update_one({"_id": 2}, {"$set": {"account_ids": ["A2"], "state": "staged"}})
    assert [d["_id"] for d in coll.find({"account_ids": "A2"})] == [2]
    assert [d["_id"] for d in coll.find({"state": "staged"}).sort("_id", 1)] == [2]
    assert [d["_id"] for d in coll.find({"state": None}).sort("_id", 1)] == [3]
    coll.delete_many({"_id": {"$in": [1, 3]}})
    assert keys()["list_by_account"] == 1
    assert keys()["state_due"] == 1
    assert [d["_id"] for d in coll.find({}).sort("_id", -1)] == [2]


def test_parallel_arrays_are_rejected(client: Client) -> None:
    coll = client.idx_tests["parallel"]
    coll.drop()
    coll.create_index([("a", 1), ("b", 1)], name="a_b")
    coll.insert_one({"_id": 1, "a": [1, 2], "b": 1})
    with pytest.raises(OperationFailure, match="parallel arrays"):
        coll.insert_one({"_id": 2, "a": [1, 2], "b": [3]})
    with pytest.raises(OperationFailure, match="parallel arrays"):
        coll.update_one({"_id": 1}, {"$set": {"b": [3, 4]}})
    assert list(coll.find({"a": 2})) == [{"_id": 1, "a": [1, 2], "b": 1}]


def test_find_one_and_update_takes_the_first_in_sort_order(client: Client) -> None:
    coll = indexed(client.idx_tests, "claims")
    coll.insert_many([{"_id": f"c{i}", "p": i, "state": "pending",
                       "due_at": BASE + timedelta(seconds=-i)}
                      for i in range(20)])
    claimed = [
        (coll.find_one_and_update({"state": "pending", "due_at": {"$lte": BASE}},
                                  {"$set": {"state": "running"}}, sort=[("due_at", 1)],
                                  return_document=ReturnDocument.AFTER) or {})["_id"]
        for _ in range(3)
    ]
    assert claimed == ["c19", "c18", "c17"]
    assert coll.count_documents({"state": "running"}) == 3


def test_h2_rebuilds_its_memory_indexes_when_reopened(tmp_path: Any) -> None:
    """Secondary indexes and the sorted side of unique ones live in memory: a restarted H2
    server rebuilds them from the stored documents, and creating the indexes again (as every
    Herald node does at start) changes nothing."""
    data = tmp_path / "store.h2"
    gen = Generator(3)

    def session(first: bool) -> None:
        server = devservers.start_mongo(backend="h2", data=data)
        try:
            mongo: Client = MongoClient(f"mongodb://127.0.0.1:{server.port}/", tz_aware=True)
            with mongo:
                db = mongo.idx_tests
                coll = indexed(db, "kept") if first else db["kept"]
                if first:
                    coll.insert_many([gen.doc() for _ in range(300)])
                else:
                    for keys, name, unique in INDEXES:
                        coll.create_index(keys, name=name, unique=unique)
                    counts = db.command("validate", "kept")["keysPerIndex"]
                    assert counts["list_by_state"] == coll.count_documents({}) == 300
                    assert [d["_id"] for d in coll.find({}, {"_id": 1}).sort("_id", 1).limit(5)] \
                        == sorted(d["_id"] for d in coll.find({"$or": [{}]}, {"_id": 1}))[:5]
                    check_many(coll, gen, 150)
                    mutate(coll, gen)
                    check_many(coll, gen, 100)
        finally:
            server.stop()

    session(first=True)
    session(first=False)


def test_sparse_and_dropped_indexes(client: Client) -> None:
    """A sparse index leaves out documents without its keys, so it never serves a sort on its
    own; a dropped index serves nothing."""
    coll = client.idx_tests["sparse"]
    coll.drop()
    coll.create_index([("x", 1)], name="x", sparse=True)
    coll.insert_many([{"_id": i, **({"x": 10 - i} if i % 2 else {})} for i in range(8)])
    assert client.idx_tests.command("validate", "sparse")["keysPerIndex"]["x"] == 4
    everything = coll.find({}).sort([("x", 1), ("_id", 1)])
    assert [d["_id"] for d in everything] == [0, 2, 4, 6, 7, 5, 3, 1]
    assert [d["_id"] for d in coll.find({"x": {"$gt": 4}}).sort("x", -1)] == [1, 3, 5]
    coll.update_one({"_id": 0}, {"$set": {"x": 0}})
    coll.update_one({"_id": 1}, {"$unset": {"x": ""}})
    assert client.idx_tests.command("validate", "sparse")["keysPerIndex"]["x"] == 4
    assert [d["_id"] for d in coll.find({"x": {"$lte": 5}}).sort("x", 1)] == [0, 7, 5]
    coll.drop_index("x")
    assert [d["_id"] for d in coll.find({"x": {"$lte": 5}}).sort("x", 1)] == [0, 7, 5]


def test_update_many_by_listed_ids(client: Client) -> None:
    """`update_many({_id: {$in: ids}, ...})` (staging, claims) reads the listed documents
    through the `_id` index: the same documents, counts and positional updates as when a
    one-branch `$or` around the id condition makes the update scan (test_dev_server_updates
    compares both with the library's own update path)."""
    split, whole = indexed(client.idx_tests, "by_ids"), indexed(client.idx_tests, "by_ids_ref")
    docs = [{"_id": i, "p": i, "state": "pending", "tags": ["a", "b", "c"][: 1 + i % 3]}
            for i in range(10)]
    split.insert_many(docs)
    whole.insert_many(docs)
    updates: list[tuple[list[Any], Doc, Doc]] = [
        ([1, 2, 2.0, 5, 8, 99, "1"], {"tags": "b"},
         {"$set": {"tags.$": "B", "state": "staged"}, "$inc": {"n": 1}}),
        ([1, 2, 3], {}, {"$set": {"state": "staged"}}),
        ([], {}, {"$set": {"state": "x"}}),
        ([0, 4, 6, 9], {"state": "pending"}, {"$push": {"tags": "d"}, "$unset": {"p": ""}}),
    ]

    def outcome(coll: Collection[Doc], selector: Doc, update: Doc) -> Any:
        try:
            result = coll.update_many(selector, update)
        except OperationFailure as e:  # the second unset `p` breaks the unique index
            return e.code
        return result.matched_count, result.modified_count

    for listed, rest, update in updates:
        mine = outcome(split, {"_id": {"$in": listed}, **rest}, update)
        theirs = outcome(whole, {"$or": [{"_id": {"$in": listed}}], **rest}, update)
        assert mine == theirs, listed
        assert list(split.find().sort("_id", 1)) == list(whole.find().sort("_id", 1)), listed
    assert outcome(split, {"_id": {"$in": [0, 4]}}, {"$unset": {"p": ""}}) == 11000
    assert [d["tags"] for d in split.find({"_id": {"$in": [1, 5]}}).sort("_id", 1)] == [
        ["a", "B"], ["a", "B", "c"]]
    with pytest.raises(OperationFailure):
        split.update_many({"_id": {"$in": [1]}}, {"$set": {"_id": 5}})
