package herald.mongodev;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.bson.ObjectId;

/**
 * Chooses the documents a query reads, the way MongoDB's planner would use Herald's indexes.
 *
 * <p>First a filter that pins a unique index ({@link IndexedLookup}). Otherwise, for every
 * index kept in order ({@link Ordered}: secondary indexes and the sorted side of unique ones),
 * the filter's conditions on the index's leading keys become bounds: equality or {@code $in}
 * on each key of a prefix, then at most one range ({@code $gt}, {@code $gte}, {@code $lt},
 * {@code $lte}) on the key after it. A plan reads the entries within those bounds; when the
 * requested sort is the index's order after the keys pinned to one value, the plan yields the
 * documents already sorted, so a limit stops the walk early. An index that only provides the
 * sort (no bounds) is a plan too, as in MongoDB.
 *
 * <p>Bounds only narrow: the candidates are a superset of the matches, and the library's
 * matcher still checks the whole filter on each. Conditions the bounds don't describe
 * ({@code $or}, {@code $ne}, regexes, null, arrays, embedded documents) just don't bound.
 * Ranges ignore MongoDB's type bracketing (a bound on a date also admits the values of types
 * that sort before dates) and, on a multikey key, keep one side only, because different
 * elements of one array may satisfy each side.
 *
 * <p>Among several plans: each plan's entries within bounds are counted up to
 * {@value #COUNT_CAP}; the plan with fewest wins. When every plan has more, a plan that
 * provides the sort wins if there is a limit, else the one with the tightest bounds.
 */
final class QueryPlanner {

    /** Entries counted per plan when choosing; also the size above which a plan counts as large. */
    static final int COUNT_CAP = 2000;
    /** Bound combinations ({@code $in} values multiplied over keys) before trailing keys are dropped. */
    private static final int MAX_RANGES = 1000;

    private QueryPlanner() {
    }

    /**
     * What to read: positions, whether they are already in the requested order, and the filter
     * the matcher must still check on each (the query less what the lookup answered exactly).
     */
    record Plan<P>(Iterable<P> positions, boolean ordered, Document filter) {
    }

    /** The plan for a query, or {@code null} when no index helps (the library then scans). */
    static <P> Plan<P> plan(List<Index<P>> indexes, Document query, Document orderBy, int limit) {
        IndexedLookup.Lookup<P> pinned = IndexedLookup.candidates(indexes, query);
        if (pinned != null) {
            Document filter = query;
            if (pinned.answered() != null) {
                filter = new Document(query);
                filter.remove(pinned.answered());
            }
            return new Plan<>(pinned.positions(), false, filter);
        }
        List<SortKey> sort = sortKeys(orderBy);
        if (sort == null) {
            return null;
        }
        Map<String, List<Object>> conditions = new LinkedHashMap<>();
        collectConditions(query, conditions);
        List<Candidate<P>> candidates = new ArrayList<>();
        for (Index<P> index : indexes) {
            if (index instanceof Ordered<?>) {
                @SuppressWarnings("unchecked")
                SortedEntries<P> entries = ((Ordered<P>) index).entries();
                Candidate<P> candidate = Candidate.of(entries, conditions, sort);
                if (candidate != null) {
                    candidates.add(candidate);
                }
            }
        }
        Candidate<P> chosen = choose(candidates, limit > 0 && !sort.isEmpty());
        if (chosen == null) {
            return null;
        }
        boolean dedupe = chosen.entries.isAnyMultikey();
        Iterable<P> positions = chosen.mergeFrom < 0
            ? chosen.entries.scan(chosen.ranges, chosen.reverse, dedupe)
            : chosen.entries.merge(chosen.ranges, chosen.reverse, chosen.mergeFrom, dedupe);
        return new Plan<>(positions, chosen.ordered, query);
    }

