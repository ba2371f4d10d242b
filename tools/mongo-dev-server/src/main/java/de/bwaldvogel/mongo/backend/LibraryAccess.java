package de.bwaldvogel.mongo.backend;

import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.FailedToParseException;

/**
 * The package-private and protected parts of mongo-java-server 1.47.0 that Herald's cheaper
 * write paths ({@code herald.mongodev.OperatorUpdates}, {@code herald.mongodev.Inserts}) reuse,
 * so that they apply update operators, validate, count sizes, store documents and keep unique
 * indexes with the library's own code rather than a copy of it ({@code TopLevelOperators},
 * which applies four operators itself, takes the library's arithmetic and equality from here).
 * It lives in the library's package for that reason only; it adds no behaviour.
 */
public final class LibraryAccess {

    private LibraryAccess() {
    }

    /**
     * Applies an update's operators to {@code target} as the library's
     * {@code calculateUpdateDocument} does after its deep copy: conflicting paths refused,
     * each operator through {@link FieldUpdates}, then the field names checked.
     */
    public static void applyOperators(Document target, Document update, ArrayFilters arrayFilters, Integer matchPos,
                                      String idField) {
        AbstractMongoCollection.validateUpdateQuery(update);
        for (String modifier : update.keySet()) {
            UpdateOperator operator;
            try {
                operator = UpdateOperator.fromValue(modifier);
            } catch (IllegalArgumentException e) {
                throw new FailedToParseException("Unknown modifier: " + modifier
                    + ". Expected a valid update modifier or pipeline-style update specified as an array");
            }
            new FieldUpdates(target, operator, idField, false, matchPos, arrayFilters)
                .apply((Document) update.get(modifier), modifier);
        }
        Utils.validateFieldNames(target);
    }

    /** The library's value equality for counting modified documents ({@code nullAwareEquals}). */
    public static boolean sameValue(Object a, Object b) {
        return Utils.nullAwareEquals(a, b);
    }

    /** {@code $inc}'s sum, with the library's number types (an int that overflows becomes a long). */
    public static Number add(Number a, Number b) {
        return NumericUtils.addNumbers(a, b);
    }

    /** BSON size, as the library counts a collection's data size. */
    public static int size(Document document) {
        return Utils.calculateSize(document);
    }

    public static <P> Document document(AbstractMongoCollection<P> collection, P position) {
        return collection.getDocument(position);
    }

    /** The collection's own query path (Herald's planner, in its collections). */
    public static <P> Iterable<Document> query(AbstractMongoCollection<P> collection, Document query, int limit) {
        return collection.queryDocuments(query, null, 0, limit, 0, null);
    }

    public static <P> String idField(AbstractMongoCollection<P> collection) {
        return collection.getIdField();
    }

    public static <P> boolean tracksDataSize(AbstractMongoCollection<P> collection) {
        return collection.tracksDataSize();
    }

    public static <P> void updateDataSize(AbstractMongoCollection<P> collection, int delta) {
        collection.updateDataSize(delta);
    }

    /**
     * The backend's write of a document updated in place (H2 stores it again; memory does
     * nothing). Neither backend reads the old version, so none is passed.
     */
    public static <P> void stored(AbstractMongoCollection<P> collection, P position, Document document) {
        collection.handleUpdate(position, null, document);
    }

    /** The backend's store of a new document (memory: a list slot; H2: the data map), giving its position. */
    public static <P> P store(AbstractMongoCollection<P> collection, Document document) {
        return collection.addDocumentInternal(document);
    }

    /** A value as the library's unique indexes key it (numbers as doubles, missing as null). */
    public static Object normalize(Object value) {
        return Utils.normalizeValue(value);
    }

    /** The position stored under a (normalized) key, or null. */
    public static <P> P position(AbstractUniqueIndex<P> index, KeyValue key) {
        return index.getPosition(key);
    }

    public static <P> boolean contains(AbstractUniqueIndex<P> index, KeyValue key) {
        return index.containsKey(key);
    }

    /** Adds a key known to be absent (the caller checked it), as the library's {@code add} does after checking. */
    public static <P> void put(AbstractUniqueIndex<P> index, KeyValue key, P position) {
        boolean added = index.putKeyPosition(key, position);
        Assert.isTrue(added, () -> "Key " + key + " already exists. Concurrency issue?");
    }
}
