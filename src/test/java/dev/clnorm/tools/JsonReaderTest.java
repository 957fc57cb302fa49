package dev.clnorm.tools;

import dev.clnorm.cli.JsonReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The small JSON reader behind {@code bench --compare}: values as Java objects, malformed input located. */
class JsonReaderTest {

    @Test
    void readsWhatBenchTorchWrites() {
        Object v = JsonReader.parse("{\n \"tool\": \"scripts/bench-torch.py\", \"cuda_version\": null,\n"
                + " \"results\": [{\"shape\": [32, 64], \"median_ms\": 1.5e-2, \"p10_ms\": -0.0, \"ok\": true},"
                + " {\"name\": \"a\\\"b\\\\c\\u00e9\\n\"}, []]}");
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(List.of("tool", "cuda_version", "results"), List.copyOf(m.keySet()));
        assertNull(m.get("cuda_version"));
        List<?> results = (List<?>) m.get("results");
        Map<?, ?> first = (Map<?, ?>) results.get(0);
        assertEquals(Arrays.asList(32.0, 64.0), first.get("shape"));
        assertEquals(0.015, first.get("median_ms"));
        assertEquals(Boolean.TRUE, first.get("ok"));
        assertEquals("a\"b\\c\u00e9\n", ((Map<?, ?>) results.get(1)).get("name"));
        assertEquals(List.of(), results.get(2));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "[1, 2,]                 | line 1, column 7",
            "{\"a\": 01}             | column 8: expected ',' or '}'",
            "{\"a\" 1}               | expected ':'",
            "\"abc                   | unexpected end of input",
            "[1.]                    | digits must follow '.'",
            "{\"a\": tru}            | unexpected token",
            "[1] [2]                 | unexpected content after the JSON value",
            "{'a': 1}                | expected a string key",
            "[NaN]                   | unexpected character 'N'",
    })
    void malformedInputIsRejectedWithItsPosition(String text, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JsonReader.parse(text.trim()));
        assertTrue(e.getMessage().startsWith("invalid JSON at line "), e.getMessage());
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void linesAreCounted() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> JsonReader.parse("{\n  \"a\": 1,\n  \"b\": }"));
        assertTrue(e.getMessage().contains("line 3, column 8"), e.getMessage());
    }
}
