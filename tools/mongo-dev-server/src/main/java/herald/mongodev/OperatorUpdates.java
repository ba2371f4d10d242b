package herald.mongodev;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

import de.bwaldvogel.mongo.backend.AbstractMongoCollection;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.DefaultQueryMatcher;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.LibraryAccess;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.QueryMatcher;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerException;
import de.bwaldvogel.mongo.oplog.Oplog;

/**
 * The library's update of matched documents by operators ({@code $set}, {@code $push}...),
 * at a cost that follows the fields the operators name rather than the whole document.
 *
 * <p>For every matched document the library copies the document deeply twice (the old
 * version, and the base the operators change), compares the whole documents twice (once
 * normalizing both, which copies them again), encodes both to BSON to count the size change,
 * asks every index for the document's position and calls every index's update hooks. Here the
 * new version holds only the id and the fields the operators name (operators read and write
 * nothing else), those the operators would change in place copied deeply first
 * ({@link #changedInPlace}), so no stored value ever changes in place; only those fields are
 * compared and sized; the position comes from the lookup or the {@code _id} index; only the
 * indexes on a changed field are told, and given the fields their keys read. The operators
 * Herald's writes use are applied by {@link TopLevelOperators} when it can; the others, the
 * checks and the errors are the library's own ({@link LibraryAccess}).
 *
 * <p>A batch by id ({@code {_id: {$in: ids}, ...}}) reads the listed documents through the
 * {@code _id} index and matches each against the rest of the filter only: the library's
 * matcher would compare each document with every listed id, twice (again for the positional
 * operator), which is quadratic in the batch. The positional operator's match is only looked
 * for when a path has a {@code $} segment.
 *
 * <p>Replacements, upserts that insert, findAndModify, and collections whose indexes are not
 * all Herald's (system collections) go the library's way.
 */
final class OperatorUpdates<P> {

    private static final String ID = "_id";
    private static final Set<String> IN_PLACE = Set.of("$pull", "$pullAll", "$pop", "$addToSet", "$rename", "$bit");

    /** Set once at start ({@code --updates library}): tests compare this path with the library's. */
    private static volatile boolean libraryOnly;

    private final AbstractMongoCollection<P> collection;
    private final QueryMatcher matcher = new DefaultQueryMatcher();

    OperatorUpdates(AbstractMongoCollection<P> collection) {
        this.collection = collection;
    }

    static void useLibrary(boolean library) {
        libraryOnly = library;
    }

    /** The update's result, or {@code null} when the library must do it (nothing changed then). */
    Document update(Document selector, Document update, ArrayFilters arrayFilters, boolean isMulti,
                    boolean isUpsert, Oplog oplog) {
        if (libraryOnly) {
            return null;
        }
        Set<String> named = namedFields(update);
        Index<P> idIndex = named == null ? null : idIndex();
        if (idIndex == null) {
            return null;
        }
        Set<String> changedInPlace = changedInPlace(update);
        boolean positional = hasPositional(update);
        List<P> positions = new ArrayList<>();
        List<Document> documents = new ArrayList<>();
        Document filter = selector;
        Document positionFilter = selector;
        IndexedLookup.Lookup<P> lookup = IndexedLookup.candidates(collection.getIndexes(), selector);
        if (lookup != null) {
            if (lookup.answered() != null) {
                filter = new Document(selector);
                filter.remove(lookup.answered());
                // An _id is never an array, so it cannot place the positional operator.
                positionFilter = ID.equals(lookup.answered()) ? filter : selector;
            }
            for (P position : lookup.positions()) {
                Document document = LibraryAccess.document(collection, position);
                if (matcher.matches(document, filter)) {
                    positions.add(position);
                    documents.add(document);
                    if (!isMulti) {
                        break;
                    }
                }
            }
        } else {
            for (Document document : LibraryAccess.query(collection, selector, isMulti ? 0 : 1)) {
                positions.add(idIndex.getPosition(document));
                documents.add(document);
            }
        }
        if (documents.isEmpty() && isUpsert) {
            return null;
        }
        List<Object> updatedIds = new ArrayList<>();
        int[] sizeDelta = {0};
        try {
            for (int i = 0; i < documents.size(); i++) {
                Document document = documents.get(i);
                Integer matchPos = positional ? matcher.matchPosition(document, positionFilter) : null;
                if (apply(document, positions.get(i), update, arrayFilters, matchPos, named, changedInPlace,
                    sizeDelta)) {
                    updatedIds.add(document.get(LibraryAccess.idField(collection)));
                }
            }
        } finally {
            if (sizeDelta[0] != 0 && LibraryAccess.tracksDataSize(collection)) {
                LibraryAccess.updateDataSize(collection, sizeDelta[0]);
            }
        }
        oplog.handleUpdate(collection.getFullName(), selector, update, updatedIds);
        return new Document("n", documents.size()).append("nModified", updatedIds.size());
    }

