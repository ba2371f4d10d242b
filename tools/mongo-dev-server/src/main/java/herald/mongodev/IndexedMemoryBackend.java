package herald.mongodev;

import java.util.List;

import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/** In-memory backend whose collections keep every index in order and answer queries from them. */
final class IndexedMemoryBackend extends MemoryBackend {

    @Override
    public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
        return Sessions.advertise(command, super.handleCommand(channel, databaseName, command, query));
    }

    @Override
    public MemoryDatabase openOrCreateDatabase(String databaseName) {
        return new Database(databaseName, getCursorRegistry());
    }

    private static final class Database extends MemoryDatabase {

        Database(String databaseName, CursorRegistry cursorRegistry) {
            super(databaseName, cursorRegistry);
        }

        @Override
        protected MemoryCollection openOrCreateCollection(String collectionName, CollectionOptions options) {
            return new Collection(this, collectionName, options, cursorRegistry);
        }

        @Override
        protected Index<Integer> openOrCreateUniqueIndex(String collectionName, String indexName, List<IndexKey> keys,
                                                         boolean sparse) {
            return Indexes.unique(collectionName, super.openOrCreateUniqueIndex(collectionName, indexName, keys, sparse),
                keys, sparse, false);
        }

        @Override
        protected Index<Integer> openOrCreateSecondaryIndex(String collectionName, String indexName, List<IndexKey> keys,
                                                            boolean sparse) {
            return Indexes.isSystem(collectionName)
                ? super.openOrCreateSecondaryIndex(collectionName, indexName, keys, sparse)
                : new SecondaryIndex<>(indexName, keys, sparse);
        }
    }

    private static final class Collection extends MemoryCollection {

        private final OperatorUpdates<Integer> updates;
        private final Inserts<Integer> inserts;

        Collection(MongoDatabase database, String collectionName, CollectionOptions options, CursorRegistry cursorRegistry) {
            super(database, collectionName, options, cursorRegistry);
            this.updates = new OperatorUpdates<>(this);
            this.inserts = new Inserts<>(this);
        }

        /** Called by find, findAndModify, update, delete, distinct and count under the collection's lock. */
        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            QueryPlanner.Plan<Integer> plan = QueryPlanner.plan(getIndexes(), query, orderBy, limit);
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

        @Override
        public synchronized void addIndex(Index<Integer> index) {
            super.addIndex(index);
        }

        @Override
        public synchronized void dropIndex(String indexName) {
            super.dropIndex(indexName);
        }
    }
}
