package herald.mongodev;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import de.bwaldvogel.mongo.backend.LibraryAccess;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.bson.Document;

/**
 * {@code $set}, {@code $unset}, {@code $inc} and a one-value {@code $push} on top-level
 * fields, the operators nearly every write of a job makes, applied with the effect the
 * library's {@code FieldUpdates} gives them but without its path handling: for each field it
 * splits the path with a regular expression and a stream three or four times and asks the
 * array filters, through another stream, whether the path has a positional segment. That was
 * a third of the server's time under a burst of jobs.
 *
 * <p>Only an update this class can apply whole is applied here, after every check has passed,
 * so a refused one leaves the document as it was: any other operator, a dotted, positional,
 * empty or {@code $} path, the id field, a field named twice, array filters, a {@code $push}
 * with modifiers, or a value the operator refuses goes the library's way, which gives the
 * library's result or error.
 */
final class TopLevelOperators {

    private static final Set<String> OPERATORS = Set.of("$set", "$unset", "$inc", "$push");

    private TopLevelOperators() {
    }

    /** Applies the update to {@code target} and returns true, or returns false having changed nothing. */
    static boolean apply(Document target, Document update, String idField) {
        if (!applicable(target, update, idField)) {
            return false;
        }
        for (Map.Entry<String, Object> operator : update.entrySet()) {
            for (Map.Entry<String, Object> change : ((Document) operator.getValue()).entrySet()) {
                String field = change.getKey();
                Object value = change.getValue();
                switch (operator.getKey()) {
                    case "$set" -> set(target, field, value);
                    case "$unset" -> target.remove(field);
                    case "$inc" -> target.put(field, LibraryAccess.add(number(target.getOrMissing(field)), (Number) value));
                    default -> push(target, field, value);
                }
            }
        }
        return true;
    }

    private static boolean applicable(Document target, Document update, String idField) {
        Set<String> fields = new HashSet<>();
        for (Map.Entry<String, Object> operator : update.entrySet()) {
            if (!OPERATORS.contains(operator.getKey()) || !(operator.getValue() instanceof Document changes)) {
                return false;
            }
            for (Map.Entry<String, Object> change : changes.entrySet()) {
                String field = change.getKey();
                if (field.isEmpty() || field.startsWith("$") || field.indexOf('.') >= 0
                    || field.equals(idField) || !fields.add(field)) {
                    return false;
                }
                Object current = target.getOrMissing(field);
                Object value = change.getValue();
                boolean accepted = switch (operator.getKey()) {
                    case "$inc" -> value instanceof Number && (Missing.isNullOrMissing(current) || current instanceof Number);
                    case "$push" -> (Missing.isNullOrMissing(current) || current instanceof List<?>)
                        && !(value instanceof Document modifiers && modifiers.containsKey("$each"));
                    default -> true;
                };
                if (!accepted) {
                    return false;
                }
            }
        }
        return true;
    }

    /** As the library: an equal value (1 and 1.0 alike) on a present field writes nothing. */
    private static void set(Document target, String field, Object value) {
        Object current = target.getOrMissing(field);
        if (current instanceof Missing || !LibraryAccess.sameValue(value, current)) {
            target.put(field, value);
        }
    }

    private static Number number(Object current) {
        return Missing.isNullOrMissing(current) ? Integer.valueOf(0) : (Number) current;
    }

    /** A new list, as the library makes one: the stored list never changes in place. */
    private static void push(Document target, String field, Object value) {
        Object current = target.getOrMissing(field);
        List<Object> values = Missing.isNullOrMissing(current) ? new ArrayList<>() : new ArrayList<>((List<?>) current);
        values.add(value);
        target.put(field, values);
    }
}
