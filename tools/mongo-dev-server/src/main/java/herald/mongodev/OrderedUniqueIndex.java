package herald.mongodev;

import java.util.List;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.bson.Document;
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

    OrderedUniqueIndex(Index<P> unique, List<IndexKey> keys, boolean sparse) {
        super(unique.getName(), keys, sparse);
        this.unique = unique;
        this.entries = new SortedEntries<>(keys, sparse);
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

    @Override
    public P remove(Document document) {
        entries.remove(document);
        return unique.remove(document);
    }

    @Override
    public boolean canHandle(Document query) {
        return unique.canHandle(query);
    }

    @Override
    public Iterable<P> getPositions(Document query) {
        return unique.getPositions(query);
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
