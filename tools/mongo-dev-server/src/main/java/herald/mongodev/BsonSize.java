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
        int valueSize = value(value);
        return valueSize < 0 ? UNKNOWN : 1 + utf8(key) + 1 + valueSize;
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
            return 4 + utf8(s) + 1;
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

    /** UTF-8 length as the encoder's {@code String.getBytes(UTF_8)} makes it (a lone surrogate as '?'). */
    private static int utf8(String s) {
        int bytes = s.length();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                continue;
            }
            if (c < 0x800) {
                bytes += 1;
            } else if (Character.isHighSurrogate(c) && i + 1 < s.length()
                && Character.isLowSurrogate(s.charAt(i + 1))) {
                bytes += 2; // a pair: 4 bytes for 2 chars
                i++;
            } else if (!Character.isSurrogate(c)) {
                bytes += 2;
            }
        }
        return bytes;
    }

    private static int digits(int i) {
        int digits = 1;
        for (int rest = i / 10; rest > 0; rest /= 10) {
            digits++;
        }
        return digits;
    }
}
