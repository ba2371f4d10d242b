package herald.mongodev;

import java.util.List;

import de.bwaldvogel.mongo.MongoVersion;

/**
 * Reports MongoDB 4.4 (wire version 9).
 *
 * PyMongo 4.x refuses servers whose maxWireVersion is below 9, and the newest
 * {@code ServerVersion} the library ships reports wire version 8, so we supply our own.
 */
enum Mongo44 implements MongoVersion {
    INSTANCE;

    @Override
    public List<Integer> getVersionArray() {
        return List.of(4, 4, 0);
    }

    @Override
    public int getWireVersion() {
        return 9;
    }
}