    private static <P> Candidate<P> choose(List<Candidate<P>> candidates, boolean sortedWithLimit) {
        if (candidates.size() <= 1) {
            return candidates.isEmpty() ? null : candidates.get(0);
        }
        candidates.sort(Comparator.comparingInt((Candidate<P> c) -> c.strength).reversed());
        Candidate<P> fewest = null;
        int fewestCount = COUNT_CAP;
        for (Candidate<P> candidate : candidates) {
            if (candidate.bounded == 0) {
                continue;
            }
            // Counting one past the best so far tells fewer, as many, and more apart.
            int count = candidate.entries.count(candidate.ranges, fewest == null ? COUNT_CAP : fewestCount + 1);
            boolean better = fewest == null
                ? count < COUNT_CAP
                : count < fewestCount || (count == fewestCount && candidate.ordered && !fewest.ordered);
            if (better) {
                fewest = candidate;
                fewestCount = count;
            }
        }
        if (fewest != null) {
            return fewest;
        }
        Candidate<P> best = null;
        for (Candidate<P> candidate : candidates) {
            if (best == null || rank(candidate, sortedWithLimit) > rank(best, sortedWithLimit)) {
                best = candidate;
            }
        }
        return best;
    }

    private static int rank(Candidate<?> candidate, boolean sortedWithLimit) {
        int sorted = candidate.ordered ? 1 : 0;
        return sortedWithLimit ? sorted * 1000 + candidate.strength * 2 : candidate.strength * 2 + sorted;
    }

    record SortKey(String field, boolean ascending) {
    }

    /** The sort as fields and directions; empty for none; {@code null} for $natural or $meta sorts. */
    private static List<SortKey> sortKeys(Document orderBy) {
        List<SortKey> keys = new ArrayList<>();
        if (orderBy == null) {
            return keys;
        }
        for (Map.Entry<String, Object> entry : orderBy.entrySet()) {
            if (entry.getKey().startsWith("$") || !(entry.getValue() instanceof Number direction)) {
                return null;
            }
            keys.add(new SortKey(entry.getKey(), direction.intValue() > 0));
        }
        return keys;
    }

    /** Field conditions of the filter's top level and of its top-level {@code $and}s. */
    private static void collectConditions(Document query, Map<String, List<Object>> conditions) {
        for (Map.Entry<String, Object> entry : query.entrySet()) {
            String key = entry.getKey();
            if (key.equals("$and") && entry.getValue() instanceof Collection<?> parts) {
                for (Object part : parts) {
                    if (part instanceof Document document) {
                        collectConditions(document, conditions);
                    }
                }
            } else if (!key.startsWith("$")) {
                conditions.computeIfAbsent(key, k -> new ArrayList<>()).add(entry.getValue());
            }
        }
    }

    /** A key's bound: a list of values, or a range whose missing sides are open. */
    private record Bound(List<Object> points, Object low, boolean lowInclusive, Object high, boolean highInclusive) {

        boolean isPoints() {
            return points != null;
        }

        static Bound of(List<Object> conditions) {
            Bound range = null;
            for (Object condition : conditions) {
                Bound bound = of(condition);
                if (bound != null && bound.isPoints()) {
                    return bound;
                }
                if (range == null) {
                    range = bound;
                }
            }
            return range;
        }

        private static Bound of(Object condition) {
            if (isScalar(condition)) {
                return new Bound(List.of(SortedEntries.normalize(condition)), null, false, null, false);
            }
            if (!(condition instanceof Document operators) || operators.isEmpty()
                || !operators.keySet().stream().allMatch(k -> k.startsWith("$"))) {
                return null;
            }
            if (operators.containsKey("$eq") && isScalar(operators.get("$eq"))) {
                return new Bound(List.of(SortedEntries.normalize(operators.get("$eq"))), null, false, null, false);
            }
            if (operators.get("$in") instanceof Collection<?> values && values.stream().allMatch(QueryPlanner::isScalar)) {
                return new Bound(values.stream().map(SortedEntries::normalize).toList(), null, false, null, false);
            }
            Object low = null;
            boolean lowInclusive = false;
            Object high = null;
            boolean highInclusive = false;
            if (isScalar(operators.get("$gt"))) {
                low = operators.get("$gt");
            } else if (isScalar(operators.get("$gte"))) {
                low = operators.get("$gte");
                lowInclusive = true;
            }
            if (isScalar(operators.get("$lt"))) {
                high = operators.get("$lt");
            } else if (isScalar(operators.get("$lte"))) {
                high = operators.get("$lte");
                highInclusive = true;
            }
            if (low == null && high == null) {
                return null;
            }
            return new Bound(null, SortedEntries.normalize(low), lowInclusive,
                SortedEntries.normalize(high), highInclusive);
        }

