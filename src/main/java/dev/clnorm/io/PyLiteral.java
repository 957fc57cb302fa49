package dev.clnorm.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The few Python literals a {@code .npy} header uses, parsed strictly (the role
 * {@code ast.literal_eval} plays in NumPy): dicts with string keys, tuples, lists, strings in single
 * or double quotes (no escapes), integers (an old Python 2 {@code L} suffix is accepted),
 * {@code True}, {@code False} and {@code None}. Anything else, or nesting deeper than
 * {@value #MAX_DEPTH}, is an {@link IllegalArgumentException} saying where.
 */
final class PyLiteral {
    static final int MAX_DEPTH = 16;

    /** A Python tuple (as opposed to a list). */
    record Tuple(List<Object> items) {
        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder("(");
            for (int i = 0; i < items.size(); i++) {
                sb.append(i == 0 ? "" : ", ").append(items.get(i));
            }
            return sb.append(items.size() == 1 ? ",)" : ")").toString();
        }
    }

    /** Marker for Python's None (null means "absent" in maps). */
    static final Object NONE = new Object() {
        @Override
        public String toString() {
            return "None";
        }
    };

    private final String s;
    private int pos;

    PyLiteral(String s) {
        this.s = s;
    }

    /** One literal followed only by whitespace. */
    Object parseAll() {
        Object v = value(0);
        skipSpace();
        if (pos != s.length()) {
            throw error("unexpected text after the literal");
        }
        return v;
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException(what + " at character " + pos);
    }

    private void skipSpace() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
                pos++;
            } else {
                break;
            }
        }
    }

    private Object value(int depth) {
        if (depth > MAX_DEPTH) {
            throw error("nesting deeper than " + MAX_DEPTH);
        }
        skipSpace();
        if (pos >= s.length()) {
            throw error("unexpected end of header");
        }
        char c = s.charAt(pos);
        switch (c) {
            case '{':
                return dict(depth);
            case '(':
                return new Tuple(sequence(depth, ')', true));
            case '[':
                return sequence(depth, ']', false);
            case '\'':
            case '"':
                return string();
            default:
                if (c == '-' || c == '+' || (c >= '0' && c <= '9')) {
                    return integer();
                }
                if (Character.isLetter(c)) {
                    return word();
                }
                throw error("unexpected character '" + printable(c) + "'");
        }
    }

    private static String printable(char c) {
        return c >= 0x20 && c < 0x7F ? String.valueOf(c) : String.format("\\u%04x", (int) c);
    }

    private Map<String, Object> dict(int depth) {
        pos++;  // '{'
        Map<String, Object> m = new LinkedHashMap<>();
        while (true) {
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return m;
            }
            Object key = value(depth + 1);
            if (!(key instanceof String)) {
                throw error("dict key is not a string");
            }
            skipSpace();
            expect(':');
            Object v = value(depth + 1);
            if (m.containsKey(key)) {
                throw error("duplicate key '" + key + "'");
            }
            m.put((String) key, v);
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == ',') {
                pos++;
            } else {
                skipSpace();
                expect('}');
                return m;
            }
        }
    }

    private List<Object> sequence(int depth, char close, boolean tuple) {
        pos++;  // opening bracket
        List<Object> items = new ArrayList<>();
        boolean sawComma = false;
        while (true) {
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == close) {
                pos++;
                if (tuple && items.size() == 1 && !sawComma) {
                    // "(3)" is just 3 in Python, not a tuple: keep it strict.
                    throw error("parenthesised value is not a tuple (a 1-tuple needs a trailing comma)");
                }
                return items;
            }
            items.add(value(depth + 1));
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == ',') {
                pos++;
                sawComma = true;
            } else {
                expect(close);
                if (tuple && items.size() == 1) {
                    throw error("parenthesised value is not a tuple (a 1-tuple needs a trailing comma)");
                }
                return items;
            }
        }
    }

    private void expect(char c) {
        if (pos >= s.length()) {
            throw error("expected '" + c + "' but the header ended");
        }
        if (s.charAt(pos) != c) {
            throw error("expected '" + c + "', found '" + printable(s.charAt(pos)) + "'");
        }
        pos++;
    }

    private String string() {
        char quote = s.charAt(pos++);
        int start = pos;
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c == quote) {
                String v = s.substring(start, pos);
                pos++;
                return v;
            }
            if (c == '\\') {
                throw error("escape sequences in strings are not supported");
            }
            if (c == '\n') {
                throw error("unterminated string");
            }
            pos++;
        }
        throw error("unterminated string");
    }

    private Long integer() {
        int start = pos;
        if (s.charAt(pos) == '-' || s.charAt(pos) == '+') {
            pos++;
        }
        int digits = pos;
        while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
            pos++;
        }
        if (pos == digits) {
            throw error("expected digits");
        }
        if (pos - digits > 18) {
            throw error("integer too large");
        }
        long v = Long.parseLong(s.substring(start, pos));
        if (pos < s.length() && (s.charAt(pos) == 'L' || s.charAt(pos) == 'l')) {
            pos++;  // Python 2 long suffix, seen in old files
        }
        return v;
    }

    private Object word() {
        int start = pos;
        while (pos < s.length() && (Character.isLetterOrDigit(s.charAt(pos)) || s.charAt(pos) == '_')) {
            pos++;
        }
        String w = s.substring(start, pos);
        switch (w) {
            case "True":
                return Boolean.TRUE;
            case "False":
                return Boolean.FALSE;
            case "None":
                return NONE;
            default:
                pos = start;
                throw error("unexpected name '" + (w.length() > 20 ? w.substring(0, 20) + "..." : w) + "'");
        }
    }
}
