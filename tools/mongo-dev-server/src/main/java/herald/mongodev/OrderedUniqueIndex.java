package herald.mongodev;

import java.util.Collection;
import java.util.List;
import java.util.Map;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.AbstractUniqueIndex;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.LibraryAccess;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.DuplicateKeyError;
import de.bwaldvogel.mongo.exception.KeyConstraintError;

/**
 * The library's unique index (a hash map, or an H2 map) plus its entries in index order.
 *
 * The library's own index still decides uniqueness and answers pinned lookups; the sorted
 * entries let {@link QueryPlanner} serve ranges, prefixes of compound unique indexes and sorts
 * (e.g. {@code find({}).sort({_id: 1}).limit(51)}, {@code {post_id: X}} on
 * {@code (post_id, account_id, scheduled_for)}). The entries are held in memory; with H2 the
 * collection refills them when it opens a stored index ({@link #needsEntries}).
 */
final class OrderedUniqueIndex<P> extends Index<P> implements Ordered<P> {

    private final Index<P> unique;
    private final SortedEntries<P> entries;
    /** The library's index, when its keys are top-level fields ({@link #checkNew} builds them then). */
    private final AbstractUniqueIndex<P> topLevel;
    /**
     * Whether {@link #checkNew} asks the sorted entries, not the library's index, whether a key
     * is taken: H2's map compares keys by serializing both, at every step of its search.
     */
    private final boolean checkSorted;

    OrderedUniqueIndex(Index<P> unique, List<IndexKey> keys, boolean sparse, boolean checkSorted) {
        super(unique.getName(), keys, sparse);
        this.checkSorted = checkSorted;
        this.unique = unique;
        this.entries = new SortedEntries<>(keys, sparse);
        boolean topLevelKeys = !sparse
            && entries.fields().stream().noneMatch(field -> field.contains(".") || field.startsWith("$"));
        this.topLevel = topLevelKeys && unique instanceof AbstractUniqueIndex<P> library ? library : null;
    }

    @Override
    public SortedEntries<P> entries() {
        return entries;
    }

    /** A stored (H2) index opened with documents in it, whose sorted entries are not built yet. */
    boolean needsEntries() {
        return entries.size() == 0 && !unique.isEmpty();
    }

    @Override
    protected boolean isSparse() {
        return entries.isSparse();
    }

    @Override
    public boolean isUnique() {
        return true;
    }

    @Override
    public P getPosition(Document document) {
        return unique.getPosition(document);
    }

    @Override
    public void checkAdd(Document document, MongoCollection<P> collection) {
        unique.checkAdd(document, collection);
    }

    @Override
    public void add(Document document, P position, MongoCollection<P> collection) {
        unique.add(document, position, collection);
        entries.add(document, position);
    }

    /**
     * {@link #checkAdd} for a new document, returning the key to give {@link #addNew}. When each
     * key is a top-level field without an array in it (Herald's unique keys), the library's key is
     * built here directly: the library builds it twice per insert, checks it twice (its
     * {@code add} repeats {@code checkAdd}), through path parsing and streams. Otherwise the
     * library checks and null is returned.
     *
     * <p>With {@code checkSorted}, a key of values whose order decides equality ({@link SortedEntries#orderDecidesEquality}) is
     * looked for in the sorted entries, which hold the same keys as the library's index.
     */
    KeyValue checkNew(Document document, MongoCollection<P> collection) {
        Object[] values = topLevel == null ? null : topLevelValues(document);
        if (values == null) {
            unique.checkAdd(document, collection);
            return null;
        }
        Object[] normalized = new Object[values.length];
        for (int i = 0; i < values.length; i++) {
            normalized[i] = LibraryAccess.normalize(values[i]);
        }
        KeyValue key = new KeyValue(normalized);
        boolean taken = checkSorted && SortedEntries.orderDecidesEquality(normalized)
            ? entries.firstWithValues(normalized) != null
            : LibraryAccess.contains(topLevel, key);
        if (taken) {
            // The library's message shows the values as given, not normalized.
            throw new DuplicateKeyError(unique, collection, getKeys(), new KeyValue(values));
        }
        return key;
    }

    /** The document's values of the keys, or null when one is an array (one key per element then). */
    private Object[] topLevelValues(Document document) {
        List<String> fields = entries.fields();
        Object[] values = new Object[fields.size()];
        for (int i = 0; i < values.length; i++) {
            Object value = document.getOrMissing(fields.get(i));
            if (value instanceof Collection<?>) {
                return null;
            }
            values[i] = value;
        }
        return values;
    }

    /** {@link #add} for a document {@link #checkNew} passed, with the key it returned. */
    void addNew(Document document, KeyValue key, P position, MongoCollection<P> collection) {
        if (key == null) {
            unique.add(document, position, collection);
        } else {
            LibraryAccess.put(topLevel, key, position);
        }
        entries.add(document, position);
    }

    @Override
    public P remove(Document document) {
        entries.remove(document);
        return unique.remove(document);
    }

    @Override
    public boolean canHandle(Document query) {
        return unique.canHandle(query);
    }

    /**
     * The library's answer; for plain values of top-level keys (what {@link IndexedLookup}
     * pins), the one lookup it makes in the end, without its streams, and with
     * {@code checkSorted} in the sorted entries (see {@link #checkNew}).
     */
    @Override
    public Iterable<P> getPositions(Document query) {
        Object[] normalized = topLevel == null ? null : pinnedValues(query);
        if (normalized == null) {
            return unique.getPositions(query);
        }
        P position;
        if (checkSorted && SortedEntries.orderDecidesEquality(normalized)) {
            Map.Entry<Object[], P> entry = entries.firstWithValues(normalized);
            if (entry == null) {
                return List.of();
            }
            // H2 stores a null position (a null _id) as Missing, which the sorted entries don't.
            position = entry.getValue() != null ? entry.getValue()
                : LibraryAccess.position(topLevel, new KeyValue(normalized));
        } else {
            position = LibraryAccess.position(topLevel, new KeyValue(normalized));
        }
        return position == null ? List.of() : List.of(position);
    }

    /** The query's values of the keys normalized, when each is a plain value, else null. */
    private Object[] pinnedValues(Document query) {
        List<String> fields = entries.fields();
        Object[] normalized = new Object[fields.size()];
        for (int i = 0; i < normalized.length; i++) {
            Object value = query.get(fields.get(i));
            if (!IndexedLookup.isPlainValue(value)) {
                return null;
            }
            normalized[i] = LibraryAccess.normalize(value);
        }
        return normalized;
    }

    @Override
    public long getCount() {
        return unique.getCount();
    }

    @Override
    public boolean isEmpty() {
        return unique.isEmpty();
    }

    @Override
    public long getDataSize() {
        return unique.getDataSize();
    }

    /** An update that leaves the index's fields alone (most do) cannot break uniqueness. */
    @Override
    public void checkUpdate(Document oldDocument, Document newDocument, MongoCollection<P> collection) {
        if (!entries.sameValues(oldDocument, newDocument)) {
            unique.checkUpdate(oldDocument, newDocument, collection);
        }
    }

    @Override
    public void updateInPlace(Document oldDocument, Document newDocument, P position, MongoCollection<P> collection)
        throws KeyConstraintError {
        if (!entries.sameValues(oldDocument, newDocument)) {
            unique.updateInPlace(oldDocument, newDocument, position, collection);
            entries.update(oldDocument, newDocument, position);
        }
    }

    @Override
    public void drop() {
        unique.drop();
        entries.clear();
    }
}
