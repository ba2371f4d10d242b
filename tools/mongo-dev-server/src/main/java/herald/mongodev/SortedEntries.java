package herald.mongodev;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeMap;

import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.ValueComparator;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.bson.ObjectId;

/**
 * The entries of one index in index order, as MongoDB keeps them: one entry per document, or
 * one per array element when a key is an array (multikey), a missing field as null, an empty
 * array as itself. An entry's key is its index values followed by the document's {@code _id},
 * so equal index values stay distinct entries, in {@code _id} order.
 *
 * Not thread-safe: the collection calls it while holding its own lock.
 */
final class SortedEntries<P> {

    /** Bound sentinels: before and after every real value at their position. */
    static final Object LOW = new Object() {
        @Override
        public String toString() {
            return "LOW";
        }
    };
    static final Object HIGH = new Object() {
        @Override
        public String toString() {
            return "HIGH";
        }
    };

    private static final String ID = "_id";

    private final List<String> fields;
    private final boolean[] ascending;
    private final boolean sparse;
    /** Sticky per key: a document once had an array there (its entries may repeat a document). */
    private final boolean[] multikey;
    /** Sticky per key: an array element was itself an array, which bounds cannot describe. */
    private final boolean[] nested;
    private final TreeMap<Object[], P> entries;
    /** Per key: the shared instances of its string values (see {@link KeyStrings}). */
    private final KeyStrings[] strings;

    SortedEntries(List<IndexKey> keys, boolean sparse) {
        int size = keys.size();
        this.fields = keys.stream().map(IndexKey::getKey).toList();
        this.ascending = new boolean[size];
        for (int i = 0; i < size; i++) {
            ascending[i] = keys.get(i).isAscending();
        }
        this.sparse = sparse;
        this.multikey = new boolean[size];
        this.nested = new boolean[size];
        this.strings = new KeyStrings[size];
        for (int i = 0; i < size; i++) {
            strings[i] = new KeyStrings();
        }
        this.entries = new TreeMap<>(this::compareKeys);
    }

    List<String> fields() {
        return fields;
    }

    boolean isAscending(int key) {
        return ascending[key];
    }

    boolean isMultikey(int key) {
        return multikey[key];
    }

    boolean isNested(int key) {
        return nested[key];
    }

    boolean isAnyMultikey() {
        for (boolean m : multikey) {
            if (m) {
                return true;
            }
        }
        return false;
    }

    boolean isSparse() {
        return sparse;
    }

    int size() {
        return entries.size();
    }

    void clear() {
        entries.clear();
    }

    void add(Document document, P position) {
        for (Object[] key : keys(document)) {
            entries.put(key, position);
        }
    }

    /** The position the document was indexed at, or null if it was not indexed (sparse). */
    P remove(Document document) {
        P position = null;
        for (Object[] key : keys(document)) {
            P removed = entries.remove(key);
            if (removed != null) {
                position = removed;
            }
        }
        return position;
    }

    /** Moves the document's entries when an update changed its index values or its id. */
    void update(Document oldDocument, Document newDocument, P position) {
        if (sameValues(oldDocument, newDocument)) {
            return;
        }
        for (Object[] key : keys(oldDocument)) {
            entries.remove(key);
        }
        for (Object[] key : keys(newDocument)) {
            entries.put(key, position);
        }
    }

    /** Most updates leave most indexes' fields alone (equal, often identical, values). */
    boolean sameValues(Document oldDocument, Document newDocument) {
        if (!Objects.equals(oldDocument.get(ID), newDocument.get(ID))) {
            return false;
        }
        for (String field : fields) {
            if (!Objects.equals(value(oldDocument, field), value(newDocument, field))) {
                return false;
            }
        }
        return true;
    }

    /**
     * The first entry with these (normalized) index values, whatever its {@code _id}, or null;
     * the library's equality when {@link #orderDecidesEquality} holds for them.
     */
    Map.Entry<Object[], P> firstWithValues(Object[] values) {
        Object[] low = Arrays.copyOf(values, values.length + 1);
        Object[] high = low.clone();
        low[values.length] = LOW;
        high[values.length] = HIGH;
        Map.Entry<Object[], P> first = entries.ceilingEntry(low);
        return first != null && compareKeys(first.getKey(), high) <= 0 ? first : null;
    }