        Bound withoutHigh() {
            return new Bound(null, low, lowInclusive, null, false);
        }
    }

    /** Values whose equality and order the index and the matcher agree on. */
    private static boolean isScalar(Object value) {
        return value instanceof String || value instanceof Instant || value instanceof ObjectId
            || value instanceof Boolean || value instanceof Integer || value instanceof Long
            || (value instanceof Double d && !d.isNaN());
    }

    /** One index's bounds for a query, and whether walking them yields the requested order. */
    private static final class Candidate<P> {

        final SortedEntries<P> entries;
        final List<Object[][]> ranges;
        final int bounded;
        final int strength;
        final boolean ordered;
        final boolean reverse;
        /** Where the keys that order a merge of the ranges begin; -1 when the ranges are walked in turn. */
        final int mergeFrom;

        private Candidate(SortedEntries<P> entries, List<Object[][]> ranges, int bounded, int strength,
                          boolean ordered, boolean reverse, int mergeFrom) {
            this.entries = entries;
            this.ranges = ranges;
            this.bounded = bounded;
            this.strength = strength;
            this.ordered = ordered;
            this.reverse = reverse;
            this.mergeFrom = mergeFrom;
        }

        static <P> Candidate<P> of(SortedEntries<P> entries, Map<String, List<Object>> conditions, List<SortKey> sort) {
            List<String> fields = entries.fields();
            List<Bound> bounds = new ArrayList<>();
            for (int i = 0; i < fields.size(); i++) {
                List<Object> onField = conditions.get(fields.get(i));
                Bound bound = onField == null || entries.isNested(i) ? null : Bound.of(onField);
                if (bound == null) {
                    break;
                }
                if (bound.isPoints()) {
                    bounds.add(sortedDistinct(entries, i, bound));
                    continue;
                }
                bounds.add(entries.isMultikey(i) && bound.low() != null ? bound.withoutHigh() : bound);
                break;
            }
            while (bounds.size() > 1 && combinations(bounds) > MAX_RANGES) {
                bounds.remove(bounds.size() - 1);
            }
            if (bounds.isEmpty() && entries.isSparse()) {
                return null; // documents without the keys are not in it
            }
            int width = fields.size();
            List<Integer> walk = new ArrayList<>();
            for (int i = 0; i < width; i++) {
                if (!isPinned(bounds, i)) {
                    walk.add(i);
                }
            }
            boolean[] order = providesOrder(entries, bounds, sort, walk);
            int mergeFrom = -1;
            int pointKeys = pointKeys(bounds);
            if (order == null && pointKeys > 0) {
                // Each range fixes the keys before pointKeys, so a merge of the ranges is
                // ordered by the keys from there on (MongoDB's SORT_MERGE for $in).
                List<Integer> merged = new ArrayList<>();
                for (int i = pointKeys; i < width; i++) {
                    merged.add(i);
                }
                order = providesOrder(entries, bounds, sort, merged);
                mergeFrom = order == null ? -1 : pointKeys;
            }
            if (bounds.isEmpty() && (order == null || sort.isEmpty())) {
                return null;
            }
            int strength = 0;
            for (Bound bound : bounds) {
                strength += bound.isPoints() ? 2 : 1;
            }
            return new Candidate<>(entries, ranges(entries, bounds), bounds.size(), strength,
                order != null, order != null && order[0], mergeFrom);
        }

        /** How many leading bounded keys have values (a range, if any, comes after them). */
        private static int pointKeys(List<Bound> bounds) {
            boolean endsInRange = !bounds.isEmpty() && !bounds.get(bounds.size() - 1).isPoints();
            return endsInRange ? bounds.size() - 1 : bounds.size();
        }

        private static Bound sortedDistinct(SortedEntries<?> entries, int key, Bound bound) {
            List<Object> points = new ArrayList<>(bound.points());
            points.sort((x, y) -> {
                int cmp = SortedEntries.compareValues(x, y);
                return entries.isAscending(key) ? cmp : -cmp;
            });
            List<Object> distinct = new ArrayList<>(points.size());
            for (Object point : points) {
                if (distinct.isEmpty() || SortedEntries.compareValues(distinct.get(distinct.size() - 1), point) != 0) {
                    distinct.add(point);
                }
            }
            return new Bound(distinct, null, false, null, false);
        }