    /**
     * Applies the operators to one stored document, in place, keeping the indexes current;
     * true when it counts as modified (the library's normalized comparison of old and new).
     */
    private boolean apply(Document document, P position, Document update, ArrayFilters arrayFilters,
                          Integer matchPos, Set<String> named, Set<String> changedInPlace, int[] sizeDelta) {
        String idField = LibraryAccess.idField(collection);
        Document updated = new Document();
        updated.put(idField, document.get(idField));
        for (String field : named) {
            Object value = document.getOrMissing(field);
            if (!(value instanceof Missing)) {
                updated.put(field, changedInPlace.contains(field) ? copy(value) : value);
            }
        }
        if (!arrayFilters.isEmpty() || !TopLevelOperators.apply(updated, update, idField)) {
            LibraryAccess.applyOperators(updated, update, arrayFilters, matchPos, idField);
        }

        Set<String> changed = new LinkedHashSet<>();
        for (String field : named) {
            if (!Objects.equals(document.getOrMissing(field), updated.getOrMissing(field))) {
                changed.add(field);
            }
        }
        if (changed.isEmpty()) {
            return false;
        }
        List<Index<P>> indexes = collection.getIndexes();
        List<Index<P>> affected = new ArrayList<>(indexes.size());
        Set<String> keyFields = new LinkedHashSet<>(List.of(ID, idField));
        for (Index<P> index : indexes) {
            if (changed.contains(idField) || covers(index, changed)) {
                affected.add(index);
                for (IndexKey key : index.getKeys()) {
                    keyFields.add(topLevel(key.getKey()));
                }
            }
        }
        if (!affected.isEmpty()) {
            Document oldKeys = fields(document, keyFields);
            Document newKeys = new Document();
            for (String field : keyFields) {
                Object value = (changed.contains(field) ? updated : document).getOrMissing(field);
                if (!(value instanceof Missing)) {
                    newKeys.put(field, value);
                }
            }
            for (Index<P> index : affected) {
                index.checkUpdate(oldKeys, newKeys, collection);
            }
            for (Index<P> index : affected) {
                index.updateInPlace(oldKeys, newKeys, position, collection);
            }
        }
        if (LibraryAccess.tracksDataSize(collection)) {
            sizeDelta[0] += sizeChange(document, updated, changed);
        }

        boolean modified = false;
        Set<String> added = new HashSet<>();
        for (String field : changed) {
            boolean had = document.containsKey(field);
            boolean has = updated.containsKey(field);
            if (had && has) {
                modified |= !sameValue(document.get(field), updated.get(field));
                document.put(field, updated.get(field));
            } else if (had) {
                document.remove(field);
                modified = true;
            } else {
                added.add(field);
            }
        }
        if (!added.isEmpty()) {
            modified = true;
            for (Map.Entry<String, Object> entry : updated.entrySet()) {
                if (added.contains(entry.getKey())) {
                    if (entry.getKey().contains(".")) {
                        throw new MongoServerException(
                            "illegal field name. must not happen as it must be caught by the driver");
                    }
                    document.put(entry.getKey(), entry.getValue());
                }
            }
        }
        LibraryAccess.stored(collection, position, document);
        return modified;
    }

    /**
     * The library's comparison for counting a document as modified (values normalized: 1 and
     * 1.0 are the same), which copies both values; arrays or documents of different sizes
     * differ without it.
     */
    private static boolean sameValue(Object a, Object b) {
        if (a instanceof Collection<?> x && b instanceof Collection<?> y && x.size() != y.size()
            || a instanceof Map<?, ?> m && b instanceof Map<?, ?> n && m.size() != n.size()) {
            return false;
        }
        return LibraryAccess.sameValue(a, b);
    }

    /** The collection's single-key unique index on {@code _id}, when every index is Herald's. */
    private Index<P> idIndex() {
        Index<P> found = null;
        for (Index<P> index : collection.getIndexes()) {
            if (!(index instanceof Ordered<?>)) {
                return null;
            }
            if (index.isUnique() && index.getKeys().size() == 1 && index.getKeys().get(0).getKey().equals(ID)) {
                found = index;
            }
        }
        return found;
    }

