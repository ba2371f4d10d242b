package herald.mongodev;

import java.time.Instant;
import java.util.List;
import java.util.Map;

import de.bwaldvogel.mongo.bson.ObjectId;

/**
 * BSON sizes as the library's {@code BsonEncoder} writes them, without writing: the library
 * encodes a whole document to a buffer to learn its size, on every insert, update and delete.
 * Covers the types Herald stores; {@link #UNKNOWN} for any other, which the caller then leaves
 * to the library's encoder.
 */
final class BsonSize {

    static final int UNKNOWN = -1;

    private BsonSize() {
    }

    /** One element of a document: type byte, key as a C string, value. */
    static int element(String key, Object value) {
        int keySize = utf8(key);
        int valueSize = value(value);
        return keySize < 0 || valueSize < 0 ? UNKNOWN : 1 + keySize + 1 + valueSize;
    }

    static int document(Map<String, ?> document) {
        int size = 4 + 1;
        for (Map.Entry<String, ?> entry : document.entrySet()) {
            int element = element(entry.getKey(), entry.getValue());
            if (element < 0) {
                return UNKNOWN;
            }
            size += element;
        }
        return size;
    }

    private static int value(Object value) {
        if (value == null) {
            return 0;
        }
        if (value instanceof Map<?, ?> map) {
            @SuppressWarnings("unchecked")
            Map<String, ?> document = (Map<String, ?>) map;
            return document(document);
        }
        if (value instanceof ObjectId) {
            return 12;
        }
        if (value instanceof Integer) {
            return 4;
        }
        if (value instanceof Long || value instanceof Double || value instanceof Instant) {
            return 8;
        }
        if (value instanceof String s) {
            int bytes = utf8(s);
            return bytes < 0 ? UNKNOWN : 4 + bytes + 1;
        }
        if (value instanceof Boolean) {
            return 1;
        }
        if (value instanceof List<?> list) {
            // An array is a document keyed "0", "1", ...
            int size = 4 + 1;
            for (int i = 0; i < list.size(); i++) {
                int element = value(list.get(i));
                if (element < 0) {
                    return UNKNOWN;
                }
                size += 1 + digits(i) + 1 + element;
            }
            return size;
        }
        return UNKNOWN;
    }

    /** UTF-8 length of ASCII text; {@link #UNKNOWN} otherwise (left to the encoder). */
    private static int utf8(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x80) {
                return UNKNOWN;
            }
        }
        return s.length();
    }

    private static int digits(int i) {
        int digits = 1;
        for (int rest = i / 10; rest > 0; rest /= 10) {
            digits++;
        }
        return digits;
    }
}