        private static long combinations(List<Bound> bounds) {
            long product = 1;
            for (Bound bound : bounds) {
                if (bound.isPoints()) {
                    product *= Math.max(1, bound.points().size());
                }
            }
            return product;
        }

        /**
         * {@code {reverse}} when reading the entries orders them by the sort: the sort, less keys
         * pinned to one value (unless multikey), must be a prefix of {@code walk} (the keys that
         * order what is read), then _id (the entries' tiebreak), in the index's directions or all
         * reversed. {@code null} otherwise.
         */
        private static boolean[] providesOrder(SortedEntries<?> entries, List<Bound> bounds, List<SortKey> sort,
                                               List<Integer> keys) {
            List<String> fields = entries.fields();
            List<Integer> walk = new ArrayList<>(keys);
            if (!fields.contains("_id")) {
                walk.add(fields.size());
            }
            List<SortKey> wanted = new ArrayList<>();
            for (SortKey key : sort) {
                int i = fields.indexOf(key.field());
                if (i < 0 || !isPinned(bounds, i) || entries.isMultikey(i)) {
                    wanted.add(key);
                }
            }
            if (wanted.size() > walk.size()) {
                return null;
            }
            Boolean reverse = null;
            for (int j = 0; j < wanted.size(); j++) {
                int i = walk.get(j);
                boolean idTiebreak = i == fields.size();
                String field = idTiebreak ? "_id" : fields.get(i);
                if (!field.equals(wanted.get(j).field()) || (!idTiebreak && entries.isMultikey(i))) {
                    return null;
                }
                boolean ascending = idTiebreak || entries.isAscending(i);
                boolean flipped = ascending != wanted.get(j).ascending();
                if (reverse != null && reverse != flipped) {
                    return null;
                }
                reverse = flipped;
            }
            return new boolean[] {reverse != null && reverse};
        }

        private static boolean isPinned(List<Bound> bounds, int key) {
            return key < bounds.size() && bounds.get(key).isPoints() && bounds.get(key).points().size() == 1;
        }

        /** Each combination of the bounds' values as {from, to} entry keys, in index order. */
        private static List<Object[][]> ranges(SortedEntries<?> entries, List<Bound> bounds) {
            int width = entries.fields().size() + 1;
            List<Object[]> prefixes = new ArrayList<>();
            prefixes.add(new Object[0]);
            int pointKeys = pointKeys(bounds);
            for (int i = 0; i < pointKeys; i++) {
                List<Object[]> next = new ArrayList<>();
                for (Object[] prefix : prefixes) {
                    for (Object point : bounds.get(i).points()) {
                        Object[] longer = Arrays.copyOf(prefix, i + 1);
                        longer[i] = point;
                        next.add(longer);
                    }
                }
                prefixes = next;
            }
            List<Object[][]> ranges = new ArrayList<>(prefixes.size());
            for (Object[] prefix : prefixes) {
                Object[] from = Arrays.copyOf(prefix, width);
                Object[] to = Arrays.copyOf(prefix, width);
                int at = prefix.length;
                Object fromFill = SortedEntries.LOW;
                Object toFill = SortedEntries.HIGH;
                if (at < bounds.size()) {
                    Bound range = bounds.get(at);
                    boolean ascending = entries.isAscending(at);
                    Object start = ascending ? range.low() : range.high();
                    boolean startInclusive = ascending ? range.lowInclusive() : range.highInclusive();
                    Object end = ascending ? range.high() : range.low();
                    boolean endInclusive = ascending ? range.highInclusive() : range.lowInclusive();
                    from[at] = start == null ? SortedEntries.LOW : start;
                    to[at] = end == null ? SortedEntries.HIGH : end;
                    fromFill = start == null || startInclusive ? SortedEntries.LOW : SortedEntries.HIGH;
                    toFill = end == null || endInclusive ? SortedEntries.HIGH : SortedEntries.LOW;
                    at++;
                }
                Arrays.fill(from, at, width, fromFill);
                Arrays.fill(to, at, width, toFill);
                ranges.add(new Object[][] {from, to});
            }
            return ranges;
        }
    }
}