    /**
     * The top-level fields an update's operators name (a path's first segment; a rename's
     * target too): the only fields the operators can change. {@code null} when the update is
     * not made of operators with documents as arguments (the library then judges it).
     */
    private static Set<String> namedFields(Document update) {
        if (update.isEmpty()) {
            return null;
        }
        Set<String> named = new LinkedHashSet<>();
        for (Map.Entry<String, Object> entry : update.entrySet()) {
            if (!entry.getKey().startsWith("$") || !(entry.getValue() instanceof Document change)) {
                return null;
            }
            for (Map.Entry<String, Object> path : change.entrySet()) {
                named.add(topLevel(path.getKey()));
                if (entry.getKey().equals("$rename") && path.getValue() instanceof String target) {
                    named.add(topLevel(target));
                }
            }
        }
        return named;
    }

    /**
     * The named top-level fields whose stored value the library's operators would change in
     * place, so they must be copied first: those under a path of several segments (an embedded
     * field, an array element), and those of {@code $pull}, {@code $pullAll}, {@code $pop},
     * {@code $addToSet} (which change the array itself), {@code $rename} and {@code $bit}. The
     * others ({@code $set}, {@code $unset}, {@code $inc}, {@code $push}... on a top-level field)
     * put a new value in the new version and leave the old one as it was.
     */
    private static Set<String> changedInPlace(Document update) {
        Set<String> fields = new HashSet<>();
        for (Map.Entry<String, Object> entry : update.entrySet()) {
            boolean inPlace = IN_PLACE.contains(entry.getKey());
            for (Map.Entry<String, Object> path : ((Document) entry.getValue()).entrySet()) {
                if (inPlace || path.getKey().indexOf('.') >= 0) {
                    fields.add(topLevel(path.getKey()));
                }
                if (path.getValue() instanceof String target && entry.getKey().equals("$rename")) {
                    fields.add(topLevel(target));
                }
            }
        }
        return fields;
    }

    /** Whether a path has a positional {@code $} segment, which needs the filter's match position. */
    private static boolean hasPositional(Document update) {
        for (Object change : update.values()) {
            for (Map.Entry<String, Object> path : ((Document) change).entrySet()) {
                if (isPositional(path.getKey()) || path.getValue() instanceof String s && isPositional(s)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static boolean isPositional(String path) {
        return path.equals("$") || path.startsWith("$.") || path.contains(".$.") || path.endsWith(".$");
    }

    private static String topLevel(String path) {
        int dot = path.indexOf('.');
        return dot < 0 ? path : path.substring(0, dot);
    }

    private static boolean covers(Index<?> index, Set<String> changed) {
        for (IndexKey key : index.getKeys()) {
            if (changed.contains(topLevel(key.getKey()))) {
                return true;
            }
        }
        return false;
    }

    /**
     * New size less old: only the changed fields differ. Each side is the sum of its elements,
     * or, for types {@link BsonSize} leaves to the library, those fields encoded by it (the
     * document's header and terminator cancel out either way).
     */
    private static int sizeChange(Document document, Document updated, Set<String> changed) {
        int delta = 0;
        for (String field : changed) {
            int before = document.containsKey(field) ? BsonSize.element(field, document.get(field)) : 0;
            int after = updated.containsKey(field) ? BsonSize.element(field, updated.get(field)) : 0;
            if (before < 0 || after < 0) {
                return LibraryAccess.size(fields(updated, changed)) - LibraryAccess.size(fields(document, changed));
            }
            delta += after - before;
        }
        return delta;
    }

    private static Document fields(Document document, Set<String> names) {
        Document part = new Document();
        for (String name : names) {
            Object value = document.getOrMissing(name);
            if (!(value instanceof Missing)) {
                part.put(name, value);
            }
        }
        return part;
    }

    /**
     * A deep copy, as the library's {@code Document.cloneDeeply} makes it (documents, lists
     * as {@code ArrayList}s, sets as {@code LinkedHashSet}s, other values shared), without its
     * streams.
     */
    private static Object copy(Object value) {
        if (value instanceof Document document) {
            Document copy = new Document();
            for (Map.Entry<String, Object> entry : document.entrySet()) {
                copy.put(entry.getKey(), copy(entry.getValue()));
            }
            return copy;
        }
        if (value instanceof List<?> list) {
            List<Object> copy = new ArrayList<>(list.size());
            for (Object element : list) {
                copy.add(copy(element));
            }
            return copy;
        }
        if (value instanceof Set<?> set) {
            Set<Object> copy = new LinkedHashSet<>();
            for (Object element : set) {
                copy.add(copy(element));
            }
            return copy;
        }
        return value;
    }
}
