package herald.mongodev;

import java.util.List;

import org.h2.mvstore.MVMap;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/**
 * H2 MVStore backend whose collections keep every index in order and answer queries from them.
 * Unique indexes are stored by the library; secondary indexes and the sorted side of unique ones
 * are memory only, rebuilt from the documents when the store opens.
 */
final class IndexedH2Backend extends H2Backend {

    IndexedH2Backend(String fileName) {
        super(fileName);
    }

    @Override
    public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
        return Sessions.advertise(command, super.handleCommand(channel, databaseName, command, query));
    }

    @Override
    protected MongoDatabase openOrCreateDatabase(String databaseName) {
        return new Database(databaseName);
    }

    /**
     * Inner (not static) on purpose: H2Database opens its collections from its own constructor,
     * before a subclass field could be set, but the outer backend (and so the MVStore) is
     * already reachable then.
     */
    private final class Database extends H2Database {

        Database(String databaseName) {
            super(databaseName, getMvStore(), getCursorRegistry());
        }

        /** Same map names as {@link H2Database}, so files stay compatible with the plain backend. */
        @Override
        protected MongoCollection<Object> openOrCreateCollection(String collectionName, CollectionOptions options) {
            String fullName = getFullCollectionNamespace(collectionName);
            MVMap<Object, Document> dataMap = getMvStore().openMap("databases." + fullName);
            MVMap<String, Object> metaMap = getMvStore().openMap("meta." + fullName);
            return new Collection(this, collectionName, options, dataMap, metaMap, cursorRegistry);
        }

        /** H2's map compares its keys by serializing them, so new keys are checked in the sorted entries. */
        @Override
        protected Index<Object> openOrCreateUniqueIndex(String collectionName, String indexName, List<IndexKey> keys,
                                                        boolean sparse) {
            return Indexes.unique(collectionName, super.openOrCreateUniqueIndex(collectionName, indexName, keys, sparse),
                keys, sparse, true);
        }

        @Override
        protected Index<Object> openOrCreateSecondaryIndex(String collectionName, String indexName, List<IndexKey> keys,
                                                           boolean sparse) {
            return Indexes.isSystem(collectionName)
                ? super.openOrCreateSecondaryIndex(collectionName, indexName, keys, sparse)
                : new SecondaryIndex<>(indexName, keys, sparse);
        }
    }

    private static final class Collection extends H2Collection {

        private final OperatorUpdates<Object> updates;
        private final Inserts<Object> inserts;

        Collection(MongoDatabase database, String collectionName, CollectionOptions options,
                   MVMap<Object, Document> dataMap, MVMap<String, Object> metaMap, CursorRegistry cursorRegistry) {
            super(database, collectionName, options, dataMap, metaMap, cursorRegistry);
            this.updates = new OperatorUpdates<>(this);
            this.inserts = new Inserts<>(this);
        }

        /** Called by find, findAndModify, update, delete, distinct and count under the collection's lock. */
        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            QueryPlanner.Plan<Object> plan = QueryPlanner.plan(getIndexes(), query, orderBy, limit);
            if (plan == null) {
                return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
            }
            return matchDocuments(plan.filter(), plan.positions(), plan.ordered() ? null : orderBy, numberToSkip,
                limit, batchSize, fieldSelector);
        }

        /** Inserts (each document of an insert command, upserts too) the cheaper way ({@link Inserts}). */
        @Override
        public synchronized void addDocument(Document document) {
            if (!inserts.insert(document)) {
                super.addDocument(document);
            }
        }

        /** Operator updates the cheaper way ({@link OperatorUpdates}); the rest as the library does. */
        @Override
        public synchronized Document updateDocuments(Document selector, Document updateQuery, ArrayFilters arrayFilters,
                                                     boolean isMulti, boolean isUpsert, Oplog oplog) {
            Document result = updates.update(selector, updateQuery, arrayFilters, isMulti, isUpsert, oplog);
            return result != null ? result : super.updateDocuments(selector, updateQuery, arrayFilters, isMulti,
                isUpsert, oplog);
        }

        /** The library leaves count unsynchronized; the sorted entries must not be read mid-write. */
        @Override
        public synchronized int count(Document query, int skip, int limit) {
            return super.count(query, skip, limit);
        }

        /**
         * A unique index opened from the file already holds its documents, so the library does not
         * rebuild it; its sorted side is filled here (once: a second createIndex is a no-op).
         */
        @Override
        public synchronized void addIndex(Index<Object> index) {
            boolean known = getIndexes().stream().anyMatch(existing -> existing.getName().equals(index.getName()));
            if (!known && index instanceof OrderedUniqueIndex<Object> ordered && ordered.needsEntries()) {
                streamAllDocumentsWithPosition()
                    .forEach(stored -> ordered.entries().add(stored.getDocument(), stored.getPosition()));
            }
            super.addIndex(index);
        }

        @Override
        public synchronized void dropIndex(String indexName) {
            super.dropIndex(indexName);
        }
    }
}