    /**
     * Whether the values are null, strings, doubles, instants or booleans: of these, two compare
     * equal in index order exactly when the library's keys holding them are equal.
     */
    static boolean orderDecidesEquality(Object[] values) {
        for (Object value : values) {
            if (value != null && !(value instanceof String) && !(value instanceof Double)
                && !(value instanceof Instant) && !(value instanceof Boolean)) {
                return false;
            }
        }
        return true;
    }

    /** How many keys of the document hold a non-empty array (MongoDB allows one at most). */
    int arrayCount(Document document) {
        int arrays = 0;
        for (String field : fields) {
            if (value(document, field) instanceof Collection<?> c && !c.isEmpty()) {
                arrays++;
            }
        }
        return arrays;
    }

    /** A field's value as the library reads index keys, without its path parsing for plain names. */
    private static Object value(Document document, String field) {
        return field.indexOf('.') < 0 ? document.getOrMissing(field)
            : Utils.getSubdocumentValueCollectionAware(document, field);
    }

    /**
     * The document's entry keys: the cross product of each key's values (one per array element),
     * each followed by the {@code _id}. Empty for a sparse index when every key is missing.
     */
    List<Object[]> keys(Document document) {
        int size = fields.size();
        Object[] key = new Object[size + 1];
        boolean anyPresent = false;
        boolean anyArray = false;
        for (int i = 0; i < size; i++) {
            Object value = value(document, fields.get(i));
            anyPresent |= !(value instanceof Missing);
            if (value instanceof Collection<?>) {
                anyArray = true;
                key[i] = value;
            } else {
                key[i] = strings[i].canonical(normalize(value));
            }
        }
        if (sparse && !anyPresent) {
            return List.of();
        }
        key[size] = normalize(document.get(ID));
        if (!anyArray) {
            return Collections.singletonList(key);
        }
        List<Object[]> keys = new ArrayList<>(1);
        keys.add(key);
        for (int i = 0; i < size; i++) {
            if (!(key[i] instanceof Collection<?> elements)) {
                continue;
            }
            multikey[i] = true;
            List<Object[]> product = new ArrayList<>(keys.size() * Math.max(1, elements.size()));
            for (Object[] partial : keys) {
                if (elements.isEmpty()) {
                    partial[i] = List.of();
                    product.add(partial);
                    continue;
                }
                for (Object element : elements) {
                    nested[i] |= element instanceof Collection;
                    Object[] copy = partial.clone();
                    copy[i] = strings[i].canonical(normalize(element));
                    product.add(copy);
                }
            }
            keys = product;
        }
        return keys;
    }

    /**
     * Values as the library's {@code Utils.normalizeValue} (package-private there) makes them:
     * numbers as doubles (longs too large for one kept), missing as null, and embedded
     * documents and arrays as normalized copies, so an in-place change to the stored document
     * cannot move an entry.
     */
    static Object normalize(Object value) {
        if (Missing.isNullOrMissing(value)) {
            return null;
        }
        if (value instanceof String || value instanceof Instant || value instanceof ObjectId) {
            return value;
        }
        if (value instanceof Long l && l.longValue() != (long) l.doubleValue()) {
            return value;
        }
        if (value instanceof Number n) {
            double d = n.doubleValue();
            return Double.valueOf(d == -0.0 ? 0.0 : d);
        }
        if (value instanceof Map<?, ?> map) {
            Document copy = new Document();
            map.forEach((k, v) -> copy.put((String) k, normalize(v)));
            return copy;
        }
        if (value instanceof Collection<?> elements) {
            List<Object> copy = new ArrayList<>(elements.size());
            elements.forEach(e -> copy.add(normalize(e)));
            return copy;
        }
        return value;
    }

    int compareKeys(Object[] a, Object[] b) {
        return compareFrom(a, b, 0);
    }

    /** Index order on the keys from {@code from} on (and the _id), as a merge of ranges needs. */
    int compareFrom(Object[] a, Object[] b, int from) {
        for (int i = from; i < a.length; i++) {
            Object x = a[i];
            Object y = b[i];
            if (x == y) {
                continue;
            }
            if (x == LOW || y == HIGH) {
                return -1;
            }
            if (x == HIGH || y == LOW) {
                return 1;
            }
            int cmp = compareValues(x, y);
            if (cmp != 0) {
                return i < ascending.length && !ascending[i] ? -cmp : cmp;
            }
        }
        return 0;
    }

