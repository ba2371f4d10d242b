package herald.mongodev;

import java.util.Collection;
import java.util.List;

import de.bwaldvogel.mongo.backend.AbstractMongoCollection;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.LibraryAccess;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.bson.ObjectId;
import de.bwaldvogel.mongo.exception.InvalidIdFieldError;

/**
 * The library's insert of one document ({@code addDocument}, which its {@code insert} command
 * calls per document), in the same steps and with the same errors, at less cost per document.
 *
 * <p>The library checks every index, stores the document, adds it to every index, then encodes
 * the whole document to BSON to learn its size. Its unique indexes build the document's key
 * through path parsing and streams, twice to check it (its {@code add} repeats
 * {@code checkAdd}) and once more to add it. Here a unique key of top-level fields is built
 * once, checked once and added ({@link OrderedUniqueIndex#checkNew}), and the size is counted
 * without encoding ({@link BsonSize}).
 *
 * <p>Collections with indexes of the library's own kind (system collections) go the library's way.
 */
final class Inserts<P> {

    private static final String ID = "_id";

    /** Set once at start ({@code --inserts library}): tests compare this path with the library's. */
    private static volatile boolean libraryOnly;

    private final AbstractMongoCollection<P> collection;

    Inserts(AbstractMongoCollection<P> collection) {
        this.collection = collection;
    }

    static void useLibrary(boolean library) {
        libraryOnly = library;
    }

    /** Inserts the document as the library does; false when the library must (nothing done then). */
    boolean insert(Document document) {
        List<Index<P>> indexes = collection.getIndexes();
        if (libraryOnly || Indexes.isSystem(collection.getCollectionName()) || !allHerald(indexes)) {
            return false;
        }
        if (document.get(ID) instanceof Collection) {
            throw new InvalidIdFieldError("The '_id' value cannot be of type array");
        }
        if (!document.containsKey(ID)) {
            document.put(ID, new ObjectId());
        }
        KeyValue[] uniqueKeys = new KeyValue[indexes.size()];
        for (int i = 0; i < uniqueKeys.length; i++) {
            Index<P> index = indexes.get(i);
            if (index instanceof OrderedUniqueIndex<P> unique) {
                uniqueKeys[i] = unique.checkNew(document, collection);
            } else {
                index.checkAdd(document, collection);
            }
        }
        P position = LibraryAccess.store(collection, document);
        for (int i = 0; i < uniqueKeys.length; i++) {
            Index<P> index = indexes.get(i);
            if (index instanceof OrderedUniqueIndex<P> unique) {
                unique.addNew(document, uniqueKeys[i], position, collection);
            } else {
                index.add(document, position, collection);
            }
        }
        if (LibraryAccess.tracksDataSize(collection)) {
            int size = BsonSize.document(document);
            LibraryAccess.updateDataSize(collection, size >= 0 ? size : LibraryAccess.size(document));
        }
        return true;
    }

    private static boolean allHerald(List<? extends Index<?>> indexes) {
        for (Index<?> index : indexes) {
            if (!(index instanceof OrderedUniqueIndex<?>) && !(index instanceof SecondaryIndex<?>)) {
                return false;
            }
        }
        return true;
    }
}
