package herald.mongodev;

import java.util.List;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A non-unique index kept in memory, in index order.
 *
 * mongo-java-server creates these as an {@code EmptyIndex} and never uses them, so every
 * filter that doesn't pin a unique index scans the collection and every sort is done in memory.
 * {@link QueryPlanner} answers from these instead. The library never asks this index itself
 * ({@link #canHandle} is false); it only keeps it current through the add/remove/update hooks
 * it calls for every index while holding the collection's lock. With the H2 backend the entries
 * are rebuilt from the documents when the store is opened.
 */
final class SecondaryIndex<P> extends Index<P> implements Ordered<P> {

    private final SortedEntries<P> entries;

    SecondaryIndex(String name, List<IndexKey> keys, boolean sparse) {
        super(name, keys, sparse);
        this.entries = new SortedEntries<>(keys, sparse);
    }

    @Override
    public SortedEntries<P> entries() {
        return entries;
    }

    @Override
    protected boolean isSparse() {
        return entries.isSparse();
    }

    /**
     * Null: the library asks every index for an updated document's position and takes the one
     * answer; the collection's {@code _id} index (which every user collection has, and only
     * those get secondary indexes here) gives it, and a lookup here per index would cost more.
     */
    @Override
    public P getPosition(Document document) {
        return null;
    }

    /** Rejects what MongoDB rejects: two keys that are arrays in one document. */
    @Override
    public void checkAdd(Document document, MongoCollection<P> collection) {
        if (entries.arrayCount(document) > 1) {
            getKeyValues(document); // throws CannotIndexParallelArraysError for distinct array paths
        }
    }

    @Override
    public void add(Document document, P position, MongoCollection<P> collection) {
        entries.add(document, position);
    }

    @Override
    public P remove(Document document) {
        return entries.remove(document);
    }

    @Override
    public boolean canHandle(Document query) {
        return false;
    }

    @Override
    public Iterable<P> getPositions(Document query) {
        throw new UnsupportedOperationException("secondary indexes are read through QueryPlanner");
    }

    @Override
    public long getCount() {
        return entries.size();
    }

    @Override
    public long getDataSize() {
        return getCount();
    }

    @Override
    public void checkUpdate(Document oldDocument, Document newDocument, MongoCollection<P> collection) {
        checkAdd(newDocument, collection);
    }

    @Override
    public void updateInPlace(Document oldDocument, Document newDocument, P position, MongoCollection<P> collection) {
        entries.update(oldDocument, newDocument, position);
    }

    @Override
    public void drop() {
        entries.clear();
    }
}