    /** {@link ValueComparator#asc()}, with the common same-type cases inline for speed. */
    static int compareValues(Object x, Object y) {
        if (x != null && y != null && x.getClass() == y.getClass()) {
            if (x instanceof String s) {
                return s.compareTo((String) y);
            }
            if (x instanceof Instant t) {
                return t.compareTo((Instant) y);
            }
            if (x instanceof Double d) {
                return Double.compare(d, (Double) y);
            }
            if (x instanceof Boolean b) {
                return Boolean.compare(b, (Boolean) y);
            }
        }
        try {
            return ValueComparator.asc().compare(x, y);
        } catch (UnsupportedOperationException e) {
            // A type the library cannot order (it would fail the write): any consistent order will do.
            int byType = x.getClass().getName().compareTo(y.getClass().getName());
            return byType != 0 ? byType : String.valueOf(x).compareTo(String.valueOf(y));
        }
    }

    /** Entries between two bound keys (inclusive; sentinels make them open), capped at {@code cap}. */
    int count(List<Object[][]> ranges, int cap) {
        int total = 0;
        for (Object[][] range : ranges) {
            for (Iterator<P> it = slice(range).values().iterator(); it.hasNext() && total < cap; it.next()) {
                total++;
            }
            if (total >= cap) {
                break;
            }
        }
        return total;
    }

    /** The positions within {@code ranges} (each {from, to} in index order), in index order or reversed. */
    Iterable<P> scan(List<Object[][]> ranges, boolean reverse, boolean dedupe) {
        List<Object[][]> ordered = new ArrayList<>(ranges);
        if (reverse) {
            Collections.reverse(ordered);
        }
        return () -> {
            Iterator<P> chained = new Iterator<>() {
                private final Iterator<Object[][]> next = ordered.iterator();
                private Iterator<P> current = Collections.emptyIterator();

                @Override
                public boolean hasNext() {
                    while (!current.hasNext() && next.hasNext()) {
                        NavigableMap<Object[], P> slice = slice(next.next());
                        current = (reverse ? slice.descendingMap() : slice).values().iterator();
                    }
                    return current.hasNext();
                }

                @Override
                public P next() {
                    if (!hasNext()) {
                        throw new NoSuchElementException();
                    }
                    return current.next();
                }
            };
            return dedupe ? distinct(chained) : chained;
        };
    }

    /**
     * The positions within {@code ranges}, merged in index order of the keys from {@code from}
     * on (each range is already in that order, since it fixes the keys before), or reversed.
     */
    Iterable<P> merge(List<Object[][]> ranges, boolean reverse, int from, boolean dedupe) {
        Comparator<Map.Entry<Object[], P>> order = (a, b) -> compareFrom(a.getKey(), b.getKey(), from);
        Comparator<Map.Entry<Object[], P>> headOrder = reverse ? order.reversed() : order;
        return () -> {
            PriorityQueue<Head<P>> heads = new PriorityQueue<>(Math.max(1, ranges.size()),
                (x, y) -> headOrder.compare(x.entry, y.entry));
            for (Object[][] range : ranges) {
                NavigableMap<Object[], P> slice = slice(range);
                Iterator<Map.Entry<Object[], P>> it = (reverse ? slice.descendingMap() : slice).entrySet().iterator();
                if (it.hasNext()) {
                    heads.add(new Head<>(it, it.next()));
                }
            }
            Iterator<P> merged = new Iterator<>() {
                @Override
                public boolean hasNext() {
                    return !heads.isEmpty();
                }

                @Override
                public P next() {
                    Head<P> head = heads.poll();
                    if (head == null) {
                        throw new NoSuchElementException();
                    }
                    P position = head.entry.getValue();
                    if (head.rest.hasNext()) {
                        heads.add(new Head<>(head.rest, head.rest.next()));
                    }
                    return position;
                }
            };
            return dedupe ? distinct(merged) : merged;
        };
    }

    private record Head<P>(Iterator<Map.Entry<Object[], P>> rest, Map.Entry<Object[], P> entry) {
    }

    private NavigableMap<Object[], P> slice(Object[][] range) {
        if (compareKeys(range[0], range[1]) > 0) {
            return Collections.emptyNavigableMap();
        }
        return entries.subMap(range[0], true, range[1], true);
    }

    private static <P> Iterator<P> distinct(Iterator<P> positions) {
        Set<P> seen = new HashSet<>();
        return new Iterator<>() {
            private P pending;

            @Override
            public boolean hasNext() {
                while (pending == null && positions.hasNext()) {
                    P candidate = positions.next();
                    if (seen.add(candidate)) {
                        pending = candidate;
                    }
                }
                return pending != null;
            }

            @Override
            public P next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                P out = pending;
                pending = null;
                return out;
            }
        };
    }
}
