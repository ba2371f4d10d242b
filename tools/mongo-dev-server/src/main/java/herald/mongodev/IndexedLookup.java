package herald.mongodev;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

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

    private static final String ID = "_id";

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

    /**
     * {@code update_many({_id: {$in: ids}, ...})} as one selector per listed document that
     * exists, each with its own {@code _id}; {@code null} for any other selector. The library
     * matches every updated document against the whole selector again (for the positional
     * operator), which compares it with every listed id: quadratic in the batch.
     */
    static <P> List<Document> perDocument(List<Index<P>> indexes, Function<P, Document> documents,
                                          Document selector) {
        if (plainInValues(selector.get(ID)) == null) {
            return null;
        }
        Lookup<P> lookup = candidates(indexes, new Document(ID, selector.get(ID)));
        if (lookup == null) {
            return null;
        }
        List<Document> selectors = new ArrayList<>();
        for (P position : lookup.positions()) {
            Document one = new Document(selector);
            one.put(ID, documents.apply(position).get(ID));
            selectors.add(one);
        }
        return selectors;
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
    private static boolean isPlainValue(Object value) {
        return !Missing.isNullOrMissing(value)
            && !(value instanceof Map)
            && !(value instanceof Collection)
            && !(value instanceof BsonRegularExpression);
    }
}
