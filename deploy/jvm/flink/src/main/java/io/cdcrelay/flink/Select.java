package io.cdcrelay.flink;

import java.io.PrintStream;
import java.math.BigDecimal;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.CloseableIterator;

/**
 * The select mode of {@link Runner}: runs the statements of the given files
 * (CREATE TABLE, SET), then one query, and prints its rows as JSON lines.
 *
 * <p>The query must end by itself: read a Kafka table with the hint
 * {@code /*+ OPTIONS('scan.bounded.mode'='latest-offset') *}{@code /}.
 *
 * <p>Without --changelog the changes are applied in order (+I and +U add a
 * row, -U and -D take one equal row away) and the rows left are printed,
 * one JSON object per line keyed by column name. With --changelog every
 * change is printed as {"op":"+I","row":{...}}.
 *
 * <p>Values: NULL is null; booleans and the integer and floating types are
 * JSON numbers (NaN and the infinities strings); DECIMAL is a string with
 * every digit of its scale; strings are strings; BINARY and BYTES are
 * base64; DATE, TIME and TIMESTAMP are ISO-8601 strings (TIMESTAMP_LTZ with
 * a Z); ARRAY is an array, MAP an object and ROW an array of its fields;
 * anything else is its toString.
 */
final class Select {
    private Select() {}

    static int run(TableEnvironment env, List<String> files, String query, boolean changelog, PrintStream out)
            throws Exception {
        setup(env, files);
        return query(env, query, changelog, out);
    }

    private static void setup(TableEnvironment env, List<String> files) throws Exception {
        for (String file : files) {
            for (String stmt : Runner.statements(file)) {
                Runner.execute(env, stmt);
            }
        }
    }

    /**
     * The --each form: runs every line of queryFile as a query, one after
     * the other in the same cluster, and prints one JSON line per query:
     * {"query":N,"rows":[...]} with the final table, or
     * {"query":N,"error":"..."} when it failed. A failed query does not stop
     * the others.
     */
    static int each(TableEnvironment env, List<String> files, String queryFile, PrintStream out) throws Exception {
        setup(env, files);
        List<String> queries = java.nio.file.Files.readAllLines(java.nio.file.Path.of(queryFile));
        for (int i = 0; i < queries.size(); i++) {
            String q = queries.get(i).strip();
            if (q.isEmpty()) {
                continue;
            }
            java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
            PrintStream rows = new PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8);
            String error = null;
            try {
                if (query(env, q, false, rows) != 0) {
                    error = "a change for a row not seen";
                }
            } catch (Exception e) {
                Throwable root = e;
                while (root.getCause() != null) {
                    root = root.getCause();
                }
                error = root.toString();
            }
            StringBuilder line = new StringBuilder("{\"query\":").append(i);
            if (error != null) {
                line.append(",\"error\":").append(quote(error));
            } else {
                line.append(",\"rows\":[");
                String[] printed = buf.toString(java.nio.charset.StandardCharsets.UTF_8).split("\n");
                boolean first = true;
                for (String p : printed) {
                    if (p.isEmpty()) {
                        continue;
                    }
                    if (!first) {
                        line.append(',');
                    }
                    first = false;
                    line.append(p);
                }
                line.append(']');
            }
            out.println(line.append('}'));
        }
        return 0;
    }

    private static int query(TableEnvironment env, String query, boolean changelog, PrintStream out)
            throws Exception {
        TableResult r = env.executeSql(query);
        List<String> names = r.getResolvedSchema().getColumnNames();
        List<Row> rows = new ArrayList<>();
        long changes = 0;
        try (CloseableIterator<Row> it = r.collect()) {
            while (it.hasNext()) {
                Row row = it.next();
                changes++;
                if (changelog) {
                    out.println("{\"op\":" + quote(row.getKind().shortString()) + ",\"row\":" + object(names, row) + "}");
                    continue;
                }
                RowKind kind = row.getKind();
                row.setKind(RowKind.INSERT);
                if (kind == RowKind.INSERT || kind == RowKind.UPDATE_AFTER) {
                    rows.add(row);
                } else if (!rows.remove(row)) {
                    System.err.println(Runner.PREFIX + "a " + kind.shortString() + " change for a row not seen: " + row);
                    return 1;
                }
            }
        }
        for (Row row : rows) {
            out.println(object(names, row));
        }
        System.err.println(Runner.PREFIX + "select: " + changes + " changes, " + rows.size() + " rows");
        return 0;
    }

    static String object(List<String> names, Row row) {
        StringBuilder b = new StringBuilder("{");
        for (int i = 0; i < row.getArity(); i++) {
            if (i > 0) {
                b.append(',');
            }
            b.append(quote(names.get(i))).append(':');
            value(b, row.getField(i));
        }
        return b.append('}').toString();
    }

    static void value(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof Boolean || v instanceof Byte || v instanceof Short
                || v instanceof Integer || v instanceof Long) {
            b.append(v);
        } else if (v instanceof Double d) {
            b.append(d.isNaN() || d.isInfinite() ? quote(d.toString()) : d.toString());
        } else if (v instanceof Float f) {
            b.append(f.isNaN() || f.isInfinite() ? quote(f.toString()) : f.toString());
        } else if (v instanceof BigDecimal d) {
            b.append(quote(d.toPlainString()));
        } else if (v instanceof String s) {
            b.append(quote(s));
        } else if (v instanceof byte[] bytes) {
            b.append(quote(Base64.getEncoder().encodeToString(bytes)));
        } else if (v instanceof LocalDate d) {
            b.append(quote(d.format(DateTimeFormatter.ISO_LOCAL_DATE)));
        } else if (v instanceof LocalTime t) {
            b.append(quote(t.format(DateTimeFormatter.ISO_LOCAL_TIME)));
        } else if (v instanceof LocalDateTime t) {
            b.append(quote(t.format(DateTimeFormatter.ISO_LOCAL_DATE_TIME)));
        } else if (v instanceof Instant t) {
            b.append(quote(DateTimeFormatter.ISO_INSTANT.format(t)));
        } else if (v instanceof OffsetDateTime t) {
            b.append(quote(DateTimeFormatter.ISO_INSTANT.format(t.toInstant())));
        } else if (v instanceof ZonedDateTime t) {
            b.append(quote(DateTimeFormatter.ISO_INSTANT.format(t.toInstant())));
        } else if (v instanceof Row r) {
            b.append('[');
            for (int i = 0; i < r.getArity(); i++) {
                if (i > 0) {
                    b.append(',');
                }
                value(b, r.getField(i));
            }
            b.append(']');
        } else if (v instanceof Map<?, ?> m) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                b.append(quote(String.valueOf(e.getKey()))).append(':');
                value(b, e.getValue());
            }
            b.append('}');
        } else if (v.getClass().isArray()) {
            b.append('[');
            int n = java.lang.reflect.Array.getLength(v);
            for (int i = 0; i < n; i++) {
                if (i > 0) {
                    b.append(',');
                }
                value(b, java.lang.reflect.Array.get(v, i));
            }
            b.append(']');
        } else {
            b.append(quote(v.toString()));
        }
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c); // UTF-16 surrogates pass through; stdout is UTF-8
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
