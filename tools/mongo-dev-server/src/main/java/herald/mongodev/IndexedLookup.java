package herald.mongodev;

import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.bson.BsonRegularExpression;
import de.bwaldvogel.mongo.bson.Document;

/**
 * Picks candidate documents for a filter through a unique index.
 *
 * The library only uses an index when the filter's keys are exactly the index's keys, so a
 * fenced update like {@code {_id: X, state: "staged"}} scans the whole collection. A filter
 * that pins every key of some unique index to a plain value can match at most one document:
 * we fetch it through the index and let the library's matcher check the rest of the filter.
 * Likewise {@code {_id: {$in: [...]}, status: "scheduled"}} on a single-key unique index is the
 * union of one lookup per listed value, instead of a scan.
 */
final class IndexedLookup {

    private IndexedLookup() {
    }

    /**
     * Candidates, and the field whose {@code $in} condition the lookups answered completely (the
     * matcher need not test it again: it would compare each candidate with every listed value).
     */
    record Lookup<P>(Iterable<P> positions, String answered) {
    }

    /** Candidate positions for {@code query}, or {@code null} when no unique index is pinned. */
    static <P> Lookup<P> candidates(List<Index<P>> indexes, Document query) {
        for (Index<P> index : indexes) {
            if (!index.isUnique()) {
                continue;
            }
            if (index.getKeys().stream().allMatch(key -> isPlainValue(query.get(key.getKey())))) {
                // getPositions only reads the index's keys, so the extra filter keys are ignored here.
                return new Lookup<>(index.getPositions(query), null);
            }
            if (index.getKeys().size() == 1) {
                String key = index.getKeys().get(0).getKey();
                Collection<?> values = plainInValues(query.get(key));
                if (values != null) {
                    Set<P> positions = new LinkedHashSet<>();
                    for (Object value : values) {
                        index.getPositions(new Document(key, value)).forEach(positions::add);
                    }
                    return new Lookup<>(positions, key);
                }
            }
        }
        return null;
    }

    /** The values of a condition that is exactly {@code {$in: [plain values]}}, else {@code null}. */
    private static Collection<?> plainInValues(Object condition) {
        if (!(condition instanceof Map<?, ?> operators) || operators.size() != 1
            || !(operators.get("$in") instanceof Collection<?> values)) {
            return null;
        }
        return values.stream().allMatch(IndexedLookup::isPlainValue) ? values : null;
    }

    /**
     * Operator documents, embedded documents, arrays and regexes have non-equality semantics;
     * null also matches missing fields, which sparse indexes leave out.
     */
    static boolean isPlainValue(Object value) {
        return !Missing.isNullOrMissing(value)
            && !(value instanceof Map)
            && !(value instanceof Collection)
            && !(value instanceof BsonRegularExpression);
    }
}
