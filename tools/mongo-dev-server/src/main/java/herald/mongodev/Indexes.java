package herald.mongodev;

import java.util.List;

import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;

/** How both backends make their indexes: every index of a user collection kept in order too. */
final class Indexes {

    private Indexes() {
    }

    /** System collections (system.indexes and the like) have no _id to order entries by. */
    static boolean isSystem(String collectionName) {
        return collectionName.startsWith("system.");
    }

    /** {@code checkSorted}: new keys are checked against the sorted entries (see {@link OrderedUniqueIndex#checkNew}). */
    static <P> Index<P> unique(String collectionName, Index<P> unique, List<IndexKey> keys, boolean sparse,
                               boolean checkSorted) {
        return isSystem(collectionName) ? unique : new OrderedUniqueIndex<>(unique, keys, sparse, checkSorted);
    }
}
