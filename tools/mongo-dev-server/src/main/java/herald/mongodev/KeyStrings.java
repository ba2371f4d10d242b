package herald.mongodev;

import java.util.HashMap;
import java.util.Map;

/**
 * One instance per string value of an index field that takes few values (a job's state, its
 * platform), used in that index's entry keys. Every document holds its own copy of such a
 * value, so at a million entries each comparison of two keys that share it read two more
 * objects from memory; with one instance the comparison is an identity check, and that
 * instance stays in the cache. A field that shows more than {@link #MAX_VALUES} values (ids,
 * free text) stops being tracked: its keys keep the documents' own strings.
 *
 * Not thread-safe, like the {@link SortedEntries} that owns it.
 */
final class KeyStrings {

    static final int MAX_VALUES = 4096;

    private final Map<String, String> values = new HashMap<>();
    private boolean many;

    /** The shared instance of this value, or the value itself once the field has many values. */
    Object canonical(Object value) {
        if (many || !(value instanceof String string)) {
            return value;
        }
        String known = values.putIfAbsent(string, string);
        if (known != null) {
            return known;
        }
        if (values.size() > MAX_VALUES) {
            many = true;
            values.clear();
        }
        return string;
    }
}
